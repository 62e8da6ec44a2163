"""Canonical (module-independent) type keys and subtyping on them.

Wasm 3.0 types are *iso-recursive*: a defined type is "type k of rec group G", and two defined types
are equivalent iff their rec groups are structurally identical (with references to types inside the
group compared by position and references to earlier types compared by equivalence) and k is the same.

:func:`canonical_types` turns every type index of a module into a hashable *key* with exactly that
equivalence: two types of any two modules are equivalent iff their keys are ``==``.  A key is the tuple
``("$def", group, k)`` where ``group`` is a tuple of ``(final, supers, comp)`` entries in which

* a reference to a type of the same group is ``("$rec", position)``,
* a reference to an earlier type is that type's key (already canonical),
* ``comp`` is ``("func", params, results)``, ``("struct", fields)`` or ``("array", field)`` with value
  types in *canonical form*: number/vector types unchanged, references as :class:`RefType` whose
  ``heap`` is an abstract name or a key (or a ``("$rec", i)`` inside a group).

Keys are plain nested tuples, so they work across modules (the runtime uses them for
``call_indirect`` signature checks across instances and for import matching) without global state.

Heap subtyping on canonical heap types (:func:`heap_sub_c`) lives here too, because it needs to walk
declared supertypes, which only keys carry in a module-independent way.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple, cast

from ..errors import InvalidModule
from ..types import ArrayType, FieldType, FuncType, RefType, StructType

Key = Tuple[Any, ...]

# Abstract heap types: which abstract heap types each is a subtype of (reflexive).
_ANY_H = ("any", "eq", "i31", "struct", "array", "none")
ABS_SUPERS: Dict[str, frozenset] = {
    "any": frozenset(("any",)),
    "eq": frozenset(("eq", "any")),
    "i31": frozenset(("i31", "eq", "any")),
    "struct": frozenset(("struct", "eq", "any")),
    "array": frozenset(("array", "eq", "any")),
    "none": frozenset(_ANY_H),
    "func": frozenset(("func",)),
    "nofunc": frozenset(("nofunc", "func")),
    "extern": frozenset(("extern",)),
    "noextern": frozenset(("noextern", "extern")),
    "exn": frozenset(("exn",)),
    "noexn": frozenset(("noexn", "exn")),
}
# Top of the hierarchy of each abstract heap type / composite kind.
TOP = {
    "any": "any", "eq": "any", "i31": "any", "struct": "any", "array": "any", "none": "any",
    "func": "func", "nofunc": "func", "extern": "extern", "noextern": "extern",
    "exn": "exn", "noexn": "exn",
}
BOTTOM = {"any": "none", "func": "nofunc", "extern": "noextern", "exn": "noexn"}

_intern: Dict[Any, Any] = {}


def _i(x):
    """Intern a key so that equal keys are usually the same object (fast ``==``).

    Only a speed-up: equality never depends on it, so the table is simply dropped when it grows large.
    """
    if len(_intern) > 200_000:
        _intern.clear()
    return _intern.setdefault(x, x)


def canonical_types(m) -> List[Key]:
    """For each type index of module ``m``, its canonical key (see the module docstring).

    Raises ``InvalidModule("unknown type N")`` for a reference to a type that is neither earlier nor
    in the same rec group (the only way a key cannot be formed).
    """
    n = len(m.types)
    sizes = list(m.rec_sizes) if sum(m.rec_sizes) == n else [1] * n
    # filled group by group; ``ref`` reads only entries of earlier groups, which are set by then
    keys = cast(List[Key], [None] * n)
    start = 0
    for size in sizes:
        end = start + size

        def ref(x: int, start=start, end=end):
            if not isinstance(x, int) or x < 0 or x >= end:
                raise InvalidModule(f"unknown type {x}")
            if x >= start:
                return ("$rec", x - start)
            return keys[x]

        def vt(t, ref=ref):
            if isinstance(t, RefType) and isinstance(t.heap, int):
                return RefType(t.nullable, ref(t.heap))
            return t

        def comp(c, vt=vt):
            if isinstance(c, FuncType):
                return ("func", tuple(vt(t) for t in c.params), tuple(vt(t) for t in c.results))
            if isinstance(c, StructType):
                return ("struct", tuple((vt(f.storage), f.mutable) for f in c.fields))
            if isinstance(c, ArrayType):
                return ("array", (vt(c.field.storage), c.field.mutable))
            raise InvalidModule("unknown type")

        group = _i(tuple(
            (st.final, tuple(ref(s) for s in st.supers), comp(st.comp)) for st in m.types[start:end]
        ))
        for k in range(size):
            keys[start + k] = _i(("$def", group, k))
        start = end
    return keys


# -- looking inside keys --------------------------------------------------------------------------

def _resolve(x, group):
    """A heap reference found inside ``group`` as a full key."""
    if isinstance(x, tuple) and x[0] == "$rec":
        return ("$def", group, x[1])
    return x


def key_kind(key: Key) -> str:
    """``"func"``, ``"struct"`` or ``"array"``."""
    return key[1][key[2]][2][0]


def key_final(key: Key) -> bool:
    return key[1][key[2]][0]


def key_supers(key: Key) -> Tuple[Key, ...]:
    group = key[1]
    return tuple(_resolve(s, group) for s in group[key[2]][1])


def subst_valtype(t, group):
    """A canonical value type taken from inside ``group``, with in-group references resolved."""
    if isinstance(t, RefType) and isinstance(t.heap, tuple) and t.heap[0] == "$rec":
        return RefType(t.nullable, ("$def", group, t.heap[1]))
    return t


def key_comp(key: Key):
    """The composite type of a key as vm.types objects whose heap types are canonical."""
    group = key[1]
    c = group[key[2]][2]
    if c[0] == "func":
        return FuncType(tuple(subst_valtype(t, group) for t in c[1]),
                        tuple(subst_valtype(t, group) for t in c[2]))
    if c[0] == "struct":
        return StructType(tuple(FieldType(subst_valtype(s, group), mu) for s, mu in c[1]))
    s, mu = c[1]
    return ArrayType(FieldType(subst_valtype(s, group), mu))


# -- subtyping on canonical types -----------------------------------------------------------------

def heap_sub_c(a, b) -> bool:
    """``a <: b`` for canonical heap types (abstract names or keys; ``"bot"`` matches anything)."""
    if a == b or a == "bot":
        return True
    if isinstance(a, str):
        if isinstance(b, str):
            return b in ABS_SUPERS.get(a, ())
        kind = key_kind(b)
        return (a == "none" and kind != "func") or (a == "nofunc" and kind == "func")
    if isinstance(b, str):
        return b in ABS_SUPERS[key_kind(a)] if b != "bot" else False
    # both concrete: walk the declared supertype chain
    seen = 0
    while seen < 100000:
        sup = key_supers(a)
        if not sup:
            return False
        a = sup[0]
        if a == b:
            return True
        seen += 1
    return False


def valtype_sub_c(t1, t2) -> bool:
    """``t1 <: t2`` for canonical value types (``"bot"`` is the unknown type of dead code)."""
    if t1 == t2 or t1 == "bot":
        return True
    if isinstance(t1, RefType) and isinstance(t2, RefType):
        if t1.nullable and not t2.nullable:
            return False
        return heap_sub_c(t1.heap, t2.heap)
    return False


def canon_valtype(t, keys: List[Key]):
    """A module-relative value type in canonical form (type indices replaced by keys)."""
    if isinstance(t, RefType) and isinstance(t.heap, int):
        return RefType(t.nullable, keys[t.heap])
    return t


def top_heap(h, keys: List[Key]) -> str:
    """Top abstract heap type of the hierarchy of module-relative heap type ``h``."""
    if isinstance(h, int):
        h = keys[h]
    if isinstance(h, str):
        return TOP.get(h, h)
    return TOP[key_kind(h)]
