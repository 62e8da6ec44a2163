"""Where the probes' raw material comes from: modules of the pinned testsuite, wasm-smith and our own
generator, each reproducible from a ``random.Random``.

Testsuite modules are the binaries ``wasm-tools json-from-wast`` writes (the spec runner's cached
conversion, :func:`spec_tests.convert.convert`): valid modules (``module``), and the binaries of
``assert_invalid`` / ``assert_malformed`` / ``assert_unlinkable`` / ``assert_uninstantiable``, which are
good seeds for the decoder and validator.  Files are converted lazily, the first time the RNG picks one.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

__all__ = ["Pool", "generated_module", "smith_module_from"]

#: command types of a converted script whose file is a module binary worth probing
_MODULE_COMMANDS = ("module", "assert_invalid", "assert_malformed", "assert_unlinkable",
                    "assert_uninstantiable", "assert_trap", "assert_exhaustion")


class Pool:
    """The testsuite's module binaries, by file, converted on first use.  ``files`` restricts the pool
    (tests use a few small files); default: every ``.wast`` of the located testsuite."""

    def __init__(self, files: Optional[List[str]] = None):
        from spec_tests.testsuite import all_wast_files, locate_testsuite

        self.root: Optional[Path]
        try:
            self.root = Path(locate_testsuite(download=False))
        except Exception:  # noqa: BLE001 - no testsuite here: the probes use the generators only
            self.root = None
        self.files = files if files is not None else (all_wast_files(self.root) if self.root else [])
        self._mods: Dict[str, List[Tuple[bytes, bool, str]]] = {}

    def modules_of(self, rel: str) -> List[Tuple[bytes, bool, str]]:
        """``(bytes, is a valid module, "file:line")`` of each module binary of one script."""
        hit = self._mods.get(rel)
        if hit is not None:
            return hit
        from spec_tests.convert import ConversionError, convert

        out: List[Tuple[bytes, bool, str]] = []
        try:
            conv = convert(Path(self.root or ".") / rel)
        except ConversionError:
            conv = None
        for cmd in conv.commands if conv is not None else []:
            fn = cmd.get("filename") or cmd.get("binary_filename")
            if cmd.get("type") not in _MODULE_COMMANDS or not fn or not str(fn).endswith(".wasm"):
                continue
            p = conv.path(fn) if conv is not None else None
            if p is not None and p.is_file():
                out.append((p.read_bytes(), cmd.get("type") == "module", f"{rel}:{cmd.get('line')}"))
        self._mods[rel] = out
        return out

    def pick(self, rng: random.Random, valid_only: bool = False) -> Optional[Tuple[bytes, str]]:
        """A random module binary (``valid_only``: from ``module`` commands), or None without a testsuite."""
        for _ in range(8):
            if not self.files:
                return None
            mods = self.modules_of(rng.choice(self.files))
            if valid_only:
                mods = [m for m in mods if m[1]]
            if mods:
                data, _valid, where = rng.choice(mods)
                return data, where
        return None


def generated_module(seed: int) -> Tuple[bytes, str, List[Any]]:
    """One case of our typed generator (:func:`generators.modules.cases`): ``(module bytes, export,
    arguments)``, drawn by a one-example Hypothesis run seeded with ``seed`` (same seed, same case)."""
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings
    from hypothesis import seed as hseed

    from generators.modules import Size, cases

    box: List[Tuple[bytes, str, List[Any]]] = []

    @settings(max_examples=1, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet)
    @hseed(seed)
    @given(cases(size=Size(max_funcs=3)))
    def draw(case) -> None:  # type: ignore[no-untyped-def]
        box.append((case.wasm, case.export, list(case.args)))

    draw()
    return box[0]


def smith_module_from(rng: random.Random) -> Optional[bytes]:
    """A wasm-smith module (the 2.0 feature set of :class:`generators.smith.SmithConfig`) from random
    seed bytes, or None when smith builds nothing from them."""
    from generators.smith import SmithConfig, smith_module

    seed = bytes(rng.randrange(256) for _ in range(rng.choice((16, 64, 256))))
    return smith_module(seed, SmithConfig(fuel=32, max_funcs=4, max_instructions=100))
