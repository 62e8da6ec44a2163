"""The two binary rewrites that fit a resume module to a runtime's linking abilities.

* :func:`rename_import_module`: the module's ``spectest`` imports are taken from another module name
  (``wcr_spectest``, the shim of :mod:`.adapter`), so that the runtime's own ``spectest`` (or ours)
  never sees a float.
* :func:`internalize_spectest`: the spectest memory/table/global imports become definitions with the
  spectest's types and values (for wasm3, which can import only functions).

Both edit the decoded module (:attr:`.introspect.ModuleInfo.module`, wcr's own decoder) and encode it
again with :func:`vm.binary.encode_module`: one parser and one writer of the binary format in wcr, not a
second hand-written one here.  The encoder is canonical, so the bytes may differ from the input's (LEB
widths, section order of customs); the meaning does not.
"""

from __future__ import annotations

from dataclasses import replace
from typing import List

from vm.binary import encode_module
from vm.module import Global, Import, Instr, Memory, Module, Table
from vm.runtime.spectest import GLOBALS, MEMORIES, TABLES
from vm.types import FUNCREF, GlobalType, Limits, MemType, TableType

from .process import Unrunnable

#: the module name the shim is registered under
RENAMED = "wcr_spectest"


def rename_import_module(module: Module, old: str = "spectest", new: str = RENAMED) -> bytes:
    """The module with its imports from ``old`` taken from ``new`` (nothing else changes)."""
    imports = [Import(new, i.name, i.desc) if i.module == old else i for i in module.imports]
    return encode_module(replace(module, imports=imports))


def internalize_spectest(module: Module) -> bytes:
    """The spectest memory/table/global imports turned into definitions (declared in
    :mod:`vm.runtime.spectest`).  Index spaces are preserved: imported entries come first in each index
    space, so each one moves to the front of its definition list, in order.  The shared identity is
    lost, which does not matter for one resume module run alone."""
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
            t, bits = GLOBALS[name]
            globs.append(Global(GlobalType(t, False), [Instr(f"{t}.const", bits), Instr("end")]))
        else:
            raise Unrunnable(f"cannot define import {imp.module}.{name} in place")
    if len(keep) == len(module.imports):
        return encode_module(module)
    return encode_module(replace(module, imports=keep, tables=tables + module.tables,
                                 memories=memories + module.memories, globals=globs + module.globals))
