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

from typing import Any, List

__all__ = ["ArrayInst", "ExnInst", "HostRef", "I31Ref", "StructInst", "is_heap_object"]


class I31Ref:
    """``(ref i31)``: an unboxed 31-bit scalar.  ``value`` is unsigned (0 <= value < 2**31)."""

    __slots__ = ("value",)
    kind = "i31"

    def __init__(self, value: int):
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, I31Ref) and other.value == self.value

    def __hash__(self) -> int:
        return hash(("i31", self.value))

    def __repr__(self) -> str:
        return f"I31Ref({self.value})"


class HostRef:
    """``(ref.host N)``: a host value in the ``any`` hierarchy (not ``eq``: no identity test in Wasm)."""

    __slots__ = ("value",)
    kind = "host"

    def __init__(self, value: Any):
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HostRef) and other.value == self.value

    def __hash__(self) -> int:
        return hash(("host", self.value))

    def __repr__(self) -> str:
        return f"HostRef({self.value!r})"


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
