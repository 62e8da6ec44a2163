"""Folding self-contained functions of other instances into the resume module.

Imports from another *Wasm* instance of the store (a spec script's ``register``-ed module): a function
whose body, and the bodies of the functions it calls directly, use no state of its instance (no globals,
memories, tables, segments, tags, ``ref.func``, indirect calls, imports) is *folded*: copied in as a
defined function.  Imports must come first, so the function index space is then renumbered (kept
imports, original definitions, copies, frames) consistently everywhere, references to the import become
references to the copy, and ``Manifest.funcs`` maps resume → original indices.  Any other import from
another instance is refused ("multiple instances").
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Sequence, Tuple, cast

from ...binary import decode_module
from ...errors import WasmError
from ...module import Func, Instr, Module
from ...types import FuncType, RefType, SubType
from ..model import InstanceState, State
from .common import NotConvertible

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

    def module_of(self, ist: InstanceState) -> Optional[Module]:
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


def fold_foreign_funcs(state: State, ist: InstanceState, m: Module, modules: Dict[str, bytes]
                       ) -> Tuple[Module, Any, Dict[int, int]]:
    """Replace each imported function that comes from another Wasm instance and is self-contained by a
    defined copy (and the copies of what it calls).  Imports must come first in Wasm, so the function
    index space is renumbered: kept imports, the original defined functions, then the copies.
    Returns (module, instance view with the new function address list, resume funcidx → original
    funcidx for every renumbered function with an original index).  Unchanged inputs when nothing
    folds; anything not folded is left for :func:`check_imports_are_host` to refuse."""
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
                imm = functype(cast(FuncType, mod.types[imm].comp))  # valid: a block type index is a func type
            body.append(Instr(op, imm, ins.offset))
        copies.append(Func(functype(cast(FuncType, mod.types[f.typeidx].comp)), list(f.locals), body,
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


def check_imports_are_host(state: State, ist: InstanceState, m: Module) -> None:
    """v1 converts one Wasm instance: every import must be a host object (spectest), not another
    instance's export (that instance's state would have to be converted too)."""
    hosts = {(h.kind, h.addr) for h in state.hosts}
    for kind in ("func", "table", "memory", "global", "tag"):
        space = ist.space(kind)
        for j in range(len(m.imported(kind))):
            if (kind, space[j]) not in hosts:
                raise NotConvertible("multiple instances", f"imported {kind} {j} comes from another instance")
