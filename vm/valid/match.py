"""Type matching (subtyping) helpers, pure functions for the validator and the linker.

Module-relative types (heap type = type index) only mean something together with their module's
canonical keys (:func:`vm.valid.canon.canonical_types`).  Every function here therefore takes the
``keys`` list of the module each type comes from; pass the same list twice for types of one module.

The runtime uses :func:`match_externtype` to check an import against the export that satisfies it
(failure = ``LinkError("incompatible import type")``).  For tables and memories pass the *current*
limits of the actual object (its size now, its declared max), as the spec's import matching does.
"""

from __future__ import annotations

from typing import Any, List, Optional

from ..types import GlobalType, Limits, MemType, RefType, TableType
from .canon import Key, canon_valtype, heap_sub_c, key_kind, valtype_sub_c

BOT = "bot"


def match_heaptype(h1, h2, keys1: List[Key], keys2: Optional[List[Key]] = None) -> bool:
    """``h1 <: h2`` for heap types of modules with canonical keys ``keys1`` / ``keys2``."""
    if keys2 is None:
        keys2 = keys1
        if h1 == h2:
            return True
    a = keys1[h1] if isinstance(h1, int) else h1
    b = keys2[h2] if isinstance(h2, int) else h2
    return heap_sub_c(a, b)


def match_valtype(t1, t2, keys1: List[Key], keys2: Optional[List[Key]] = None) -> bool:
    """``t1 <: t2`` for value types (``"bot"``, the unknown type of dead code, matches anything)."""
    if keys2 is None:
        if t1 == t2 or t1 == BOT:
            return True
        keys2 = keys1
    if isinstance(t1, RefType) and isinstance(t2, RefType):
        if t1.nullable and not t2.nullable:
            return False
        return match_heaptype(t1.heap, t2.heap, keys1, keys2)
    return valtype_sub_c(canon_valtype(t1, keys1), canon_valtype(t2, keys2))


def equal_valtype(t1, t2, keys1: List[Key], keys2: Optional[List[Key]] = None) -> bool:
    """Type equivalence (both directions of subtyping), used for mutable globals and table elems."""
    k2 = keys1 if keys2 is None else keys2
    return canon_valtype(t1, keys1) == canon_valtype(t2, k2)


def match_limits(actual: Limits, expected: Limits) -> bool:
    """Import matching of limits: ``actual`` at least as large and at most as permissive."""
    if actual.min < expected.min:
        return False
    if expected.max is None:
        return True
    return actual.max is not None and actual.max <= expected.max


def match_functype_key(k1: Key, k2: Key) -> bool:
    """A function of canonical type ``k1`` may be used where ``k2`` is expected (declared subtyping)."""
    return heap_sub_c(k1, k2)


def match_externtype(kind: str, actual: Any, expected: Any, keys1: List[Key],
                     keys2: Optional[List[Key]] = None) -> bool:
    """Does an external value of type ``actual`` (module keys ``keys1``) satisfy an import of type
    ``expected`` (module keys ``keys2``)?

    ``kind``: ``func``/``tag`` (types are type indices), ``table`` (:class:`TableType`), ``memory``
    (:class:`MemType`), ``global`` (:class:`GlobalType`).
    """
    if keys2 is None:
        keys2 = keys1
    if kind == "func":
        return heap_sub_c(keys1[actual], keys2[expected])
    if kind == "tag":
        return keys1[actual] == keys2[expected]
    if kind == "table":
        assert isinstance(actual, TableType) and isinstance(expected, TableType)
        return (actual.is64 == expected.is64
                and equal_valtype(actual.elem, expected.elem, keys1, keys2)
                and match_limits(actual.limits, expected.limits))
    if kind == "memory":
        assert isinstance(actual, MemType) and isinstance(expected, MemType)
        return (actual.is64 == expected.is64 and actual.shared == expected.shared
                and actual.page_size_log2 == expected.page_size_log2
                and match_limits(actual.limits, expected.limits))
    if kind == "global":
        assert isinstance(actual, GlobalType) and isinstance(expected, GlobalType)
        if actual.mutable != expected.mutable:
            return False
        if actual.mutable:
            return equal_valtype(actual.type, expected.type, keys1, keys2)
        return match_valtype(actual.type, expected.type, keys1, keys2)
    raise ValueError(f"unknown extern kind {kind!r}")


def comp_kind(h, keys: List[Key]) -> Optional[str]:
    """``func``/``struct``/``array`` for a concrete heap type, ``None`` for an abstract one."""
    if isinstance(h, int):
        return key_kind(keys[h])
    return None
