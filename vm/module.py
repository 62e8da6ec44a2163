"""Module structures (the abstract syntax): what the decoder produces and the encoder consumes.

Instructions
------------
An instruction is an :class:`Instr` with ``op`` (the text-format mnemonic, e.g. ``"i32.add"``,
``"br_table"``, ``"memory.init"``), ``imm`` (its immediates, shape below) and ``offset`` (absolute byte
offset of its opcode in the module binary; ``-1`` for instructions that were built, not decoded).
``offset`` is not part of equality, so ``decode(encode(m)) == m`` holds even when the original used
non-minimal LEB128s.

Shapes of ``imm`` (all ints are plain Python ints; indices are module-relative):

* no immediates: ``None`` (``nop``, ``i32.add``, untyped ``select``, ``return``, ``ref.is_null`` ...)
* ``block``/``loop``/``if``: a :data:`vm.types.BlockType` (``None`` | valtype | type index)
* ``try_table``: ``(blocktype, catches)`` with catches a tuple of :class:`Catch`
* legacy ``try``: blocktype; ``catch``: tagidx; ``catch_all``: ``None``; ``delegate``/``rethrow``: labelidx
* ``br``/``br_if``/``br_on_null``/``br_on_non_null``: labelidx
* ``br_table``: ``(labels_tuple, default_label)``
* ``br_on_cast``/``br_on_cast_fail``: ``(labelidx, reftype1, reftype2)``
* ``call``/``return_call``/``ref.func``: funcidx
* ``call_indirect``/``return_call_indirect``: ``(typeidx, tableidx)``
* ``call_ref``/``return_call_ref``: typeidx
* typed ``select``: tuple of valtypes (``(t,)``); untyped ``select``: ``None``
* ``local.*``: localidx; ``global.*``: globalidx
* ``table.get/set/size/grow/fill``: tableidx; ``table.copy``: ``(dst_table, src_table)``;
  ``table.init``: ``(tableidx, elemidx)``; ``elem.drop``: elemidx
* loads/stores (incl. SIMD and atomics): :class:`MemArg`; SIMD lane loads/stores:
  ``(MemArg, lane)``
* ``memory.size/grow/fill``: memidx; ``memory.copy``: ``(dst_mem, src_mem)``;
  ``memory.init``: ``(memidx, dataidx)``; ``data.drop``: dataidx
* ``i32.const``/``i64.const``: the *unsigned* bit pattern; ``f32.const``/``f64.const``: the bit pattern
  as an int (never a Python float); ``v128.const``: a 128-bit unsigned int (little-endian lanes)
* SIMD ``*.extract_lane*``/``*.replace_lane``: lane; ``i8x16.shuffle``: tuple of 16 lanes
* ``ref.null``: heap type; ``ref.test``/``ref.cast``: :class:`vm.types.RefType`
* ``struct.new``/``struct.new_default``/``array.new*`` (not fixed/data/elem)/``array.get*``/``array.set``/
  ``array.fill``: typeidx; ``struct.get*``/``struct.set``: ``(typeidx, fieldidx)``;
  ``array.new_fixed``: ``(typeidx, n)``; ``array.new_data``/``array.init_data``: ``(typeidx, dataidx)``;
  ``array.new_elem``/``array.init_elem``: ``(typeidx, elemidx)``; ``array.copy``: ``(dst_type, src_type)``
* ``throw``: tagidx; ``throw_ref``: ``None``

Function bodies are a flat list of instructions including the final ``end``.  A *pc* (what a snapshot
stores) is ``instr.offset - func.body_offset``: the byte offset of the instruction within the function's
code entry, counted from the first byte after the entry's size (i.e. from the locals vector).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, NamedTuple, Optional, Tuple

from .types import FuncType, GlobalType, MemType, RefType, SubType, TableType, ValType


class Instr:
    """One instruction.  See the module docstring for ``imm`` shapes."""

    __slots__ = ("op", "imm", "offset")

    def __init__(self, op: str, imm: Any = None, offset: int = -1):
        self.op = op
        self.imm = imm
        self.offset = offset

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Instr) and self.op == other.op and self.imm == other.imm

    def __hash__(self) -> int:
        return hash((self.op, self.imm))

    def __repr__(self) -> str:
        if self.imm is None:
            return f"Instr({self.op!r})"
        return f"Instr({self.op!r}, {self.imm!r})"


class MemArg(NamedTuple):
    align: int  # log2 of the alignment
    offset: int
    memidx: int = 0


class Catch(NamedTuple):
    kind: str  # "catch", "catch_ref", "catch_all", "catch_all_ref"
    tag: Optional[int]
    label: int


Expr = List[Instr]


class ImportDesc(NamedTuple):
    """``kind`` is one of ``func``, ``table``, ``memory``, ``global``, ``tag``; ``type`` is a typeidx
    for func/tag, else the :class:`TableType` / :class:`MemType` / :class:`GlobalType`."""

    kind: str
    type: Any


class Import(NamedTuple):
    module: str
    name: str
    desc: ImportDesc


# ``kind`` is func | table | memory | global | tag.  The functional form on purpose: the field ``index``
# shadows ``tuple.index``, which type checkers report as an incompatible override in the class form.
Export = NamedTuple("Export", [("name", str), ("kind", str), ("index", int)])  # noqa: UP014


@dataclass
class Func:
    typeidx: int
    locals: List[Tuple[int, ValType]]  # run-length as in the binary: (count, type)
    body: Expr
    body_offset: int = field(default=-1, compare=False)  # absolute offset of the entry body
    body_size: int = field(default=-1, compare=False)

    def local_types(self) -> List[ValType]:
        out: List[ValType] = []
        for n, t in self.locals:
            out.extend([t] * n)
        return out


@dataclass
class Table:
    type: TableType
    init: Optional[Expr] = None  # 3.0 tables may carry an initialiser expression


@dataclass
class Memory:
    type: MemType


@dataclass
class Global:
    type: GlobalType
    init: Expr


@dataclass
class Elem:
    mode: str  # "active" | "passive" | "declarative"
    type: RefType
    init: List[Expr]  # one constant expression per element (funcidx forms become [ref.func i, end])
    table: int = 0
    offset: Optional[Expr] = None


@dataclass
class Data:
    mode: str  # "active" | "passive"
    init: bytes
    memory: int = 0
    offset: Optional[Expr] = None


@dataclass
class Tag:
    typeidx: int


@dataclass
class Custom:
    name: str
    data: bytes
    after: int = field(default=0, compare=True)  # id of the last non-custom section before it (0 = none)


@dataclass
class Module:
    types: List[SubType] = field(default_factory=list)  # flattened: index = type index
    rec_sizes: List[int] = field(default_factory=list)  # sizes of the rec groups, in order
    imports: List[Import] = field(default_factory=list)
    funcs: List[Func] = field(default_factory=list)  # defined functions only
    tables: List[Table] = field(default_factory=list)  # defined only
    memories: List[Memory] = field(default_factory=list)  # defined only
    globals: List[Global] = field(default_factory=list)  # defined only
    tags: List[Tag] = field(default_factory=list)  # defined only
    exports: List[Export] = field(default_factory=list)
    start: Optional[int] = None
    elems: List[Elem] = field(default_factory=list)
    datas: List[Data] = field(default_factory=list)
    data_count: Optional[int] = None
    customs: List[Custom] = field(default_factory=list)

    # -- index spaces (imports first, then definitions) -------------------------------------
    def imported(self, kind: str) -> List[Import]:
        return [i for i in self.imports if i.desc.kind == kind]

    def func_type(self, typeidx: int) -> FuncType:
        comp = self.types[typeidx].comp
        if not isinstance(comp, FuncType):
            raise TypeError(f"type {typeidx} is not a function type")
        return comp

    def func_typeidxs(self) -> List[int]:
        """Type index of every function in the function index space."""
        return [i.desc.type for i in self.imports if i.desc.kind == "func"] + [
            f.typeidx for f in self.funcs
        ]

    def table_types(self) -> List[TableType]:
        return [i.desc.type for i in self.imports if i.desc.kind == "table"] + [
            t.type for t in self.tables
        ]

    def mem_types(self) -> List[MemType]:
        return [i.desc.type for i in self.imports if i.desc.kind == "memory"] + [
            m.type for m in self.memories
        ]

    def global_types(self) -> List[GlobalType]:
        return [i.desc.type for i in self.imports if i.desc.kind == "global"] + [
            g.type for g in self.globals
        ]

    def tag_typeidxs(self) -> List[int]:
        return [i.desc.type for i in self.imports if i.desc.kind == "tag"] + [
            t.typeidx for t in self.tags
        ]
