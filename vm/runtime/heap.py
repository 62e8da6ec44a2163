"""The objects of the GC heap and of exception handling: the references that have identity.

One home for every reference kind that Wasm 3.0 adds to a store (every layer that meets one imports
it from here):

* :class:`StructInst` / :class:`ArrayInst` (``struct.new``, ``array.new``...): identity is the Python
  object (``ref.eq`` is ``is``); ``canon`` is the canonical type key (:mod:`vm.valid.canon`) of the
  defined type it was allocated with, so ``ref.test``/``ref.cast`` work across modules; ``fields`` /
  ``elements`` hold runtime values, packed ``i8``/``i16`` fields as unsigned ints of their width.
* :class:`I31Ref` (``ref.i31``): no identity, equal when the 31-bit values are.
* :class:`HostRef` (``ref.host N`` of the spec scripts): a host reference inside the ``any`` hierarchy,
  what ``any.convert_extern`` makes of a host ``ref.extern N``.
* :class:`ExnInst` (``throw``): an exception object, tag instance + payload values; ``exnref`` values
  are these objects.

``extern.convert_any`` wraps an internal reference ``r`` as ``ExternRef(r)`` (:mod:`.objects`) and
``any.convert_extern`` unwraps it; a host ``ExternRef(N)`` (N an int) converts to ``HostRef(N)`` and back,
so the round trip is the identity, as the spec requires.

Heap objects are charged to the store's :class:`~vm.runtime.limits.Quota` as *fields* when they are
allocated (a struct: its field count, at least 1; an array: its length, at least 1), so neither a module
nor a snapshot can make the host allocate without bound.  The store never frees them: a store lives for one
script or one trial.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

from ..types import RefType, StructType
from ..valid.canon import heap_sub_c
from .limits import Quota
from .objects import ExternRef, FuncInst, ValueRef

__all__ = ["ArrayInst", "ExnInst", "HostRef", "I31Ref", "StructInst", "any_convert_extern", "extern_convert_any",
           "field_mask", "is_heap_object", "new_array", "new_array_fixed", "new_struct", "ref_i31",
           "ref_matches", "runtime_heap_type", "struct_masks"]


class I31Ref(ValueRef):
    """``(ref i31)``: an unboxed 31-bit scalar.  ``value`` is unsigned (0 <= value < 2**31)."""

    __slots__ = ()
    kind = "i31"


class HostRef(ValueRef):
    """``(ref.host N)``: a host value in the ``any`` hierarchy (not ``eq``: no identity test in Wasm)."""

    __slots__ = ()
    kind = "host"


class StructInst:
    """A struct object: canonical type key and field values (identity = this Python object)."""

    __slots__ = ("canon", "fields", "__weakref__")
    kind = "struct"

    def __init__(self, canon: Any, fields: List[Any]):
        self.canon = canon
        self.fields = fields

    def __repr__(self) -> str:
        return f"<struct {id(self):#x} {len(self.fields)} fields>"


class ArrayInst:
    """An array object: canonical type key and element values (identity = this Python object)."""

    __slots__ = ("canon", "elements", "__weakref__")
    kind = "array"

    def __init__(self, canon: Any, elements: List[Any]):
        self.canon = canon
        self.elements = elements

    def __repr__(self) -> str:
        return f"<array {id(self):#x} len {len(self.elements)}>"


class ExnInst:
    """An exception object: the tag instance it was thrown with and its payload (runtime values typed
    by the tag's parameter types).  Identity matters: ``throw_ref`` rethrows the same object."""

    __slots__ = ("tag", "payload", "__weakref__")
    kind = "exn"

    def __init__(self, tag: Any, payload: List[Any]):
        self.tag = tag
        self.payload = payload

    def __repr__(self) -> str:
        return f"<exn {id(self):#x} {len(self.payload)} values>"


def is_heap_object(x: Any) -> bool:
    """A reference with identity that a snapshot's heap section holds (struct, array, exception)."""
    return type(x) in (StructInst, ArrayInst, ExnInst)


# -- the operations shared by the engine (vm.exec.gc) and constant expressions (BaseStore.eval_const) ---

_PACKED_MASK = {"i8": 0xFF, "i16": 0xFFFF}


def field_mask(storage: Any) -> int:
    """The mask that stores a value into a field of ``storage`` type: 0xFF / 0xFFFF for the packed
    ``i8``/``i16`` (an i32 operand is wrapped to the width), 0 (store unchanged) for everything else."""
    return _PACKED_MASK.get(storage, 0) if isinstance(storage, str) else 0


def struct_masks(comp: StructType) -> Tuple[int, ...]:
    """:func:`field_mask` of each field of a struct type, in field order."""
    return tuple(field_mask(f.storage) for f in comp.fields)


def new_struct(quota: Quota, canon: Any, masks: Sequence[int], values: Sequence[Any]) -> StructInst:
    """``struct.new``: a struct of canonical type ``canon`` with ``values`` (packed fields wrapped),
    charged to ``quota`` (ResourceLimit beyond it)."""
    quota.take_fields(max(1, len(values)), "struct.new")
    return StructInst(canon, [v & m if m else v for v, m in zip(values, masks)])


def new_array(quota: Quota, canon: Any, mask: int, n: int, value: Any) -> ArrayInst:
    """``array.new``: ``n`` copies of ``value``.  Charged before the list exists, so a huge ``n`` is a
    ResourceLimit, not a host MemoryError."""
    quota.take_fields(max(1, n), "array.new")
    return ArrayInst(canon, [value & mask if mask else value] * n)


def new_array_fixed(quota: Quota, canon: Any, mask: int, values: Sequence[Any]) -> ArrayInst:
    """``array.new_fixed`` (and the arrays built from segments): the elements given."""
    quota.take_fields(max(1, len(values)), "array.new_fixed")
    return ArrayInst(canon, [v & mask for v in values] if mask else list(values))


def new_exn(quota: Quota, tag: Any, payload: List[Any]) -> ExnInst:
    """``throw``: an exception object, charged like a struct of its payload (at least 1 field)."""
    quota.take_fields(max(1, len(payload)), "throw")
    return ExnInst(tag, payload)


def ref_i31(v: int) -> I31Ref:
    """``ref.i31``: the low 31 bits of an i32."""
    return I31Ref(v & 0x7FFFFFFF)


_INTERNAL = (StructInst, ArrayInst, I31Ref)


def extern_convert_any(x: Any) -> Optional[ExternRef]:
    """``extern.convert_any``: a host reference goes back to its ``ExternRef(N)``; an internal one is
    wrapped (so that ``any.convert_extern`` gives the very same object back)."""
    if x is None:
        return None
    if type(x) is HostRef:
        return ExternRef(x.value)
    return ExternRef(x)


def any_convert_extern(x: Any) -> Any:
    """``any.convert_extern``: the inverse of :func:`extern_convert_any`."""
    if x is None:
        return None
    v = x.value
    return v if isinstance(v, _INTERNAL) else HostRef(v)


def runtime_heap_type(v: Any) -> Any:
    """The canonical heap type a non-null reference value has at run time: a defined type's key
    (struct, array, function) or an abstract name (``i31``, ``any`` for a host reference, ``extern``,
    ``exn``); None for something that is not a reference."""
    t = type(v)
    if t is StructInst or t is ArrayInst or t is FuncInst:
        return v.canon
    return _ABSTRACT_OF.get(t)


_ABSTRACT_OF = {I31Ref: "i31", HostRef: "any", ExternRef: "extern", ExnInst: "exn"}


def ref_matches(v: Any, t: RefType, keys: Sequence[Any] = ()) -> bool:
    """Does the runtime value ``v`` match the reference type ``t``?  The dynamic type test of
    ``ref.test``/``ref.cast``/``br_on_cast*``, and what a restore checks a snapshot's references with.

    ``t`` is module-relative (its heap type a type index, resolved through ``keys``, the module's
    canonical keys, ``ModuleInst.canon``) or already canonical (a key or an abstract name).  Null matches
    exactly the nullable types; a non-null value matches when its :func:`runtime_heap_type` is a subtype
    of ``t``'s heap type (declared supertypes for defined types, so it works across modules)."""
    if v is None:
        return t.nullable
    h = t.heap
    if isinstance(h, int):
        h = keys[h]
    rt = runtime_heap_type(v)
    if rt is None:
        return False
    return rt == h or heap_sub_c(rt, h)
