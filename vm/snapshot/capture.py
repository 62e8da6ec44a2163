"""Capture: a live store (and a run in it) → :class:`~vm.snapshot.model.State`.

::

    checkpoint(store, run) -> State          # the store and the run; neither is modified
    capture_store(store) -> State            # the store part only (thread None)
    Capture(store).value(t, x) -> Value      # runtime value → tagged value, addresses of this store

:class:`Capture` walks ``store.instances`` once in creation order and each instance's index spaces in
index order, giving every function, table, memory, global and tag an address the first time it is met
(docs/snapshot-format.md, "Addresses"); an object first met at an import position is a host object.
Heap objects (structs, arrays, exceptions: :mod:`vm.runtime.heap`) get an id, their position in the heap
section, the first time a value conversion meets them; their fields are converted later, breadth-first
from a queue (:meth:`Capture.heap_objects`), so cycles, sharing and long chains need no recursion.  The
order of conversions is fixed (globals, tables, element segments, then the thread: arguments, frames
bottom-up with locals, stack and caught exceptions, results, then the host log), so ids are too.
Everything that describes a store's values in the canonical model (a checkpoint, the outcome of a
run) goes through that one walk, so addresses agree everywhere — except the final-state digest, which
walks the live store by its own code (:mod:`vm.snapshot.digest`) so that it can check this one.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple, cast

from ..exec.store import Store
from ..runtime.heap import ArrayInst, ExnInst, HostRef, I31Ref, StructInst, is_heap_object
from ..runtime.objects import PAGE_SIZE, ExternRef, FuncInst, ModuleInst
from ..runtime.spectest import PRINTS
from ..types import ArrayType, StructType
from ..valid.canon import key_comp
from . import faults as _faults
from .model import (
    DONE,
    KINDS,
    NUM_BITS,
    TRAPPED,
    FrameState,
    HeapObject,
    HostObject,
    InstanceState,
    MemoryState,
    SnapshotError,
    State,
    ThreadState,
    Value,
)
from .names import function_names
from .pcs import byte_pc, caught_at, labels_at, stack_types
from .run import Run
from .wasi_state import capture_wasi

__all__ = ["Capture", "capture_store", "checkpoint"]

_ZERO_PAGE = bytes(PAGE_SIZE)
#: ModuleInst attribute of each kind's index space
SPACE_ATTR = {"func": "funcs", "table": "tables", "memory": "mems", "global": "globals", "tag": "tags"}


class Capture:
    """One walk of a store: address tables, host objects, instances; converts runtime values to
    tagged values with those addresses.  ``require_sha``: every instance must name its module by
    sha256 (a checkpoint needs it; a digest or an outcome does not)."""

    def __init__(self, store: Store, require_sha: bool = True):
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
                space = getattr(inst, SPACE_ATTR[kind])
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
        self.heap: List[HeapObject] = []
        self._heap_ids: Dict[int, int] = {}  # id(object) -> heap id
        self._heap_objs: List[Any] = []  # the runtime objects, by heap id (keeps their Python ids alive)
        self._filled = 0  # heap objects before this one have their fields converted
        self._type_names: Dict[int, Tuple[int, int]] = {}  # id(canonical key) -> (instance, type index)

    # -- values ----------------------------------------------------------------------------------
    def value(self, t: Any, x: Any) -> Value:
        """Runtime value of Wasm type ``t`` → tagged value."""
        if x is None:
            return ("ref.null", None)
        if isinstance(t, str) and t in NUM_BITS:
            if type(x) is not int:
                raise SnapshotError(f"cannot snapshot a {t} value {x!r}")
            return (t, x)
        return self.ref(x)

    def ref(self, x: Any) -> Value:
        """Runtime reference → tagged value (functions by address; heap objects by heap id, their
        fields converted later by :meth:`heap_objects`; only ``ref.extern N`` / ``ref.host N`` of a host)."""
        if x is None:
            return ("ref.null", None)
        tx = type(x)
        if is_heap_object(x):
            h = self._heap_ids.get(id(x))
            if h is None:
                h = self._heap_ids[id(x)] = len(self._heap_objs)
                self._heap_objs.append(x)
            return ("ref." + x.kind, h)
        if tx is I31Ref:
            return ("ref.i31", x.value)
        if isinstance(x, FuncInst):
            a = self.addr["func"].get(id(x))
            if a is None:
                raise SnapshotError(f"reference to a function outside the store: {x!r}")
            return ("ref.func", a)
        if isinstance(x, ExternRef):
            v = x.value
            if type(v) is int and v >= 0:
                return ("ref.extern", v)
            if type(v) in (I31Ref, StructInst, ArrayInst):  # extern.convert_any of an internal reference
                return ("ref.extern", self.ref(v))
            raise SnapshotError(f"cannot snapshot host reference {x!r} (only ref.extern N is portable)")
        if tx is HostRef and type(x.value) is int and x.value >= 0:
            return ("ref.host", x.value)
        raise SnapshotError(f"cannot snapshot value {x!r}")

    # -- heap ------------------------------------------------------------------------------------
    def heap_objects(self) -> List[HeapObject]:
        """The heap section so far: converts the fields of every object met and not yet converted
        (which may meet more objects: a queue, so no recursion however deep the graph)."""
        objs = self._heap_objs
        while self._filled < len(objs):
            self.heap.append(self._heap_object(objs[self._filled]))
            self._filled += 1
        return self.heap

    def _heap_object(self, x: Any) -> HeapObject:
        if type(x) is ExnInst:
            a = self.addr["tag"].get(id(x.tag))
            if a is None:
                raise SnapshotError(f"exception of a tag outside the store: {x!r}")
            return HeapObject("exn", [self.value(t, v) for t, v in zip(x.tag.type.params, x.payload)], tag=a)
        comp = key_comp(x.canon)
        if type(x) is StructInst:
            if not isinstance(comp, StructType) or len(comp.fields) != len(x.fields):
                raise SnapshotError(f"struct object {x!r} does not have the shape of its type")
            vals = [self.value(_num(f.storage), v) for f, v in zip(comp.fields, x.fields)]
        else:
            if not isinstance(comp, ArrayType):
                raise SnapshotError(f"array object {x!r} does not have the shape of its type")
            t = _num(comp.field.storage)
            vals = [self.value(t, v) for v in x.elements]
        return HeapObject(x.kind, vals, type=self._type_name(x.canon))

    def _type_name(self, key: Any) -> Tuple[int, int]:
        """(instance index, type index) of the first instance, in store order, whose module has the
        canonical type ``key`` (any of them names the same type; the first keeps the state canonical)."""
        name = self._type_names.get(id(key))
        if name is None:
            name = next(((n, j) for n, inst in enumerate(self.store.instances)
                         for j, k in enumerate(inst.canon) if k is key or k == key), None)
            if name is None:
                raise SnapshotError("a heap object's type is not a type of any instance in the store")
            self._type_names[id(key)] = name
        return name

    def host_log(self) -> List[Tuple[str, List[Value]]]:
        """The store's print log, typed by the spectest declaration of each print."""
        out = []
        for entry in self.store.host_log:
            name, args = entry[0], entry[1]
            types = PRINTS.get(name)
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
        """The store part of a state (``thread`` None)."""
        tables = [[self.ref(x) for x in t.elements] for t in self.objs["table"]]
        mems = []
        for m in self.objs["memory"]:
            data = m.data
            pages = len(data) // PAGE_SIZE
            nz: Dict[int, bytes] = {}
            for p in range(pages):
                a = p * PAGE_SIZE
                if data.find(_ZERO_PAGE, a, a + PAGE_SIZE) != a:  # no temporary for a zero page
                    nz[p] = bytes(data[a:a + PAGE_SIZE])
            mems.append(MemoryState(pages, nz))
        globs = [self.value(g.type.type, g.value) for g in self.objs["global"]]
        segments = self.segments()
        s = self.store
        config = {"max_call_depth": int(s.max_call_depth), "max_memory_pages": int(s.max_memory_pages),
                  "engine": str(getattr(s, "engine_name", "reference"))}
        state = State(config, list(self.modules), {k: len(self.objs[k]) for k in KINDS}, list(self.hosts),
                      list(self.instances), tables, mems, globs, self.host_log())
        state.segments = segments
        state.heap = self.heap_objects()
        ws = getattr(s, "wasi", None)
        if ws is not None:
            state.wasi = capture_wasi(ws, lambda m: self.addr["memory"].get(id(m)))
        return state

    def segments(self) -> List[Tuple[int, int, List[Value]]]:
        """The items of every element segment that is not dropped and holds a heap object (directly or
        externalized): restore re-evaluates the others from the module, but re-evaluating a ``struct.new``
        would make a new object where ``table.init`` must copy the same one (``ref.eq``)."""
        out = []
        for n, inst in enumerate(self.store.instances):
            for i, items in enumerate(inst.elems):
                if not inst.elem_dropped[i] and any(_holds_heap(x) for x in items):
                    out.append((n, i, [self.ref(x) for x in items]))
        return out


def _num(storage: Any) -> Any:
    """The value type a field's storage type is captured as (packed i8/i16 as i32)."""
    return "i32" if storage in ("i8", "i16") else storage


def _holds_heap(x: Any) -> bool:
    return is_heap_object(x) or (type(x) is ExternRef and is_heap_object(x.value))


def capture_store(store: Store, require_sha: bool = False) -> State:
    """The store part of a state (``thread`` is None).  Not used by :func:`state_digest` (the oracle
    must not share this code)."""
    return Capture(store, require_sha).state()


def checkpoint(store: Store, run: Run) -> State:
    """Capture the store and the run.  Neither is modified; the run may continue afterwards."""
    cap = Capture(store, require_sha=True)
    state = cap.state()
    state.thread = _thread_state(cap, run)
    state.heap = cap.heap_objects()
    state.names = _frame_names(cap, run)
    if _faults.ACTIVE:  # deliberate bugs for `wcr selftest` only (vm/snapshot/faults.py)
        _faults.after_checkpoint(state)
    return state


def _thread_state(cap: Capture, run: Run) -> ThreadState:
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
        if run.exn is not None:
            ts.exception = cap.ref(run.exn)
    else:
        ts.frames = [_frame_state(cap, fr) for fr in th.frames[th.base:]]
    return ts


def _frame_state(cap: Capture, fr: Any) -> FrameState:
    f = fr.func
    a = cap.addr["func"].get(id(f))
    if a is None or f.host is not None:
        raise SnapshotError(f"frame of a function outside the store: {f!r}")
    stypes = stack_types(f, fr.pc)
    if len(fr.stack) > len(stypes):
        raise SnapshotError("operand stack deeper than the validator's metadata")
    locs = [cap.value(t, x) for t, x in zip(f.info.local_types, fr.locals)]
    stack = [cap.value(t, x) for t, x in zip(stypes, fr.stack)]
    caught = []
    for start, offset in caught_at(f, fr.pc):
        exn = fr.caught.get(start) if fr.caught else None
        if type(exn) is not ExnInst:
            raise SnapshotError(f"frame of function {f.index}: a catch block encloses pc {fr.pc} but the "
                                "frame holds no caught exception for it")
        caught.append((offset, cap.ref(exn)))
    return FrameState(a, byte_pc(f, fr.pc), locs, stack, labels_at(f, fr.pc), caught)


def _frame_names(cap: Capture, run: Run) -> Dict[int, str]:
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
        inst = cast(ModuleInst, f.module)  # a defined function (host functions were handled above)
        names = cache.get(id(inst))
        if names is None:
            names = cache[id(inst)] = function_names(inst)
        if f.index in names:
            out[a] = names[f.index]
    return out
