"""The validator: the spec's validation algorithm (appendix "Validation Algorithm") over flat bodies.

One pass per function with an operand stack (types; ``"bot"`` = unknown type in stack-polymorphic
code) and a control stack.  While checking, it records for every instruction what the engines and
checkpoint/restore need (:class:`vm.valid.info.FuncInfo`): operand height and types before it,
reachability, the control stack, and the matching ``else``/``end`` of every block.

Messages are the reference interpreter's wording because the spec runner compares them as prefixes.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import InvalidModule, Unsupported
from ..types import (
    ArrayType,
    FuncType,
    RefType,
    StructType,
)
from .canon import BOTTOM, canonical_types, heap_sub_c, key_final, key_kind, top_heap
from .info import ControlInfo, FuncInfo, ModuleInfo
from .optypes import LANEMEMOPS, LANES, MEMOPS, SIMPLE, simd_sig

BOT = "bot"
I32, I64, F32, F64, V128 = "i32", "i64", "f32", "f64", "v128"
EXNREF_NN = RefType(False, "exn")
EXNREF = RefType(True, "exn")
FUNCREF = RefType(True, "func")
EQREF = RefType(True, "eq")

CONST_OPS = frozenset((
    "i32.const", "i64.const", "f32.const", "f64.const", "v128.const", "ref.null", "ref.func",
    "global.get", "i32.add", "i32.sub", "i32.mul", "i64.add", "i64.sub", "i64.mul", "ref.i31",
    "struct.new", "struct.new_default", "array.new", "array.new_default", "array.new_fixed",
    "any.convert_extern", "extern.convert_any", "end",
))

def _fmt_type(t) -> str:
    if t == BOT:
        return "bot"
    return repr(t) if isinstance(t, RefType) else str(t)


def _fmt(ts: Sequence) -> str:
    return "[" + " ".join(_fmt_type(t) for t in ts) + "]"


def _unpack(s):
    return I32 if s in ("i8", "i16") else s


def _defaultable(t) -> bool:
    return not isinstance(t, RefType) or t.nullable


class _Ctrl:
    __slots__ = ("kind", "start", "params", "results", "height", "unreachable", "inits")

    def __init__(self, kind, start, params, results, height):
        self.kind = kind
        self.start = start
        self.params = params
        self.results = results
        self.height = height
        self.unreachable = False
        self.inits: List[int] = []


class Context:
    """The module-level part of the spec's validation context."""

    def __init__(self, m, keys):
        self.m = m
        self.types = m.types
        self.keys = keys
        self.funcs = m.func_typeidxs()
        self.tables = m.table_types()
        self.mems = m.mem_types()
        self.globals = m.global_types()
        self.tags = m.tag_typeidxs()
        self.elems = [e.type for e in m.elems]
        self.ndatas = m.data_count if m.data_count is not None else len(m.datas)
        self.refs: frozenset = frozenset()
        #: shared stack-type tuples of this module (per module, so nothing outlives the ModuleInfo)
        self.intern: Dict[tuple, tuple] = {}

    # -- lookups with the spec's messages --
    def type_(self, x):
        if not isinstance(x, int) or x < 0 or x >= len(self.types):
            raise InvalidModule(f"unknown type {x}")
        return self.types[x].comp

    def func_type(self, x) -> FuncType:
        c = self.type_(x)
        if not isinstance(c, FuncType):
            raise InvalidModule(f"type mismatch: non-function type {x}")
        return c

    def sub(self, t1, t2) -> bool:
        """``t1 <: t2`` for value types of this module."""
        if t1 == t2 or t1 == BOT:
            return True
        if isinstance(t1, RefType) and isinstance(t2, RefType):
            if t1.nullable and not t2.nullable:
                return False
            return self.heap_sub(t1.heap, t2.heap)
        return False

    def heap_sub(self, h1, h2) -> bool:
        if h1 == h2 or h1 == BOT:
            return True
        keys = self.keys
        return heap_sub_c(keys[h1] if isinstance(h1, int) else h1,
                          keys[h2] if isinstance(h2, int) else h2)

    def check_valtype(self, t) -> None:
        if isinstance(t, RefType):
            self.check_heap(t.heap)
        elif t not in (I32, I64, F32, F64, V128):
            raise InvalidModule(f"unknown value type {t!r}")

    def check_heap(self, h) -> None:
        if isinstance(h, int):
            if h < 0 or h >= len(self.types):
                raise InvalidModule(f"unknown type {h}")
        elif h not in BOTTOM and h not in ("eq", "i31", "struct", "array", "none", "nofunc",
                                            "noextern", "noexn"):
            raise InvalidModule(f"unknown heap type {h!r}")

    def results_sub(self, ts1, ts2) -> bool:
        return len(ts1) == len(ts2) and all(self.sub(a, b) for a, b in zip(ts1, ts2))


class FuncValidator:
    """Validates one instruction sequence (function body or constant expression)."""

    def __init__(self, ctx: Context, ftype: FuncType, local_types: List, fidx: Optional[int],
                 const_globals: Optional[int] = None):
        self.ctx = ctx
        self.ftype = ftype
        self.locals = local_types
        self.fidx = fidx
        self.const_globals = const_globals  # None = function body; else number of visible globals
        self.inited = [True] * len(ftype.params) + [
            _defaultable(t) for t in local_types[len(ftype.params):]
        ]
        self.stack: List = []
        self.ctrls: List[_Ctrl] = []
        self.ctl_tuple: Tuple[ControlInfo, ...] = ()
        self.info = FuncInfo(ftype, local_types)
        self.ins = None

    # -- errors --
    def err(self, msg: str):
        off = self.ins.offset if self.ins is not None and self.ins.offset >= 0 else None
        raise InvalidModule(msg, func=self.fidx, offset=off)

    # -- operand stack --
    def push(self, t) -> None:
        self.stack.append(t)

    def pop(self, expect=None):
        stack = self.stack
        top = self.ctrls[-1]
        if len(stack) == top.height:
            if top.unreachable:
                return BOT
            self.err(f"type mismatch: instruction requires [{_fmt_type(expect) if expect else 'any'}]"
                     " but stack has []")
        t = stack.pop()
        if expect is not None and not (t == expect or t == BOT or self.ctx.sub(t, expect)):
            self.err(f"type mismatch: instruction requires [{_fmt_type(expect)}] but stack has "
                     f"[{_fmt_type(t)}]")
        return t

    def pops(self, expected: Sequence) -> List:
        n = len(expected)
        if n == 0:
            return []
        stack = self.stack
        top = self.ctrls[-1]
        avail = len(stack) - top.height
        sub = self.ctx.sub
        if avail >= n:
            actual = stack[-n:]
            for a, e in zip(actual, expected):
                if not (a == e or a == BOT or sub(a, e)):
                    self.err(f"type mismatch: instruction requires {_fmt(expected)} but stack has "
                             f"{_fmt(actual)}")
            del stack[-n:]
            return actual
        present = stack[top.height:]
        if not top.unreachable:
            self.err(f"type mismatch: instruction requires {_fmt(expected)} but stack has "
                     f"{_fmt(present)}")
        actual = [BOT] * (n - avail) + present
        for a, e in zip(actual, expected):
            if not (a == e or a == BOT or sub(a, e)):
                self.err(f"type mismatch: instruction requires {_fmt(expected)} but stack has "
                         f"{_fmt(present)}")
        del stack[top.height:]
        return actual

    def pop_ref(self):
        t = self.pop()
        if t != BOT and not isinstance(t, RefType):
            self.err(f"type mismatch: instruction requires reference type but stack has {_fmt_type(t)}")
        return t

    # -- control stack --
    def push_ctrl(self, kind: str, start: int, params, results) -> None:
        c = _Ctrl(kind, start, params, results, len(self.stack))
        self.ctrls.append(c)
        self.ctl_tuple = self.ctl_tuple + (ControlInfo(kind, start, params, results, c.height),)
        self.stack.extend(params)

    def pop_ctrl(self) -> _Ctrl:
        c = self.ctrls[-1]
        self.pops(c.results)
        if len(self.stack) != c.height:
            self.err(f"type mismatch: block requires {_fmt(c.results)} but stack has "
                     f"{_fmt(self.stack[c.height:])}")
        self.ctrls.pop()
        self.ctl_tuple = self.ctl_tuple[:-1]
        inited = self.inited
        for x in c.inits:
            inited[x] = False
        return c

    def set_unreachable(self) -> None:
        c = self.ctrls[-1]
        del self.stack[c.height:]
        c.unreachable = True

    def label(self, n: int):
        if not isinstance(n, int) or n < 0 or n >= len(self.ctrls):
            self.err(f"unknown label {n}")
        c = self.ctrls[-1 - n]
        return c.params if c.kind == "loop" else c.results

    def block_type(self, bt):
        if bt is None:
            return (), ()
        if isinstance(bt, int):
            ft = self.ctx.func_type(bt)
            return tuple(ft.params), tuple(ft.results)
        self.ctx.check_valtype(bt)
        return (), (bt,)

    # -- index spaces --
    def local(self, x):
        if not isinstance(x, int) or x < 0 or x >= len(self.locals):
            self.err(f"unknown local {x}")
        return self.locals[x]

    def global_(self, x):
        n = len(self.ctx.globals) if self.const_globals is None else self.const_globals
        if not isinstance(x, int) or x < 0 or x >= n:
            self.err(f"unknown global {x}")
        return self.ctx.globals[x]

    def table(self, x):
        if not isinstance(x, int) or x < 0 or x >= len(self.ctx.tables):
            self.err(f"unknown table {x}")
        return self.ctx.tables[x]

    def mem(self, x):
        if not isinstance(x, int) or x < 0 or x >= len(self.ctx.mems):
            self.err(f"unknown memory {x}")
        return self.ctx.mems[x]

    def func(self, x) -> FuncType:
        if not isinstance(x, int) or x < 0 or x >= len(self.ctx.funcs):
            self.err(f"unknown function {x}")
        return self.ctx.func_type(self.ctx.funcs[x])

    def elem(self, x):
        if not isinstance(x, int) or x < 0 or x >= len(self.ctx.elems):
            self.err(f"unknown elem segment {x}")
        return self.ctx.elems[x]

    def data(self, x):
        if self.ctx.m.data_count is None and self.const_globals is None:
            self.err("data count section required")
        if not isinstance(x, int) or x < 0 or x >= self.ctx.ndatas:
            self.err(f"unknown data segment {x}")

    def tag(self, x) -> FuncType:
        if not isinstance(x, int) or x < 0 or x >= len(self.ctx.tags):
            self.err(f"unknown tag {x}")
        return self.ctx.func_type(self.ctx.tags[x])

    def struct(self, x) -> StructType:
        c = self.ctx.type_(x)
        if not isinstance(c, StructType):
            self.err(f"type mismatch: non-structure type {x}")
        return c

    def array(self, x) -> ArrayType:
        c = self.ctx.type_(x)
        if not isinstance(c, ArrayType):
            self.err(f"type mismatch: non-array type {x}")
        return c

    def addr(self, is64: bool) -> str:
        return I64 if is64 else I32

    # -- main loop --
    def run(self, body) -> FuncInfo:
        ft = self.ftype
        info = self.info
        heights = info.heights
        stypes = info.stack_types
        reach = info.reachable
        controls = info.controls
        intern = self.ctx.intern
        stack = self.stack
        self.push_ctrl("func", -1, (), tuple(ft.results))
        ctrls = self.ctrls
        const = self.const_globals is not None
        maxh = 0
        for i, ins in enumerate(body):
            self.ins = ins
            op = ins.op
            if not ctrls:
                self.err("operators remaining after end of function")
            top = ctrls[-1]
            h = len(stack)
            if h > maxh:
                maxh = h
            if top.unreachable:
                heights.append(top.height)
                reach.append(False)
            else:
                heights.append(h)
                reach.append(True)
            st = tuple(stack)
            stypes.append(intern.setdefault(st, st))
            controls.append(self.ctl_tuple)
            if const and op not in CONST_OPS:
                self.err("constant expression required")
            sig = SIMPLE.get(op)
            if sig is not None:
                pops, pushes = sig
                if pops:
                    k = len(pops)
                    if h - top.height >= k and all(
                            a == e or a == BOT for a, e in zip(stack[-k:], pops)):
                        del stack[-k:]
                    else:
                        self.pops(pops)
                stack.extend(pushes)
                continue
            handler = _HANDLERS.get(op)
            if handler is None:
                self.generic(op, ins.imm, i)
            else:
                handler(self, ins.imm, i)
        if ctrls:
            self.err("unexpected end of function")
        info.max_height = max(maxh, len(stack))
        return info

    # -- instructions without a handler: SIMD and memory patterns --
    def generic(self, op: str, imm, i: int) -> None:
        mo = MEMOPS.get(op)
        if mo is not None:
            t, size, store = mo
            mt = self.mem(imm.memidx)
            self.check_memarg(imm, size, mt)
            at = self.addr(mt.is64)
            if store:
                self.pops((at, t))
            else:
                self.pop(at)
                self.push(t)
            return
        lm = LANEMEMOPS.get(op)
        if lm is not None:
            size, lanes, store = lm
            marg, lane = imm
            mt = self.mem(marg.memidx)
            self.check_memarg(marg, size, mt)
            if not (0 <= lane < lanes):
                self.err("invalid lane index")
            self.pops((self.addr(mt.is64), V128))
            if not store:
                self.push(V128)
            return
        if "atomic" in op:
            raise Unsupported("threads", op)
        sig = simd_sig(op)
        if sig is None:
            raise Unsupported("instruction", op)
        if ".extract_lane" in op or ".replace_lane" in op:
            shape = op.split(".")[0]
            if not isinstance(imm, int) or not (0 <= imm < LANES[shape]):
                self.err("invalid lane index")
        elif op == "i8x16.shuffle":
            if any(not (0 <= x < 32) for x in imm):
                self.err("invalid lane index")
        self.pops(sig[0])
        self.stack.extend(sig[1])

    def check_memarg(self, marg, size: int, mt) -> None:
        if marg.align >= 32 or (1 << marg.align) > size:
            self.err("alignment must not be larger than natural")
        if not mt.is64 and marg.offset >= 1 << 32:
            self.err("offset out of range")

    # -- control --
    def i_unreachable(self, imm, i):
        self.set_unreachable()

    def i_block(self, imm, i):
        params, results = self.block_type(imm)
        self.pops(params)
        self.push_ctrl("block", i, params, results)

    def i_loop(self, imm, i):
        params, results = self.block_type(imm)
        self.pops(params)
        self.push_ctrl("loop", i, params, results)

    def i_if(self, imm, i):
        params, results = self.block_type(imm)
        self.pop(I32)
        self.pops(params)
        self.push_ctrl("if", i, params, results)

    def i_else(self, imm, i):
        c = self.ctrls[-1]
        if c.kind != "if":
            self.err("else without if")
        self.pop_ctrl()
        self.info.block_else[c.start] = i
        self.push_ctrl("else", c.start, c.params, c.results)

    def i_end(self, imm, i):
        c = self.pop_ctrl()
        if c.kind == "if" and not self.ctx.results_sub(c.params, c.results):
            self.err(f"type mismatch: if without else requires {_fmt(c.results)} but has "
                     f"{_fmt(c.params)}")
        if c.start >= 0:
            self.info.block_end[c.start] = i
        self.stack.extend(c.results)

    def i_br(self, imm, i):
        self.pops(self.label(imm))
        self.set_unreachable()

    def i_br_if(self, imm, i):
        lt = self.label(imm)
        self.pop(I32)
        self.pops(lt)
        self.stack.extend(lt)

    def i_br_table(self, imm, i):
        labels, default = imm
        self.pop(I32)
        dt = self.label(default)
        arity = len(dt)
        top = self.ctrls[-1]
        avail = len(self.stack) - top.height
        if avail < arity and not top.unreachable:
            self.err(f"type mismatch: instruction requires {_fmt(dt)} but stack has "
                     f"{_fmt(self.stack[top.height:])}")
        vals = ([BOT] * max(0, arity - avail) + self.stack[top.height:])[-arity:] if arity else []
        for lab in list(labels) + [default]:
            lt = self.label(lab)
            if len(lt) != arity:
                self.err("type mismatch: br_table targets have different arities")
            for a, e in zip(vals, lt):
                if not self.ctx.sub(a, e):
                    self.err(f"type mismatch: instruction requires {_fmt(lt)} but stack has "
                             f"{_fmt(vals)}")
        self.set_unreachable()

    def i_return(self, imm, i):
        self.pops(self.ftype.results)
        self.set_unreachable()

    def i_call(self, imm, i):
        ft = self.func(imm)
        self.pops(ft.params)
        self.stack.extend(ft.results)

    def _tail(self, ft):
        if not self.ctx.results_sub(ft.results, self.ftype.results):
            self.err(f"type mismatch: tail call requires {_fmt(self.ftype.results)} but callee "
                     f"returns {_fmt(ft.results)}")
        self.pops(ft.params)
        self.set_unreachable()

    def i_return_call(self, imm, i):
        self._tail(self.func(imm))

    def _call_indirect_type(self, imm):
        typeidx, tab = imm
        tt = self.table(tab)
        ft = self.ctx.func_type(typeidx)
        if not self.ctx.sub(tt.elem, FUNCREF):
            self.err("type mismatch: call_indirect requires a table of function references")
        self.pop(self.addr(tt.is64))
        return ft

    def i_call_indirect(self, imm, i):
        ft = self._call_indirect_type(imm)
        self.pops(ft.params)
        self.stack.extend(ft.results)

    def i_return_call_indirect(self, imm, i):
        self._tail(self._call_indirect_type(imm))

    def i_call_ref(self, imm, i):
        ft = self.ctx.func_type(imm)
        self.pop(RefType(True, imm))
        self.pops(ft.params)
        self.stack.extend(ft.results)

    def i_return_call_ref(self, imm, i):
        ft = self.ctx.func_type(imm)
        self.pop(RefType(True, imm))
        self._tail(ft)

    def i_throw(self, imm, i):
        ft = self.tag(imm)
        self.pops(ft.params)
        self.set_unreachable()

    def i_throw_ref(self, imm, i):
        self.pop(EXNREF)
        self.set_unreachable()

    def i_try_table(self, imm, i):
        bt, catches = imm
        params, results = self.block_type(bt)
        for c in catches:
            lt = self.label(c.label)
            if c.kind in ("catch", "catch_ref"):
                ts = tuple(self.tag(c.tag).params)
            else:
                ts = ()
            if c.kind.endswith("_ref"):
                ts = ts + (EXNREF_NN,)
            if not self.ctx.results_sub(ts, lt):
                self.err(f"type mismatch: catch handler requires {_fmt(lt)} but tag provides {_fmt(ts)}")
        self.pops(params)
        self.push_ctrl("try_table", i, params, results)

    # legacy exception handling
    def i_try(self, imm, i):
        params, results = self.block_type(imm)
        self.pops(params)
        self.push_ctrl("try", i, params, results)

    def _catches(self, start, i):
        self.info.catches.setdefault(start, []).append(i)

    def i_catch(self, imm, i):
        c = self.ctrls[-1]
        if c.kind not in ("try", "catch"):
            self.err("catch without try")
        ft = self.tag(imm)
        self.pop_ctrl()
        self._catches(c.start, i)
        self.push_ctrl("catch", c.start, tuple(ft.params), c.results)

    def i_catch_all(self, imm, i):
        c = self.ctrls[-1]
        if c.kind not in ("try", "catch"):
            self.err("catch_all without try")
        self.pop_ctrl()
        self._catches(c.start, i)
        self.push_ctrl("catch_all", c.start, (), c.results)

    def i_delegate(self, imm, i):
        c = self.ctrls[-1]
        if c.kind != "try":
            self.err("delegate without try")
        self.pop_ctrl()
        self.label(imm)
        self.info.block_end[c.start] = i
        self.stack.extend(c.results)

    def i_rethrow(self, imm, i):
        self.label(imm)
        c = self.ctrls[-1 - imm]
        if c.kind not in ("catch", "catch_all"):
            self.err("invalid rethrow label")
        self.set_unreachable()

    # -- parametric --
    def i_drop(self, imm, i):
        self.pop()

    def i_select(self, imm, i):
        if imm is None:
            self.pop(I32)
            t1 = self.pop()
            t2 = self.pop()
            for t in (t1, t2):
                if isinstance(t, RefType):
                    self.err(f"type mismatch: instruction requires numeric or vector type but stack "
                             f"has {_fmt_type(t)}")
            if t1 != t2 and t1 != BOT and t2 != BOT:
                self.err(f"type mismatch: select operands {_fmt_type(t2)} and {_fmt_type(t1)} differ")
            self.push(t2 if t1 == BOT else t1)
            return
        if len(imm) != 1:
            self.err("invalid result arity")
        t = imm[0]
        self.ctx.check_valtype(t)
        self.pops((t, t, I32))
        self.push(t)

    # -- variables --
    def i_local_get(self, imm, i):
        t = self.local(imm)
        if not self.inited[imm]:
            self.err(f"uninitialized local {imm}")
        self.push(t)

    def _init(self, x):
        if not self.inited[x]:
            self.inited[x] = True
            self.ctrls[-1].inits.append(x)

    def i_local_set(self, imm, i):
        self.pop(self.local(imm))
        self._init(imm)

    def i_local_tee(self, imm, i):
        t = self.local(imm)
        self.pop(t)
        self._init(imm)
        self.push(t)

    def i_global_get(self, imm, i):
        gt = self.global_(imm)
        if self.const_globals is not None and gt.mutable:
            self.err("constant expression required")
        self.push(gt.type)

    def i_global_set(self, imm, i):
        gt = self.global_(imm)
        if not gt.mutable:
            self.err("immutable global")
        self.pop(gt.type)

    # -- tables --
    def i_table_get(self, imm, i):
        tt = self.table(imm)
        self.pop(self.addr(tt.is64))
        self.push(tt.elem)

    def i_table_set(self, imm, i):
        tt = self.table(imm)
        self.pops((self.addr(tt.is64), tt.elem))

    def i_table_size(self, imm, i):
        tt = self.table(imm)
        self.push(self.addr(tt.is64))

    def i_table_grow(self, imm, i):
        tt = self.table(imm)
        at = self.addr(tt.is64)
        self.pops((tt.elem, at))
        self.push(at)

    def i_table_fill(self, imm, i):
        tt = self.table(imm)
        at = self.addr(tt.is64)
        self.pops((at, tt.elem, at))

    def i_table_copy(self, imm, i):
        d, s = imm
        td = self.table(d)
        ts = self.table(s)
        if not self.ctx.sub(ts.elem, td.elem):
            self.err(f"type mismatch: table.copy source {_fmt_type(ts.elem)} is not a subtype of "
                     f"destination {_fmt_type(td.elem)}")
        n = I64 if td.is64 and ts.is64 else I32
        self.pops((self.addr(td.is64), self.addr(ts.is64), n))

    def i_table_init(self, imm, i):
        t, e = imm
        tt = self.table(t)
        et = self.elem(e)
        if not self.ctx.sub(et, tt.elem):
            self.err(f"type mismatch: elem segment {_fmt_type(et)} does not match table "
                     f"{_fmt_type(tt.elem)}")
        self.pops((self.addr(tt.is64), I32, I32))

    def i_elem_drop(self, imm, i):
        self.elem(imm)

    # -- memories --
    def i_memory_size(self, imm, i):
        self.push(self.addr(self.mem(imm).is64))

    def i_memory_grow(self, imm, i):
        at = self.addr(self.mem(imm).is64)
        self.pop(at)
        self.push(at)

    def i_memory_fill(self, imm, i):
        at = self.addr(self.mem(imm).is64)
        self.pops((at, I32, at))

    def i_memory_copy(self, imm, i):
        d, s = imm
        md = self.mem(d)
        ms = self.mem(s)
        n = I64 if md.is64 and ms.is64 else I32
        self.pops((self.addr(md.is64), self.addr(ms.is64), n))

    def i_memory_init(self, imm, i):
        m, d = imm
        mt = self.mem(m)
        self.data(d)
        self.pops((self.addr(mt.is64), I32, I32))

    def i_data_drop(self, imm, i):
        self.data(imm)

    # -- references --
    def i_ref_null(self, imm, i):
        self.ctx.check_heap(imm)
        self.push(RefType(True, imm))

    def i_ref_is_null(self, imm, i):
        self.pop_ref()
        self.push(I32)

    def i_ref_as_non_null(self, imm, i):
        t = self.pop_ref()
        self.push(BOT if t == BOT else RefType(False, t.heap))

    def i_ref_func(self, imm, i):
        self.func(imm)
        if self.const_globals is None and imm not in self.ctx.refs:
            self.err(f"undeclared function reference {imm}")
        self.push(RefType(False, self.ctx.funcs[imm]))

    def i_ref_eq(self, imm, i):
        self.pops((EQREF, EQREF))
        self.push(I32)

    def i_br_on_null(self, imm, i):
        lt = self.label(imm)
        t = self.pop_ref()
        self.pops(lt)
        self.stack.extend(lt)
        self.push(BOT if t == BOT else RefType(False, t.heap))

    def i_br_on_non_null(self, imm, i):
        lt = self.label(imm)
        if not lt or not isinstance(lt[-1], RefType) and lt[-1] != BOT:
            self.err(f"type mismatch: instruction requires a reference type but label has {_fmt(lt)}")
        t = self.pop_ref()
        if t != BOT and not self.ctx.sub(RefType(False, t.heap), lt[-1]):
            self.err(f"type mismatch: instruction requires type {_fmt_type(lt[-1])} but stack has "
                     f"{_fmt_type(t)}")
        rest = lt[:-1]
        self.pops(rest)
        self.stack.extend(rest)

    def _cast_operand(self, rt: RefType):
        self.ctx.check_heap(rt.heap)
        tht = top_heap(rt.heap, self.ctx.keys)
        return self.pop(RefType(True, tht))

    def i_ref_test(self, imm, i):
        self._cast_operand(imm)
        self.push(I32)

    def i_ref_cast(self, imm, i):
        self._cast_operand(imm)
        self.push(imm)

    def _br_on_cast(self, imm, fail: bool):
        lab, rt1, rt2 = imm
        ctx = self.ctx
        ctx.check_heap(rt1.heap)
        ctx.check_heap(rt2.heap)
        if not ctx.sub(rt2, rt1):
            self.err(f"type mismatch: cast target {_fmt_type(rt2)} is not a subtype of {_fmt_type(rt1)}")
        lt = self.label(lab)
        diff = RefType(rt1.nullable and not rt2.nullable, rt1.heap)
        on_branch, fallthrough = (diff, rt2) if fail else (rt2, diff)
        if not lt or not ctx.sub(on_branch, lt[-1]):
            self.err(f"type mismatch: instruction requires type {_fmt_type(on_branch)} but label has "
                     f"{_fmt(lt)}")
        self.pop(rt1)
        rest = lt[:-1]
        self.pops(rest)
        self.stack.extend(rest)
        self.push(fallthrough)

    def i_br_on_cast(self, imm, i):
        self._br_on_cast(imm, False)

    def i_br_on_cast_fail(self, imm, i):
        self._br_on_cast(imm, True)

    def i_ref_i31(self, imm, i):
        self.pop(I32)
        self.push(RefType(False, "i31"))

    def i_i31_get(self, imm, i):
        self.pop(RefType(True, "i31"))
        self.push(I32)

    def _convert(self, src: str, dst: str):
        t = self.pop(RefType(True, src))
        self.push(RefType(t == BOT or t.nullable, dst) if t != BOT else RefType(True, dst))

    def i_any_convert_extern(self, imm, i):
        self._convert("extern", "any")

    def i_extern_convert_any(self, imm, i):
        self._convert("any", "extern")

    # -- GC --
    def i_struct_new(self, imm, i):
        st = self.struct(imm)
        self.pops(tuple(_unpack(f.storage) for f in st.fields))
        self.push(RefType(False, imm))

    def i_struct_new_default(self, imm, i):
        st = self.struct(imm)
        for f in st.fields:
            if not _defaultable(f.storage):
                self.err(f"type mismatch: field type {_fmt_type(f.storage)} is not defaultable")
        self.push(RefType(False, imm))

    def _field(self, imm):
        x, f = imm
        st = self.struct(x)
        if not isinstance(f, int) or f < 0 or f >= len(st.fields):
            self.err(f"unknown field {f}")
        return x, st.fields[f]

    def i_struct_get(self, imm, i):
        x, fd = self._field(imm)
        packed = fd.storage in ("i8", "i16")
        op = self.ins.op
        if packed != (op != "struct.get"):
            self.err("type mismatch: field is packed" if packed else "type mismatch: field is not packed")
        self.pop(RefType(True, x))
        self.push(_unpack(fd.storage))

    def i_struct_set(self, imm, i):
        x, fd = self._field(imm)
        if not fd.mutable:
            self.err("immutable field")
        self.pops((RefType(True, x), _unpack(fd.storage)))

    def i_array_new(self, imm, i):
        at = self.array(imm)
        self.pops((_unpack(at.field.storage), I32))
        self.push(RefType(False, imm))

    def i_array_new_default(self, imm, i):
        at = self.array(imm)
        if not _defaultable(at.field.storage):
            self.err(f"type mismatch: array type {_fmt_type(at.field.storage)} is not defaultable")
        self.pop(I32)
        self.push(RefType(False, imm))

    def i_array_new_fixed(self, imm, i):
        x, n = imm
        at = self.array(x)
        self.pops((_unpack(at.field.storage),) * n)
        self.push(RefType(False, x))

    def _numeric_array(self, at):
        s = at.field.storage
        if isinstance(s, RefType):
            self.err("array type is not numeric or vector")

    def i_array_new_data(self, imm, i):
        x, d = imm
        at = self.array(x)
        self._numeric_array(at)
        self.data(d)
        self.pops((I32, I32))
        self.push(RefType(False, x))

    def i_array_new_elem(self, imm, i):
        x, e = imm
        at = self.array(x)
        et = self.elem(e)
        if not self.ctx.sub(et, at.field.storage):
            self.err("type mismatch: elem segment does not match array type")
        self.pops((I32, I32))
        self.push(RefType(False, x))

    def i_array_get(self, imm, i):
        at = self.array(imm)
        packed = at.field.storage in ("i8", "i16")
        if packed != (self.ins.op != "array.get"):
            self.err("type mismatch: array is packed" if packed else "type mismatch: array is not packed")
        self.pops((RefType(True, imm), I32))
        self.push(_unpack(at.field.storage))

    def _mut_array(self, x) -> ArrayType:
        at = self.array(x)
        if not at.field.mutable:
            self.err("immutable array")
        return at

    def i_array_set(self, imm, i):
        at = self._mut_array(imm)
        self.pops((RefType(True, imm), I32, _unpack(at.field.storage)))

    def i_array_len(self, imm, i):
        self.pop(RefType(True, "array"))
        self.push(I32)

    def i_array_fill(self, imm, i):
        at = self._mut_array(imm)
        self.pops((RefType(True, imm), I32, _unpack(at.field.storage), I32))

    def i_array_copy(self, imm, i):
        d, s = imm
        ad = self._mut_array(d)
        as_ = self.array(s)
        sd, ss = ad.field.storage, as_.field.storage
        ok = (sd == ss) if (sd in ("i8", "i16") or ss in ("i8", "i16")) else self.ctx.sub(ss, sd)
        if not ok:
            self.err("array types do not match")
        self.pops((RefType(True, d), I32, RefType(True, s), I32, I32))

    def i_array_init_data(self, imm, i):
        x, d = imm
        at = self._mut_array(x)
        self._numeric_array(at)
        self.data(d)
        self.pops((RefType(True, x), I32, I32, I32))

    def i_array_init_elem(self, imm, i):
        x, e = imm
        at = self._mut_array(x)
        et = self.elem(e)
        if not self.ctx.sub(et, at.field.storage):
            self.err("type mismatch: elem segment does not match array type")
        self.pops((RefType(True, x), I32, I32, I32))


_HANDLERS = {}
for _name in dir(FuncValidator):
    if _name.startswith("i_"):
        _op = _name[2:]
        for _a, _b in (("local_", "local."), ("global_", "global."), ("table_", "table."),
                       ("memory_", "memory."), ("data_", "data."), ("elem_", "elem."),
                       ("ref_", "ref."), ("struct_", "struct."), ("array_", "array."),
                       ("any_", "any."), ("extern_", "extern.")):
            if _op.startswith(_a):
                _op = _b + _op[len(_a):]
                break
        _HANDLERS[_op] = getattr(FuncValidator, _name)
_HANDLERS["struct.get_s"] = _HANDLERS["struct.get_u"] = FuncValidator.i_struct_get
_HANDLERS["array.get_s"] = _HANDLERS["array.get_u"] = FuncValidator.i_array_get
_HANDLERS["i31.get_s"] = _HANDLERS["i31.get_u"] = FuncValidator.i_i31_get
del _HANDLERS["i31_get"]


# -- module level ---------------------------------------------------------------------------------

def _check_limits(lim, bound: int, msg: str) -> None:
    if lim.min > bound or (lim.max is not None and lim.max > bound):
        raise InvalidModule(msg)
    if lim.max is not None and lim.min > lim.max:
        raise InvalidModule("size minimum must not be greater than maximum")


def _check_table_type(ctx: Context, tt) -> None:
    if tt.is64:
        _check_limits(tt.limits, (1 << 64) - 1, "table size must be at most 2^64-1")
    else:
        _check_limits(tt.limits, (1 << 32) - 1, "table size must be at most 2^32-1")
    ctx.check_valtype(tt.elem)


def _check_mem_type(ctx: Context, mt) -> None:
    if mt.shared:
        raise Unsupported("threads", "shared memory")
    if mt.page_size_log2 != 16:
        raise Unsupported("custom-page-sizes")
    if mt.is64:
        _check_limits(mt.limits, 1 << 48, "memory size must be at most 2^48 pages (256TiB)")
    else:
        _check_limits(mt.limits, 1 << 16, "memory size must be at most 65536 pages (4GiB)")


def _check_tag_type(ctx: Context, x) -> None:
    ft = ctx.func_type(x)
    if ft.results:
        raise InvalidModule("non-empty tag result type")


def _check_storage(ctx: Context, s) -> None:
    if s not in ("i8", "i16"):
        ctx.check_valtype(s)


def _match_comp(ctx: Context, c1, c2) -> bool:
    """Structural subtyping of composite types (``c1 <: c2``), used for declared supertypes."""
    sub = ctx.sub

    def field_ok(f1, f2) -> bool:
        if f1.mutable != f2.mutable:
            return False
        s1, s2 = f1.storage, f2.storage
        if s1 in ("i8", "i16") or s2 in ("i8", "i16"):
            return s1 == s2
        return sub(s1, s2) and (not f1.mutable or sub(s2, s1))

    if isinstance(c1, FuncType) and isinstance(c2, FuncType):
        return (len(c1.params) == len(c2.params) and len(c1.results) == len(c2.results)
                and all(sub(b, a) for a, b in zip(c1.params, c2.params))
                and all(sub(a, b) for a, b in zip(c1.results, c2.results)))
    if isinstance(c1, StructType) and isinstance(c2, StructType):
        return (len(c1.fields) >= len(c2.fields)
                and all(field_ok(a, b) for a, b in zip(c1.fields, c2.fields)))
    if isinstance(c1, ArrayType) and isinstance(c2, ArrayType):
        return field_ok(c1.field, c2.field)
    return False


def _check_types(ctx: Context) -> None:
    for x, st in enumerate(ctx.types):
        c = st.comp
        if isinstance(c, FuncType):
            for t in c.params + c.results:
                ctx.check_valtype(t)
        elif isinstance(c, StructType):
            for f in c.fields:
                _check_storage(ctx, f.storage)
        elif isinstance(c, ArrayType):
            _check_storage(ctx, c.field.storage)
        if len(st.supers) > 1:
            raise InvalidModule(f"sub type {x} has too many supertypes")
        for s in st.supers:
            if not isinstance(s, int) or s >= x:
                raise InvalidModule(f"sub type {x}: forward use of type {s} in sub type definition"
                                    if isinstance(s, int) and s < len(ctx.types) else f"unknown type {s}")
            sup = ctx.types[s]
            if sup.final or key_final(ctx.keys[s]):
                raise InvalidModule(f"sub type {x} does not match super type {s}")
            if not _match_comp(ctx, c, sup.comp):
                raise InvalidModule(f"sub type {x} does not match super type {s}")


def _const_expr(ctx: Context, expr, t, nglobals: int) -> None:
    fv = FuncValidator(ctx, FuncType((), (t,)), [], None, const_globals=nglobals)
    fv.run(expr)


def _refs(m) -> frozenset:
    """C.refs: functions referenced outside function bodies (the only legal ``ref.func`` targets)."""
    out = set()

    def scan(expr):
        if expr:
            for ins in expr:
                if ins.op == "ref.func":
                    out.add(ins.imm)

    for g in m.globals:
        scan(g.init)
    for t in m.tables:
        scan(t.init)
    for e in m.elems:
        for ex in e.init:
            scan(ex)
        scan(e.offset)
    for d in m.datas:
        scan(d.offset)
    for ex in m.exports:
        if ex.kind == "func":
            out.add(ex.index)
    return frozenset(out)


def validate_func(ctx: Context, idx: int, fidx: int) -> FuncInfo:
    """Validate defined function ``idx`` (``fidx`` = its index in the function index space)."""
    f = ctx.m.funcs[idx]
    ft = ctx.func_type(f.typeidx)
    lts = f.local_types()
    for t in lts:
        ctx.check_valtype(t)
    fv = FuncValidator(ctx, ft, list(ft.params) + lts, fidx)
    return fv.run(f.body)


def validate_module(m) -> ModuleInfo:
    """Validate module ``m``; return the per-function metadata (see :mod:`vm.valid.info`).

    Raises :class:`InvalidModule` with the spec's message, or :class:`Unsupported` for features wcr
    does not implement (threads/shared memory, custom page sizes).
    """
    keys = canonical_types(m)
    ctx = Context(m, keys)
    _check_types(ctx)
    nimported_globals = 0
    for imp in m.imports:
        k, t = imp.desc.kind, imp.desc.type
        if k == "func":
            ctx.func_type(t)
        elif k == "tag":
            _check_tag_type(ctx, t)
        elif k == "table":
            _check_table_type(ctx, t)
        elif k == "memory":
            _check_mem_type(ctx, t)
        elif k == "global":
            ctx.check_valtype(t.type)
            nimported_globals += 1
    for f in m.funcs:
        ctx.func_type(f.typeidx)
    ctx.refs = _refs(m)
    for tab in m.tables:
        _check_table_type(ctx, tab.type)
        if tab.init is not None:
            _const_expr(ctx, tab.init, tab.type.elem, nimported_globals)
        elif not tab.type.elem.nullable:
            raise InvalidModule("type mismatch: non-defaultable table requires an initializer")
    for mem in m.memories:
        _check_mem_type(ctx, mem.type)
    for gi, g in enumerate(m.globals):
        ctx.check_valtype(g.type.type)
        _const_expr(ctx, g.init, g.type.type, nimported_globals + gi)
    for tag in m.tags:
        _check_tag_type(ctx, tag.typeidx)
    nglobals = len(ctx.globals)
    for e in m.elems:
        ctx.check_valtype(e.type)
        for ex in e.init:
            _const_expr(ctx, ex, e.type, nglobals)
        if e.mode == "active":
            if e.table >= len(ctx.tables):
                raise InvalidModule(f"unknown table {e.table}")
            tt = ctx.tables[e.table]
            _const_expr(ctx, e.offset, I64 if tt.is64 else I32, nglobals)
            if not ctx.sub(e.type, tt.elem):
                raise InvalidModule(f"type mismatch: elem segment type {_fmt_type(e.type)} does not "
                                    f"match table {_fmt_type(tt.elem)}")
    for d in m.datas:
        if d.mode == "active":
            if d.memory >= len(ctx.mems):
                raise InvalidModule(f"unknown memory {d.memory}")
            _const_expr(ctx, d.offset, I64 if ctx.mems[d.memory].is64 else I32, nglobals)
    nimp_funcs = len(ctx.funcs) - len(m.funcs)
    funcs = [validate_func(ctx, i, nimp_funcs + i) for i in range(len(m.funcs))]
    if m.start is not None:
        if m.start >= len(ctx.funcs):
            raise InvalidModule(f"unknown function {m.start}")
        ft = ctx.func_type(ctx.funcs[m.start])
        if ft.params or ft.results:
            raise InvalidModule("start function must not have parameters or results")
    names = set()
    spaces = {"func": (len(ctx.funcs), "function"), "table": (len(ctx.tables), "table"),
              "memory": (len(ctx.mems), "memory"), "global": (len(ctx.globals), "global"),
              "tag": (len(ctx.tags), "tag")}
    for ex in m.exports:
        n, what = spaces[ex.kind]
        if ex.index >= n:
            raise InvalidModule(f"unknown {what} {ex.index}")
        if ex.name in names:
            raise InvalidModule("duplicate export name")
        names.add(ex.name)
    return ModuleInfo(funcs, keys, ctx.refs)


__all__ = ["validate_module", "Context", "FuncValidator", "key_kind"]
