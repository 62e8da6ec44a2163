"""The ``reference`` engine: one step per Wasm instruction over an explicit frame stack.

Each defined function is compiled once per instance into a flat list of ``(handler, arg)`` pairs,
index-aligned with the function body (``code[i]`` executes ``func.body[i]``), with branch targets,
label heights and arities resolved from the validator's metadata.  A handler has the signature
``handler(stack, locals, arg, pc) -> next_pc`` and returns a negative number to ask the loop for a
frame change (call, return, tail call).  Wasm calls never recurse on the Python stack.

Counting rule (documented in docs/execution-model.md; every engine and tier must agree): every
instruction whose execution starts counts once, including ``block``, ``loop``, ``if``, ``else`` and
``end`` when control reaches them, and including an instruction that traps.  A taken branch to a block
label continues *after* the block's ``end`` (the ``end`` is not executed); a branch to a loop label
continues *at* the ``loop`` instruction (which is executed again, as in the spec's reduction rules).
``if`` with a false condition continues after ``else`` (not executed) or at ``end`` when there is no
``else``; reaching ``else`` from the then-arm continues after the matching ``end``.

While a callee runs, the caller's ``pc`` is the index of its pending call instruction; on return the
caller continues at ``pc + 1``.
"""

from __future__ import annotations

import struct
from typing import Any, Callable, List, Optional, Tuple, cast

from ..binary.opcodes import feature_of
from ..errors import Exhaustion, Trap, Unsupported, WasmException
from ..runtime.memdata import copy_bytes, fill_bytes
from ..runtime.objects import PAGE_SIZE, FuncInst, ModuleInst
from ..types import FuncType
from . import eh, gc, numerics, simd
from .simd.ints import shuffle as simd_shuffle
from .simd.lanes import pack_s, pack_u, repeat

# Frame-change requests returned by handlers.
CALL = -1
RETURN = -2
TAIL_CALL = -3


class Frame:
    """One activation.  ``pc`` is an index into ``func.body`` (the snapshot converts it to a byte offset)."""

    __slots__ = ("func", "code", "pc", "stack", "locals", "nresults", "caught")

    def __init__(self, func: FuncInst, locals_: list):
        code = func.code
        assert code is not None  # frames are built only for compiled functions (ensure_compiled)
        self.func = func
        self.code = code
        self.pc = 0
        self.stack: List[Any] = []
        self.locals = locals_
        self.nresults = len(func.type.results)
        #: legacy exception handling: ``try`` index -> the exception its ``catch``/``catch_all`` block
        #: caught (what ``rethrow`` rethrows).  Only the entries of the catch blocks that enclose ``pc``
        #: (``info.controls[pc]``) are live; None until the frame first catches.
        self.caught: Optional[dict] = None


class Thread:
    """The execution state of one invocation: frames bottom→top and the retired-instruction count."""

    __slots__ = ("frames", "count", "base", "results", "done")

    def __init__(self) -> None:
        self.frames: List[Frame] = []
        self.count = 0
        self.base = 0  # frames below this index belong to an outer invocation (host re-entry)
        self.results: Optional[list] = None
        self.done = False


def _oob() -> Trap:
    return Trap("out of bounds memory access")


class Machine:
    """Per-store engine state: the pending callee of a call handler and the call-depth limit."""

    # The function a call handler hands to the loop.  The loop reads it only right after a handler
    # returned CALL or TAIL_CALL, so it is typed as always set (it is None only before the first call).
    callee: FuncInst

    def __init__(self, store: Any):
        self.store = store
        self.callee = cast(FuncInst, None)
        #: the function :func:`compile_function` translates (or last translated): the instruction hooks
        #: of :mod:`.gc`/:mod:`.eh` read its body and metadata through it
        self.compiling: Optional[FuncInst] = None

    # -- compilation ------------------------------------------------------------------------
    def ensure_compiled(self, f: FuncInst) -> None:
        if f.code is None and f.host is None:
            f.code = compile_function(self, f)

    # -- running ------------------------------------------------------------------------------
    def new_frame(self, f: FuncInst, args: list) -> Frame:
        if f.code is None:
            self.ensure_compiled(f)
        locs = list(args)
        locs.extend(f.defaults)
        return Frame(f, locs)

    def start(self, f: FuncInst, args: list) -> Thread:
        """A thread about to execute the first instruction of ``f`` (host functions run at once)."""
        th = Thread()
        if f.host is not None:
            th.results = list(f.host(list(args)))
            th.done = True
            return th
        th.frames.append(self.new_frame(f, args))
        return th

    def invoke(self, f: FuncInst, args: list, stop_at: Optional[int] = None) -> Thread:
        """Start an invocation of ``f`` and run it to completion (or until ``stop_at`` instructions)."""
        th = self.start(f, args)
        if not th.done:
            self.run(th, stop_at)
        return th

    def run(self, th: Thread, stop_at: Optional[int] = None) -> None:
        """Run ``th`` until it finishes, traps (raises) or has retired ``stop_at`` instructions."""
        frames = th.frames
        max_depth = self.store.max_call_depth
        budget = (stop_at - th.count) if stop_at is not None else (1 << 62)
        if budget <= 0:
            return
        frame = frames[-1]
        code = frame.code
        st = frame.stack
        lc = frame.locals
        pc = frame.pc
        base_count = th.count
        i = -1
        first = 0
        while True:  # entered again only after a Wasm exception was caught (eh.unwind)
            try:
                for i in range(first, budget):  # noqa: B007 - i is read after the loop
                    fn, a = code[pc]
                    npc = fn(st, lc, a, pc)
                    if npc >= 0:
                        pc = npc
                        continue
                    if npc == CALL or npc == TAIL_CALL:
                        callee = self.callee
                        n = len(callee.type.params)
                        if n:
                            args = st[-n:]
                            del st[-n:]
                        else:
                            args = []
                        if callee.host is not None:
                            res = callee.host(args)
                            if npc == CALL:
                                st.extend(res)
                                pc += 1
                                continue
                            # tail call to a host function: return its results from this frame
                            st.extend(res)
                            npc = RETURN
                        else:
                            if callee.code is None:
                                self.ensure_compiled(callee)
                            locs = args
                            locs.extend(callee.defaults)
                            if npc == CALL:
                                if len(frames) >= max_depth:
                                    raise Exhaustion("call stack exhausted")
                                frame.pc = pc
                                frame = Frame(callee, locs)
                                frames.append(frame)
                            else:
                                frame = Frame(callee, locs)
                                frames[-1] = frame
                            code = frame.code
                            st = frame.stack
                            lc = locs
                            pc = 0
                            continue
                    # RETURN
                    nres = frame.nresults
                    res = st[-nres:] if nres else []
                    frames.pop()
                    if len(frames) <= th.base:
                        th.results = res
                        th.done = True
                        th.count = base_count + i + 1
                        return
                    frame = frames[-1]
                    code = frame.code
                    st = frame.stack
                    lc = frame.locals
                    pc = frame.pc + 1
                    st.extend(res)
                # budget exhausted: stop before the next instruction
                frame.pc = pc
                th.count = base_count + budget
                return
            except WasmException as e:
                # A Wasm exception (throw/throw_ref/rethrow, or a host callee): the instruction that
                # raised counts, then the handler search; uncaught, the thread is left as a trap leaves it.
                frame.pc = pc
                th.count = base_count + i + 1
                escaping = eh.unwind(th, e)
                if escaping is not None:
                    raise escaping from None
                if th.done:
                    return
                first = i + 1
                frame = frames[-1]
                code = frame.code
                st = frame.stack
                lc = frame.locals
                pc = frame.pc
            except Trap:
                frame.pc = pc
                th.count = base_count + i + 1
                raise
            except RecursionError:  # pragma: no cover - defensive: no Python recursion is expected
                th.count = base_count + i + 1
                raise Exhaustion("call stack exhausted") from None
            except (IndexError, OverflowError, MemoryError) as e:
                # Internal errors at a trap boundary are bugs, but resource exhaustion in a host
                # Python (huge allocations) is reported as exhaustion rather than a crash.
                frame.pc = pc
                th.count = base_count + i + 1
                if isinstance(e, MemoryError):
                    raise Exhaustion("out of memory") from None
                raise


# ------------------------------------------------------------------------------------------------
# Compilation
# ------------------------------------------------------------------------------------------------

def _h_next(st, lc, a, pc):
    return pc + 1


def _h_jump(st, lc, a, pc):
    return a


def _h_return(st, lc, a, pc):
    return RETURN


def _h_unreachable(st, lc, a, pc):
    raise Trap("unreachable")


def _h_if(st, lc, a, pc):
    if st.pop():
        return pc + 1
    return a


def _h_br0(st, lc, a, pc):
    del st[a[1]:]
    return a[0]


def _h_br1(st, lc, a, pc):
    v = st[-1]
    del st[a[1]:]
    st.append(v)
    return a[0]


def _h_brn(st, lc, a, pc):
    vs = st[-a[2]:]
    del st[a[1]:]
    st.extend(vs)
    return a[0]


def _h_br_if(st, lc, a, pc):
    if st.pop():
        return a[0](st, lc, a[1], pc)
    return pc + 1


def _h_br_table(st, lc, a, pc):
    i = st.pop()
    targets = a[0]
    if i < len(targets):
        fn, arg = targets[i]
    else:
        fn, arg = a[1]
    return fn(st, lc, arg, pc)


def _h_drop(st, lc, a, pc):
    st.pop()
    return pc + 1


def _h_select(st, lc, a, pc):
    c = st.pop()
    b = st.pop()
    if not c:
        st[-1] = b
    return pc + 1


def _h_local_get(st, lc, a, pc):
    st.append(lc[a])
    return pc + 1


def _h_local_set(st, lc, a, pc):
    lc[a] = st.pop()
    return pc + 1


def _h_local_tee(st, lc, a, pc):
    lc[a] = st[-1]
    return pc + 1


def _h_global_get(st, lc, a, pc):
    st.append(a.value)
    return pc + 1


def _h_global_set(st, lc, a, pc):
    a.value = st.pop()
    return pc + 1


def _h_const(st, lc, a, pc):
    st.append(a)
    return pc + 1


def _h_unop(st, lc, a, pc):
    st[-1] = a(st[-1])
    return pc + 1


def _h_binop(st, lc, a, pc):
    b = st.pop()
    st[-1] = a(st[-1], b)
    return pc + 1


def _h_ternop(st, lc, a, pc):
    c = st.pop()
    b = st.pop()
    st[-1] = a(st[-1], b, c)
    return pc + 1


_ARITY_H = {1: _h_unop, 2: _h_binop, 3: _h_ternop}


def _h_ref_is_null(st, lc, a, pc):
    st[-1] = 1 if st[-1] is None else 0
    return pc + 1


def _h_ref_as_non_null(st, lc, a, pc):
    if st[-1] is None:
        raise Trap("null reference")
    return pc + 1


def _h_ref_eq(st, lc, a, pc):
    b = st.pop()
    x = st[-1]
    st[-1] = 1 if (x is b or (x is not None and x == b)) else 0
    return pc + 1


# Loads/stores: arg = (meminst, offset, struct_unpack_from, size[, mask/sign-fix])
def _make_load(size: int, fmt: str, signed_bits: int):
    s = struct.Struct("<" + fmt)
    unpack_from = s.unpack_from
    if signed_bits:
        mask = (1 << signed_bits) - 1

        def h(st, lc, a, pc):
            ea = st[-1] + a[1]
            data = a[0].data
            if ea + size > len(data):
                raise _oob()
            st[-1] = unpack_from(data, ea)[0] & mask
            return pc + 1
    else:
        def h(st, lc, a, pc):
            ea = st[-1] + a[1]
            data = a[0].data
            if ea + size > len(data):
                raise _oob()
            st[-1] = unpack_from(data, ea)[0]
            return pc + 1
    return h


def _make_store(size: int, fmt: str, mask: int):
    s = struct.Struct("<" + fmt)
    pack_into = s.pack_into

    def h(st, lc, a, pc):
        v = st.pop()
        ea = st.pop() + a[1]
        data = a[0].data
        if ea + size > len(data):
            raise _oob()
        pack_into(data, ea, v & mask)
        return pc + 1
    return h


_LOADS = {
    "i32.load": (4, "I", 0), "i64.load": (8, "Q", 0), "f32.load": (4, "I", 0), "f64.load": (8, "Q", 0),
    "i32.load8_s": (1, "b", 32), "i32.load8_u": (1, "B", 0), "i32.load16_s": (2, "h", 32),
    "i32.load16_u": (2, "H", 0), "i64.load8_s": (1, "b", 64), "i64.load8_u": (1, "B", 0),
    "i64.load16_s": (2, "h", 64), "i64.load16_u": (2, "H", 0), "i64.load32_s": (4, "i", 64),
    "i64.load32_u": (4, "I", 0),
}
_STORES = {
    "i32.store": (4, "I", 0xFFFFFFFF), "i64.store": (8, "Q", (1 << 64) - 1),
    "f32.store": (4, "I", 0xFFFFFFFF), "f64.store": (8, "Q", (1 << 64) - 1),
    "i32.store8": (1, "B", 0xFF), "i32.store16": (2, "H", 0xFFFF), "i64.store8": (1, "B", 0xFF),
    "i64.store16": (2, "H", 0xFFFF), "i64.store32": (4, "I", 0xFFFFFFFF),
}
_LOAD_H = {k: _make_load(*v) for k, v in _LOADS.items()}
_STORE_H = {k: _make_store(*v) for k, v in _STORES.items()}


# SIMD memory forms: arg = (meminst, offset) or, for lane forms, (meminst, offset, lane shift).
# Bounds and traps exactly like the scalar loads; a v128 is an int with lane 0 in the low bits.
_V128 = struct.Struct("<QQ")
_M64 = (1 << 64) - 1


def _h_v128_load(st, lc, a, pc):
    ea = st[-1] + a[1]
    data = a[0].data
    if ea + 16 > len(data):
        raise _oob()
    lo, hi = _V128.unpack_from(data, ea)
    st[-1] = lo | hi << 64
    return pc + 1


def _h_v128_store(st, lc, a, pc):
    v = st.pop()
    ea = st.pop() + a[1]
    data = a[0].data
    if ea + 16 > len(data):
        raise _oob()
    _V128.pack_into(data, ea, v & _M64, v >> 64)
    return pc + 1


def _make_v128_extend(half: int, signed: bool):
    """``v128.load{half}x{64 // half}_s/u``: 8 bytes of ``half``-bit lanes widened to twice the width."""
    s = struct.Struct(f"<{64 // half}{'bhi'[half // 16] if signed else 'BHI'[half // 16]}")
    unpack_from = s.unpack_from
    pack = pack_s if signed else pack_u
    bits = half * 2

    def h(st, lc, a, pc):
        ea = st[-1] + a[1]
        data = a[0].data
        if ea + 8 > len(data):
            raise _oob()
        st[-1] = pack(unpack_from(data, ea), bits)
        return pc + 1
    return h


def _make_v128_splat_zero(bits: int, splat: bool):
    """``v128.load{bits}_splat`` (the scalar in every lane) and ``v128.load{bits}_zero`` (lane 0 only)."""
    size = bits // 8
    unpack_from = struct.Struct("<" + "BHIQ"[size.bit_length() - 1]).unpack_from

    def h(st, lc, a, pc):
        ea = st[-1] + a[1]
        data = a[0].data
        if ea + size > len(data):
            raise _oob()
        x = unpack_from(data, ea)[0]
        st[-1] = repeat(x, bits) if splat else x
        return pc + 1
    return h


def _make_v128_lane(bits: int, store: bool):
    """``v128.load{bits}_lane`` / ``v128.store{bits}_lane``: arg = (meminst, offset, lane * bits)."""
    size = bits // 8
    s = struct.Struct("<" + "BHIQ"[size.bit_length() - 1])
    unpack_from = s.unpack_from
    pack_into = s.pack_into
    m = (1 << bits) - 1

    def store_h(st, lc, a, pc):
        v = st.pop()
        ea = st.pop() + a[1]
        data = a[0].data
        if ea + size > len(data):
            raise _oob()
        pack_into(data, ea, (v >> a[2]) & m)
        return pc + 1

    def load_h(st, lc, a, pc):
        v = st.pop()
        ea = st[-1] + a[1]
        data = a[0].data
        if ea + size > len(data):
            raise _oob()
        st[-1] = (v & ~(m << a[2])) | (unpack_from(data, ea)[0] << a[2])
        return pc + 1
    return store_h if store else load_h


_SIMD_MEM_H = {"v128.load": _h_v128_load, "v128.store": _h_v128_store}
for _b in (8, 16, 32):
    _SIMD_MEM_H[f"v128.load{_b}x{64 // _b}_s"] = _make_v128_extend(_b, True)
    _SIMD_MEM_H[f"v128.load{_b}x{64 // _b}_u"] = _make_v128_extend(_b, False)
for _b in (8, 16, 32, 64):
    _SIMD_MEM_H[f"v128.load{_b}_splat"] = _make_v128_splat_zero(_b, True)
_SIMD_MEM_H["v128.load32_zero"] = _make_v128_splat_zero(32, False)
_SIMD_MEM_H["v128.load64_zero"] = _make_v128_splat_zero(64, False)
_SIMD_LANE_H = {}
for _b in (8, 16, 32, 64):
    _SIMD_LANE_H[f"v128.load{_b}_lane"] = (_make_v128_lane(_b, False), _b)
    _SIMD_LANE_H[f"v128.store{_b}_lane"] = (_make_v128_lane(_b, True), _b)


def _simd_pair(op: str, a: Any, inst: ModuleInst) -> Tuple[Callable, Any]:
    """The handler pair of a SIMD instruction; an op whose semantics are not in the tables is unsupported."""
    if op in simd.OPS:
        n, fn = simd.OPS[op]
        return _ARITY_H[n], fn
    if op in simd.LANE_OPS:
        n, fn = simd.LANE_OPS[op](a)
        return _ARITY_H[n], fn
    if op == "v128.const":
        return _h_const, a
    if op == "i8x16.shuffle":
        return _h_binop, simd_shuffle(a)
    if op in _SIMD_MEM_H:
        return _SIMD_MEM_H[op], (inst.mems[a.memidx], a.offset)
    if op in _SIMD_LANE_H:
        h, bits = _SIMD_LANE_H[op]
        memarg, lane = a
        return h, (inst.mems[memarg.memidx], memarg.offset, lane * bits)
    raise Unsupported(feature_of(op), op)


def _h_memory_size(st, lc, a, pc):
    st.append(len(a.data) // PAGE_SIZE)
    return pc + 1


def _h_memory_grow(st, lc, a, pc):
    mem, mask = a
    r = mem.grow(st[-1])
    st[-1] = r & mask
    return pc + 1


def _h_memory_fill(st, lc, a, pc):
    n = st.pop()
    val = st.pop()
    d = st.pop()
    data = a.data
    if d + n > len(data):
        raise _oob()
    if n:
        fill_bytes(data, d, n, val & 0xFF)
    return pc + 1


def _h_memory_copy(st, lc, a, pc):
    n = st.pop()
    s = st.pop()
    d = st.pop()
    dst = a[0].data
    src = a[1].data
    if s + n > len(src) or d + n > len(dst):
        raise _oob()
    if n:
        copy_bytes(dst, d, src, s, n)
    return pc + 1


def _h_memory_init(st, lc, a, pc):
    mem, inst, idx = a
    n = st.pop()
    s = st.pop()
    d = st.pop()
    seg = inst.datas[idx]
    data = mem.data
    if s + n > len(seg) or d + n > len(data):
        raise _oob()
    if n:
        copy_bytes(data, d, seg, s, n)
    return pc + 1


def _h_data_drop(st, lc, a, pc):
    a[0].drop_data(a[1])
    return pc + 1


def _h_table_get(st, lc, a, pc):
    i = st[-1]
    el = a.elements
    if i >= len(el):
        raise Trap("out of bounds table access")
    st[-1] = el[i]
    return pc + 1


def _h_table_set(st, lc, a, pc):
    v = st.pop()
    i = st.pop()
    el = a.elements
    if i >= len(el):
        raise Trap("out of bounds table access")
    el[i] = v
    return pc + 1


def _h_table_size(st, lc, a, pc):
    st.append(len(a.elements))
    return pc + 1


def _h_table_grow(st, lc, a, pc):
    tab, mask = a
    n = st.pop()
    init = st[-1]
    st[-1] = tab.grow(n, init) & mask
    return pc + 1


def _h_table_fill(st, lc, a, pc):
    n = st.pop()
    v = st.pop()
    i = st.pop()
    el = a.elements
    if i + n > len(el):
        raise Trap("out of bounds table access")
    if n:
        el[i:i + n] = [v] * n
    return pc + 1


def _h_table_copy(st, lc, a, pc):
    n = st.pop()
    s = st.pop()
    d = st.pop()
    dst = a[0].elements
    src = a[1].elements
    if s + n > len(src) or d + n > len(dst):
        raise Trap("out of bounds table access")
    if n:
        dst[d:d + n] = src[s:s + n]
    return pc + 1


def _h_table_init(st, lc, a, pc):
    tab, inst, idx = a
    n = st.pop()
    s = st.pop()
    d = st.pop()
    seg = inst.elems[idx]
    el = tab.elements
    if s + n > len(seg) or d + n > len(el):
        raise Trap("out of bounds table access")
    if n:
        el[d:d + n] = seg[s:s + n]
    return pc + 1


def _h_elem_drop(st, lc, a, pc):
    a[0].drop_elem(a[1])
    return pc + 1


class _CallH:
    """Call handlers need the machine (to hand over the callee), so they are bound per machine."""

    def __init__(self, m: Machine):
        self.m = m

    def call(self, st, lc, a, pc):
        self.m.callee = a
        return CALL

    def return_call(self, st, lc, a, pc):
        self.m.callee = a
        return TAIL_CALL

    def _indirect(self, st, a):
        tab, canon, match = a
        i = st.pop()
        el = tab.elements
        if i >= len(el):
            raise Trap(f"undefined element {i}")
        f = el[i]
        if f is None:
            raise Trap(f"uninitialized element {i}")
        if f.canon != canon and not match(f.canon, canon):
            raise Trap("indirect call type mismatch")
        self.m.callee = f

    def call_indirect(self, st, lc, a, pc):
        self._indirect(st, a)
        return CALL

    def return_call_indirect(self, st, lc, a, pc):
        self._indirect(st, a)
        return TAIL_CALL

    def call_ref(self, st, lc, a, pc):
        f = st.pop()
        if f is None:
            raise Trap("null function reference")
        self.m.callee = f
        return CALL

    def return_call_ref(self, st, lc, a, pc):
        f = st.pop()
        if f is None:
            raise Trap("null function reference")
        self.m.callee = f
        return TAIL_CALL


def _h_br_on_null(st, lc, a, pc):
    if st[-1] is None:
        st.pop()
        return a[0](st, lc, a[1], pc)
    return pc + 1


def _h_br_on_non_null(st, lc, a, pc):
    if st[-1] is not None:
        return a[0](st, lc, a[1], pc)
    st.pop()
    return pc + 1


_SIMPLE = {
    "nop": (_h_next, None),
    "unreachable": (_h_unreachable, None),
    "drop": (_h_drop, None),
    "return": (_h_return, None),
    "ref.is_null": (_h_ref_is_null, None),
    "ref.as_non_null": (_h_ref_as_non_null, None),
    "ref.eq": (_h_ref_eq, None),
}

def _block_arity(inst: ModuleInst, bt: Any) -> Tuple[int, int]:
    if bt is None:
        return 0, 0
    if isinstance(bt, int):
        ft = inst.module.types[bt].comp
        return len(ft.params), len(ft.results)
    return 0, 1


def compile_function(m: Machine, f: FuncInst) -> list:
    """Translate ``f.func.body`` into handler pairs using the validator's metadata in ``f.info``."""
    inst = cast(ModuleInst, f.module)  # a defined function (host functions are never compiled)
    m.compiling = f
    body = f.func.body
    info = f.info
    heights = info.heights
    controls = info.controls
    block_end = info.block_end
    block_else = info.block_else
    calls = _CallH(m)
    mod = inst.module
    last = len(body) - 1
    code: List[Tuple[Callable, Any]] = []
    addr_mask = [(1 << 64) - 1 if mt.is64 else 0xFFFFFFFF for mt in mod.mem_types()]
    tab_mask = [(1 << 64) - 1 if tt.is64 else 0xFFFFFFFF for tt in mod.table_types()]
    ops = numerics.OPS
    arity = numerics.ARITY

    def branch(i: int, depth: int) -> Tuple[Callable, Any]:
        ctl = controls[i]
        label = ctl[-1 - depth]
        if label.kind == "func":
            return _h_return, None
        if label.kind == "loop":
            target = label.start
            n = len(label.params)
        else:
            target = block_end[label.start] + 1
            n = len(label.results)
        h = label.height
        if n == 0:
            return _h_br0, (target, h)
        if n == 1:
            return _h_br1, (target, h)
        return _h_brn, (target, h, n)

    for i, ins in enumerate(body):
        op = ins.op
        a = ins.imm
        if op in _SIMPLE:
            code.append(_SIMPLE[op])
        elif op in ops:
            fn = ops[op]
            code.append((_h_binop if arity[op] == 2 else _h_unop, fn))
        elif op == "local.get":
            code.append((_h_local_get, a))
        elif op == "local.set":
            code.append((_h_local_set, a))
        elif op == "local.tee":
            code.append((_h_local_tee, a))
        elif op in ("i32.const", "i64.const", "f32.const", "f64.const"):
            code.append((_h_const, a))
        elif op in ("block", "loop"):
            code.append((_h_next, None))
        elif op == "if":
            target = block_else[i] + 1 if i in block_else else block_end[i]
            code.append((_h_if, target))
        elif op == "else":
            if_idx = controls[i][-1].start
            code.append((_h_jump, block_end[if_idx] + 1))
        elif op == "end":
            code.append((_h_return, None) if i == last else (_h_next, None))
        elif op == "br":
            code.append(branch(i, a))
        elif op == "br_if":
            code.append((_h_br_if, branch(i, a)))
        elif op == "br_table":
            labels, default = a
            code.append((_h_br_table, ([branch(i, d) for d in labels], branch(i, default))))
        elif op == "br_on_null":
            code.append((_h_br_on_null, branch(i, a)))
        elif op == "br_on_non_null":
            code.append((_h_br_on_non_null, branch(i, a)))
        elif op == "select":
            code.append((_h_select, None))
        elif op == "global.get":
            code.append((_h_global_get, inst.globals[a]))
        elif op == "global.set":
            code.append((_h_global_set, inst.globals[a]))
        elif op in _LOAD_H:
            code.append((_LOAD_H[op], (inst.mems[a.memidx], a.offset)))
        elif op in _STORE_H:
            code.append((_STORE_H[op], (inst.mems[a.memidx], a.offset)))
        elif op == "memory.size":
            code.append((_h_memory_size, inst.mems[a]))
        elif op == "memory.grow":
            code.append((_h_memory_grow, (inst.mems[a], addr_mask[a])))
        elif op == "memory.fill":
            code.append((_h_memory_fill, inst.mems[a]))
        elif op == "memory.copy":
            code.append((_h_memory_copy, (inst.mems[a[0]], inst.mems[a[1]])))
        elif op == "memory.init":
            code.append((_h_memory_init, (inst.mems[a[0]], inst, a[1])))
        elif op == "data.drop":
            code.append((_h_data_drop, (inst, a)))
        elif op == "table.get":
            code.append((_h_table_get, inst.tables[a]))
        elif op == "table.set":
            code.append((_h_table_set, inst.tables[a]))
        elif op == "table.size":
            code.append((_h_table_size, inst.tables[a]))
        elif op == "table.grow":
            code.append((_h_table_grow, (inst.tables[a], tab_mask[a])))
        elif op == "table.fill":
            code.append((_h_table_fill, inst.tables[a]))
        elif op == "table.copy":
            code.append((_h_table_copy, (inst.tables[a[0]], inst.tables[a[1]])))
        elif op == "table.init":
            code.append((_h_table_init, (inst.tables[a[0]], inst, a[1])))
        elif op == "elem.drop":
            code.append((_h_elem_drop, (inst, a)))
        elif op == "ref.null":
            code.append((_h_const, None))
        elif op == "ref.func":
            code.append((_h_const, inst.funcs[a]))
        elif op == "call":
            code.append((calls.call, inst.funcs[a]))
        elif op == "return_call":
            code.append((calls.return_call, inst.funcs[a]))
        elif op in ("call_indirect", "return_call_indirect"):
            typeidx, tableidx = a
            arg = (inst.tables[tableidx], inst.canon[typeidx], m.store.canon_match)
            code.append((calls.call_indirect if op == "call_indirect" else calls.return_call_indirect, arg))
        elif op == "call_ref":
            code.append((calls.call_ref, a))
        elif op == "return_call_ref":
            code.append((calls.return_call_ref, a))
        elif op in gc.OPS:
            code.append(gc.OPS[op](m, inst, a, i, branch))
        elif op in eh.OPS:
            code.append(eh.OPS[op](m, inst, a, i, branch))
        else:
            code.append(_simd_pair(op, a, inst))
    del heights  # heights are resolved into the branch arguments through `controls`
    return code


def is_func_type(t: Any) -> bool:
    return isinstance(t, FuncType)
