"""The binary rewrites that fit a module to a runtime's linking abilities, and the baseline entry.

* :func:`rename_import_module`: the module's ``spectest`` imports are taken from another module name
  (``wcr_spectest``, the shim of :mod:`.adapter`), so that the runtime's own ``spectest`` (or ours)
  never sees a float.
* :func:`with_null_probes`: references of types no host API reads (GC objects, ``exnref``, non-null
  function references: wasmtime-py cannot even name them) are observed through exported functions
  that return ``ref.is_null`` as an i32: :data:`PROBE_RUN` (``resume`` with such results turned into
  null flags) and ``wcr:null:NAME`` for a global or table NAME of the manifest (a table's probe takes
  the element index; every table but a funcref one has one: wasmtime-py reads an ``externref`` that
  holds an internal reference as null).  A native comparison needs only null/non-null of a reference (identity is not
  observable from a host), so nothing is lost.
* :func:`internalize_spectest` (:func:`internalized`: the same on the decoded module): the spectest memory/table/global imports become definitions with the
  spectest's types and values (for wasm3, which can import only functions).
* :func:`with_entry`: the *original* module with one appended function that calls an export with
  constant arguments, exported as the entry a target runs, and every memory/global/table exported for
  reading back (the blame baseline of :meth:`.target.Target.run_original`: the original code and
  initial state, nothing of a snapshot converted).

All edit the decoded module (:attr:`.introspect.ModuleInfo.module`, wcr's own decoder) and encode it
again with :func:`vm.binary.encode_module`: one parser and one writer of the binary format in wcr, not a
second hand-written one here.  The encoder is canonical, so the bytes may differ from the input's (LEB
widths, section order of customs); the meaning does not.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Dict, List, Optional, Sequence, Tuple

from vm.binary import encode_module
from vm.module import Export, Func, Global, Import, Instr, Memory, Module, Table
from vm.runtime.spectest import GLOBALS, MEMORIES, TABLES
from vm.snapshot.resume import Manifest
from vm.types import EXTERNREF, FUNCREF, FuncType, GlobalType, Limits, MemType, SubType, TableType
from vm.values import NUM_BITS, Value

from .introspect import HOST_READABLE, type_name
from .process import Unrunnable

#: the module name the shim is registered under
RENAMED = "wcr_spectest"


def rename_import_module(module: Module, old: str = "spectest", new: str = RENAMED,
                         man: Optional[Manifest] = None) -> bytes:
    """The module with its imports from ``old`` taken from ``new``, and with ``man``: its null probes
    (:func:`with_null_probes`; nothing else changes)."""
    imports = [Import(new, i.name, i.desc) if i.module == old else i for i in module.imports]
    if man is not None:
        module = with_null_probes(module, man)
    return encode_module(replace(module, imports=imports))


#: the export :func:`with_null_probes` adds for ``resume`` when a result needs a null probe
PROBE_RUN = "wcr:run"


#: result type → (integer types, conversion after local.get) of :data:`PROBE_RUN`; references: a null flag
_AS_INTS: Dict[object, Tuple[Tuple[str, ...], List[Instr]]] = {
    "i32": (("i32",), []), "i64": (("i64",), []), "f32": (("i32",), [Instr("i32.reinterpret_f32")]),
    "f64": (("i64",), [Instr("i64.reinterpret_f64")]), "v128": (("i64", "i64"), []),
}


def null_probe(name: str) -> str:
    """The export name of the null probe of global/table ``name``."""
    return f"wcr:null:{name}"


def with_null_probes(module: Module, man: Manifest) -> Module:
    """``module`` plus the null probes (see the module docstring) its manifest's unreadable results,
    globals and tables need; unchanged when there are none."""
    names = {e.name: e for e in module.exports}
    gtypes = [i.desc.type for i in module.imported("global")] + [g.type for g in module.globals]
    ttypes = [i.desc.type for i in module.imported("table")] + [t.type for t in module.tables]
    types = list(module.types)
    funcs: List[Func] = []
    exports = list(module.exports)
    nfuncs = len(module.imported("func")) + len(module.funcs)

    def add(name: str, params: Tuple, results: Tuple, locals_: List, body: List[Instr]) -> None:
        types.append(SubType(True, (), FuncType(params, results)))
        funcs.append(Func(len(types) - 1, locals_, body + [Instr("end")]))
        exports.append(Export(name, "func", nfuncs + len(funcs) - 1))

    res = tuple(man.results)
    if any(type_name(t) not in HOST_READABLE for t in res) and man.entry in names:
        # every result as the integers the reader's ``run`` returns (.adapter._int_results)
        out_t: List[str] = []
        body = [Instr("call", names[man.entry].index)]
        body += [Instr("local.set", i) for i in reversed(range(len(res)))]
        for i, t in enumerate(res):
            conv = _AS_INTS.get(t, (("i32",), [Instr("ref.is_null")]))
            out_t += conv[0]
            if t == "v128":
                body += [Instr("local.get", i), Instr("i64x2.extract_lane", 0),
                         Instr("local.get", i), Instr("i64x2.extract_lane", 1)]
            else:
                body += [Instr("local.get", i), *conv[1]]
        add(PROBE_RUN, (), tuple(out_t), [(1, t) for t in res], body)
    for n in man.globals.values():
        e = names.get(n)
        if e is not None and type_name(gtypes[e.index].type) not in HOST_READABLE:
            add(null_probe(n), (), ("i32",), [], [Instr("global.get", e.index), Instr("ref.is_null")])
    for n in man.tables.values():
        e = names.get(n)
        if e is not None and type_name(ttypes[e.index].elem) != "funcref":  # wasmtime-py reads an
            # externref element holding an internal reference (extern.convert_any) as null
            body = [Instr("local.get", 0)] + ([Instr("i64.extend_i32_u")] if ttypes[e.index].is64 else [])
            add(null_probe(n), ("i32",), ("i32",), [], body + [Instr("table.get", e.index), Instr("ref.is_null")])
    if not funcs:
        return module
    return replace(module, types=types, rec_sizes=list(module.rec_sizes) + [1] * (len(types) - len(module.types)),
                   funcs=list(module.funcs) + funcs, exports=exports)


def internalize_spectest(module: Module) -> bytes:
    """:func:`internalized`, encoded (wasm3's loader takes bytes)."""
    return encode_module(internalized(module))


def internalized(module: Module) -> Module:
    """The spectest memory/table/global imports turned into definitions (declared in
    :mod:`vm.runtime.spectest`).  Index spaces are preserved: imported entries come first in each index
    space, so each one moves to the front of its definition list, in order.  The shared identity is
    lost, which does not matter for one resume module run alone.  Function and tag imports stay."""
    keep: List[Import] = []
    tables: List[Table] = []
    memories: List[Memory] = []
    globs: List[Global] = []
    for imp in module.imports:
        kind, name = imp.desc.kind, imp.name
        if kind in ("func", "tag"):
            keep.append(imp)
        elif imp.module == "spectest" and kind == "table" and name in TABLES:
            lo, hi, is64 = TABLES[name]
            tables.append(Table(TableType(FUNCREF, Limits(lo, hi), is64)))
        elif imp.module == "spectest" and kind == "memory" and name in MEMORIES:
            memories.append(Memory(MemType(Limits(*MEMORIES[name]))))
        elif imp.module == "spectest" and kind == "global" and name in GLOBALS:
            t, bits, mutable = GLOBALS[name]
            globs.append(Global(GlobalType(t, mutable), [Instr(f"{t}.const", bits), Instr("end")]))
        else:
            raise Unrunnable(f"cannot define import {imp.module}.{name} in place")
    if len(keep) == len(module.imports):
        return module
    return replace(module, imports=keep, tables=tables + module.tables,
                   memories=memories + module.memories, globals=globs + module.globals)


#: the entry :func:`with_entry` adds, and the prefix of the read-back exports it adds
BASELINE_ENTRY = "wcr:baseline"


def with_entry(module: Module, export: str, args: Sequence[Value]) -> Tuple[bytes, Manifest]:
    """The original module plus a function ``() -> results`` that calls ``export`` with ``args``
    (numbers by their bits, ``ref.null``), exported as :data:`BASELINE_ENTRY`, and exports of every
    memory, global and table of a type a target can read back; the manifest says where they are (index
    spaces are unchanged).  :class:`Unrunnable` when ``export`` is not a function or an argument has no
    constant (a host reference)."""
    ex = next((e for e in module.exports if e.name == export and e.kind == "func"), None)
    if ex is None:
        raise Unrunnable(f"no exported function {export!r}")
    imported = {k: [i for i in module.imports if i.desc.kind == k] for k in ("func", "table", "memory", "global")}
    ftypes = [module.types[i.desc.type].comp for i in imported["func"]] + \
        [module.types[f.typeidx].comp for f in module.funcs]
    ft = ftypes[ex.index]
    if not isinstance(ft, FuncType) or len(ft.params) != len(args):
        raise Unrunnable(f"{export!r}: arguments do not fit its type")
    body: List[Instr] = []
    for t, (tag, x) in zip(ft.params, args):
        if tag in NUM_BITS and t == tag and type(x) is int:
            body.append(Instr(f"{tag}.const", x))
        elif tag == "ref.null" and t in (FUNCREF, EXTERNREF):
            body.append(Instr("ref.null", t.heap))
        else:
            raise Unrunnable(f"argument {tag} has no constant")
    body += [Instr("call", ex.index), Instr("end")]
    names = {e.name for e in module.exports}

    def fresh(name: str) -> str:
        while name in names:
            name += "_"
        names.add(name)
        return name

    entry = fresh(BASELINE_ENTRY)
    exports = list(module.exports)
    nfuncs = len(ftypes)
    exports.append(Export(entry, "func", nfuncs))
    spaces: Dict[str, Dict[int, str]] = {"memory": {}, "global": {}, "table": {}}
    gtypes = [i.desc.type for i in imported["global"]] + [g.type for g in module.globals]
    ttypes = [i.desc.type for i in imported["table"]] + [t.type for t in module.tables]
    nmems = len(imported["memory"]) + len(module.memories)
    readable = {"memory": [True] * nmems,
                "global": [g.type in NUM_BITS or g.type in (FUNCREF, EXTERNREF) for g in gtypes],
                "table": [t.elem in (FUNCREF, EXTERNREF) for t in ttypes]}
    for kind, ok in readable.items():
        for i, yes in enumerate(ok):
            if yes:
                spaces[kind][i] = name = fresh(f"{BASELINE_ENTRY}:{kind}{i}")
                exports.append(Export(name, kind, i))
    types = list(module.types) + [SubType(True, (), FuncType((), tuple(ft.results)))]
    funcs = list(module.funcs) + [Func(len(module.types), [], body)]
    data = encode_module(replace(module, types=types, rec_sizes=list(module.rec_sizes) + [1], funcs=funcs,
                                 exports=exports))
    man = Manifest(entry=entry, memories=spaces["memory"], globals=spaces["global"], tables=spaces["table"],
                   results=tuple(ft.results), imports=[(i.module, i.name, i.desc.kind) for i in module.imports])
    return data, man
