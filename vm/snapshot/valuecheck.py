"""Rule 6 and the heap rules: does a tagged value fit its slot, does a heap object fit its type?

::

    check_value(t, v, canon, func_keys, where, heap)   # one value against its slot's type
    check_heap(state, canons, tags, func_keys) -> keys  # the heap section (rules 18-21)
    check_segments(state, modules, canons, func_keys, keys)  # the segments section (rule 22)

The one home of value typing for a snapshot: :mod:`.consistency` checks the state's slots with it before
restore allocates anything, and restore's converter checks every value it turns into a runtime value
with it.  A reference's type is computed as a *canonical heap type* (:mod:`vm.valid.canon`: an abstract
name or a type key) and compared with the slot's by ``heap_sub_c``, so functions, structs, arrays, i31,
host references and exceptions follow the same subtyping rule as ``ref.test``.  Every failure is a
:class:`SnapshotError` starting with the field's path (``heap[3].fields[1]``, ``globals[0]``).
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

from ..module import Module
from ..types import FuncType, RefType
from ..valid.canon import heap_sub_c, key_comp, key_kind
from ..values import format_value
from .model import HEAP_KINDS, SnapshotError, State, Value

__all__ = ["HeapKeys", "check_heap", "check_segments", "check_value", "value_heap_type"]

#: (kind, canonical type key or None for an exception) of each heap object, by id
HeapKeys = Sequence[Tuple[str, Any]]
Canon = List[Any]
_PACKED = {"i8": 1 << 8, "i16": 1 << 16}
_ANY = RefType(False, "any")


def check_value(t: Any, v: Value, canon: Canon, func_keys: Dict[int, Any], where: str,
                heap: HeapKeys = ()) -> None:
    """Rule 6: a value fits the type of its slot (``canon``: the keys of the module that declares the
    slot, for concrete reference types, or ``[]`` for a canonical type; ``func_keys``: function address ->
    canonical type key; ``heap``: :func:`check_heap`'s keys)."""
    tag = v[0]
    if isinstance(t, str):
        if tag != t:
            raise SnapshotError(f"{where}: {tag} where {t} is expected")
        return
    if not isinstance(t, RefType):
        raise SnapshotError(f"{where}: unsupported value type {t!r}")
    if tag == "ref.null":
        if not t.nullable:
            raise SnapshotError(f"{where}: null where {t!r} is expected")
        return
    if not tag.startswith("ref."):
        raise SnapshotError(f"{where}: {tag} where {t!r} is expected")
    want = t.heap
    if isinstance(want, int):
        if want >= len(canon):
            raise SnapshotError(f"{where}: type index {want} out of range")
        want = canon[want]
    if not heap_sub_c(value_heap_type(v, func_keys, heap, where), want):
        raise SnapshotError(f"{where}: {_what(v)} where {t!r} is expected")


def value_heap_type(v: Value, func_keys: Dict[int, Any], heap: HeapKeys, where: str) -> Any:
    """The canonical heap type of a non-null reference value (its own, most precise type)."""
    tag, x = v
    if tag == "ref.func":
        key = func_keys.get(x)
        if key is None:
            raise SnapshotError(f"{where}: function address {x} out of range")
        return key
    if tag == "ref.extern":
        if isinstance(x, tuple):  # extern.convert_any of an internal reference: that must be one
            check_value(_ANY, x, [], func_keys, where, heap)
        return "extern"
    if tag == "ref.i31" and type(x) is int and 0 <= x < (1 << 31):
        return "i31"
    if tag == "ref.host" and type(x) is int:
        return "any"
    if tag in ("ref.struct", "ref.array", "ref.exn"):
        if type(x) is not int or not 0 <= x < len(heap):
            raise SnapshotError(f"{where}: heap object id {x} out of range ({len(heap)} objects)")
        kind, key = heap[x]
        if "ref." + kind != tag:
            raise SnapshotError(f"{where}: {tag}:{x} names a {kind} object")
        return "exn" if kind == "exn" else key
    raise SnapshotError(f"{where}: {format_value(v)} is not a reference value")


def _what(v: Value) -> str:
    tag, x = v
    if tag == "ref.func":
        return f"function {x} of the wrong type"
    if tag == "ref.extern":
        return "host reference" if type(x) is int else "externalized reference"
    return format_value(v)


# -- the heap section ------------------------------------------------------------------------------
def check_heap(state: State, canons: Sequence[Canon], tags: Dict[int, Tuple[FuncType, Canon]],
               func_keys: Dict[int, Any]) -> HeapKeys:
    """Rules 18-21: every object's type or tag, then every field against its type, then no cycle
    through immutable fields.  Returns the objects' keys for :func:`check_value`."""
    keys = [_object_key(state, canons, tags, i) for i in range(len(state.heap))]
    for i, ob in enumerate(state.heap):
        at = f"heap[{i}]"
        if ob.kind == "exn":
            ft, canon = tags[ob.tag]  # type: ignore[index]  # checked by _object_key
            _fields(at, ob.fields, list(ft.params), canon, func_keys, keys, "the tag has")
            continue
        comp = key_comp(keys[i][1])
        if ob.kind == "struct":
            storages = [f.storage for f in comp.fields]
            _fields(at, ob.fields, storages, [], func_keys, keys, "the struct type has")
        else:
            _fields(at, ob.fields, [comp.field.storage] * len(ob.fields), [], func_keys, keys, "")
    _acyclic(state, keys)
    return keys


def _object_key(state: State, canons: Sequence[Canon], tags: Dict[int, Any], i: int) -> Tuple[str, Any]:
    """Rule 18: a struct/array names (instance, type index) of a struct/array type of that instance's
    module; an exception names a tag address of the state."""
    ob = state.heap[i]
    at = f"heap[{i}]"
    if ob.kind not in HEAP_KINDS:
        raise SnapshotError(f"{at}.kind: unknown heap object kind {ob.kind!r}")
    if ob.kind == "exn":
        if ob.type is not None or ob.tag not in tags:
            raise SnapshotError(f"{at}.tag: {ob.tag} is not a tag address of the state")
        return ("exn", None)
    if ob.tag is not None or ob.type is None:
        raise SnapshotError(f"{at}.type: a {ob.kind} object names a type, not a tag")
    n, j = ob.type
    if not 0 <= n < len(state.instances) or not 0 <= state.instances[n].module < len(canons):
        raise SnapshotError(f"{at}.type: instance {n} out of range")
    canon = canons[state.instances[n].module]
    if not 0 <= j < len(canon) or key_kind(canon[j]) != ob.kind:
        raise SnapshotError(f"{at}.type: type {j} of instance {n} is not a {ob.kind} type")
    return (ob.kind, canon[j])


def _fields(at: str, vals: List[Value], types: List[Any], canon: Canon, func_keys: Dict[int, Any],
            keys: HeapKeys, what: str) -> None:
    """Rules 19-20: as many fields as the type has, each of its storage type (packed: an i32 below
    2**8 or 2**16)."""
    if what and len(vals) != len(types):
        raise SnapshotError(f"{at}.fields: {len(vals)} fields, {what} {len(types)}")
    for k, (t, v) in enumerate(zip(types, vals)):
        where = f"{at}.fields[{k}]"
        bound = _PACKED.get(t) if isinstance(t, str) else None
        if bound is not None:
            if v[0] != "i32" or not 0 <= v[1] < bound:
                raise SnapshotError(f"{where}: {format_value(v)} does not fit packed {t}")
        else:
            check_value(t, v, canon, func_keys, where, keys)


def _acyclic(state: State, keys: HeapKeys) -> None:
    """Rule 21: an object's immutable fields were set when it was allocated, to objects that existed
    before it, so no cycle runs through immutable fields only (exception payloads are immutable).
    Kahn's algorithm on those edges (no recursion)."""
    edges: List[List[int]] = [[] for _ in state.heap]
    indeg = [0] * len(state.heap)
    for i, ob in enumerate(state.heap):
        mut = _mutable(ob.kind, keys[i][1])
        for k, v in enumerate(ob.fields):
            tgt = _target(v)
            if tgt is not None and not (mut if isinstance(mut, bool) else mut[k]):
                edges[i].append(tgt)
                indeg[tgt] += 1
    todo = [i for i, d in enumerate(indeg) if d == 0]
    seen = 0
    while todo:
        i = todo.pop()
        seen += 1
        for t in edges[i]:
            indeg[t] -= 1
            if indeg[t] == 0:
                todo.append(t)
    if seen != len(state.heap):
        first = next(i for i, d in enumerate(indeg) if d > 0)
        raise SnapshotError(f"heap[{first}].fields: a cycle of references through immutable fields "
                            "(no run can build one: an immutable field refers to an older object)")


def _mutable(kind: str, key: Any) -> Any:
    """Whether each field (struct: a list) or every element (array: a bool) is mutable."""
    if kind == "exn":
        return False
    comp = key_comp(key)
    return [f.mutable for f in comp.fields] if kind == "struct" else comp.field.mutable


def _target(v: Value) -> Any:
    tag, x = v
    if tag == "ref.extern" and isinstance(x, tuple):
        tag, x = x
    return x if tag in ("ref.struct", "ref.array", "ref.exn") else None


# -- the segments section --------------------------------------------------------------------------
def check_segments(state: State, modules: Sequence[Module], canons: Sequence[Canon],
                   func_keys: Dict[int, Any], keys: HeapKeys) -> None:
    """Rule 22: each entry names a segment of an instance that is not dropped, once, with as many
    items as the segment has, each of the segment's element type."""
    seen = set()
    for k, (n, i, items) in enumerate(state.segments):
        at = f"segments[{k}]"
        if not 0 <= n < len(state.instances) or not 0 <= state.instances[n].module < len(modules):
            raise SnapshotError(f"{at}: instance {n} out of range")
        ist = state.instances[n]
        m = modules[ist.module]
        if not 0 <= i < len(m.elems) or i >= len(ist.elem_dropped) or ist.elem_dropped[i] or (n, i) in seen:
            raise SnapshotError(f"{at}: element segment {i} of instance {n} is not a live segment (or listed "
                                "twice)")
        seen.add((n, i))
        e = m.elems[i]
        if len(items) != len(e.init):
            raise SnapshotError(f"{at}.items: {len(items)} items, the segment has {len(e.init)}")
        for j, v in enumerate(items):
            check_value(e.type, v, canons[ist.module], func_keys, f"{at}.items[{j}]", keys)
