"""Transitional: the comparison of two outcome dicts and the old name of ``vm.api.instantiate``.

Both move to their homes (the oracle in ``runners/``, instantiation in :mod:`vm.api`) once their callers
have moved; this file then goes.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from ..api import Store, instantiate
from ..runtime.objects import ModuleInst

FIELDS = ("results", "trap", "instructions", "host_log", "state_digest")


def instantiate_bytes(store: Store, data: bytes, name: Optional[str] = None,
                      imports: Optional[Sequence[Any]] = None) -> ModuleInst:
    """Old name of :func:`vm.api.instantiate` (note the argument order: ``name`` before ``imports``)."""
    return instantiate(store, data, imports, name)


def compare_outcomes(expected: Dict[str, Any], actual: Dict[str, Any]) -> List[str]:
    """Differences between two outcome dicts, one line per field ("" list = identical)."""
    out = []
    for f in FIELDS:
        a, b = expected.get(f), actual.get(f)
        if a != b:
            if f == "host_log" and isinstance(a, list) and isinstance(b, list):
                i = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
                out.append(f"host_log differs at entry {i}: expected {a[i:i + 1]}, got {b[i:i + 1]} "
                           f"(lengths {len(a)} / {len(b)})")
            else:
                out.append(f"{f}: expected {a!r}, got {b!r}")
    return out
