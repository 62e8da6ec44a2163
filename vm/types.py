"""WebAssembly types, shared by the decoder, encoder, validator, runtime and snapshot.

Value types are plain interned strings for the number/vector types (cheap to compare in the hot
validator loop) and :class:`RefType` for references.  Heap types are either an abstract name
(``"func"``, ``"extern"``, ``"any"``, ...) or a *module-relative* type index (``int``).  Type
indices only mean something next to the module that defines them; comparing types across modules
goes through canonicalisation (:func:`vm.runtime.canon`), never through these objects directly.

Everything here is immutable and hashable so that it can be shared between instructions, used as
dictionary keys and compared with ``==`` in round-trip tests.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Tuple, Union

I32 = "i32"
I64 = "i64"
F32 = "f32"
F64 = "f64"
V128 = "v128"
NUM_TYPES = (I32, I64, F32, F64)

# Abstract heap types (Wasm 3.0).  Bottom types: none, nofunc, noextern, noexn.
ABSTRACT_HEAP_TYPES = (
    "func", "extern", "any", "eq", "i31", "struct", "array",
    "none", "nofunc", "noextern", "exn", "noexn",
)

HeapType = Union[str, int]


class RefType(NamedTuple):
    """A reference type ``(ref null? heap)``.  In a module, ``heap`` is an abstract heap type or a type
    index; in canonical form (:mod:`vm.valid.canon`) a type index becomes that type's key (a tuple)."""

    nullable: bool
    heap: Union[HeapType, Tuple[Any, ...]]

    def __repr__(self) -> str:  # compact, WAT-like; shows up in error messages and YAML
        if self.nullable and isinstance(self.heap, str):
            return f"{self.heap}ref"
        return f"(ref {'null ' if self.nullable else ''}{self.heap})"


FUNCREF = RefType(True, "func")
EXTERNREF = RefType(True, "extern")
EXNREF = RefType(True, "exn")

ValType = Union[str, RefType]

# Packed storage types for GC struct/array fields.
I8 = "i8"
I16 = "i16"
StorageType = Union[str, RefType]


class FuncType(NamedTuple):
    params: Tuple[ValType, ...]
    results: Tuple[ValType, ...]


class FieldType(NamedTuple):
    storage: StorageType
    mutable: bool


class StructType(NamedTuple):
    fields: Tuple[FieldType, ...]


class ArrayType(NamedTuple):
    field: FieldType


CompType = Union[FuncType, StructType, ArrayType]


class SubType(NamedTuple):
    """A defined type.  ``final=True, supers=()`` is what a plain MVP ``(type (func ...))`` is."""

    final: bool
    supers: Tuple[int, ...]
    comp: CompType


class Limits(NamedTuple):
    min: int
    max: Optional[int]


class MemType(NamedTuple):
    limits: Limits
    is64: bool = False
    shared: bool = False
    page_size_log2: int = 16


class TableType(NamedTuple):
    elem: RefType
    limits: Limits
    is64: bool = False


class GlobalType(NamedTuple):
    type: ValType
    mutable: bool


class TagType(NamedTuple):
    typeidx: int


BlockType = Union[None, ValType, int]
"""``None`` = no params/results; a value type = one result; ``int`` = a type index."""


def is_num(t: ValType) -> bool:
    return isinstance(t, str)


def is_ref(t: ValType) -> bool:
    return isinstance(t, RefType)


def default_value(t: ValType):
    """The zero value of a type in the runtime representation (ints/bit patterns, ``None`` = null).

    Non-nullable reference types have no default; callers must check defaultability first.
    """
    if isinstance(t, RefType):
        return None
    return 0
