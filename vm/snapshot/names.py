"""Debug names of functions: the ``name`` custom section (subsection 1, function names), else the
export name.  Only ``wcr snapshot show`` and reports use them, so a malformed name section is ignored
(it is only a custom section), never an error.
"""

from __future__ import annotations

from typing import Dict

from ..binary.leb128 import read_u
from ..errors import MalformedModule
from ..runtime.objects import ModuleInst

__all__ = ["function_names"]

_FUNCTION_NAMES = 1  # subsection id of the function name map


def function_names(inst: ModuleInst) -> Dict[int, str]:
    """Function index → name, from the ``name`` custom section, else exports."""
    out: Dict[int, str] = {}
    for ex in inst.module.exports:
        if ex.kind == "func" and ex.index not in out:
            out[ex.index] = ex.name
    for c in inst.module.customs:
        if c.name != "name":
            continue
        try:
            out.update(_function_name_map(bytes(c.data)))
        except (MalformedModule, IndexError, ValueError, UnicodeDecodeError):
            pass  # a malformed name section is only a custom section: ignore it
    return out


def _function_name_map(data: bytes) -> Dict[int, str]:
    """Subsection 1 of a name section: ``vec(funcidx name)``; other subsections are skipped."""
    out: Dict[int, str] = {}
    p = 0
    while p < len(data):
        sid = data[p]
        size, p = read_u(data, p + 1, 32)
        end = p + size
        if sid == _FUNCTION_NAMES:
            n, p = read_u(data, p, 32)
            for _ in range(n):
                idx, p = read_u(data, p, 32)
                ln, p = read_u(data, p, 32)
                out[idx] = data[p:p + ln].decode("utf-8")
                p += ln
        p = end
    return out
