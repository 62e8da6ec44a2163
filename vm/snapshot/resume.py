"""Snapshot → *resume module*: a plain Wasm module that, instantiated in any runtime with the same
imports, *is the rest of the execution* when its export ``resume`` is called.

A native runtime cannot be handed our frames, so we hand it a program instead (ARCHITECTURE.md,
"Resume modules").  For a snapshot of one instance with frames F0..Fn::

    make_resume_module(state, {sha256_hex: module_bytes}) -> ResumeModule(bytes, module, manifest)

builds a copy of the original module where

* memories are declared with ``min`` = their current size and filled by active data segments
  (non-zero runs only); imported memories/tables/mutable globals are set by a prologue in ``resume``
  (grow, fill, ``memory.init``/``table.set``/``global.set``), because their size at instantiation is
  whatever the import provides;
* defined globals get the snapshot values as their initialisers; defined tables get ``min`` = their
  current size and one active element segment per run of non-null entries;
* original data/elem segments keep their indices: a dropped one becomes an *empty passive* segment
  (``memory.init``/``table.init`` then behave exactly like on a dropped segment: length 0 succeeds,
  anything else traps), a live passive one stays; declarative ones stay; an extra declarative segment
  declares every function the original could take a ``ref.func`` of (the originally-active segments no
  longer do);
* the original functions stay, unchanged, at their indices (tables, ``call_indirect``, ``ref.func`` keep
  working), the start function is removed (it ran), and one *specialized function* per frame is appended:
  no params, the frame's function's results, every original local (params included) as a declared local,
  set from the snapshot by a prologue; then the frame's control structure rebuilt outermost-first,
  pushing each label's slice of the operand stack as constants at its depth:

  - ``block``/``if``/``else``/``try_table`` → a block (``[] -> results``) holding the rest of the current
    arm; the code after the original ``end`` follows the rebuilt block's ``end``;
  - ``loop`` → ``block $exit (block $cont <rest of iteration> br $exit) (loop <full body>)``: a branch to
    the loop label becomes a branch to ``$cont`` so a later iteration runs the original loop;
  - every branch depth is remapped through an explicit label map (original label → rebuilt label);
  - in a non-top frame the pending ``call``/``call_indirect``/``call_ref`` becomes ``call`` of the next
    frame's specialized function (its arguments are not on the snapshot's stack: they are that frame's
    locals already), so the stack unwinds into the remaining code of each caller as it would have.

  Frame 0's specialized function (with the store prologue in front) is exported as ``resume``.

Every memory, global and table of the original index spaces is exported for the oracle as
``wcr:mem:N``/``wcr:global:N``/``wcr:table:N`` unless the original exports it already (the manifest
records the name either way).  Instruction counts are not preserved (native runtimes do not count);
results, trap kinds, host calls (prints) and the final memories/globals/tables are.

Imports from another *Wasm* instance of the store (a spec script's ``register``-ed module): a
function whose body, and the bodies of the functions it calls directly, use no state of its instance
(no globals, memories, tables, segments, tags, ``ref.func``, indirect calls, imports) is *folded*:
copied in as a defined function.  Imports must come first, so the function index space is then
renumbered (kept imports, original definitions, copies, frames) consistently everywhere, references
to the import become references to the copy, and ``Manifest.funcs`` maps resume → original indices
(:func:`run_resume_on_vm` reports references in the original space).  Any other import from another
instance is refused ("multiple instances").

What cannot be converted raises :class:`NotConvertible` with a short stable ``reason`` (callers count
them); nothing is guessed.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

from ..module import Data, Elem, Export, Func, Instr, Module
from ..types import FuncType, Limits, RefType, SubType, ValType
from .model import DONE, RUNNING, TRAPPED, State, Value

__all__ = [
    "NotConvertible", "Manifest", "ResumeModule", "ResumeOutcome", "make_resume_module",
    "run_resume_on_vm", "instance_final_state", "REASONS",
]

RESUME_EXPORT = "resume"
PAGE = 65536
#: zero bytes tolerated inside one data segment before a run is split (fewer, larger segments)
_GAP = 32

#: every reason string :class:`NotConvertible` is raised with (stable: callers count them)
REASONS = (
    "no thread",                # a store-only state: nothing to resume
    "trapped",                  # the run had already trapped at the checkpoint
    "multiple instances",       # an import from another Wasm instance that cannot be folded in
    "module missing",           # the module bytes of the snapshot were not given
    "module not decodable",     # the given bytes do not decode/validate
    "host externref",           # a live non-null externref on the stack/locals/globals/tables
    "unsupported value",        # GC/exception references, unknown tags
    "unsupported type",         # e.g. a value slot of unknown type
    "legacy exceptions",        # a frame inside (or code using) legacy try/catch/delegate/rethrow
    "export name taken",        # the original already exports a `resume`
    "foreign function",         # a frame or reference to a function not in the instance
    "inconsistent state",       # the state does not fit the module (labels, heights, pcs)
    "memory shrink",            # an imported memory/table would have to be larger than the snapshot
)


class NotConvertible(Exception):
    """The state cannot be turned into a resume module.  ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason + (f": {detail}" if detail else ""))
        self.reason = reason
        self.detail = detail


@dataclass
class Manifest:
    """Where the oracle finds things in the resume module: export name of each memory/global/table
    index of the original index spaces, the entry export and the types ``resume`` returns."""

    entry: str = RESUME_EXPORT
    memories: Dict[int, str] = field(default_factory=dict)
    globals: Dict[int, str] = field(default_factory=dict)
    tables: Dict[int, str] = field(default_factory=dict)
    results: Tuple[ValType, ...] = ()
    imports: List[Tuple[str, str, str]] = field(default_factory=list)  # (module, name, kind)
    frames: int = 0  # number of specialized functions
    sha256: str = ""  # of the resume module bytes
    #: resume-module funcidx → original funcidx, only when functions of other instances were folded
    #: in (the index space is then renumbered); empty means "the same index"
    funcs: Dict[int, int] = field(default_factory=dict)


class ResumeModule(NamedTuple):
    bytes: bytes
    module: Module
    manifest: Manifest


# ------------------------------------------------------------------------------------------------
# Building
# ------------------------------------------------------------------------------------------------

def _end() -> Instr:
    return Instr("end")


class _Builder:
    def __init__(self, state: State, m: Module, info: Any, ist: Any):
        self.state = state
        self.m = m
        self.info = info
        self.ist = ist
        self.types: List[SubType] = list(m.types)
        self.rec_sizes: List[int] = list(m.rec_sizes) if sum(m.rec_sizes) == len(m.types) else \
            [1] * len(m.types)
        self.nimp_funcs = len(m.imported("func"))
        self.fidx: Dict[int, int] = {}
        for i, a in enumerate(self.ist.funcs):
            self.fidx.setdefault(a, i)
        # functions named by ref.func in function bodies (original or generated): the only ones that
        # need a declaration (exports, globals and kept segments declare themselves)
        self.refs: set = set()

    # -- types -----------------------------------------------------------------------------------
    def functype(self, params: Sequence[ValType], results: Sequence[ValType]) -> int:
        ft = FuncType(tuple(params), tuple(results))
        for i, st in enumerate(self.types):
            if st.comp == ft and st.final and not st.supers:
                return i
        self.types.append(SubType(True, (), ft))
        self.rec_sizes.append(1)
        return len(self.types) - 1

    def blocktype(self, params: Sequence[ValType], results: Sequence[ValType]) -> Any:
        if not params and not results:
            return None
        if not params and len(results) == 1:
            return results[0]
        return self.functype(params, results)

    # -- values ----------------------------------------------------------------------------------
    def const(self, v: Value, t: Any) -> Instr:
        """One constant instruction producing ``v`` (of static type ``t``)."""
        tag, x = v
        if tag in ("i32", "i64", "f32", "f64", "v128"):
            if t != tag:
                raise NotConvertible("inconsistent state", f"{tag} value where {t!r} is expected")
            return Instr(f"{tag}.const", x)
        if not isinstance(t, RefType):
            raise NotConvertible("unsupported type", repr(t))
        if tag == "ref.null":
            return Instr("ref.null", t.heap)
        if tag == "ref.func":
            i = self.fidx.get(x)
            if i is None:
                raise NotConvertible("foreign function", f"function address {x}")
            self.refs.add(i)
            return Instr("ref.func", i)
        if tag == "ref.extern":
            raise NotConvertible("host externref")
        raise NotConvertible("unsupported value", tag)

    def const_expr(self, v: Value, t: Any) -> List[Instr]:
        return [self.const(v, t), _end()]


def _is_default(v: Value) -> bool:
    tag, x = v
    return tag == "ref.null" or (tag in ("i32", "i64", "f32", "f64", "v128") and x == 0)


def _runs(page_data: Dict[int, bytes]) -> List[Tuple[int, bytes]]:
    """Non-zero runs (offset, bytes) of a sparse memory; zero gaps shorter than ``_GAP`` are kept
    inside a run so that the segment count stays small."""
    out: List[Tuple[int, bytes]] = []
    cur_start = -1
    cur_end = -1
    pieces: List[bytes] = []
    for p in sorted(page_data):
        chunk = page_data[p]
        base = p * PAGE
        for mo in _NONZERO.finditer(chunk):
            a, z = base + mo.start(), base + mo.end()
            if cur_start >= 0 and a - cur_end <= _GAP:
                pieces.append(bytes(a - cur_end))
            else:
                if cur_start >= 0:
                    out.append((cur_start, b"".join(pieces)))
                cur_start = a
                pieces = []
            pieces.append(mo.group())
            cur_end = z
    if cur_start >= 0:
        out.append((cur_start, b"".join(pieces)))
    return out


_NONZERO = re.compile(b"[^\\x00]+")


def _body_index(f: Func, pc: int) -> int:
    base = f.body_offset
    for i, ins in enumerate(f.body):
        if ins.offset - base == pc:
            return i
    raise NotConvertible("inconsistent state", f"pc {pc} is not an instruction boundary")


_BRANCH1 = ("br", "br_if", "br_on_null", "br_on_non_null")
_LEGACY = ("try", "catch", "catch_all", "delegate", "rethrow")


class _FrameGen:
    """Emits the specialized copy of one frame's function."""

    def __init__(self, b: _Builder, fidx: int, fs: Any, callee: Optional[int], prologue: List[Instr]):
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
            elif op in _LEGACY:
                raise NotConvertible("legacy exceptions")
            self.out.append(Instr(op, imm))

    def build(self) -> Func:
        b = self.b
        fs = self.fs
        fi = self.fi
        body = self.func.body
        idx = _body_index(self.func, fs.pc)
        ctrls = fi.controls[idx]
        # An ``end`` that linear validation calls unreachable (its arm ended in a branch) is still
        # reached through the false edge of an ``if`` without ``else``: the stack then holds numbers
        # whose types are their tags.
        at_dead_end = not fi.reachable[idx] and body[idx].op == "end"
        if (not fi.reachable[idx] and not at_dead_end) or len(fs.labels) != len(ctrls):
            raise NotConvertible("inconsistent state", "labels do not match the pc")
        for lab, c in zip(fs.labels, ctrls):
            if lab.height != c.height or lab.kind != c.kind:
                raise NotConvertible("inconsistent state", "labels do not match the pc")
        local_types = fi.local_types
        if len(fs.locals) != len(local_types):
            raise NotConvertible("inconsistent state", "local count")
        for i, (t, v) in enumerate(zip(local_types, fs.locals)):
            if _is_default(v):
                continue  # declared locals start at their default (null: a non-defaultable local unset)
            self.out.append(b.const(v, t))
            self.emit("local.set", i)
        stypes = fi.stack_types[idx]
        if at_dead_end:
            if any(v[0] not in ("i32", "i64", "f32", "f64", "v128") for v in fs.stack):
                raise NotConvertible("inconsistent state", "reference on the stack at an unreachable end")
            stypes = tuple(v[0] for v in fs.stack)
        stack = fs.stack
        if len(stack) > len(stypes):
            raise NotConvertible("inconsistent state", "operand stack too deep")

        def push(lo: int, hi: int) -> None:
            for k in range(lo, hi):
                self.out.append(b.const(stack[k], stypes[k]))

        L = len(ctrls)
        newidx = [0]
        new_len = 1
        for j in range(1, L):
            c = ctrls[j]
            push(ctrls[j - 1].height if j > 1 else 0, c.height)
            if c.kind in ("block", "if", "else"):
                self.emit("block", b.blocktype((), c.results))
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
            elif c.kind in _LEGACY:
                raise NotConvertible("legacy exceptions")
            else:
                raise NotConvertible("inconsistent state", f"label kind {c.kind}")
            newidx.append(new_len - 1)
        push(ctrls[L - 1].height if L > 1 else 0, len(stack))

        start = idx
        if self.callee is not None:
            if body[idx].op not in ("call", "call_indirect", "call_ref"):
                raise NotConvertible("inconsistent state", "non-top frame not at a call")
            self.emit("call", self.callee)
            start = idx + 1
        for j in range(L - 1, -1, -1):
            c = ctrls[j]
            if j == 0:
                self.copy(start, len(body), 1, newidx[:1], new_len)
                break
            end = fi.block_end[c.start]
            stop = fi.block_else.get(c.start, end) if c.kind == "if" else end
            self.copy(start, stop, j + 1, newidx[:j + 1], new_len)
            if c.kind == "loop":
                self.emit("br", 1)  # fell off the loop body: its results leave through $exit
                self.emit("end")  # $cont: a branch to the loop label lands here, params on the stack
                new_len -= 1
                self.copy(c.start, end + 1, j, newidx[:j], new_len)
                self.emit("end")  # $exit
            else:
                self.emit("end")
            new_len -= 1
            newidx.pop()
            start = end + 1
        locs: List[Tuple[int, ValType]] = []
        for t in local_types:
            if locs and locs[-1][1] == t:
                locs[-1] = (locs[-1][0] + 1, t)
            else:
                locs.append((1, t))
        results = b.m.func_type(self.func.typeidx).results
        return Func(b.functype((), results), locs, self.out)


def _thread_instance(state: State) -> Any:
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



# ------------------------------------------------------------------------------------------------
# Folding self-contained functions of other instances
# ------------------------------------------------------------------------------------------------

#: ops a folded function may not use: they reach state (globals, memories, tables, segments, tags)
#: or function identities of the other instance, which the resume module cannot reproduce
_FOLD_DENY_OPS = frozenset((
    "call_indirect", "return_call_indirect", "call_ref", "return_call_ref", "ref.func",
    "throw", "throw_ref", "rethrow", "try", "try_table", "delegate", "catch", "catch_all",
))
_FOLD_DENY_PREFIX = ("global.", "memory.", "table.", "data.", "elem.", "struct.", "array.", "ref.cast",
                     "ref.test", "br_on_cast", "any.", "extern.", "ref.i31", "i31.")


def _plain_type(t: Any) -> bool:
    """A value type that means the same in every module (no type index inside)."""
    return isinstance(t, str) or (isinstance(t, RefType) and isinstance(t.heap, str))


def _defining_instance(state: State, addr: int) -> Optional[Tuple[Any, int]]:
    """(instance, function index) of the instance that *defines* function ``addr`` (not one that
    merely imports or re-exports it), or None."""
    for ist in state.instances:
        if addr in ist.funcs:
            i = ist.funcs.index(addr)
            return ist, i
    return None


class _Folder:
    """Decides which imported functions can be folded and builds the renumbered module.

    A function of another Wasm instance can be copied into the resume module when it (and every
    function it calls directly, transitively) touches nothing of its instance but its own code: then
    a copy behaves exactly like the original, whatever that instance's state."""

    def __init__(self, state: State, modules: Dict[str, bytes]):
        self.state = state
        self.modules = modules
        self._decoded: Dict[int, Optional[Module]] = {}

    def module_of(self, ist: Any) -> Optional[Module]:
        from ..binary import decode_module
        from ..errors import WasmError

        key = ist.module
        if key not in self._decoded:
            data = self.modules.get(self.state.modules[key])
            mod = None
            if data is not None:
                try:
                    mod = decode_module(bytes(data))
                except WasmError:
                    mod = None
            self._decoded[key] = mod
        return self._decoded[key]

    def closure(self, addr: int) -> Optional[List[Tuple[int, Any, Module, int]]]:
        """Every function (address, instance, module, funcidx) the folded copy of ``addr`` needs, the
        function itself first; None when one of them is not self-contained."""
        found = _defining_instance(self.state, addr)
        if found is None:
            return None
        out: List[Tuple[int, Any, Module, int]] = []
        seen = set()
        todo = [(found[0], found[1])]
        while todo:
            ist, i = todo.pop()
            a = ist.funcs[i]
            if a in seen:
                continue
            seen.add(a)
            mod = self.module_of(ist)
            if mod is None:
                return None
            nimp = len(mod.imported("func"))
            if i < nimp:
                return None  # an import of the other instance: its own provider would be needed
            f = mod.funcs[i - nimp]
            st = mod.types[f.typeidx]
            ft = st.comp
            if not isinstance(ft, FuncType) or not all(_plain_type(t) for t in ft.params + ft.results):
                return None
            if not all(_plain_type(t) for _, t in f.locals):
                return None
            for ins in f.body:
                op = ins.op
                if op in _FOLD_DENY_OPS or op.startswith(_FOLD_DENY_PREFIX) or ".load" in op \
                        or ".store" in op or "atomic" in op:
                    return None
                if op in ("call", "return_call"):
                    todo.append((ist, ins.imm))
                elif op in ("block", "loop", "if") and isinstance(ins.imm, int):
                    bt = mod.types[ins.imm].comp
                    if not isinstance(bt, FuncType) or not all(_plain_type(t) for t in bt.params + bt.results):
                        return None
                elif op == "select" and ins.imm is not None and not all(_plain_type(t) for t in ins.imm):
                    return None
                elif op == "ref.null" and not isinstance(ins.imm, str):
                    return None
            out.append((a, ist, mod, i))
        return out


def _remap_expr(expr: Sequence[Instr], fmap: Dict[int, int]) -> List[Instr]:
    out = []
    for ins in expr:
        if ins.op in ("call", "return_call", "ref.func"):
            out.append(Instr(ins.op, fmap[ins.imm], ins.offset))
        else:
            out.append(ins)
    return out


def _fold_foreign_funcs(state: State, ist: Any, m: Module, modules: Dict[str, bytes]
                        ) -> Tuple[Module, Any, Dict[int, int]]:
    """Replace each imported function that comes from another Wasm instance and is self-contained by a
    defined copy (and the copies of what it calls).  Imports must come first in Wasm, so the function
    index space is renumbered: kept imports, the original defined functions, then the copies.
    Returns (module, instance view with the new function address list, resume funcidx → original
    funcidx for every renumbered function with an original index).  Unchanged inputs when nothing
    folds; anything not folded is left for :func:`_check_imports_are_host` to refuse."""
    import dataclasses

    hosts = {(h.kind, h.addr) for h in state.hosts}
    nimp = len(m.imported("func"))
    folder = _Folder(state, modules)
    fold: Dict[int, List[Tuple[int, Any, Module, int]]] = {}  # import funcidx -> closure
    for j in range(nimp):
        a = ist.funcs[j]
        if ("func", a) in hosts:
            continue
        c = folder.closure(a)
        if c is not None:
            fold[j] = c
    if not fold:
        return m, ist, {}
    types: List[SubType] = list(m.types)
    rec_sizes: List[int] = list(m.rec_sizes) if sum(m.rec_sizes) == len(m.types) else [1] * len(m.types)

    def functype(ft: FuncType) -> int:
        for i, st in enumerate(types):
            if st.comp == ft and st.final and not st.supers:
                return i
        types.append(SubType(True, (), ft))
        rec_sizes.append(1)
        return len(types) - 1

    # new function index space
    kept = [j for j in range(nimp) if j not in fold]
    fmap: Dict[int, int] = {j: n for n, j in enumerate(kept)}
    nk = len(kept)
    for i in range(nimp, nimp + len(m.funcs)):
        fmap[i] = nk + (i - nimp)
    addrs = [ist.funcs[j] for j in kept] + list(ist.funcs[nimp:nimp + len(m.funcs)])
    copy_at: Dict[int, int] = {}  # address -> new funcidx
    order: List[Tuple[int, Any, Module, int]] = []
    for j in sorted(fold):
        for item in fold[j]:
            if item[0] not in copy_at:
                copy_at[item[0]] = len(addrs)
                addrs.append(item[0])
                order.append(item)
    for j in fold:
        fmap[j] = copy_at[ist.funcs[j]]
    orig_of: Dict[int, int] = {}
    for old, new in fmap.items():
        if new not in orig_of or old < orig_of[new]:
            orig_of[new] = old

    copies: List[Func] = []
    for _a, oist, mod, i in order:
        onimp = len(mod.imported("func"))
        f = mod.funcs[i - onimp]
        body = []
        for ins in f.body:
            op, imm = ins.op, ins.imm
            if op in ("call", "return_call"):
                imm = copy_at[oist.funcs[imm]]
            elif op in ("block", "loop", "if") and isinstance(imm, int):
                imm = functype(mod.types[imm].comp)
            body.append(Instr(op, imm, ins.offset))
        copies.append(Func(functype(mod.types[f.typeidx].comp), list(f.locals), body,
                           f.body_offset, f.body_size))

    funcs = [dataclasses.replace(f, body=_remap_expr(f.body, fmap)) for f in m.funcs]
    globs = [dataclasses.replace(g, init=_remap_expr(g.init, fmap)) for g in m.globals]
    tables = [dataclasses.replace(t, init=None if t.init is None else _remap_expr(t.init, fmap))
              for t in m.tables]
    elems = [dataclasses.replace(e, init=[_remap_expr(x, fmap) for x in e.init]) for e in m.elems]
    exports = [e._replace(index=fmap[e.index]) if e.kind == "func" else e for e in m.exports]
    imports = [imp for n, imp in enumerate(m.imports)
               if imp.desc.kind != "func" or (sum(1 for x in m.imports[:n] if x.desc.kind == "func")
                                              not in fold)]
    out = dataclasses.replace(
        m, types=types, rec_sizes=rec_sizes, imports=imports, funcs=funcs + copies, tables=tables,
        globals=globs, elems=elems, exports=exports,
        start=None if m.start is None else fmap[m.start])
    return out, dataclasses.replace(ist, funcs=addrs), orig_of


def _check_imports_are_host(state: State, ist: Any, m: Module) -> None:
    """v1 converts one Wasm instance: every import must be a host object (spectest), not another
    instance's export (that instance's state would have to be converted too)."""
    hosts = {(h.kind, h.addr) for h in state.hosts}
    for kind in ("func", "table", "memory", "global", "tag"):
        space = ist.space(kind)
        for j in range(len(m.imported(kind))):
            if (kind, space[j]) not in hosts:
                raise NotConvertible("multiple instances", f"imported {kind} {j} comes from another instance")


def _used_ops(m: Module) -> set:
    return {ins.op for f in m.funcs for ins in f.body}


def _const_offset(is64: bool, off: int) -> List[Instr]:
    return [Instr("i64.const" if is64 else "i32.const", off), _end()]


def make_resume_module(state: State, modules: Dict[str, bytes]) -> ResumeModule:
    """Build the resume module of ``state`` (see the module docstring).  ``modules`` maps sha256 hex
    of the original module → its bytes.  Raises :class:`NotConvertible`."""
    from ..binary import decode_module, encode_module
    from ..errors import WasmError
    from ..valid import validate_module

    th = state.thread
    if th is None:
        raise NotConvertible("no thread")
    if th.status == TRAPPED:
        raise NotConvertible("trapped", th.trap or "")
    ist = _thread_instance(state)
    sha = state.modules[ist.module]
    data = modules.get(sha)
    if data is None:
        raise NotConvertible("module missing", sha)
    try:
        orig = decode_module(bytes(data))
        info = validate_module(orig)
    except WasmError as e:
        raise NotConvertible("module not decodable", str(e)) from None
    if any(ex.name == RESUME_EXPORT for ex in orig.exports):
        raise NotConvertible("export name taken", RESUME_EXPORT)

    orig, ist, orig_of = _fold_foreign_funcs(state, ist, orig, modules)
    if orig_of:
        try:
            info = validate_module(orig)
        except WasmError as e:  # a fold bug must not pass as a valid resume module
            raise NotConvertible("inconsistent state", f"folded module invalid: {e}") from None
    _check_imports_are_host(state, ist, orig)
    b = _Builder(state, orig, info, ist)
    m = orig
    used = _used_ops(orig)
    for f in orig.funcs:
        for ins in f.body:
            if ins.op == "ref.func":
                b.refs.add(ins.imm)
    # Segment indices are observable only through memory.init/data.drop (table.init/elem.drop, and
    # the GC array.*_data/_elem): without those the original segments (already applied) are left out,
    # so an MVP module gives an MVP resume module (wasm3 has no bulk memory).
    keep_datas = bool(used & {"memory.init", "data.drop", "array.new_data", "array.init_data"})
    keep_elems = bool(used & {"table.init", "elem.drop", "array.new_elem", "array.init_elem"})
    nfuncs = b.nimp_funcs + len(m.funcs)
    imp = {k: m.imported(k) for k in ("table", "memory", "global")}
    prologue: List[Instr] = []

    # -- globals ---------------------------------------------------------------------------------
    gtypes = m.global_types()
    new_globals = []
    nimp_g = len(imp["global"])
    for gi, gt in enumerate(gtypes):
        v = state.globals[ist.globals[gi]]
        if gi < nimp_g:
            if gt.mutable:
                prologue.append(b.const(v, gt.type))
                prologue.append(Instr("global.set", gi))
            elif v[0] == "ref.extern":
                raise NotConvertible("host externref")
        else:
            g = m.globals[gi - nimp_g]
            new_globals.append(type(g)(g.type, b.const_expr(v, gt.type)))

    # -- memories ----------------------------------------------------------------------------------
    new_datas: List[Data] = []
    for i, d in enumerate(m.datas if keep_datas else ()):
        if ist.data_dropped[i]:
            new_datas.append(Data("passive", b""))
        else:
            new_datas.append(Data("passive", bytes(d.init)))
    mtypes = m.mem_types()
    nimp_m = len(imp["memory"])
    new_mems = []
    for mi, mt in enumerate(mtypes):
        ms = state.mems[ist.mems[mi]]
        runs = _runs(ms.nonzero)
        if mi < nimp_m:
            # the import's size at instantiation is the provider's: grow, clear, init in the prologue
            c = "i64.const" if mt.is64 else "i32.const"
            sub = "i64.sub" if mt.is64 else "i32.sub"
            ne = "i64.ne" if mt.is64 else "i32.ne"
            prologue += [Instr(c, ms.pages), Instr("memory.size", mi), Instr(sub),
                         Instr("memory.grow", mi), Instr("drop"),
                         Instr("memory.size", mi), Instr(c, ms.pages), Instr(ne),
                         Instr("if", None), Instr("unreachable"), _end(),
                         Instr(c, 0), Instr("i32.const", 0), Instr(c, ms.pages * PAGE),
                         Instr("memory.fill", mi)]
            for off, chunk in runs:
                k = len(new_datas)
                new_datas.append(Data("passive", chunk))
                prologue += [Instr(c, off), Instr("i32.const", 0), Instr("i32.const", len(chunk)),
                             Instr("memory.init", (mi, k)), Instr("data.drop", k)]
        else:
            mem = m.memories[mi - nimp_m]
            lim = mt.limits
            if lim.max is not None and ms.pages > lim.max:
                raise NotConvertible("inconsistent state", "memory larger than its maximum")
            new_mems.append(type(mem)(mt._replace(limits=Limits(ms.pages, lim.max))))
            for off, chunk in runs:
                new_datas.append(Data("active", chunk, mi, _const_offset(mt.is64, off)))

    # -- tables ------------------------------------------------------------------------------------
    new_elems: List[Elem] = []
    for i, e in enumerate(m.elems):
        if e.mode == "declarative":
            new_elems.append(e)
        elif not keep_elems:
            continue
        elif ist.elem_dropped[i]:
            new_elems.append(Elem("passive", e.type, []))
        else:
            new_elems.append(Elem("passive", e.type, list(e.init)))
    ttypes = m.table_types()
    nimp_t = len(imp["table"])
    new_tables = []
    for ti, tt in enumerate(ttypes):
        elems = state.tables[ist.tables[ti]]
        c = "i64.const" if tt.is64 else "i32.const"
        if ti < nimp_t:
            n = len(elems)
            null = Instr("ref.null", tt.elem.heap)
            prologue += [null, Instr(c, n), Instr("table.size", ti),
                         Instr("i64.sub" if tt.is64 else "i32.sub"), Instr("table.grow", ti),
                         Instr("drop"), Instr("table.size", ti), Instr(c, n),
                         Instr("i64.ne" if tt.is64 else "i32.ne"), Instr("if", None),
                         Instr("unreachable"), _end(),
                         Instr(c, 0), Instr("ref.null", tt.elem.heap), Instr(c, n),
                         Instr("table.fill", ti)]
            for k, v in enumerate(elems):
                if v[0] != "ref.null":
                    prologue += [Instr(c, k), b.const(v, tt.elem), Instr("table.set", ti)]
        else:
            t = m.tables[ti - nimp_t]
            lim = tt.limits
            new_tables.append(type(t)(tt._replace(limits=Limits(len(elems), lim.max)), t.init))
            # one active segment per run of entries (nulls included when the table has an initialiser
            # that is not null: every entry is then written)
            overwrite_all = t.init is not None
            k = 0
            n = len(elems)
            while k < n:
                if elems[k][0] == "ref.null" and not overwrite_all:
                    k += 1
                    continue
                s = k
                init = []
                while k < n and (overwrite_all or elems[k][0] != "ref.null"):
                    init.append(b.const_expr(elems[k], tt.elem))
                    k += 1
                new_elems.append(Elem("active", tt.elem, init, ti, _const_offset(tt.is64, s)))

    # -- frames ------------------------------------------------------------------------------------
    results_t = ()
    new_funcs: List[Func] = []
    if th.status == DONE:
        entry = b.fidx.get(th.entry)
        if entry is None:
            raise NotConvertible("foreign function", "entry")
        results_t = m.func_type(m.func_typeidxs()[entry]).results
        code = list(prologue)
        for t, v in zip(results_t, th.results):
            code.append(b.const(v, t))
        code.append(_end())
        new_funcs.append(Func(b.functype((), results_t), [], code))
    elif th.status == RUNNING:
        if not th.frames:
            raise NotConvertible("inconsistent state", "running thread without frames")
        fidxs = []
        for fs in th.frames:
            i = b.fidx.get(fs.func)
            if i is None or i < b.nimp_funcs:
                raise NotConvertible("foreign function", f"frame function address {fs.func}")
            fidxs.append(i)
        n = len(th.frames)
        for k, (fs, fi_) in enumerate(zip(th.frames, fidxs)):
            callee = nfuncs + k + 1 if k + 1 < n else None
            gen = _FrameGen(b, fi_, fs, callee, prologue if k == 0 else [])
            new_funcs.append(gen.build())
        results_t = m.func_type(m.func_typeidxs()[fidxs[0]]).results
    else:
        raise NotConvertible("inconsistent state", f"thread status {th.status}")

    # -- exports, declarations -----------------------------------------------------------------
    manifest = Manifest(results=tuple(results_t), frames=len(new_funcs),
                        imports=[(i.module, i.name, i.desc.kind) for i in m.imports], funcs=orig_of)
    exports = list(m.exports)
    names = {e.name for e in exports}
    existing = {}
    for e in exports:
        existing.setdefault((e.kind, e.index), e.name)
    for kind, count, prefix, target in (("memory", len(mtypes), "mem", manifest.memories),
                                        ("global", len(gtypes), "global", manifest.globals),
                                        ("table", len(ttypes), "table", manifest.tables)):
        for i in range(count):
            name = existing.get((kind, i))
            if name is None:
                name = f"wcr:{prefix}:{i}"
                if name in names:
                    raise NotConvertible("export name taken", name)
                exports.append(Export(name, kind, i))
                names.add(name)
            target[i] = name
    exports.append(Export(RESUME_EXPORT, "func", nfuncs))
    if b.refs:
        new_elems.append(Elem("declarative", RefType(False, "func"),
                              [[Instr("ref.func", i), _end()] for i in sorted(b.refs)]))

    out = Module(
        types=b.types, rec_sizes=b.rec_sizes, imports=list(m.imports),
        funcs=list(m.funcs) + new_funcs, tables=new_tables, memories=new_mems, globals=new_globals,
        tags=list(m.tags), exports=exports, start=None, elems=new_elems, datas=new_datas,
        data_count=len(new_datas) if new_datas and (keep_datas or nimp_m) else None,
        customs=[],
    )
    data_out = encode_module(out)
    manifest.sha256 = hashlib.sha256(data_out).hexdigest()
    return ResumeModule(data_out, out, manifest)


# ------------------------------------------------------------------------------------------------
# Self-check on our own VM
# ------------------------------------------------------------------------------------------------

@dataclass
class ResumeOutcome:
    """How ``resume`` ended on a runtime, with the final state of the original index spaces.
    Function references are ``("ref.func", function index)`` in the instance's index space."""

    results: List[Value] = field(default_factory=list)
    trap: Optional[str] = None
    host_log: List[Tuple[str, List[Value]]] = field(default_factory=list)
    memories: Dict[int, bytes] = field(default_factory=dict)
    globals: Dict[int, Value] = field(default_factory=dict)
    tables: Dict[int, List[Value]] = field(default_factory=dict)


def _tag_value(t: Any, x: Any, funcs: List[Any]) -> Value:
    if x is None:
        return ("ref.null", None)
    if isinstance(t, str):
        return (t, x)
    for i, f in enumerate(funcs):
        if f is x:
            return ("ref.func", i)
    from ..runtime.objects import ExternRef

    if isinstance(x, ExternRef):
        return ("ref.extern", x.value)
    return ("ref.unknown", repr(x))


def instance_final_state(inst: Any, out: Optional[ResumeOutcome] = None,
                         manifest: Optional[Manifest] = None) -> ResumeOutcome:
    """Memories/globals/tables of a live instance of our VM (all of its index spaces, or the ones the
    manifest names), tagged as in :class:`ResumeOutcome`."""
    out = out if out is not None else ResumeOutcome()
    mem_idx = list(manifest.memories) if manifest else range(len(inst.mems))
    glob_idx = list(manifest.globals) if manifest else range(len(inst.globals))
    tab_idx = list(manifest.tables) if manifest else range(len(inst.tables))
    for i in mem_idx:
        out.memories[i] = bytes(inst.mems[i].data)
    for i in glob_idx:
        g = inst.globals[i]
        out.globals[i] = _tag_value(g.type.type, g.value, inst.funcs)
    for i in tab_idx:
        t = inst.tables[i]
        out.tables[i] = [_tag_value(t.type.elem, x, inst.funcs) for x in t.elements]
    return out


def run_resume_on_vm(resume: ResumeModule, imports: Any = None,
                     max_call_depth: int = 1000) -> ResumeOutcome:
    """Instantiate the resume module on our VM and call ``resume``.

    ``imports``: None (only ``spectest`` imports, from :func:`vm.runtime.spectest.spectest_exports`),
    a dict ``{module: {name: extern}}``, or a callable ``store -> that dict``.  The host log holds only
    what ``resume`` printed (the snapshot's own ``host_log`` is the part before it)."""
    from ..errors import Trap, WasmException
    from ..runtime.spectest import spectest_exports
    from ..api import Store
    from ..valid import validate_module

    store = Store(max_call_depth=max_call_depth)
    m = resume.module
    info = validate_module(m)
    provided: Dict[str, Dict[str, Any]]
    if imports is None:
        provided = {"spectest": spectest_exports(store)}
    elif callable(imports):
        provided = imports(store)
    else:
        provided = imports
    ext = []
    for imp in m.imports:
        mod = provided.get(imp.module)
        if mod is None or imp.name not in mod:
            raise KeyError(f"import {imp.module}.{imp.name} not provided")
        ext.append(mod[imp.name])
    out = ResumeOutcome()
    try:
        inst = store.instantiate(m, info, ext, resume.manifest.sha256)
    except Trap as e:
        out.trap = e.kind
        return out
    try:
        res = store.invoke(inst.exports[resume.manifest.entry], [])
        out.results = [_tag_value(t, x, inst.funcs) for t, x in zip(resume.manifest.results, res)]
    except Trap as e:
        out.trap = e.kind
    except WasmException as e:
        out.trap = e.message
    out.host_log = [(name, [_log_value(x, inst.funcs) for x in args]) for name, args in store.host_log]
    instance_final_state(inst, out, resume.manifest)
    fm = resume.manifest.funcs
    if fm:  # report function references in the original index space, like the snapshot's run
        def orig(v: Value) -> Value:
            return ("ref.func", fm.get(v[1], v[1])) if v[0] == "ref.func" else v
        out.results = [orig(v) for v in out.results]
        out.host_log = [(n, [orig(v) for v in a]) for n, a in out.host_log]
        out.globals = {i: orig(v) for i, v in out.globals.items()}
        out.tables = {i: [orig(v) for v in t] for i, t in out.tables.items()}
    return out


def _log_value(x: Any, funcs: List[Any]) -> Value:
    if type(x) is int:
        return ("int", x)
    return _tag_value(None, x, funcs)
