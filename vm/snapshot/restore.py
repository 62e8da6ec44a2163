"""Restore: :class:`~vm.snapshot.model.State` → a live store and run.

::

    restore(state, modules) -> (Store, Run | None)   # modules: {sha256 hex: module bytes}

Restore loads each module through :func:`vm.api.load_module` (decoded and validated once, cached by
sha256), checks the state against them with :func:`~vm.snapshot.consistency.check_state` before it
allocates anything (docs/snapshot-format.md, "Consistency rules"), re-creates each instance with
``Store.allocate`` (imports resolved through the address tables, so sharing is preserved; no segment
initialisation, no start function), rebuilds the heap objects in two passes (all allocated empty,
then all fields set: cycles and sharing resolve to the same objects), then overwrites every table,
memory, global, dropped flag, the element segments of the segments section and the host log from the
state, and rebuilds the frames (with their caught exceptions) after checking
them against the validator's metadata (labels, operand heights and types, locals, the pending call of
every non-top frame).  A snapshot is untrusted input: anything inconsistent raises
:class:`SnapshotError`.  The limits (memory pages, table elements, call depth) are the restoring side's
(``limits``, the same :class:`~vm.runtime.limits.StoreLimits` that bound instantiation and growth); the ones
a snapshot records are informational only, and a state that exceeds the restorer's is refused before
anything is allocated for it.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Dict, List, Optional, Tuple, cast

from ..api import LoadedModule, Store, load_module
from ..errors import ResourceLimit, WasmError
from ..exec.engine import Frame, Thread
from ..runtime.heap import ArrayInst, ExnInst, HostRef, I31Ref, StructInst
from ..runtime.limits import StoreLimits, current
from ..runtime.objects import PAGE_SIZE, ExternRef, FuncInst, ModuleInst
from ..runtime.spectest import spectest_exports
from ..runtime.wasi import WASI_MODULE
from ..runtime.wasi.preview1 import wasi_exports
from ..types import RefType
from . import faults as _faults
from .capture import SPACE_ATTR
from .consistency import TailCalls, check_state, results_fit
from .model import (
    DONE,
    KINDS,
    NUM_BITS,
    TRAPPED,
    FrameState,
    InstanceState,
    SnapshotError,
    State,
    ThreadState,
    Value,
)
from .pcs import caught_at, false_if_end, labels_at, pc_index, stack_types
from .run import Run
from .valuecheck import HeapKeys, check_value
from .wasi_state import bind_memory, fs_bytes, restore_wasi

__all__ = ["check_limits", "default_host_modules", "restore"]

_CALL_OPS = ("call", "call_indirect", "call_ref")
_EXN = RefType(False, "exn")

HostModules = Dict[str, Callable[[Any], Dict[str, Any]]]


def default_host_modules() -> HostModules:
    """The host modules a snapshot's host objects can come from (``spectest``, WASI preview 1)."""
    return {"spectest": spectest_exports, WASI_MODULE: wasi_exports}


def _load_modules(state: State, modules: Dict[str, bytes]) -> List[LoadedModule]:
    out = []
    for sha in state.modules:
        data = modules.get(sha)
        if data is None:
            given = ", ".join(sorted(modules)) or "none"
            raise SnapshotError(f"snapshot was taken on module sha256:{sha}, which was not given "
                                f"(given: {given}); refusing to restore onto another module")
        if hashlib.sha256(data).hexdigest() != sha:
            raise SnapshotError(f"module bytes given for sha256:{sha} have another sha256")
        try:
            out.append(load_module(data))
        except WasmError as e:
            raise SnapshotError(f"module sha256:{sha} cannot be loaded: {e}") from None
    return out


def restore(state: State, modules: Dict[str, bytes], host_modules: Optional[HostModules] = None,
            store: Optional[Store] = None, limits: Optional[StoreLimits] = None) -> Tuple[Store, Optional[Run]]:
    """Re-create the store and the run of ``state`` (see the module docstring).  ``modules`` maps
    sha256 hex → module bytes; a snapshot of another module is refused.  ``limits`` are the
    restorer's (default: the process's, :func:`vm.runtime.limits.current`; a given ``store`` has its own).
    Returns ``(store, run)``; ``run`` is None for a store-only state."""
    try:
        hosts = host_modules if host_modules is not None else default_host_modules()
        lim = store.limits if store is not None else (limits if limits is not None else current())
        check_limits(state, lim)  # nothing is allocated for a state beyond the restorer's limits
        loaded = _load_modules(state, modules)
        keys = check_state(state, loaded, hosts)  # nor for an inconsistent one
        out = _restore(state, loaded, hosts, store, lim, keys)
        if _faults.ACTIVE and out[1] is not None:  # deliberate bugs for `wcr selftest` only
            _faults.after_restore(out[1])
        return out
    except SnapshotError:
        raise
    except ResourceLimit as e:  # within the limits in total, but not next to the host objects
        raise SnapshotError(str(e)) from None
    except (WasmError, KeyError, IndexError, ValueError, TypeError, AttributeError, OverflowError) as e:
        # a state that passes the codec but does not fit the module (crafted or inconsistent)
        raise SnapshotError(f"snapshot does not fit its module: {type(e).__name__}: {e}") from None


def check_limits(state: State, limits: StoreLimits) -> None:
    """Refuse a state that holds more than ``limits`` allow, before anything is allocated for it
    (the snapshot's own recorded limits play no part)."""
    pages = sum(ms.pages for ms in state.mems)
    if pages > limits.max_memory_pages:
        raise SnapshotError(f"memories: the snapshot holds {pages} pages of memory, more than this "
                            f"restorer's limit of {limits.max_memory_pages} pages (--max-memory-pages)")
    elems = sum(len(t) for t in state.tables)
    if elems > limits.max_table_elements:
        raise SnapshotError(f"tables: the snapshot holds {elems} table elements, more than this "
                            f"restorer's limit of {limits.max_table_elements} (--max-table-elements)")
    fields = sum(max(len(ob.fields), 1) for ob in state.heap)
    if fields > limits.max_heap_fields:
        raise SnapshotError(f"heap: the snapshot's objects hold {fields} fields, more than this restorer's "
                            f"limit of {limits.max_heap_fields} (--max-heap-fields)")
    if state.wasi is not None and fs_bytes(state.wasi) > limits.max_fs_bytes:
        raise SnapshotError(f"wasi.inodes: the snapshot's files hold {fs_bytes(state.wasi)} bytes, more than "
                            f"this restorer's limit of {limits.max_fs_bytes} (--max-fs-bytes)")
    th = state.thread
    if th is not None and len(th.frames) > limits.max_call_depth:
        raise SnapshotError(f"thread.frames: {len(th.frames)} frames, more than this restorer's call "
                            f"depth limit of {limits.max_call_depth} (--max-call-depth)")


def _restore(state: State, loaded: List[LoadedModule], host_modules: HostModules,
             store: Optional[Store], limits: StoreLimits, keys: HeapKeys) -> Tuple[Store, Optional[Run]]:
    if store is None:
        store = Store(limits=limits)
    addrs = _Addresses(state.counts)
    if state.wasi is not None:  # before the host objects: the WASI factory binds to store.wasi
        store.wasi = restore_wasi(state.wasi, limits)
    _host_objects(state, store, host_modules, addrs)
    insts = [_instance(state, store, loaded, n, ist, addrs) for n, ist in enumerate(state.instances)]
    addrs.check_complete()
    conv = _Converter(addrs.objs["func"], _heap(state, store, insts, addrs), keys)
    _fill_heap(state, conv)
    _contents(state, store, addrs, conv)
    if state.wasi is not None:
        bind_memory(store.wasi, state.wasi, addrs.objs["memory"])
    for k, (n, i, items) in enumerate(state.segments):
        insts[n].elems[i] = [conv.value(insts[n].module.elems[i].type, v, insts[n].canon, f"segments[{k}].items[{j}]")
                             for j, v in enumerate(items)]
    if state.thread is None:
        return store, None
    return store, _restore_thread(store, state.thread, addrs.objs["func"], conv)


class _Addresses:
    """The address tables being rebuilt: every address of every kind defined exactly once."""

    def __init__(self, counts: Dict[str, int]):
        self.counts = counts
        self.objs: Dict[str, Dict[int, Any]] = {k: {} for k in KINDS}

    def put(self, kind: str, a: int, obj: Any) -> None:
        if not 0 <= a < self.counts[kind]:
            raise SnapshotError(f"{kind} address {a} out of range")
        if a in self.objs[kind]:
            raise SnapshotError(f"{kind} address {a} defined twice")
        self.objs[kind][a] = obj

    def check_complete(self) -> None:
        for k in KINDS:
            if len(self.objs[k]) != self.counts[k]:
                raise SnapshotError(f"{self.counts[k] - len(self.objs[k])} {k} addresses are not defined by "
                                    "any instance or host")


def _host_objects(state: State, store: Store, host_modules: HostModules, addrs: _Addresses) -> None:
    """Re-create the host objects with their host module's factory (once per module and store)."""
    host_exports: Dict[str, Dict[str, Any]] = {}
    for h in state.hosts:
        if h.module not in host_modules:
            raise SnapshotError(f"unknown host module {h.module!r}")
        ex = host_exports.get(h.module)
        if ex is None:
            ex = host_exports[h.module] = host_modules[h.module](store)
        obj = ex.get(h.name)
        if obj is None or getattr(obj, "kind", None) != h.kind:
            raise SnapshotError(f"host module {h.module!r} has no {h.kind} {h.name!r}")
        addrs.put(h.kind, h.addr, obj)


def _instance(state: State, store: Store, loaded: List[LoadedModule], n: int, ist: InstanceState,
              addrs: _Addresses) -> ModuleInst:
    """Allocate instance ``n`` (imports by address, no segments, no start function), define the
    addresses of what it defines, size its tables and memories, set its dropped flags."""
    objs = addrs.objs
    if not 0 <= ist.module < len(loaded):
        raise SnapshotError(f"instance {n}: module index {ist.module} out of range")
    lm = loaded[ist.module]
    m = lm.module
    imports = []
    pos = {k: 0 for k in KINDS}
    for imp in m.imports:
        k = imp.desc.kind
        space = ist.space(k)
        if pos[k] >= len(space):
            raise SnapshotError(f"instance {n}: missing address of import {imp.module}.{imp.name}")
        a = space[pos[k]]
        pos[k] += 1
        if a not in objs[k]:
            raise SnapshotError(f"instance {n}: import {imp.module}.{imp.name} refers to undefined "
                                f"{k} address {a}")
        imports.append(objs[k][a])
    defined = {"func": len(m.funcs), "table": len(m.tables), "memory": len(m.memories),
               "global": len(m.globals), "tag": len(m.tags)}
    for k in KINDS:
        if len(ist.space(k)) != pos[k] + defined[k]:
            raise SnapshotError(f"instance {n}: {k} index space has {len(ist.space(k))} entries, "
                                f"module has {pos[k] + defined[k]}")
    if len(ist.elem_dropped) != len(m.elems) or len(ist.data_dropped) != len(m.datas):
        raise SnapshotError(f"instance {n}: segment counts differ from the module")
    try:
        inst = store.allocate(m, lm.info, imports, state.modules[ist.module], compile=False)
    except WasmError as e:
        raise SnapshotError(f"instance {n}: cannot link: {e}") from None
    inst.name = ist.name
    for k in KINDS:
        space = getattr(inst, SPACE_ATTR[k])
        for j in range(pos[k], len(space)):
            addrs.put(k, ist.space(k)[j], space[j])
    # Later instances link against this one's tables/memories at their *current* sizes (they may have
    # grown since, e.g. table_grow.wast's re-exported grown table): size them now, contents below.
    for a in ist.tables[pos["table"]:]:
        if a < len(state.tables):
            _table_size(objs["table"][a], a, len(state.tables[a]))
    for a in ist.mems[pos["memory"]:]:
        if a < len(state.mems):
            _memory_size(objs["memory"][a], a, state.mems[a].pages)
    for i, d in enumerate(ist.elem_dropped):
        if d:
            inst.drop_elem(i)
    for i, d in enumerate(ist.data_dropped):
        if d:
            inst.drop_data(i)
    return inst


def _heap(state: State, store: Store, insts: List[ModuleInst], addrs: _Addresses) -> List[Any]:
    """Allocate every heap object empty, each charged to the store's quota before it is allocated (its
    type and tag were checked by check_state); :func:`_fill_heap` sets the fields once all exist, so
    references between them (cycles, sharing) resolve to these very objects."""
    out: List[Any] = []
    for i, ob in enumerate(state.heap):
        store.quota.take_fields(max(len(ob.fields), 1), f"heap[{i}]")
        if ob.kind == "exn":
            out.append(ExnInst(addrs.objs["tag"][cast(int, ob.tag)], []))
        else:
            n, j = cast(Tuple[int, int], ob.type)
            cls = StructInst if ob.kind == "struct" else ArrayInst
            out.append(cls(insts[n].canon[j], []))
    return out


def _fill_heap(state: State, conv: _Converter) -> None:
    """Every object's fields as runtime values (packed fields are unsigned ints, as the engine keeps
    them; the values' types were checked by check_state)."""
    for i, ob in enumerate(state.heap):
        vals = [conv.any(v) for v in ob.fields]
        x = conv.heap[i]
        if ob.kind == "struct":
            x.fields = vals
        elif ob.kind == "array":
            x.elements = vals
        else:
            x.payload = vals


def _contents(state: State, store: Store, addrs: _Addresses, conv: _Converter) -> None:
    """Overwrite every table, memory and global and the host log with the state's (checked against
    each object's own limits and types)."""
    counts = state.counts
    objs = addrs.objs
    if len(state.tables) != counts["table"] or len(state.mems) != counts["memory"] or \
            len(state.globals) != counts["global"]:
        raise SnapshotError("state sections disagree with the address counts")
    for a, elems in enumerate(state.tables):
        tab = objs["table"][a]
        _table_size(tab, a, len(elems))
        canon = tab.owner.canon if tab.owner is not None else []
        # once per distinct element: a large table is mostly one value
        runtime = {v: conv.value(tab.type.elem, v, canon, f"tables[{a}][{elems.index(v)}]") for v in set(elems)}
        tab.elements = [runtime[v] for v in elems]
    for a, ms in enumerate(state.mems):
        mem = objs["memory"][a]
        _memory_size(mem, a, ms.pages)
        data = mem.data
        for p, chunk in ms.nonzero.items():
            if not 0 <= p < ms.pages or len(chunk) != PAGE_SIZE:
                raise SnapshotError(f"memories[{a}]: bad page {p}")
            data[p * PAGE_SIZE:(p + 1) * PAGE_SIZE] = chunk
    for a, v in enumerate(state.globals):
        g = objs["global"][a]
        canon = g.owner.canon if g.owner is not None else []
        g.value = conv.value(g.type.type, v, canon, f"globals[{a}]")
    store.host_log[:] = [(name, tuple(conv.any(v) for v in vals)) for name, vals in state.host_log]


def _table_size(tab: Any, a: int, n: int) -> None:
    """Size table address ``a`` to ``n`` null elements, within its type's limits (the store's quota
    is charged by the table)."""
    mx = tab.type.limits.max
    if n < tab.type.limits.min or (mx is not None and n > mx):
        raise SnapshotError(f"tables[{a}]: size {n} outside the table type's limits")
    if len(tab.elements) != n:
        tab.resize_to(n, f"tables[{a}]")


def _memory_size(mem: Any, a: int, pages: int) -> None:
    """Size memory address ``a`` to ``pages`` zero pages, within its type's limits."""
    if pages < mem.type.limits.min or pages > mem.max_pages:
        raise SnapshotError(f"memories[{a}]: {pages} pages outside the memory type's limits")
    if mem.pages != pages:
        mem.resize_to(pages, f"memories[{a}]")


class _Converter:
    """Tagged value → runtime value.  Whether the value fits its slot is rule 6, checked by the one
    :func:`~vm.snapshot.consistency.check_value` (the field named by ``where``)."""

    def __init__(self, funcs: Dict[int, FuncInst], heap: List[Any], keys: HeapKeys):
        self.funcs = funcs
        self.func_keys = {a: f.canon for a, f in funcs.items()}
        self.heap = heap
        self.keys = keys

    def any(self, v: Value) -> Any:
        tag, x = v
        if tag in NUM_BITS or tag == "int":
            return x
        return self.ref(v)

    def ref(self, v: Value) -> Any:
        tag, x = v
        if tag == "ref.null":
            return None
        if tag == "ref.func":
            f = self.funcs.get(x)
            if f is None:
                raise SnapshotError(f"function address {x} out of range")
            return f
        if tag == "ref.extern":
            return ExternRef(self.ref(x) if isinstance(x, tuple) else x)
        if tag in ("ref.struct", "ref.array", "ref.exn"):
            if not 0 <= x < len(self.heap) or self.heap[x].kind != tag[4:]:
                raise SnapshotError(f"heap object id {x} out of range or of another kind")
            return self.heap[x]
        if tag == "ref.i31":
            return I31Ref(x)
        if tag == "ref.host":
            return HostRef(x)
        raise SnapshotError(f"value tag {tag} where a reference is expected")

    def value(self, t: Any, v: Value, canon: List[Any], where: str) -> Any:
        check_value(t, v, canon, self.func_keys, where, self.keys)
        return v[1] if isinstance(t, str) else self.ref(v)


def _restore_thread(store: Store, ts: ThreadState, funcs: Dict[int, FuncInst], conv: _Converter) -> Run:
    """The run of the state's thread (its shape, entry, arguments, results and trap were checked by
    :func:`check_state`; the frames are checked here, against the validator's metadata)."""
    entry = funcs[ts.entry]
    canon_e = entry.module.canon if entry.module is not None else []
    args = [conv.value(t, v, canon_e, f"thread.args[{i}]") for i, (t, v) in enumerate(zip(entry.type.params, ts.args))]
    th = Thread()
    th.count = ts.count
    run = Run(th, entry, args)
    if ts.status == DONE:
        th.results = [conv.value(t, v, canon_e, f"thread.results[{i}]")
                      for i, (t, v) in enumerate(zip(entry.type.results, ts.results))]
        th.done = True
    elif ts.status == TRAPPED:
        run.trap = ts.trap
        if ts.exception is not None:
            run.exn = conv.value(_EXN, ts.exception, [], "thread.exception")
        th.done = True
    else:
        th.frames = _frames(store, ts, funcs, conv)
    return run


def _unset(t: Any, v: Value) -> bool:
    """A declared local of a non-defaultable type (``(ref T)``) holds no value until its first
    ``local.set``; the engine keeps null there, and validation guarantees it is never read before
    (local_init.wast).  So null is a consistent value of such a local (not of a parameter)."""
    return v[0] == "ref.null" and isinstance(t, RefType) and not t.nullable


def _frames(store: Store, ts: ThreadState, funcs: Dict[int, FuncInst], conv: _Converter) -> List[Frame]:
    """The engine frames of a running thread, each checked against the validator's metadata at its pc
    and against the frame below it (docs/snapshot-format.md, "Consistency rules", 10–17; the call depth
    limit was checked by :func:`check_limits`)."""
    fobjs = []
    for n, fs in enumerate(ts.frames):
        f = funcs.get(fs.func)
        if f is None or f.host is not None:
            raise SnapshotError(f"thread.frames[{n}].func: address {fs.func} is not a defined function")
        fobjs.append(f)
    entry = funcs[ts.entry]
    tails = TailCalls(funcs.values(), store.canon_match)
    canon_e = entry.module.canon if entry.module is not None else []
    _callee("thread.frames[0].func", ts.frames[0].func, fobjs[0], tails, [entry], entry.type.results, canon_e,
            f"the entry function {ts.entry}")
    top = len(ts.frames) - 1
    frames = [_frame(store, n, fs, f, (ts.frames[n + 1].func, fobjs[n + 1]) if n < top else None, conv, tails)
              for n, (fs, f) in enumerate(zip(ts.frames, fobjs))]
    if ts.count == 0:
        _initial(ts, entry, frames[0])
    return frames


def _callee(where: str, addr: int, f: FuncInst, tails: TailCalls, called: List[FuncInst], results: Any,
            canon: List[Any], what: str) -> None:
    """Rule 12: the frame where ``called`` was entered runs one of them or what they reach by tail
    calls, and its results are the ones the caller expects."""
    if not tails.reaches(called, f):
        raise SnapshotError(f"{where}: function address {addr} is not {what} nor reached from it by tail calls")
    if not results_fit(f, results, canon):
        raise SnapshotError(f"{where}: function address {addr} returns {list(f.type.results)}, the caller expects "
                            f"{list(results)}")


def _initial(ts: ThreadState, entry: FuncInst, fr: Frame) -> None:
    """Rule 5: before its first instruction a thread is the entry's frame at its first instruction,
    holding the arguments and the default locals, with an empty stack."""
    fs = ts.frames[0]
    if len(ts.frames) != 1 or fr.func is not entry or fr.pc != 0 or fs.stack:
        raise SnapshotError("thread.frames: after 0 instructions the only frame is the entry function's, "
                            "at its first instruction, with an empty operand stack")
    defaults = [_default(t) for t in entry.info.local_types[len(ts.args):]]
    if fs.locals != list(ts.args) + defaults:
        raise SnapshotError("thread.frames[0].locals: after 0 instructions the locals are the arguments, "
                            "then each local's default value")


def _default(t: Any) -> Value:
    return (t, 0) if isinstance(t, str) else ("ref.null", None)


def _frame(store: Store, n: int, fs: FrameState, f: FuncInst, callee: Optional[Tuple[int, FuncInst]],
           conv: _Converter, tails: TailCalls) -> Frame:
    """Frame ``n``: pc, labels, locals and operand stack checked; ``callee`` is the next frame's
    function (address, object) when this frame waits in a call (its arguments are no longer on this
    stack)."""
    at = f"thread.frames[{n}]"
    try:
        idx = pc_index(f, fs.pc)
    except SnapshotError as e:
        raise SnapshotError(f"{at}.pc: {e.message}") from None
    info = f.info
    module = cast(ModuleInst, f.module)  # a defined function (checked by _frames)
    canon = module.canon
    if not info.reachable[idx] and not false_if_end(f, idx):
        raise SnapshotError(f"{at}.pc: {fs.pc} is unreachable code")
    if fs.labels != labels_at(f, idx):
        raise SnapshotError(f"{at}.labels: label stack at pc {fs.pc} does not match the module's "
                            "control structure")
    if len(fs.locals) != len(info.local_types):
        raise SnapshotError(f"{at}.locals: {len(fs.locals)} locals, function has {len(info.local_types)}")
    nparams = len(f.type.params)
    locs = [None if i >= nparams and _unset(t, v) else conv.value(t, v, canon, f"{at}.locals[{i}]")
            for i, (t, v) in enumerate(zip(info.local_types, fs.locals))]
    stypes = stack_types(f, idx)
    height = len(stypes)
    if callee is not None:
        height -= _pending_call(store, n, fs, f, idx, callee, tails)
    if len(fs.stack) != height:
        raise SnapshotError(f"{at}.stack: operand stack height {len(fs.stack)}, expected {height} at pc {fs.pc}")
    store.machine.ensure_compiled(f)
    fr = Frame(f, locs)
    fr.pc = idx
    fr.stack = [conv.value(t, v, canon, f"{at}.stack[{i}]") for i, (t, v) in enumerate(zip(stypes, fs.stack))]
    fr.caught = _caught(at, fs, f, idx, conv)
    return fr


def _caught(at: str, fs: FrameState, f: FuncInst, idx: int, conv: _Converter) -> Optional[dict]:
    """Rule 23: one caught exception for each legacy catch block enclosing the pc, named by the byte
    offset of its ``try``, outermost first (like the labels, derived from the pc and the validator)."""
    blocks = caught_at(f, idx)
    if [off for off, _ in fs.caught] != [off for _, off in blocks]:
        raise SnapshotError(f"{at}.caught: the caught exceptions at pc {fs.pc} do not match the catch blocks "
                            f"enclosing it (try offsets {[off for _, off in blocks]})")
    if not blocks:
        return None
    return {start: conv.value(_EXN, v, [], f"{at}.caught[{k}]") for k, ((start, _), (_, v)) in
            enumerate(zip(blocks, fs.caught))}


def _pending_call(store: Store, n: int, fs: FrameState, f: FuncInst, idx: int,
                  next_frame: Tuple[int, FuncInst], tails: TailCalls) -> int:
    """Rule 16: a frame below another waits in a call that entered the next frame's function (or one
    that function was reached from by tail calls).  Returns how many operands the call took (the
    arguments as the *call site* typed them, and the table index or reference of an indirect call)."""
    module = cast(ModuleInst, f.module)
    ins = f.func.body[idx]
    where = f"thread.frames[{n + 1}].func"
    addr, callee = next_frame
    if ins.op not in _CALL_OPS:
        raise SnapshotError(f"thread.frames[{n}].pc: {fs.pc} is not a call but a callee frame follows")
    if ins.op == "call":
        x = module.funcs[ins.imm]
        _callee(where, addr, callee, tails, [x], x.type.results, x.module.canon if x.module is not None else [],
                f"function {ins.imm} called by frame {n}")
        return len(x.type.params)
    typeidx = ins.imm[0] if ins.op == "call_indirect" else ins.imm
    ft = module.module.types[typeidx].comp
    key = module.canon[typeidx]
    starts = [callee] if store.canon_match(callee.canon, key) else tails.of_type(key)
    _callee(where, addr, callee, tails, starts, ft.results, module.canon,
            f"of the type frame {n} calls indirectly")
    return len(ft.params) + 1
