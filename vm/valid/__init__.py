"""The validator (spec appendix "Validation Algorithm") and the type-matching helpers.

Public API::

    validate_module(m) -> ModuleInfo          # raises InvalidModule / Unsupported
    canonical_types(m) -> list[key]           # iso-recursive type equivalence across modules
    match_valtype(t1, t2, keys1, keys2=None)  # t1 <: t2 (types relative to modules with those keys)
    match_heaptype(h1, h2, keys1, keys2=None)
    equal_valtype(t1, t2, keys1, keys2=None)
    match_limits(actual, expected)            # import matching of limits
    match_externtype(kind, actual, expected, keys1, keys2=None)   # linking ("incompatible import type")
    heap_sub_c / valtype_sub_c                # the same on canonical (key-based) types
    subtype(module, t1, t2)                   # convenience: one module

All matching helpers are pure functions of their arguments.  ``ModuleInfo.type_keys`` holds the
module's canonical keys, so callers need not recompute them.
"""

from __future__ import annotations

from .canon import canonical_types, heap_sub_c, valtype_sub_c
from .info import ControlInfo, FuncInfo, ModuleInfo
from .match import (
    equal_valtype,
    match_externtype,
    match_functype_key,
    match_heaptype,
    match_limits,
    match_valtype,
)
from .validate import validate_module


def subtype(module, t1, t2, keys=None) -> bool:
    """``t1 <: t2`` for two value types of ``module`` (pass ``keys`` to avoid recomputing them)."""
    if keys is None:
        keys = canonical_types(module)
    return match_valtype(t1, t2, keys)


__all__ = [
    "validate_module", "canonical_types", "ModuleInfo", "FuncInfo", "ControlInfo",
    "match_valtype", "match_heaptype", "match_limits", "match_externtype", "equal_valtype",
    "match_functype_key", "heap_sub_c", "valtype_sub_c", "subtype",
]
