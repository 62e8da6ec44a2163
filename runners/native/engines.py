"""The cached wasmtime engines of this process, one per kind of limit, released at interpreter exit.

Three users need an engine: module introspection (validation only), the wasmtime target (wall-clock
limit through epoch interruption) and the conformance run (instruction-ish limit through fuel).  Engines
are expensive to create and must be dropped while wasmtime-py is still whole: finalised after its module
globals are gone, they print "Exception ignored in: Managed.__del__" at exit — so they live here, once.
"""

from __future__ import annotations

import atexit
import gc
from typing import Any, Callable, Dict, List, Optional

LIMITS = (None, "epoch", "fuel")

_ENGINES: Dict[Optional[str], Any] = {}
#: other caches of wasmtime objects made with these engines (cleared first on release)
_DEPENDENTS: List[Callable[[], None]] = []
_registered = False


def wasmtime_engine(limit: Optional[str] = None) -> Any:
    """The engine for ``limit``: None (plain), ``"epoch"`` or ``"fuel"``."""
    global _registered
    if limit not in LIMITS:
        raise ValueError(f"unknown engine limit {limit!r}")
    eng = _ENGINES.get(limit)
    if eng is None:
        import wasmtime

        cfg = wasmtime.Config()
        if limit == "epoch":
            cfg.epoch_interruption = True
        elif limit == "fuel":
            cfg.consume_fuel = True
        eng = _ENGINES[limit] = wasmtime.Engine(cfg)
        if not _registered:
            atexit.register(release)
            _registered = True
    return eng


def on_release(clear: Callable[[], None]) -> None:
    """Register a cache of objects made with these engines, to be cleared before they are dropped."""
    _DEPENDENTS.append(clear)


def release() -> None:
    for clear in _DEPENDENTS:
        clear()
    _ENGINES.clear()
    gc.collect()  # objects in reference cycles go now too, not at shutdown
