"""Running a resume module on our own VM (a cheap self-check, and the oracle's view of final state).

``run_resume_on_vm`` instantiates the module and calls ``resume``; ``instance_final_state`` reads the
memories, globals and tables of a live instance tagged as :class:`ResumeOutcome` holds them, so that
the uninterrupted run and any runtime's resumed run compare in one form.  Instruction counts are not
part of it (native runtimes do not count).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ...api import Store
from ...errors import Trap, WasmException
from ...runtime.objects import ExternRef, GlobalInst, ModuleInst
from ...runtime.spectest import spectest_exports
from ...runtime.wasi import WASI_MODULE
from ...runtime.wasi.preview1 import wasi_exports
from ...valid import validate_module
from ...values import from_runtime
from ..model import Value
from .common import Manifest, ResumeModule
from .heap_part import HOST_MODULE
from .wasi_part import fresh_wasi_state

__all__ = ["ResumeOutcome", "instance_final_state", "run_resume_on_vm"]


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
    #: a WASI program's end (:meth:`vm.runtime.wasi.WasiState.summary`: exit code, the output of this
    #: run only, files digest), else None
    wasi: Optional[Dict[str, Any]] = None


def _tag_value(t: Any, x: Any, funcs: List[Any]) -> Value:
    """Tagged as :func:`vm.values.from_runtime` does, a function as its index in ``funcs`` (heap objects
    have no ids outside a checkpoint: ``("ref.struct", None)``...)."""
    if x is None:
        return ("ref.null", None)
    if isinstance(t, str):
        return (t, x)
    for i, f in enumerate(funcs):
        if f is x:
            return ("ref.func", i)
    if isinstance(x, ExternRef) and not hasattr(x.value, "kind"):
        return ("ref.extern", x.value)
    return from_runtime(None, x)


def instance_final_state(inst: ModuleInst, out: Optional[ResumeOutcome] = None,
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
        # by export name: a resume module's helper globals (heap_part.py) shift the defined globals
        g = inst.exports[manifest.globals[i]] if manifest else inst.globals[i]
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
    what ``resume`` printed (the snapshot's own ``host_log`` is the part before it).  A WASI program
    (``manifest.wasi``) runs with our WASI over what a target would get
    (:func:`.wasi_part.fresh_wasi_state`) and reports its end in ``wasi``."""
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
    if resume.manifest.wasi is not None and WASI_MODULE not in provided:
        store.wasi = fresh_wasi_state(resume.manifest.wasi, store.limits)
        provided = {**provided, WASI_MODULE: wasi_exports(store)}
    ext = []
    for imp in m.imports:
        if imp.module == HOST_MODULE and imp.module not in provided:  # host reference N: ExternRef(N)
            ext.append(GlobalInst(imp.desc.type, ExternRef(int(imp.name.split()[-1]))))
            continue
        mod = provided.get(imp.module)
        if mod is None or imp.name not in mod:
            raise KeyError(f"import {imp.module}.{imp.name} not provided")
        ext.append(mod[imp.name])
    out = ResumeOutcome()
    try:
        inst = store.instantiate(m, info, ext, resume.manifest.sha256,
                                 store.wasi.bind if store.wasi is not None else None)
    except (Trap, WasmException) as e:  # the message of either is its trap kind
        out.trap = e.message
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
    if store.wasi is not None:
        out.wasi = store.wasi.summary()
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
