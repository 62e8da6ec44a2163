"""``make_resume_module``: load the original module, fold what can be folded, then the store part,
the frame part, and the assembly (the heap part's helper globals and prologue, exports for the oracle,
declarations, encoding)."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Dict, List, Tuple

from ...binary import decode_module, encode_module
from ...errors import WasmError
from ...module import Elem, Export, Func, Instr, Module
from ...types import RefType, ValType
from ...valid import ModuleInfo, validate_module
from ..model import InstanceState, State
from .common import RESUME_EXPORT, Builder, Manifest, NotConvertible, ResumeModule, end
from .fold import check_imports_are_host, fold_foreign_funcs
from .frames import frame_functions, thread_instance
from .heap_part import HeapPart
from .store_part import StorePart, store_part
from .wasi_part import (
    WasiPart,
    add_imports,
    plan,
    prologue_function,
    scratch_bytes,
    status_export,
    status_global,
)

__all__ = ["make_resume_module"]


def make_resume_module(state: State, modules: Dict[str, bytes]) -> ResumeModule:
    """Build the resume module of ``state`` (see :mod:`vm.snapshot.resume`).  ``modules`` maps sha256
    hex of the original module → its bytes.  Raises :class:`NotConvertible`."""
    th = state.thread
    if th is None:
        raise NotConvertible("no thread")
    m, info, ist, orig_of = _original(state, modules)
    wasi_plan = plan(state, ist, m)
    wasi_funcs: Dict[str, int] = {}
    if wasi_plan is not None:  # the prologue's WASI functions imported (a renumbering, like a fold)
        m, ist, orig_of, wasi_funcs = add_imports(m, ist, orig_of)
        try:
            info = validate_module(m)
        except WasmError as e:
            raise NotConvertible("inconsistent state", f"module with WASI imports invalid: {e}") from None
    b = Builder(state, m, info, ist, modules)
    b.heap = HeapPart(b)
    if wasi_plan is not None:
        b.wasi = WasiPart(wasi_plan, wasi_funcs)
    for f in m.funcs:
        for ins in f.body:
            if ins.op == "ref.func":
                b.refs.add(ins.imm)
    sp = store_part(b)
    if b.wasi is not None:  # the prologue's status, after the defined globals (relocated with them)
        sp.globals.append(status_global())
        b.wasi.status = len(m.imported("global")) + len(sp.globals) - 1
    funcs, results = frame_functions(b, sp.prologue)
    return _assemble(b, sp, funcs, results, orig_of)


def _original(state: State, modules: Dict[str, bytes]
              ) -> Tuple[Module, ModuleInfo, InstanceState, Dict[int, int]]:
    """The thread's module, decoded and validated, with foreign self-contained functions folded in;
    the instance view to match, and the resume → original function index map of the fold."""
    ist = thread_instance(state)
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
    orig, ist, orig_of = fold_foreign_funcs(state, ist, orig, modules)
    if orig_of:
        try:
            info = validate_module(orig)
        except WasmError as e:  # a fold bug must not pass as a valid resume module
            raise NotConvertible("inconsistent state", f"folded module invalid: {e}") from None
    check_imports_are_host(state, ist, orig)
    return orig, info, ist, orig_of


def _assemble(b: Builder, sp: StorePart, new_funcs: List[Func], results: Tuple[ValType, ...],
              orig_of: Dict[int, int]) -> ResumeModule:
    """Exports (``resume`` and every memory/global/table for the oracle), the declaration of every
    ``ref.func`` target, the module, its bytes and the manifest."""
    m = b.m
    order, helpers, heap_prologue = b.heap.finish()
    if b.wasi is not None:  # the fd table is recreated first (wasi_part.py)
        new_funcs = _with_wasi_prologue(b, new_funcs)
    if heap_prologue:  # the heap is finished before anything else of ``resume`` runs
        new_funcs = [dataclasses.replace(new_funcs[0], body=heap_prologue + list(new_funcs[0].body)),
                     *new_funcs[1:]]
    manifest = Manifest(results=tuple(results), frames=len(new_funcs),
                        imports=[(i.module, i.name, i.desc.kind) for i in m.imports], funcs=orig_of)
    exports = _exports(m, manifest)
    exports.append(Export(RESUME_EXPORT, "func", b.nimp_funcs + len(m.funcs)))
    if b.wasi is not None:
        if any(e.name == status_export(0).name for e in exports):
            raise NotConvertible("export name taken", status_export(0).name)
        exports.append(status_export(b.wasi.status))
        manifest.wasi = b.wasi.plan.run
    elems = list(sp.elems)
    if b.refs:
        elems.append(Elem("declarative", RefType(False, "func"),
                          [[Instr("ref.func", i), end()] for i in sorted(b.refs)]))
    out = Module(
        types=b.types, rec_sizes=b.rec_sizes, imports=list(m.imports),
        funcs=list(m.funcs) + new_funcs, tables=sp.tables, memories=sp.memories, globals=sp.globals,
        tags=list(m.tags), exports=exports, start=None, elems=elems, datas=sp.datas,
        data_count=sp.data_count, customs=[],
    )
    out = b.heap.relocate(out, order, helpers)
    manifest.imports = [(i.module, i.name, i.desc.kind) for i in out.imports]  # + host references
    data_out = encode_module(out)
    manifest.sha256 = hashlib.sha256(data_out).hexdigest()
    return ResumeModule(data_out, out, manifest)


def _with_wasi_prologue(b: Builder, new_funcs: List[Func]) -> List[Func]:
    """``resume`` calling the WASI prologue first; the prologue appended after the frame functions."""
    w = b.wasi
    idx = b.nimp_funcs + len(b.m.funcs) + len(new_funcs)
    fn = prologue_function(w.plan, w.funcs, w.status, scratch_bytes(b.state, b.ist, w.plan), b.functype((), ()))
    first = dataclasses.replace(new_funcs[0], body=[Instr("call", idx)] + list(new_funcs[0].body))
    return [first, *new_funcs[1:], fn]


def _exports(m: Module, manifest: Manifest) -> List[Export]:
    """The original exports plus ``wcr:mem:N``/``wcr:global:N``/``wcr:table:N`` for every memory,
    global and table the original does not export already; the manifest records the name either way."""
    exports = list(m.exports)
    names = {e.name for e in exports}
    existing: Dict[Tuple[str, int], str] = {}
    for e in exports:
        existing.setdefault((e.kind, e.index), e.name)
    for kind, count, prefix, target in (("memory", len(m.mem_types()), "mem", manifest.memories),
                                        ("global", len(m.global_types()), "global", manifest.globals),
                                        ("table", len(m.table_types()), "table", manifest.tables)):
        for i in range(count):
            name = existing.get((kind, i))
            if name is None:
                name = f"wcr:{prefix}:{i}"
                if name in names:
                    raise NotConvertible("export name taken", name)
                exports.append(Export(name, kind, i))
                names.add(name)
            target[i] = name
    return exports
