"""What a resume module offers a target: its imports and exports with their types (:class:`ModuleInfo`),
and whether it fits the converter's :class:`vm.snapshot.resume.Manifest`.

Validation is wasmtime's (a hard dependency of wcr that accepts every 3.0 feature, so "invalid" means
invalid, not "beyond this target"; for the legacy exception form, which wasmtime lacks, wcr's validator's); the description is wcr's own decoder, because wasmtime-py cannot
print v128 types (the process aborts) and calls externref "anyref".  The decoded module is kept, so
the binary rewrites of :mod:`.rewrite` do not decode it a second time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from vm.binary import decode_module
from vm.errors import WasmError
from vm.module import Module
from vm.snapshot.resume import HOST_MODULE, Manifest
from vm.snapshot.resume.wasi_part import WASI_MODULE
from vm.valid import validate_module

from .engines import wasmtime_engine
from .process import InvalidModule


@dataclass
class Extern:
    """One import or export, with the type spelled as in WAT (``i32`` … ``v128``, ``funcref``)."""

    name: str
    kind: str  # func | global | memory | table | tag
    type: str = ""  # global content / table element type
    mutable: bool = False
    params: Tuple[str, ...] = ()
    results: Tuple[str, ...] = ()
    is64: bool = False
    module: str = ""


@dataclass
class ModuleInfo:
    """Imports and exports of a module with their types; ``module`` is the decoded module."""

    imports: List[Extern] = field(default_factory=list)
    exports: List[Extern] = field(default_factory=list)
    module: Optional[Module] = None

    @classmethod
    def from_wasm(cls, wasm: bytes) -> ModuleInfo:
        """Validate (wasmtime) and describe (wcr's decoder); :class:`InvalidModule` when either refuses."""
        import wasmtime

        legacy = False
        try:
            wasmtime.Module.validate(_introspection_engine(), wasm)
        except Exception as exc:
            # wasmtime has no legacy exceptions (try/catch/delegate/rethrow): our validator judges those
            legacy = "legacy_exceptions feature required" in str(exc)
            if not legacy:
                raise InvalidModule(f"invalid module: {str(exc).splitlines()[0]}") from exc
        try:
            mod = decode_module(wasm)
            if legacy:
                validate_module(mod)
        except WasmError as exc:
            raise InvalidModule(f"wcr's decoder rejects the module: {exc}") from exc
        spaces: Dict[str, List[Any]] = {"func": [], "table": [], "memory": [], "global": [], "tag": []}
        info = cls(module=mod)
        for imp in mod.imports:
            desc = imp.desc
            t = mod.types[desc.type].comp if desc.kind == "func" else desc.type
            spaces[desc.kind].append(t)
            info.imports.append(_extern(imp.name, desc.kind, t, imp.module))
        spaces["func"] += [mod.types[f.typeidx].comp for f in mod.funcs]
        spaces["table"] += [t.type for t in mod.tables]
        spaces["memory"] += [m.type for m in mod.memories]
        spaces["global"] += [g.type for g in mod.globals]
        for ex in mod.exports:
            info.exports.append(_extern(ex.name, ex.kind, spaces[ex.kind][ex.index] if ex.kind in spaces else None, ""))
        return info

    def export(self, name: str) -> Optional[Extern]:
        for e in self.exports:
            if e.name == name:
                return e
        return None

    def type_of(self, name: str) -> str:
        """The content type of an export the manifest names (checked by :meth:`check` before)."""
        e = self.export(name)
        assert e is not None, name
        return e.type

    def check(self, man: Manifest) -> Optional[str]:
        """Why the module and manifest don't fit together (None when they do).  Every target runs
        this first, so a converter that names something the module lacks reads as "not runnable",
        never as a runtime's fault."""
        f = self.export(man.entry)
        if f is None or f.kind != "func":
            return f"no exported function {man.entry!r}"
        if f.params:
            return f"{man.entry!r} takes parameters {f.params}"
        expected = tuple(type_name(t) for t in man.results)
        if expected != f.results:
            return f"manifest says results {expected}, module's {man.entry!r} returns {f.results}"
        for names, kind in ((man.memories, "memory"), (man.globals, "global"), (man.tables, "table")):
            for n in names.values():
                e = self.export(n)
                if e is None or e.kind != kind:
                    return f"no exported {kind} {n!r}"
        for imp in self.imports:
            if imp.module == WASI_MODULE and man.wasi is not None:
                continue  # the target provides WASI (runners/native/sandbox.py)
            if imp.module not in ("spectest", HOST_MODULE):
                return f"imports {imp.module}.{imp.name}: only spectest imports and host references are provided"
        if man.wasi is not None and man.wasi.status_export:  # empty: no prologue (a baseline run)
            e = self.export(man.wasi.status_export)
            if e is None or e.kind != "global":
                return f"no exported global {man.wasi.status_export!r} (the WASI prologue's status)"
        return None

    def resume_results(self, man: Manifest) -> Tuple[str, ...]:
        f = self.export(man.entry)
        assert f is not None
        return f.results

    def spectest_imports(self) -> Tuple[str, ...]:
        """Names this module imports from ``spectest`` (what a shim or host must provide)."""
        return tuple(i.name for i in self.imports if i.module == "spectest")


#: value types a host and the WAT adapters read directly; every other reference type (GC and exception
#: references, non-null function references) is read through the null probes of :mod:`.rewrite`
HOST_READABLE = frozenset(("i32", "i64", "f32", "f64", "v128", "funcref", "externref"))


def type_name(t: Any) -> str:
    """wcr value type → the WAT spelling used here (i32 ... v128, funcref, externref, or a repr)."""
    if isinstance(t, str):
        return t
    heap = getattr(t, "heap", None)
    if getattr(t, "nullable", False) and heap in ("func", "extern"):
        return f"{heap}ref"
    return repr(t)


def _extern(name: str, kind: str, t: Any, module: str) -> Extern:
    if kind == "func":
        return Extern(name, "func", params=tuple(type_name(p) for p in t.params),
                      results=tuple(type_name(r) for r in t.results), module=module)
    if kind == "global":
        return Extern(name, "global", type=type_name(t.type), mutable=bool(t.mutable), module=module)
    if kind == "memory":
        return Extern(name, "memory", is64=bool(t.is64), module=module)
    if kind == "table":
        return Extern(name, "table", type=type_name(t.elem), is64=bool(t.is64), module=module)
    return Extern(name, kind, module=module)


def _introspection_engine() -> Any:
    return wasmtime_engine(None)
