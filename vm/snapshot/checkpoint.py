"""Checkpoint and restore: live store + thread ⇄ :class:`~vm.snapshot.model.State`.

Public API (all values in the runtime representation of docs/execution-model.md)::

    start(store, func, args) -> Run             # an invocation at k = 0 (nothing executed yet)
    advance(store, run, k) -> Run               # run until k instructions are retired (or it ends)
    run_to(store, func, args, k) -> Run         # start + advance
    checkpoint(store, run) -> State             # capture (the store and run are not modified)
    restore(state, modules) -> (Store, Run)     # modules: {sha256 hex: module bytes}
    finish(store, run) -> Outcome               # run to the end; results / trap / count / log / digest
    capture_store(store) -> State               # the store part only (thread None)

A :class:`Run` wraps the engine's :class:`~vm.exec.engine.Thread` with what the thread itself does not
hold: the entry function and arguments, and the trap that ended it (if any).  A run stopped by ``k`` is
*between* instructions: the top frame's pc is the next instruction to execute.  ``k`` equal to the total
of a finished run gives a ``done`` state; ``k`` equal to the total of a trapping run gives a ``trapped``
state (the trapping instruction counts, as in the counting rule).

Restore re-creates each instance from its module bytes with ``Store.allocate`` (imports resolved through
the address tables, so sharing is preserved; no segment initialisation, no start function), then
overwrites every table, memory, global, dropped flag and the host log from the state, and rebuilds the
frames after checking them against the validator's metadata (labels, operand heights and types, locals,
the pending call of every non-top frame).  Anything inconsistent raises :class:`SnapshotError`.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..errors import Trap, WasmError, WasmException
from ..runtime.objects import PAGE_SIZE, ExternRef, FuncInst, ModuleInst
from ..types import RefType
from . import faults as _faults
from .model import (
    DONE,
    KINDS,
    NUM_BITS,
    RUNNING,
    TRAPPED,
    FrameState,
    HostObject,
    InstanceState,
    Label,
    MemoryState,
    SnapshotError,
    State,
    ThreadState,
    Value,
)

_ZERO_PAGE = bytes(PAGE_SIZE)
_SPACE_ATTR = {"func": "funcs", "table": "tables", "memory": "mems", "global": "globals", "tag": "tags"}
_CALL_OPS = ("call", "call_indirect", "call_ref")

#: sanity limits for restoring untrusted snapshots (the runtime enforces the same or smaller)
MAX_TABLE_SIZE = 10_000_000


class Run:
    """An invocation in progress or ended: the engine thread plus entry, arguments and trap kind."""

    __slots__ = ("thread", "entry", "args", "trap")

    def __init__(self, thread: Any, entry: FuncInst, args: List[Any], trap: Optional[str] = None):
        self.thread = thread
        self.entry = entry
        self.args = args
        self.trap = trap

    @property
    def status(self) -> str:
        if self.trap is not None:
            return TRAPPED
        return DONE if self.thread.done else RUNNING

    @property
    def count(self) -> int:
        return self.thread.count


class Outcome:
    """How an invocation ended: results (tagged values), trap kind, exact instruction count, the
    store's host log and the final-state digest.  ``to_dict`` is the JSON form hosts exchange."""

    __slots__ = ("results", "trap", "instructions", "host_log", "state_digest")

    def __init__(self, results: List[Value], trap: Optional[str], instructions: int,
                 host_log: List[Tuple[str, List[Value]]], digest: str):
        self.results = results
        self.trap = trap
        self.instructions = instructions
        self.host_log = host_log
        self.state_digest = digest

    def to_dict(self) -> Dict[str, Any]:
        from .model import format_value

        return {
            "results": [format_value(v) for v in self.results],
            "trap": self.trap,
            "instructions": self.instructions,
            "host_log": [[name, [format_value(v) for v in vals]] for name, vals in self.host_log],
            "state_digest": self.state_digest,
        }

    def __repr__(self) -> str:
        return f"Outcome({self.to_dict()!r})"


# ------------------------------------------------------------------------------------------------
# Running
# ------------------------------------------------------------------------------------------------

def start(store: Any, func: FuncInst, args: Sequence[Any]) -> Run:
    """An invocation of ``func`` stopped before its first instruction (k = 0).  A host function has no
    instructions: it runs at once and the run is ``done`` (or ``trapped``)."""
    from ..exec.engine import Thread

    args = list(args)
    if len(args) != len(func.type.params):
        raise ValueError(f"expected {len(func.type.params)} arguments, got {len(args)}")
    th = Thread()
    run = Run(th, func, args)
    if func.host is not None:
        try:
            th.results = list(func.host(list(args)))
        except Trap as e:
            run.trap = e.kind
        th.done = True
        return run
    th.frames.append(store.machine.new_frame(func, args))
    return run


def advance(store: Any, run: Run, k: Optional[int] = None) -> Run:
    """Run until ``k`` instructions are retired in total (``None``: to the end).  A trap ends the run
    (``run.trap``); it is not raised."""
    th = run.thread
    if run.status != RUNNING or (k is not None and th.count >= k):
        return run
    try:
        store.machine.run(th, k)
    except Trap as e:
        run.trap = e.kind
    except WasmException as e:
        run.trap = e.message
    store.instructions = th.count
    return run


def run_to(store: Any, func: FuncInst, args: Sequence[Any], k: Optional[int]) -> Run:
    """Invoke ``func`` and stop before retired instruction ``k`` (or where it ends)."""
    return advance(store, start(store, func, args), k)


def finish(store: Any, run: Run, digest: bool = True) -> Outcome:
    """Run to the end and describe the outcome (results typed by the entry function's type)."""
    advance(store, run, None)
    from .digest import state_digest

    caps = _Capture(store, require_sha=False)
    results: List[Value] = []
    if run.status == DONE:
        results = [caps.value(t, x) for t, x in zip(run.entry.type.results, run.thread.results or [])]
    store.instructions = run.thread.count
    return Outcome(results, run.trap, run.thread.count, caps.host_log(),
                   state_digest(store) if digest else "")


# ------------------------------------------------------------------------------------------------
# Capture
# ------------------------------------------------------------------------------------------------

class _Capture:
    """Walks a store once, assigning addresses; converts runtime values to tagged values."""

    def __init__(self, store: Any, require_sha: bool = True):
        self.store = store
        self.addr: Dict[str, Dict[int, int]] = {k: {} for k in KINDS}  # id(obj) -> address
        self.objs: Dict[str, List[Any]] = {k: [] for k in KINDS}
        self.hosts: List[HostObject] = []
        self.instances: List[InstanceState] = []
        self.modules: List[str] = []
        mod_index: Dict[str, int] = {}
        for n, inst in enumerate(store.instances):
            sha = inst.sha256 or ""
            if not sha and require_sha:
                raise SnapshotError(f"instance {n} has no module sha256 (set ModuleInst.sha256 to the "
                                    "sha256 of the module bytes when instantiating)")
            if sha not in mod_index:
                mod_index[sha] = len(self.modules)
                self.modules.append(sha)
            ist = InstanceState(mod_index[sha], inst.name)
            imports = {k: [i for i in inst.module.imports if i.desc.kind == k] for k in KINDS}
            for kind in KINDS:
                space = getattr(inst, _SPACE_ATTR[kind])
                out = ist.space(kind)
                nimp = len(imports[kind])
                for j, obj in enumerate(space):
                    key = id(obj)
                    a = self.addr[kind].get(key)
                    if a is None:
                        a = len(self.objs[kind])
                        self.addr[kind][key] = a
                        self.objs[kind].append(obj)
                        if j < nimp:
                            imp = imports[kind][j]
                            self.hosts.append(HostObject(kind, a, imp.module, imp.name))
                    elif j >= nimp:
                        raise SnapshotError(f"instance {n}: defined {kind} {j} is shared with another "
                                            "instance")
                    out.append(a)
            ist.elem_dropped = [bool(x) for x in inst.elem_dropped]
            ist.data_dropped = [bool(x) for x in inst.data_dropped]
            self.instances.append(ist)

    # -- values ----------------------------------------------------------------------------------
    def value(self, t: Any, x: Any) -> Value:
        if x is None:
            return ("ref.null", None)
        if isinstance(t, str) and t in NUM_BITS:
            if type(x) is not int:
                raise SnapshotError(f"cannot snapshot a {t} value {x!r}")
            return (t, x)
        return self.ref(x)

    def ref(self, x: Any) -> Value:
        if x is None:
            return ("ref.null", None)
        if isinstance(x, FuncInst):
            a = self.addr["func"].get(id(x))
            if a is None:
                raise SnapshotError(f"reference to a function outside the store: {x!r}")
            return ("ref.func", a)
        if isinstance(x, ExternRef):
            if type(x.value) is int and x.value >= 0:
                return ("ref.extern", x.value)
            raise SnapshotError(f"cannot snapshot host reference {x!r} (only ref.extern N is portable)")
        raise SnapshotError(f"cannot snapshot value {x!r}")

    def host_log(self) -> List[Tuple[str, List[Value]]]:
        from ..runtime.spectest import _PRINTS

        out = []
        for entry in self.store.host_log:
            name, args = entry[0], entry[1]
            types = _PRINTS.get(name)
            vals = []
            for i, x in enumerate(args):
                if types is not None and i < len(types):
                    vals.append(self.value(types[i], x))
                elif type(x) is int and x >= 0:
                    vals.append(("int", x))
                else:
                    vals.append(self.ref(x))
            out.append((str(name), vals))
        return out

    # -- store -----------------------------------------------------------------------------------
    def state(self) -> State:
        tables = [[self.ref(x) for x in t.elements] for t in self.objs["table"]]
        mems = []
        for m in self.objs["memory"]:
            data = m.data
            pages = len(data) // PAGE_SIZE
            nz: Dict[int, bytes] = {}
            for p in range(pages):
                chunk = bytes(data[p * PAGE_SIZE:(p + 1) * PAGE_SIZE])
                if chunk != _ZERO_PAGE:
                    nz[p] = chunk
            mems.append(MemoryState(pages, nz))
        globs = [self.value(g.type.type, g.value) for g in self.objs["global"]]
        s = self.store
        config = {"max_call_depth": int(s.max_call_depth), "max_memory_pages": int(s.max_memory_pages),
                  "engine": str(getattr(s, "engine_name", "reference"))}
        return State(config, list(self.modules), {k: len(self.objs[k]) for k in KINDS}, list(self.hosts),
                     list(self.instances), tables, mems, globs, self.host_log())


def capture_store(store: Any, require_sha: bool = False) -> State:
    """The store part of a state (``thread`` is None): used by :func:`state_digest` too."""
    return _Capture(store, require_sha).state()


def _byte_pc(f: FuncInst, idx: int) -> int:
    body = f.func.body
    base = f.func.body_offset
    if base < 0 or idx >= len(body) or body[idx].offset < 0:
        raise SnapshotError(f"function {f.index} was not decoded from a binary: no byte offsets for pcs")
    return body[idx].offset - base


def _false_if_end(f: FuncInst, idx: int) -> bool:
    """Is ``idx`` the ``end`` of an ``if`` without ``else``?  A false condition jumps there even when
    the then-arm cannot fall through (the validator marks such an ``end`` unreachable)."""
    ctl = f.info.controls[idx]
    return f.func.body[idx].op == "end" and bool(ctl) and ctl[-1].kind == "if"


def _stack_types(f: FuncInst, idx: int) -> tuple:
    """Operand types before instruction ``idx`` as execution can reach it: the validator's, except at
    an unreachable-by-fall-through ``if`` ``end``, reached from the ``if`` with its params on top."""
    info = f.info
    if not info.reachable[idx] and _false_if_end(f, idx):
        return tuple(info.stack_types[info.controls[idx][-1].start][:-1])
    return info.stack_types[idx]


def _labels(f: FuncInst, idx: int) -> List[Label]:
    out = []
    for c in f.info.controls[idx]:
        start = -1 if c.start < 0 else _byte_pc(f, c.start)
        out.append(Label(c.kind, start, len(c.params), len(c.results), c.height))
    return out


def checkpoint(store: Any, run: Run) -> State:
    """Capture the store and the run.  Neither is modified; the run may continue afterwards."""
    cap = _Capture(store, require_sha=True)
    state = cap.state()
    th = run.thread
    entry_addr = cap.addr["func"].get(id(run.entry))
    if entry_addr is None:
        raise SnapshotError("the entry function is not in the store")
    ts = ThreadState(run.status, th.count, entry_addr,
                     [cap.value(t, x) for t, x in zip(run.entry.type.params, run.args)])
    if ts.status == DONE:
        ts.results = [cap.value(t, x) for t, x in zip(run.entry.type.results, th.results or [])]
    elif ts.status == TRAPPED:
        ts.trap = run.trap
    else:
        frames = th.frames[th.base:]
        for fr in frames:
            f = fr.func
            a = cap.addr["func"].get(id(f))
            if a is None or f.host is not None:
                raise SnapshotError(f"frame of a function outside the store: {f!r}")
            info = f.info
            stypes = _stack_types(f, fr.pc)
            if len(fr.stack) > len(stypes):
                raise SnapshotError("operand stack deeper than the validator's metadata")
            ts.frames.append(FrameState(
                a, _byte_pc(f, fr.pc),
                [cap.value(t, x) for t, x in zip(info.local_types, fr.locals)],
                [cap.value(t, x) for t, x in zip(stypes, fr.stack)],
                _labels(f, fr.pc)))
    state.thread = ts
    state.names = _frame_names(cap, run)
    if _faults.ACTIVE:  # deliberate bugs for `wcr selftest` only (vm/snapshot/faults.py)
        _faults.after_checkpoint(state)
    return state


def _frame_names(cap: _Capture, run: Run) -> Dict[int, str]:
    """Debug names (name section, else export name) of the entry function and every frame's."""
    funcs = [run.entry] + [fr.func for fr in run.thread.frames]
    out: Dict[int, str] = {}
    cache: Dict[int, Dict[int, str]] = {}
    for f in funcs:
        a = cap.addr["func"].get(id(f))
        if a is None or a in out:
            continue
        if f.host is not None:
            out[a] = f.name
            continue
        inst = f.module
        names = cache.get(id(inst))
        if names is None:
            names = cache[id(inst)] = function_names(inst)
        if f.index in names:
            out[a] = names[f.index]
    return out


def function_names(inst: ModuleInst) -> Dict[int, str]:
    """Function index → name, from the ``name`` custom section (subsection 1), else exports."""
    out: Dict[int, str] = {}
    for ex in inst.module.exports:
        if ex.kind == "func" and ex.index not in out:
            out[ex.index] = ex.name
    for c in inst.module.customs:
        if c.name != "name":
            continue
        try:
            out.update(_parse_name_section(bytes(c.data)))
        except (IndexError, ValueError, UnicodeDecodeError):
            pass  # a malformed name section is only a custom section: ignore it
    return out


def _parse_name_section(data: bytes) -> Dict[int, str]:
    def uleb(p: int) -> Tuple[int, int]:
        r = shift = 0
        while True:
            b = data[p]
            p += 1
            r |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return r, p
            if shift > 35:
                raise ValueError("leb")

    out: Dict[int, str] = {}
    p = 0
    while p < len(data):
        sid = data[p]
        size, p = uleb(p + 1)
        end = p + size
        if sid == 1:
            n, p = uleb(p)
            for _ in range(n):
                idx, p = uleb(p)
                ln, p = uleb(p)
                out[idx] = data[p:p + ln].decode("utf-8")
                p += ln
        p = end
    return out


# ------------------------------------------------------------------------------------------------
# Restore
# ------------------------------------------------------------------------------------------------

def default_host_modules() -> Dict[str, Callable[[Any], Dict[str, Any]]]:
    from ..runtime.spectest import spectest_exports

    return {"spectest": spectest_exports}


class _Loaded:
    __slots__ = ("module", "info")

    def __init__(self, module: Any, info: Any):
        self.module = module
        self.info = info


# Decoded + validated modules by sha256.  Restoring the same module again and again (the spec runner
# checks every invocation of a file against the same few modules) must not re-decode and re-validate
# it each time; the AST and validator metadata are never mutated by instances, so sharing is safe.
_MODULE_CACHE: OrderedDict[str, _Loaded] = OrderedDict()
_MODULE_CACHE_SIZE = 256


def _load_modules(state: State, modules: Dict[str, bytes]) -> List[_Loaded]:
    from ..binary import decode_module
    from ..valid import validate_module

    out = []
    for sha in state.modules:
        data = modules.get(sha)
        if data is None:
            given = ", ".join(sorted(modules)) or "none"
            raise SnapshotError(f"snapshot was taken on module sha256:{sha}, which was not given "
                                f"(given: {given}); refusing to restore onto another module")
        if hashlib.sha256(data).hexdigest() != sha:
            raise SnapshotError(f"module bytes given for sha256:{sha} have another sha256")
        hit = _MODULE_CACHE.get(sha)
        if hit is not None:
            _MODULE_CACHE.move_to_end(sha)
            out.append(hit)
            continue
        try:
            m = decode_module(data)
            loaded = _Loaded(m, validate_module(m))
        except WasmError as e:
            raise SnapshotError(f"module sha256:{sha} cannot be loaded: {e}") from None
        _MODULE_CACHE[sha] = loaded
        if len(_MODULE_CACHE) > _MODULE_CACHE_SIZE:
            _MODULE_CACHE.popitem(last=False)
        out.append(loaded)
    return out


def restore(state: State, modules: Dict[str, bytes], host_modules: Optional[Dict[str, Callable]] = None,
            store: Any = None) -> Tuple[Any, Optional[Run]]:
    """Re-create the store and the run of ``state`` (see the module docstring).  ``modules`` maps
    sha256 hex → module bytes; a snapshot of another module is refused.  Returns ``(store, run)``;
    ``run`` is None for a store-only state."""
    try:
        out = _restore(state, modules, host_modules, store)
        if _faults.ACTIVE and out[1] is not None:  # deliberate bugs for `wcr selftest` only
            _faults.after_restore(out[1])
        return out
    except SnapshotError:
        raise
    except (WasmError, KeyError, IndexError, ValueError, TypeError, AttributeError, OverflowError) as e:
        # a state that passes the codec but does not fit the module (crafted or inconsistent)
        raise SnapshotError(f"snapshot does not fit its module: {type(e).__name__}: {e}") from None


def _restore(state: State, modules: Dict[str, bytes], host_modules: Optional[Dict[str, Callable]],
             store: Any) -> Tuple[Any, Optional[Run]]:
    from ..runtime.store import Store

    loaded = _load_modules(state, modules)
    cfg = state.config
    if store is None:
        store = Store(max_call_depth=int(cfg.get("max_call_depth", 1000)),
                      max_memory_pages=int(cfg.get("max_memory_pages", 16384)))
    if host_modules is None:
        host_modules = default_host_modules()
    objs: Dict[str, Dict[int, Any]] = {k: {} for k in KINDS}
    counts = state.counts

    def put(kind: str, a: int, obj: Any) -> None:
        if not 0 <= a < counts[kind]:
            raise SnapshotError(f"{kind} address {a} out of range")
        if a in objs[kind]:
            raise SnapshotError(f"{kind} address {a} defined twice")
        objs[kind][a] = obj

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
        put(h.kind, h.addr, obj)

    for n, ist in enumerate(state.instances):
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
            space = getattr(inst, _SPACE_ATTR[k])
            for j in range(pos[k], len(space)):
                put(k, ist.space(k)[j], space[j])
        # Later instances link against this one's tables/memories at their *current* sizes (they may have
        # grown since, e.g. table_grow.wast's re-exported grown table): size them now, contents below.
        for a in ist.tables[pos["table"]:]:
            if a < len(state.tables) and len(state.tables[a]) <= MAX_TABLE_SIZE:
                objs["table"][a].elements = [None] * len(state.tables[a])
        for a in ist.mems[pos["memory"]:]:
            if a < len(state.mems) and state.mems[a].pages <= objs["memory"][a].max_pages:
                objs["memory"][a].data = bytearray(state.mems[a].pages * PAGE_SIZE)
        for i, d in enumerate(ist.elem_dropped):
            if d:
                inst.drop_elem(i)
        for i, d in enumerate(ist.data_dropped):
            if d:
                inst.drop_data(i)
    for k in KINDS:
        if len(objs[k]) != counts[k]:
            raise SnapshotError(f"{counts[k] - len(objs[k])} {k} addresses are not defined by any instance "
                                "or host")
    funcs = objs["func"]

    if len(state.tables) != counts["table"] or len(state.mems) != counts["memory"] or \
            len(state.globals) != counts["global"]:
        raise SnapshotError("state sections disagree with the address counts")
    conv = _Converter(store, funcs)
    for a, elems in enumerate(state.tables):
        tab = objs["table"][a]
        mx = tab.type.limits.max
        if len(elems) < tab.type.limits.min or (mx is not None and len(elems) > mx) or \
                len(elems) > MAX_TABLE_SIZE:
            raise SnapshotError(f"table {a}: size {len(elems)} outside its limits")
        canon = tab.owner.canon if tab.owner is not None else []
        tab.elements = [conv.value(tab.type.elem, v, canon) for v in elems]
    for a, ms in enumerate(state.mems):
        mem = objs["memory"][a]
        if ms.pages < mem.type.limits.min or ms.pages > mem.max_pages:
            raise SnapshotError(f"memory {a}: {ms.pages} pages outside its limits")
        data = bytearray(ms.pages * PAGE_SIZE)
        for p, chunk in ms.nonzero.items():
            if not 0 <= p < ms.pages or len(chunk) != PAGE_SIZE:
                raise SnapshotError(f"memory {a}: bad page {p}")
            data[p * PAGE_SIZE:(p + 1) * PAGE_SIZE] = chunk
        mem.data = data
    for a, v in enumerate(state.globals):
        g = objs["global"][a]
        canon = g.owner.canon if g.owner is not None else []
        g.value = conv.value(g.type.type, v, canon)
    log = []
    for name, vals in state.host_log:
        log.append((name, tuple(conv.any(v) for v in vals)))
    store.host_log[:] = log

    if state.thread is None:
        return store, None
    return store, _restore_thread(store, state.thread, funcs, conv)


class _Converter:
    """Tagged value → runtime value, checked against the expected type."""

    def __init__(self, store: Any, funcs: Dict[int, Any]):
        self.store = store
        self.funcs = funcs

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
            return ExternRef(x)
        raise SnapshotError(f"value tag {tag} where a reference is expected")

    def value(self, t: Any, v: Value, canon: List[Any]) -> Any:
        tag, x = v
        if isinstance(t, str):
            if tag != t:
                raise SnapshotError(f"value {tag} where {t} is expected")
            return x
        if not isinstance(t, RefType):
            raise SnapshotError(f"unsupported value type {t!r}")
        r = self.ref(v)
        if r is None:
            if not t.nullable:
                raise SnapshotError(f"null where {t!r} is expected")
            return r
        heap = t.heap
        if isinstance(r, FuncInst):
            if isinstance(heap, int):
                if heap >= len(canon) or not self.store.canon_match(r.canon, canon[heap]):
                    raise SnapshotError(f"function of the wrong type where {t!r} is expected")
            elif heap not in ("func",):
                raise SnapshotError(f"function reference where {t!r} is expected")
        elif heap not in ("extern",):
            raise SnapshotError(f"host reference where {t!r} is expected")
        return r


def _restore_thread(store: Any, ts: ThreadState, funcs: Dict[int, Any], conv: _Converter) -> Run:
    from ..exec.engine import Frame, Thread

    entry = funcs.get(ts.entry)
    if entry is None:
        raise SnapshotError(f"entry function address {ts.entry} out of range")
    params = entry.type.params
    if len(ts.args) != len(params):
        raise SnapshotError("entry arguments do not match the entry function's type")
    canon_e = entry.module.canon if entry.module is not None else []
    args = [conv.value(t, v, canon_e) for t, v in zip(params, ts.args)]
    th = Thread()
    th.count = ts.count
    run = Run(th, entry, args)
    if ts.status == DONE:
        if ts.frames or len(ts.results) != len(entry.type.results):
            raise SnapshotError("finished thread with frames or wrong result count")
        th.results = [conv.value(t, v, canon_e) for t, v in zip(entry.type.results, ts.results)]
        th.done = True
        return run
    if ts.status == TRAPPED:
        if ts.frames or not ts.trap:
            raise SnapshotError("trapped thread without a trap kind or with frames")
        run.trap = ts.trap
        th.done = True
        return run
    if ts.status != RUNNING:
        raise SnapshotError(f"unknown thread status {ts.status!r}")
    if not ts.frames:
        raise SnapshotError("running thread without frames")
    if len(ts.frames) > store.max_call_depth:
        raise SnapshotError(f"{len(ts.frames)} frames exceed the call depth limit {store.max_call_depth}")
    frames: List[Any] = []
    fobjs = []
    for fs in ts.frames:
        f = funcs.get(fs.func)
        if f is None or f.host is not None:
            raise SnapshotError(f"frame function address {fs.func} is not a defined function")
        fobjs.append(f)
    # (the bottom frame need not be the entry function: a tail call replaces it)
    top = len(ts.frames) - 1
    for n, (fs, f) in enumerate(zip(ts.frames, fobjs)):
        idx = _pc_index(f, fs.pc)
        info = f.info
        canon = f.module.canon
        if not info.reachable[idx] and not _false_if_end(f, idx):
            raise SnapshotError(f"frame {n}: pc {fs.pc} is unreachable code")
        want = _labels(f, idx)
        if fs.labels != want:
            raise SnapshotError(f"frame {n}: label stack at pc {fs.pc} does not match the module's "
                                "control structure")
        if len(fs.locals) != len(info.local_types):
            raise SnapshotError(f"frame {n}: {len(fs.locals)} locals, function has "
                                f"{len(info.local_types)}")
        locs = [conv.value(t, v, canon) for t, v in zip(info.local_types, fs.locals)]
        stypes = _stack_types(f, idx)
        height = len(stypes)
        if n < top:
            ins = f.func.body[idx]
            if ins.op not in _CALL_OPS:
                raise SnapshotError(f"frame {n}: pc {fs.pc} is not a call but a callee frame follows")
            callee = fobjs[n + 1]
            if ins.op == "call":
                if f.module.funcs[ins.imm] is not callee:
                    raise SnapshotError(f"frame {n}: the next frame is not the called function")
                height -= len(callee.type.params)
            else:
                typeidx = ins.imm[0] if ins.op == "call_indirect" else ins.imm
                if not store.canon_match(callee.canon, canon[typeidx]):
                    raise SnapshotError(f"frame {n}: the next frame's function has the wrong type")
                height -= len(callee.type.params) + 1
        if len(fs.stack) != height:
            raise SnapshotError(f"frame {n}: operand stack height {len(fs.stack)}, expected {height} at "
                                f"pc {fs.pc}")
        store.machine.ensure_compiled(f)
        fr = Frame(f, locs)
        fr.pc = idx
        fr.stack = [conv.value(t, v, canon) for t, v in zip(stypes, fs.stack)]
        frames.append(fr)
    th.frames = frames
    return run


def _pc_index(f: FuncInst, pc: int) -> int:
    """Byte offset → instruction index (offsets are increasing, so a bisection finds it)."""
    import bisect

    body = f.func.body
    base = f.func.body_offset
    offs = [ins.offset - base for ins in body]
    i = bisect.bisect_left(offs, pc)
    if base < 0 or i >= len(offs) or offs[i] != pc:
        raise SnapshotError(f"pc {pc} is not an instruction boundary of function {f.index}")
    return i
