"""Is a :class:`~vm.snapshot.model.State` consistent with its modules?

::

    check_state(state, loaded, host_modules)   # before restore allocates anything; raises SnapshotError
    TailCalls(funcs, match).reaches(starts, f)  # may a frame of f stand where one of starts was called?
    results_fit(f, results, canon)              # f's result types where ``results`` are expected

A snapshot is a file from a stranger, and its checksum only catches accidents: a crafted state can be
well formed yet describe something no run can reach (a result typed i32 that holds 64 bits, an immutable
global that changed, an active segment that was never applied, free text as a trap).  Restore would
faithfully rebuild it and print a wrong result with exit status 0.  These are the rules that every state
the VM can reach obeys, checked on the plain state against the modules (and the host modules'
declarations) before anything is allocated; the rules that need the validator's metadata at a frame's pc
are checked where :mod:`vm.snapshot.restore` builds the frames, with :class:`TailCalls` and
:func:`results_fit` from here.  Every rule is listed, numbered, in docs/snapshot-format.md
("Consistency rules"); every failure is a :class:`SnapshotError` whose message starts with the field's
path in the state (``globals[3]``, ``instances[0].data_dropped[1]``, ``thread.frames[2].locals[1]``).

Where the structure itself is broken (an address out of range, an index space of the wrong length),
the check skips what it cannot type: restore's own structural checks refuse such a state.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from ..api import LoadedModule
from ..errors import TRAP_KINDS, UNCAUGHT_EXCEPTION, WasmError
from ..module import Expr, Module
from ..runtime.objects import PAGE_SIZE, FuncInst
from ..runtime.spectest import PRINTS
from ..runtime.store import BaseStore
from ..types import FuncType, GlobalType, RefType, TableType
from ..valid.canon import canon_valtype, canonical_types, valtype_sub_c
from ..values import format_value
from .model import (
    DONE,
    KINDS,
    NUM_BITS,
    RUNNING,
    STATUSES,
    TRAPPED,
    InstanceState,
    SnapshotError,
    State,
    Value,
)
from .valuecheck import HeapKeys, check_heap, check_segments, check_value
from .wasi_check import check_wasi

_EXN = RefType(False, "exn")

__all__ = ["TailCalls", "check_state", "check_value", "results_fit"]

HostFactories = Dict[str, Callable[[Any], Dict[str, Any]]]
Canon = List[Any]

#: the traps the engine reports with a detail: the element index (vm/exec/engine.py, call_indirect)
_INDEXED_TRAPS = ("undefined element", "uninitialized element")
_TAIL_OPS = ("return_call", "return_call_indirect", "return_call_ref")


def check_state(state: State, loaded: Sequence[LoadedModule], host_modules: HostFactories) -> HeapKeys:
    """Every rule that needs only the state, the modules and the host declarations (rules 1–9,
    18–22 and the WASI rules 25–37 of docs/snapshot-format.md, "Consistency rules").  Returns the heap objects' canonical types
    (for restore's checks of the frames' values)."""
    for fld, kind, n in (("tables", "table", len(state.tables)), ("globals", "global", len(state.globals))):
        if n != state.counts.get(kind):
            raise SnapshotError(f"{fld}: {n} entries for {state.counts.get(kind)} {kind} addresses")
    env = _Env(state, loaded, host_modules)
    env.heap = check_heap(state, env.canons, env.tags, env.func_keys)
    _thread(state, env)
    for a, (gt, canon, _) in sorted(env.globals.items()):
        check_value(gt.type, state.globals[a], canon, env.func_keys, f"globals[{a}]", env.heap)
    _host_globals(state, env)
    for n, ist in enumerate(state.instances):
        if env.well_formed(ist):
            _immutable_globals(state, env, n, ist)
            _drop_flags(state, env, n, ist)
    for a, (tt, canon) in sorted(env.tables.items()):
        _table(a, tt, canon, state.tables[a], env)
    check_segments(state, [lm.module for lm in env.loaded], env.canons, env.func_keys, env.heap)
    _host_log(state, env.heap)
    check_wasi(state)
    return env.heap


# -- the address tables, typed -----------------------------------------------------------------------
class _Env:
    """The type of every address the state defines (from the defining module, or the host module's
    declaration), and each module's canonical type keys."""

    def __init__(self, state: State, loaded: Sequence[LoadedModule], host_modules: HostFactories):
        self.state = state
        self.loaded = loaded
        self.canons = [canonical_types(lm.module) for lm in loaded]
        self.funcs: Dict[int, Tuple[FuncType, Any, Canon]] = {}  # address -> type, key, owner's keys
        self.globals: Dict[int, Tuple[GlobalType, Canon, Any]] = {}  # ... type, owner's keys, host value
        self.tables: Dict[int, Tuple[TableType, Canon]] = {}
        self.tags: Dict[int, Tuple[FuncType, Canon]] = {}  # address -> the tag's type, owner's keys
        self.heap: HeapKeys = []
        self._hosts(host_modules)
        for ist in state.instances:
            if self.well_formed(ist):
                self._defined(ist)
        self.func_keys = {a: key for a, (_, key, _) in self.funcs.items()}

    def _hosts(self, host_modules: HostFactories) -> None:
        """Host objects as their host module declares them: built by its factory in a scratch store
        (nothing of the state is involved), so a declared value is the factory's own."""
        scratch = BaseStore()
        made: Dict[str, Dict[str, Any]] = {}
        for h in self.state.hosts:
            if h.module not in host_modules or not 0 <= h.addr < self.state.counts.get(h.kind, 0):
                continue  # restore refuses it
            if h.module not in made:
                made[h.module] = host_modules[h.module](scratch)
            obj = made[h.module].get(h.name)
            if obj is None or getattr(obj, "kind", None) != h.kind:
                continue
            if h.kind == "func":
                self.funcs[h.addr] = (obj.type, obj.canon, [])
            elif h.kind == "global":
                self.globals[h.addr] = (obj.type, [], obj.value)
            elif h.kind == "table":
                self.tables[h.addr] = (obj.type, [])
            elif h.kind == "tag":
                self.tags[h.addr] = (obj.type, [])

    def well_formed(self, ist: InstanceState) -> bool:
        """Does the instance have the shape of its module (else restore refuses it by itself)?"""
        if not 0 <= ist.module < len(self.loaded):
            return False
        m = self.loaded[ist.module].module
        defined = {"func": len(m.funcs), "table": len(m.tables), "memory": len(m.memories),
                   "global": len(m.globals), "tag": len(m.tags)}
        for k in KINDS:
            space = ist.space(k)
            if len(space) != _nimports(m, k) + defined[k] or \
                    any(not 0 <= a < self.state.counts.get(k, 0) for a in space):
                return False
        return len(ist.elem_dropped) == len(m.elems) and len(ist.data_dropped) == len(m.datas)

    def _defined(self, ist: InstanceState) -> None:
        m = self.loaded[ist.module].module
        canon = self.canons[ist.module]
        nf = _nimports(m, "func")
        for j, f in enumerate(m.funcs):
            self.funcs[ist.funcs[nf + j]] = (_functype(m, f.typeidx), canon[f.typeidx], canon)
        ng = _nimports(m, "global")
        for j, g in enumerate(m.globals):
            self.globals[ist.globals[ng + j]] = (g.type, canon, None)
        nt = _nimports(m, "table")
        for j, t in enumerate(m.tables):
            self.tables[ist.tables[nt + j]] = (t.type, canon)
        ng = _nimports(m, "tag")
        for j, tg in enumerate(m.tags):
            self.tags[ist.tags[ng + j]] = (_functype(m, tg.typeidx), canon)


def _nimports(m: Module, kind: str) -> int:
    return sum(1 for i in m.imports if i.desc.kind == kind)


def _functype(m: Module, typeidx: int) -> FuncType:
    comp = m.types[typeidx].comp
    assert isinstance(comp, FuncType)  # valid module: a function's type is a function type
    return comp


# -- values ----------------------------------------------------------------------------------------
def _table(a: int, tt: TableType, canon: Canon, elems: List[Value], env: _Env) -> None:
    """Rule 6 for tables, once per distinct element (a large table is mostly one value)."""
    for v in set(elems):
        try:
            check_value(tt.elem, v, canon, env.func_keys, "", env.heap)
        except SnapshotError as e:
            raise SnapshotError(f"tables[{a}][{elems.index(v)}]{e.message}") from None


def _host_log(state: State, heap: HeapKeys) -> None:
    """Rule 9: only the spectest prints write the host log, with arguments of their declared types."""
    for i, (name, vals) in enumerate(state.host_log):
        params = PRINTS.get(name)
        if params is None:
            raise SnapshotError(f"host_log[{i}]: {name!r} is not a print function of the spectest host module")
        if len(vals) != len(params):
            raise SnapshotError(f"host_log[{i}].args: {len(vals)} arguments, {name} takes {len(params)}")
        for j, (t, v) in enumerate(zip(params, vals)):
            check_value(t, v, [], {}, f"host_log[{i}].args[{j}]", heap)


# -- the thread --------------------------------------------------------------------------------------
def _thread(state: State, env: _Env) -> None:
    """Rules 1–5: status, trap, results, entry and arguments, frame count."""
    ts = state.thread
    if ts is None:
        return
    if ts.status not in STATUSES:
        raise SnapshotError(f"thread.status: unknown status {ts.status!r}")
    if ts.status == RUNNING:
        _absent(ts.trap is not None, "thread.trap", "a running thread has no trap")
        _absent(bool(ts.results), "thread.results", "a running thread has no results yet")
        _absent(not ts.frames, "thread.frames", "a running thread has at least one frame")
        if len(ts.frames) > ts.count + 1:
            raise SnapshotError(f"thread.frames: {len(ts.frames)} frames after {ts.count} instructions "
                                "(each frame above the first needs a call)")
    elif ts.status == DONE:
        _absent(ts.trap is not None, "thread.trap", "a finished thread has no trap")
        _absent(bool(ts.frames), "thread.frames", "a finished thread has no frames")
    else:
        assert ts.status == TRAPPED
        if not _trap_ok(ts.trap):
            raise SnapshotError(f"thread.trap: {ts.trap!r} is not a trap of the closed vocabulary (one of "
                                "vm.errors.TRAP_KINDS; only an element trap is followed by its index)")
        _absent(bool(ts.results), "thread.results", "a trapped thread has no results")
        _absent(bool(ts.frames), "thread.frames", "a trapped thread has no frames")
        if ts.exception is not None:
            if ts.trap != UNCAUGHT_EXCEPTION:
                raise SnapshotError(f"thread.exception: a thread trapped with {ts.trap!r} has no escaped "
                                    f"exception (only {UNCAUGHT_EXCEPTION!r})")
            check_value(_EXN, ts.exception, [], env.func_keys, "thread.exception", env.heap)
    if ts.status != TRAPPED:
        _absent(ts.exception is not None, "thread.exception", f"a {ts.status} thread has no escaped exception")
    if not 0 <= ts.entry < state.counts.get("func", 0):
        raise SnapshotError(f"thread.entry: function address {ts.entry} out of range")
    entry = env.funcs.get(ts.entry)
    if entry is None:
        return  # defined by an instance that restore refuses
    ft, _, canon = entry
    _values("thread.args", ts.args, ft.params, canon, env, "the entry function takes")
    if ts.status == DONE:
        _values("thread.results", ts.results, ft.results, canon, env, "the entry function returns")


def _trap_ok(trap: Optional[str]) -> bool:
    """Rule 3: a trap kind of :data:`TRAP_KINDS`, exactly as the engine raises it: the kind alone, or
    for the two element traps the kind, a space and the table index in decimal ("undefined element 3",
    vm/exec/engine.py) — never free text."""
    if trap in TRAP_KINDS:
        return True
    kind, _, index = (trap or "").rpartition(" ")
    return kind in _INDEXED_TRAPS and 0 < len(index) <= 20 and index.isascii() and index.isdigit() and \
        (index == "0" or index[0] != "0")


def _absent(bad: bool, field: str, rule: str) -> None:
    if bad:
        raise SnapshotError(f"{field}: {rule}")


def _values(field: str, vals: List[Value], types: Sequence[Any], canon: Canon, env: _Env, what: str) -> None:
    if len(vals) != len(types):
        raise SnapshotError(f"{field}: {len(vals)} values, {what} {len(types)}")
    for i, (t, v) in enumerate(zip(types, vals)):
        check_value(t, v, canon, env.func_keys, f"{field}[{i}]", env.heap)


# -- constant expressions: immutable globals and segment offsets ----------------------------------
class _Slot:
    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value


class _ConstEnv:
    """What :meth:`BaseStore.eval_const` reads of an instance (``funcs``, ``globals[i].value``), taken
    from the state: ``ref.func`` gives the tagged address, ``global.get`` the state's value (payload for
    numbers, ``None`` for null, the tagged value for other references)."""

    def __init__(self, state: State, ist: InstanceState):
        self.funcs = [("ref.func", a) for a in ist.funcs]
        self.globals = [_Slot(_payload(state.globals[a])) for a in ist.globals]


def _payload(v: Value) -> Any:
    tag, x = v
    if tag in NUM_BITS:
        return x
    return None if tag == "ref.null" else v


#: the constant instructions rule 7 evaluates over the state; an expression with any other (a GC
#: allocation, ``ref.i31``, the extern conversions) is not checked (its objects are in the heap section)
_PLAIN_CONST = frozenset(("i32.const", "i64.const", "f32.const", "f64.const", "v128.const", "ref.null", "ref.func",
                          "global.get", "i32.add", "i32.sub", "i32.mul", "i64.add", "i64.sub", "i64.mul", "end"))


def _eval(env: _ConstEnv, expr: Optional[Expr]) -> Any:
    """The one constant evaluator (:meth:`BaseStore.eval_const`) over the state's values; ``...`` when
    the expression is not computable here (a GC instruction)."""
    if expr is not None and any(ins.op not in _PLAIN_CONST for ins in expr):
        return ...
    try:
        return _CONST.eval_const(env, expr)  # type: ignore[arg-type]  # duck-typed instance
    except (WasmError, TypeError, IndexError):
        return ...


_CONST = BaseStore()


def _immutable_globals(state: State, env: _Env, n: int, ist: InstanceState) -> None:
    """Rule 7: an immutable global keeps the value its initialiser gave it.  Initialisers read only
    immutable globals (imported ones are checked where they are defined, earlier ones of this instance
    just before), so the state's values are the ones instantiation read."""
    m = env.loaded[ist.module].module
    cenv = _ConstEnv(state, ist)
    ng = _nimports(m, "global")
    for j, g in enumerate(m.globals):
        if not g.type.mutable:
            _same(state, ist.globals[ng + j], _eval(cenv, g.init), f"immutable global {ng + j} of instance {n}")


def _host_globals(state: State, env: _Env) -> None:
    """Rule 7 for host globals: an immutable one holds the value its host module declares."""
    for h in state.hosts:
        gt, _, value = env.globals.get(h.addr, (None, None, None)) if h.kind == "global" else (None, None, None)
        if gt is not None and not gt.mutable and (value is None or isinstance(value, int)):
            _same(state, h.addr, value, f"immutable host global {h.module}.{h.name}")


def _same(state: State, a: int, want: Any, what: str) -> None:
    got = state.globals[a]
    if want is not ... and _payload(got) != want:
        raise SnapshotError(f"globals[{a}]: {what} holds {format_value(got)}, its initial value is "
                            f"{format_value(_tagged(got[0], want))}")


def _tagged(t: Any, x: Any) -> Value:
    if x is None:
        return ("ref.null", None)
    return x if isinstance(x, tuple) else (t if isinstance(t, str) else "int", x)


def _drop_flags(state: State, env: _Env, n: int, ist: InstanceState) -> None:
    """Rule 8: instantiation runs the active and declarative segments in order (element segments, then
    data segments) and drops each; a trap stops it at an active segment that does not fit, and the
    instance stays in the store.  So those segments are dropped up to one that could not fit its
    table's or memory's declared minimum, and none after it; passive segments may be either."""
    m = env.loaded[ist.module].module
    cenv = _ConstEnv(state, ist)
    order: List[Tuple[str, int, bool, bool]] = []  # field, index, dropped, could have trapped
    for i, e in enumerate(m.elems):
        if e.mode != "passive":
            fits = e.mode == "declarative" or _fits(_eval(cenv, e.offset), len(e.init), _table_min(m, e.table))
            order.append(("elem_dropped", i, ist.elem_dropped[i], not fits))
    for i, d in enumerate(m.datas):
        if d.mode == "active":
            fits = _fits(_eval(cenv, d.offset), len(d.init), _memory_min(m, d.memory) * PAGE_SIZE)
            order.append(("data_dropped", i, ist.data_dropped[i], not fits))
    stopped: Optional[str] = None
    for fld, i, dropped, could_trap in order:
        where = f"instances[{n}].{fld}[{i}]"
        if dropped and stopped is not None:
            raise SnapshotError(f"{where}: dropped, but {stopped} before it is not (instantiation applies "
                                "active segments in order and stops at the first that traps)")
        if not dropped and stopped is None:
            if not could_trap:
                raise SnapshotError(f"{where}: an active or declarative segment that fits is always dropped "
                                    "by instantiation")
            stopped = where


def _fits(off: Any, n: int, size: int) -> bool:
    return isinstance(off, int) and off + n <= size


def _table_min(m: Module, t: int) -> int:
    imported = [i.desc.type for i in m.imports if i.desc.kind == "table"]
    tt = imported[t] if t < len(imported) else m.tables[t - len(imported)].type
    return tt.limits.min


def _memory_min(m: Module, k: int) -> int:
    imported = [i.desc.type for i in m.imports if i.desc.kind == "memory"]
    mt = imported[k] if k < len(imported) else m.memories[k - len(imported)].type
    return mt.limits.min


# -- frames: tail calls and results ------------------------------------------------------------------
class TailCalls:
    """Which functions a frame can belong to where a call of given functions was made: a tail call
    (``return_call*``) replaces the frame, so after a call of X the frame may run X or anything X reaches
    by tail calls — ``return_call`` its target, ``return_call_indirect``/``return_call_ref`` any
    function of the store whose type matches the instruction's (rule 12)."""

    def __init__(self, funcs: Iterable[FuncInst], match: Callable[[Any, Any], bool]):
        self.funcs = list(funcs)
        self.match = match
        self._targets: Dict[int, List[FuncInst]] = {}

    def of_type(self, key: Any) -> List[FuncInst]:
        """The functions of the store whose type matches canonical type ``key``."""
        return [g for g in self.funcs if self.match(g.canon, key)]

    def reaches(self, starts: Sequence[FuncInst], f: FuncInst) -> bool:
        """Is ``f`` one of ``starts`` or reachable from one by a chain of tail calls?"""
        if any(s is f for s in starts):
            return True
        seen = {id(s) for s in starts}
        todo = list(starts)
        while todo:
            for h in self._tail_targets(todo.pop()):
                if h is f:
                    return True
                if id(h) not in seen:
                    seen.add(id(h))
                    todo.append(h)
        return False

    def _tail_targets(self, g: FuncInst) -> List[FuncInst]:
        out = self._targets.get(id(g))
        if out is not None:
            return out
        out = []
        if g.host is None and g.module is not None:
            for ins in g.func.body:
                if ins.op == "return_call":
                    out.append(g.module.funcs[ins.imm])
                elif ins.op in _TAIL_OPS:
                    typeidx = ins.imm[0] if ins.op == "return_call_indirect" else ins.imm
                    out.extend(self.of_type(g.module.canon[typeidx]))
        self._targets[id(g)] = out
        return out


def results_fit(f: FuncInst, results: Sequence[Any], canon: Canon) -> bool:
    """Do ``f``'s result types match ``results`` (module-relative to ``canon``), as the caller expects?"""
    own = f.module.canon if f.module is not None else []
    return len(f.type.results) == len(results) and all(
        valtype_sub_c(canon_valtype(a, own), canon_valtype(b, canon)) for a, b in zip(f.type.results, results))
