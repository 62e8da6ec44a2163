"""The frame part of a resume module: one specialized function per frame of the thread.

Each is a copy of its frame's function *starting at the frame's pc*: no params, the function's results,
every original local (params included) as a declared local set from the snapshot; then the frame's
control structure rebuilt outermost-first, pushing each label's slice of the operand stack as constants
at its depth:

- ``block``/``if``/``else`` → a block (``[] -> results``) holding the rest of the current arm; the code
  after the original ``end`` follows the rebuilt block's ``end``;
- ``try_table`` → a ``try_table`` with the same catch clauses (their labels remapped); legacy ``try`` →
  a ``try`` holding the rest of its body and then its copied ``catch``/``catch_all`` clauses (or its
  ``delegate``, remapped); legacy ``catch``/``catch_all`` → a block, in which a ``rethrow`` of that
  catch becomes ``<payload> throw $tag`` of the exception the frame's ``caught`` names (Wasm cannot tell
  it from the original: ``exnref`` has no identity test, and legacy-only runtimes run it);
- ``loop`` → ``block $exit (block $cont <rest of iteration> br $exit) (loop <full body>)``: a branch to
  the loop label becomes a branch to ``$cont`` so a later iteration runs the original loop;
- every branch depth is remapped through an explicit label map (original label → rebuilt label);
- in a non-top frame the pending ``call``/``call_indirect``/``call_ref`` becomes ``call`` of the next
  frame's specialized function (its arguments are not on the snapshot's stack: they are that frame's
  locals already), so the stack unwinds into the remaining code of each caller as it would have.
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

from ...errors import PROC_EXIT, UNCAUGHT_EXCEPTION, trap_kind
from ...module import Func, Instr, MemArg
from ...types import ArrayType, FuncType, RefType, StructType, ValType
from .. import faults as _faults
from ..model import DONE, RUNNING, TRAPPED, FrameState, InstanceState, State, Value
from .common import NUM_TAGS, Builder, NotConvertible, end

_BRANCH1 = ("br", "br_if", "br_on_null", "br_on_non_null")


def thread_instance(state: State) -> InstanceState:
    """The instance the thread runs in: the one that *defines* the bottom frame's function (or the
    entry, for a finished run).  Instances are listed in creation order and an instance can only import
    what existed before it, so the first instance whose function space holds the address defines it.
    The other instances of the store (a spec script's earlier modules) are not reachable and ignored."""
    th = state.thread
    assert th is not None
    addr = th.frames[0].func if th.frames else th.entry
    for ist in state.instances:
        if addr in ist.funcs:
            return ist
    raise NotConvertible("foreign function", f"function address {addr} is in no instance")


def trap_code(b: Builder, message: str) -> List[Instr]:
    """Instructions that trap with the kind of ``message``, for a run that had already trapped: the
    store is rebuilt by the prologue, then this raises the same trap on the target (its kind is what
    the oracle compares; the target cannot name our detail).  Each sequence traps for certain, whatever
    the store holds, or the state is not convertible (never a guess)."""
    kind = trap_kind(message)
    m = b.m
    i32 = [Instr("i32.const", 0xFFFFFFFF)]  # an index/address no table or 32-bit memory can reach
    if kind == "unreachable":
        return []
    if kind == PROC_EXIT and b.wasi is not None:  # the program had exited: it exits again, same code
        return b.wasi.exit_code()
    if kind == "integer divide by zero":
        return [Instr("i32.const", 1), Instr("i32.const", 0), Instr("i32.div_u"), Instr("drop")]
    if kind == "integer overflow":
        return [Instr("i32.const", 0x80000000), Instr("i32.const", 0xFFFFFFFF), Instr("i32.div_s"), Instr("drop")]
    if kind == "invalid conversion to integer":
        return [Instr("f32.const", 0x7FC00000), Instr("i32.trunc_f32_s"), Instr("drop")]
    if kind == "null reference":
        return [Instr("ref.null", "func"), Instr("ref.as_non_null"), Instr("drop")]
    gc = _gc_trap_code(b, kind)
    if gc is not None:
        return gc
    if kind == "out of bounds memory access" and m.mem_types():
        addr = [Instr("i64.const", 0xFFFFFFFFFFFFFFFF)] if m.mem_types()[0].is64 else i32
        return addr + [Instr("i32.load", MemArg(2, 0, 0)), Instr("drop")]
    funcref_tables = [i for i, t in enumerate(m.table_types()) if t.elem.heap == "func" and not t.is64]
    if kind == "out of bounds table access" and funcref_tables:
        return i32 + [Instr("table.get", funcref_tables[0]), Instr("drop")]
    if kind == "undefined element" and funcref_tables:
        return i32 + [Instr("call_indirect", (b.functype((), ()), funcref_tables[0]))]
    if kind == "uninitialized element":
        for t in funcref_tables:
            elems = b.state.tables[b.ist.tables[t]]
            null = next((j for j, v in enumerate(elems) if v[0] == "ref.null"), None)
            if null is not None:  # a null slot in the final table: calling it traps
                return [Instr("i32.const", null), Instr("call_indirect", (b.functype((), ()), t))]
    if kind == "indirect call type mismatch":
        for t in funcref_tables:
            for j, v in enumerate(b.state.tables[b.ist.tables[t]]):
                f = b.fidx.get(v[1]) if v[0] == "ref.func" else None
                if f is None:
                    continue
                # call a function of this instance through a type that is certainly not its own
                if m.func_type(m.func_typeidxs()[f]) == FuncType((), ()):
                    return [Instr("i32.const", 0), Instr("i32.const", j),
                            Instr("call_indirect", (b.functype(("i32",), ()), t))]
                return [Instr("i32.const", j), Instr("call_indirect", (b.functype((), ()), t))]
    raise NotConvertible("trapped", f"{message} (no certain way to raise it here)")


def _gc_trap_code(b: Builder, kind: Optional[str]) -> Optional[List[Instr]]:
    """The GC/EH trap kinds: abstract-typed where Wasm allows, else through a type of the module."""
    if kind == "null array reference":
        return [Instr("ref.null", "array"), Instr("array.len"), Instr("drop")]
    if kind == "null i31 reference":
        return [Instr("ref.null", "i31"), Instr("i31.get_u"), Instr("drop")]
    if kind == "cast failure":  # an i31 is never a (ref none)
        return [Instr("i32.const", 0), Instr("ref.i31"), Instr("ref.cast", RefType(False, "none")), Instr("drop")]
    if kind == "null exception reference":
        return [Instr("ref.null", "exn"), Instr("throw_ref")]
    for j, st in enumerate(b.types):
        comp = st.comp
        if kind == "null structure reference" and isinstance(comp, StructType) and comp.fields:
            get = "struct.get_u" if comp.fields[0].storage in ("i8", "i16") else "struct.get"
            return [Instr("ref.null", j), Instr(get, (j, 0)), Instr("drop")]
        if kind == "out of bounds array access" and isinstance(comp, ArrayType):
            get = "array.get_u" if comp.field.storage in ("i8", "i16") else "array.get"
            return [Instr("array.new_fixed", (j, 0)), Instr("i32.const", 0), Instr(get, j), Instr("drop")]
    # a segment read past its end traps with the memory/table kind even without a memory/table: reuse
    # an array.new_data/new_elem of the module (its type and segment fit each other)
    seg_ops = {"out of bounds memory access": ("array.new_data", "array.init_data"),
               "out of bounds table access": ("array.new_elem", "array.init_elem")}
    new_op, init_op = seg_ops.get(kind or "", ("", ""))
    for f in b.m.funcs if new_op else ():
        for ins in f.body:
            if ins.op == new_op:  # one element from offset 2**32-1
                return [Instr("i32.const", 0xFFFFFFFF), Instr("i32.const", 1), Instr(ins.op, ins.imm),
                        Instr("drop")]
            if ins.op == init_op:  # nothing into an empty array, from offset 2**32-1
                return [Instr("array.new_fixed", (ins.imm[0], 0)), Instr("i32.const", 0),
                        Instr("i32.const", 0xFFFFFFFF), Instr("i32.const", 0), Instr(ins.op, ins.imm)]
    if kind == UNCAUGHT_EXCEPTION:
        typeidxs = [i.desc.type for i in b.m.imported("tag")] + [t.typeidx for t in b.m.tags]
        for tagidx, ti in enumerate(typeidxs):  # any tag whose payload has defaults: only the kind counts
            params = b.m.func_type(ti).params
            if all(not isinstance(t, RefType) or t.nullable for t in params):
                return [Instr("ref.null", t.heap) if isinstance(t, RefType) else Instr(f"{t}.const", 0)
                        for t in params] + [Instr("throw", tagidx)]
    return None


def frame_functions(b: Builder, prologue: List[Instr]) -> Tuple[List[Func], Tuple[ValType, ...]]:
    """The functions appended to the module (the first one becomes ``resume``, with ``prologue`` in
    front) and the result types of ``resume``.  A finished run resumes as its results as constants, a
    trapped one as the prologue and the same trap (:func:`trap_code`)."""
    th = b.state.thread
    assert th is not None
    m = b.m
    if th.status == DONE:
        entry = b.fidx.get(th.entry)
        if entry is None:
            raise NotConvertible("foreign function", "entry")
        results_t = m.func_type(m.func_typeidxs()[entry]).results
        code = list(prologue)
        for t, v in zip(results_t, th.results):
            code += b.value_code(v, t)
        code.append(end())
        return [Func(b.functype((), results_t), [], code)], tuple(results_t)
    if th.status == TRAPPED:
        entry = b.fidx.get(th.entry)
        if entry is None:
            raise NotConvertible("foreign function", "entry")
        results_t = m.func_type(m.func_typeidxs()[entry]).results
        code = list(prologue) + trap_code(b, th.trap or "") + [Instr("unreachable"), end()]
        return [Func(b.functype((), results_t), [], code)], tuple(results_t)
    if th.status != RUNNING:
        raise NotConvertible("inconsistent state", f"thread status {th.status}")
    if not th.frames:
        raise NotConvertible("inconsistent state", "running thread without frames")
    fidxs = []
    for fs in th.frames:
        i = b.fidx.get(fs.func)
        if i is None or i < b.nimp_funcs:
            raise NotConvertible("foreign function", f"frame function address {fs.func}")
        fidxs.append(i)
    nfuncs = b.nimp_funcs + len(m.funcs)
    n = len(th.frames)
    out = []
    for k, (fs, fidx) in enumerate(zip(th.frames, fidxs)):
        callee = nfuncs + k + 1 if k + 1 < n else None
        out.append(_FrameGen(b, fidx, fs, callee, prologue if k == 0 else []).build())
    return out, tuple(m.func_type(m.func_typeidxs()[fidxs[0]]).results)


def _body_index(f: Func, pc: int) -> int:
    base = f.body_offset
    for i, ins in enumerate(f.body):
        if ins.offset - base == pc:
            return i
    raise NotConvertible("inconsistent state", f"pc {pc} is not an instruction boundary")


def _is_default(v: Value) -> bool:
    tag, x = v
    return tag == "ref.null" or (tag in NUM_TAGS and x == 0)


def _local_decls(local_types: Any) -> List[Tuple[int, ValType]]:
    """Locals as the code section declares them: runs of equal types."""
    locs: List[Tuple[int, ValType]] = []
    for t in local_types:
        if locs and locs[-1][1] == t:
            locs[-1] = (locs[-1][0] + 1, t)
        else:
            locs.append((1, t))
    return locs


class _FrameGen:
    """Emits the specialized copy of one frame's function."""

    def __init__(self, b: Builder, fidx: int, fs: FrameState, callee: Optional[int], prologue: List[Instr]):
        self.b = b
        m = b.m
        self.fidx = fidx
        self.func = m.funcs[fidx - b.nimp_funcs]
        self.fi = b.info.funcs[fidx - b.nimp_funcs]
        self.fs = fs
        self.callee = callee  # function index of the next frame's specialized function
        self.out: List[Instr] = list(prologue)

    def emit(self, op: str, imm: Any = None) -> None:
        self.out.append(Instr(op, imm))

    def build(self) -> Func:
        idx = _body_index(self.func, self.fs.pc)
        self.ctrls = self.fi.controls[idx]  # the frame's labels (what the rebuilt labels stand for)
        self.check_labels(idx)
        self.set_locals()
        stypes = self.stack_types(idx)
        newidx, new_len = self.open_labels(idx, stypes)
        self.close_labels(idx, newidx, new_len)
        results = self.b.m.func_type(self.func.typeidx).results
        return Func(self.b.functype((), results), _local_decls(self.fi.local_types), self.out)

    # -- phases ----------------------------------------------------------------------------------
    def at_dead_end(self, idx: int) -> bool:
        """An ``end`` that linear validation calls unreachable (its arm ended in a branch) is still
        reached through the false edge of an ``if`` without ``else``: the stack then holds numbers
        whose types are their tags."""
        return not self.fi.reachable[idx] and self.func.body[idx].op == "end"

    def check_labels(self, idx: int) -> None:
        ctrls = self.fi.controls[idx]
        labels = self.fs.labels
        if (not self.fi.reachable[idx] and not self.at_dead_end(idx)) or len(labels) != len(ctrls):
            raise NotConvertible("inconsistent state", "labels do not match the pc")
        for lab, c in zip(labels, ctrls):
            if lab.height != c.height or lab.kind != c.kind:
                raise NotConvertible("inconsistent state", "labels do not match the pc")

    def set_locals(self) -> None:
        """Declared locals start at their default (null: a non-defaultable local unset); the others are
        set from the snapshot."""
        local_types = self.fi.local_types
        if len(self.fs.locals) != len(local_types):
            raise NotConvertible("inconsistent state", "local count")
        pairs = enumerate(zip(local_types, self.fs.locals))
        if _faults.ACTIVE:  # deliberate bugs for `wcr selftest` only (vm/snapshot/faults.py)
            pairs = _faults.resume_locals(pairs)
        for i, (t, v) in pairs:
            if _is_default(v):
                continue
            self.out += self.b.value_code(v, t)
            self.emit("local.set", i)

    def stack_types(self, idx: int) -> tuple:
        stypes = self.fi.stack_types[idx]
        stack = self.fs.stack
        if self.at_dead_end(idx):
            if any(v[0] not in NUM_TAGS for v in stack):
                raise NotConvertible("inconsistent state", "reference on the stack at an unreachable end")
            stypes = tuple(v[0] for v in stack)
        if len(stack) > len(stypes):
            raise NotConvertible("inconsistent state", "operand stack too deep")
        return stypes

    def open_labels(self, idx: int, stypes: tuple) -> Tuple[List[int], int]:
        """Rebuild the enclosing control structure outermost-first, each label's operands pushed as
        constants below it.  Returns the new label index of every original label and the number of
        labels open in the new function."""
        b = self.b
        body = self.func.body
        ctrls = self.fi.controls[idx]
        stack = self.fs.stack

        def push(lo: int, hi: int) -> None:
            for k in range(lo, hi):
                self.out += b.value_code(stack[k], stypes[k])

        L = len(ctrls)
        newidx = [0]
        new_len = 1
        for j in range(1, L):
            c = ctrls[j]
            push(ctrls[j - 1].height if j > 1 else 0, c.height)
            if c.kind in ("block", "if", "else", "catch", "catch_all"):
                self.emit("block", b.blocktype((), c.results))
                new_len += 1
            elif c.kind == "try":
                self.emit("try", b.blocktype((), c.results))
                new_len += 1
            elif c.kind == "loop":
                self.emit("block", b.blocktype((), c.results))  # $exit
                self.emit("block", b.blocktype((), c.params))  # $cont
                new_len += 2
            elif c.kind == "try_table":
                bt, catches = body[c.start].imm
                ctx = j  # labels 0..j-1 are the context of the try_table instruction
                nc = []
                for cat in catches:
                    t = ctx - 1 - cat.label
                    nc.append(cat._replace(label=(new_len - 1) - newidx[t]))
                self.emit("try_table", (b.blocktype((), c.results), tuple(nc)))
                new_len += 1
            else:
                raise NotConvertible("inconsistent state", f"label kind {c.kind}")
            newidx.append(new_len - 1)
            if _faults.ACTIVE and c.kind == "loop":  # deliberate bugs for `wcr selftest` only
                newidx[-1] = _faults.resume_loop_label(new_len - 1)
        push(ctrls[L - 1].height if L > 1 else 0, len(stack))
        return newidx, new_len

    def close_labels(self, idx: int, newidx: List[int], new_len: int) -> None:
        """The pending call (non-top frame), then the rest of every rebuilt block, innermost first,
        each followed by the code after the original ``end``; a loop's rest is followed by the full
        original loop."""
        body = self.func.body
        fi = self.fi
        ctrls = fi.controls[idx]
        start = idx
        if self.callee is not None:
            if body[idx].op not in ("call", "call_indirect", "call_ref"):
                raise NotConvertible("inconsistent state", "non-top frame not at a call")
            if not _faults.ACTIVE or _faults.resume_pending_call():  # faults: `wcr selftest` only
                self.emit("call", self.callee)
            start = idx + 1
        for j in range(len(ctrls) - 1, -1, -1):
            c = ctrls[j]
            if j == 0:
                self.copy(start, len(body), 1, newidx[:1], new_len)
                break
            end_ = fi.block_end[c.start]
            stop = fi.block_else.get(c.start, end_) if c.kind == "if" else end_
            self.copy(start, stop, j + 1, newidx[:j + 1], new_len)
            if c.kind == "loop":
                self.emit("br", 1)  # fell off the loop body: its results leave through $exit
                self.emit("end")  # $cont: a branch to the loop label lands here, params on the stack
                new_len -= 1
                self.copy(c.start, end_ + 1, j, newidx[:j], new_len)
                self.emit("end")  # $exit
            elif c.kind == "try" and body[end_].op == "delegate":  # its catch clauses were copied above
                self.copy(end_, end_ + 1, j + 1, newidx[:j + 1], new_len)
            else:
                self.emit("end")
            new_len -= 1
            newidx.pop()
            start = end_ + 1

    def copy(self, lo: int, hi: int, L0: int, outer: List[int], new_len: int) -> None:
        """Copy ``body[lo:hi]`` whose control context has ``L0`` original labels (mapped to new label
        indices ``outer``) while ``new_len`` new labels are open, remapping branch depths."""
        body = self.func.body
        controls = self.fi.controls
        for i in range(lo, hi):
            ins = body[i]
            op = ins.op
            here = len(controls[i])
            new_here = new_len + (here - L0)

            def remap(d: int, here: int = here, new_here: int = new_here) -> int:
                t = here - 1 - d
                ni = outer[t] if t < L0 else new_len + (t - L0)
                return new_here - 1 - ni

            imm = ins.imm
            if op in _BRANCH1:
                imm = remap(imm)
            elif op == "br_table":
                imm = (tuple(remap(x) for x in imm[0]), remap(imm[1]))
            elif op in ("br_on_cast", "br_on_cast_fail"):
                imm = (remap(imm[0]), imm[1], imm[2])
            elif op == "try_table":
                imm = (imm[0], tuple(c._replace(label=remap(c.label)) for c in imm[1]))
            elif op == "delegate":  # its label is counted outside the try it ends
                imm = remap(imm + 1) - 1
            elif op == "rethrow":
                t = here - 1 - imm
                if t < L0 and self.ctrls[t].kind in ("catch", "catch_all"):
                    # a catch block of the frame, rebuilt as a plain block: throw what it caught
                    self.out += self.b.heap.throw_code(self.caught(self.ctrls[t]))
                    continue
                imm = remap(imm)
            self.out.append(Instr(op, imm))

    def caught(self, c: Any) -> Value:
        """The exception the legacy catch block ``c`` (a label of the frame) caught."""
        if c.kind not in ("catch", "catch_all"):
            raise NotConvertible("inconsistent state", f"rethrow of a {c.kind} label")
        off = self.func.body[c.start].offset - self.func.body_offset
        for start, v in self.fs.caught:
            if start == off:
                return v
        raise NotConvertible("legacy exceptions", f"no caught exception for the catch of the try at {off}")
