"""The registry of native targets: which runtimes wcr knows (:func:`all_targets`), lookup by name
(:func:`get_target`) and the ``wcr targets`` listing (:func:`describe`).

Kept apart from the interface (:mod:`.target`) so that the adapters import the interface and the
registry imports the adapters, never the other way round.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from .cmdspec import parse_cmd, user_targets
from .target import Target
from .v8 import V8Target
from .wabt import WabtTarget
from .wamr import WamrTarget
from .wasm2c import Wasm2cTarget
from .wasm3 import Wasm3Target
from .wasmtime import WasmtimeTarget


def builtin_targets() -> List[Target]:
    """The targets wcr ships."""
    return [WasmtimeTarget(), V8Target(), Wasm3Target(), WabtTarget(), Wasm2cTarget(), WamrTarget()]


def all_targets() -> List[Target]:
    """Every native target wcr knows, available or not (ask each with :meth:`Target.available`): the
    built-in ones, then the user's (:mod:`.cmdspec`: ``wcr.targets`` entry points, the config file's
    ``[targets]``).  ``ValueError`` for a bad config file or plugin."""
    builtin = builtin_targets()
    return builtin + user_targets([t.name for t in builtin])


def get_target(name: str) -> Target:
    """A fresh target object by name, or of a ``cmd:`` spec; ``KeyError`` naming the known ones
    otherwise, ``ValueError`` for a bad spec, config file or plugin."""
    if name.startswith("cmd:"):
        return parse_cmd(name, [t.name for t in builtin_targets()])
    for t in all_targets():
        if t.name == name:
            return t
    raise KeyError(f"unknown native target {name!r}; known: {', '.join(t.name for t in all_targets())}")

def describe() -> List[Dict[str, Any]]:
    """One row per target: name, available, reason (why missing), version, features; for ``wcr targets``."""
    rows = []
    for t in all_targets():
        ok, reason = t.available()
        try:
            ver = t.version() if ok else ""
        except Exception as exc:
            ver = f"? ({exc})"
        rows.append({"name": t.name, "available": ok, "reason": reason, "version": ver,
                     "features": sorted(t.features), "nan_exact": t.nan_exact})
    return rows

def format_describe(rows: Optional[List[Dict[str, Any]]] = None) -> str:
    """``describe()`` as a small text table."""
    rows = describe() if rows is None else rows
    lines = []
    for r in rows:
        status = "available" if r["available"] else "missing"
        lines.append(f"{r['name']:<9} {status:<9} {r['version'] or '-':<28} {r['reason']}")
        lines.append(f"{'':<9} features: {', '.join(r['features'])}")
    return "\n".join(lines)
