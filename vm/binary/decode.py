"""Binary decoder: module bytes -> :class:`vm.module.Module`.

It follows the reference interpreter's ``binary/decode.ml`` closely, *including the order in which it
reads*, because the spec tests identify a malformed module by the first error the reference decoder
hits: e.g. sections are read from the whole stream (not from a slice bounded by the section size) and
the size is checked afterwards, so a missing ``end`` at the end of a code entry reports "section size
mismatch" when the next byte happens to be ``0x0b``.

The decoder does not validate; it checks only what the binary format itself requires.  Function bodies
become flat instruction lists with absolute byte offsets (see :mod:`vm.module`).
"""

from __future__ import annotations

import struct
from typing import Callable, Dict, List, Optional, Tuple

from ..errors import MalformedModule
from ..module import (
    Catch,
    Custom,
    Data,
    Elem,
    Export,
    Expr,
    Func,
    Global,
    Import,
    ImportDesc,
    Instr,
    MemArg,
    Memory,
    Module,
    Table,
    Tag,
)
from ..types import (
    ArrayType,
    FieldType,
    FuncType,
    GlobalType,
    Limits,
    MemType,
    RefType,
    StructType,
    SubType,
    TableType,
    ValType,
)
from . import opcodes as O
from .leb128 import EOF_MSG, read_s, read_u

MAGIC = b"\x00asm"
VERSION = b"\x01\x00\x00\x00"

#: Section ids in the order the binary format requires (tag section 13 sits between memory and global).
SECTION_ORDER = (1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11)

NUM_TYPE_CODES = {0x7F: "i32", 0x7E: "i64", 0x7D: "f32", 0x7C: "f64", 0x7B: "v128"}
HEAP_TYPE_CODES = {
    0x74: "noexn", 0x73: "nofunc", 0x72: "noextern", 0x71: "none", 0x70: "func", 0x6F: "extern",
    0x6E: "any", 0x6D: "eq", 0x6C: "i31", 0x6B: "struct", 0x6A: "array", 0x69: "exn",
}
_SHORTHAND_REFS = {b: RefType(True, h) for b, h in HEAP_TYPE_CODES.items()}
CATCH_KINDS = ("catch", "catch_ref", "catch_all", "catch_all_ref")
EXTERN_KINDS = ("func", "table", "memory", "global", "tag")

_F32 = struct.Struct("<I")
_F64 = struct.Struct("<Q")


def _err(msg: str, pos: int) -> MalformedModule:
    return MalformedModule(msg, pos)


class Reader:
    """A cursor over the whole module (never a slice: see the module docstring)."""

    __slots__ = ("data", "pos", "len", "uses_data")

    def __init__(self, data: bytes, pos: int = 0):
        self.data = data
        self.pos = pos
        self.len = len(data)
        self.uses_data = False  # a function body used a data index (data count section required)

    # -- bytes and integers ----------------------------------------------------------------------
    def eos(self) -> bool:
        return self.pos >= self.len

    def peek(self) -> Optional[int]:
        return self.data[self.pos] if self.pos < self.len else None

    def byte(self) -> int:
        p = self.pos
        if p >= self.len:
            raise _err(EOF_MSG, self.len)
        self.pos = p + 1
        return self.data[p]

    def bytes_(self, n: int) -> bytes:
        p = self.pos
        if n < 0 or p + n > self.len:
            raise _err(EOF_MSG, self.len)
        self.pos = p + n
        return self.data[p:p + n]

    def u32(self) -> int:
        v, self.pos = read_u(self.data, self.pos, 32)
        return v

    def u64(self) -> int:
        v, self.pos = read_u(self.data, self.pos, 64)
        return v

    def s32(self) -> int:
        v, self.pos = read_s(self.data, self.pos, 32)
        return v

    def s33(self) -> int:
        v, self.pos = read_s(self.data, self.pos, 33)
        return v

    def s64(self) -> int:
        v, self.pos = read_s(self.data, self.pos, 64)
        return v

    def len32(self) -> int:
        pos = self.pos
        n = self.u32()
        if n > self.len - pos:
            raise _err("length out of bounds", pos)
        return n

    def name(self) -> str:
        pos = self.pos
        raw = self.bytes_(self.len32())
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _err("malformed UTF-8 encoding", pos) from None

    def vec(self, f: Callable[[], object]) -> list:
        return [f() for _ in range(self.len32())]

    # -- types -------------------------------------------------------------------------------------
    def heaptype(self):
        pos = self.pos
        b = self.peek()
        if b is not None and b < 0x40:  # one-byte type index (fast path)
            self.pos = pos + 1
            return b
        try:
            v = self.s33()
            if v >= 0:
                return v
        except MalformedModule:
            pass
        self.pos = pos
        b = self.byte()
        if b & 0x80:
            raise _err("integer representation too long", self.pos)
        h = HEAP_TYPE_CODES.get(b)
        if h is None:
            raise _err("malformed heap type", pos)
        return h

    def reftype(self) -> RefType:
        pos = self.pos
        b = self.byte()
        r = _SHORTHAND_REFS.get(b)
        if r is not None:
            return r
        if b == 0x63:
            return RefType(True, self.heaptype())
        if b == 0x64:
            return RefType(False, self.heaptype())
        if b & 0x80:
            raise _err("integer representation too long", self.pos)
        raise _err("malformed reference type", pos)

    def valtype(self) -> ValType:
        b = self.peek()
        t = NUM_TYPE_CODES.get(b) if b is not None else None  # None: end of input (reftype reports it)
        if t is not None:
            self.pos += 1
            return t
        return self.reftype()

    def storagetype(self):
        b = self.peek()
        if b == 0x78:
            self.pos += 1
            return "i8"
        if b == 0x77:
            self.pos += 1
            return "i16"
        pos = self.pos
        try:
            return self.valtype()
        except MalformedModule as e:
            if e.message == "malformed reference type":
                raise _err("malformed storage type", pos) from None
            raise

    def mutability(self) -> bool:
        b = self.byte()
        if b == 0:
            return False
        if b == 1:
            return True
        raise _err("malformed mutability", self.pos - 1)

    def fieldtype(self) -> FieldType:
        t = self.storagetype()
        return FieldType(t, self.mutability())

    def comptype(self):
        b = self.byte()
        if b == 0x60:
            params = tuple(self.vec(self.valtype))
            results = tuple(self.vec(self.valtype))
            return FuncType(params, results)
        if b == 0x5F:
            return StructType(tuple(self.vec(self.fieldtype)))
        if b == 0x5E:
            return ArrayType(self.fieldtype())
        if b & 0x80:
            raise _err("integer representation too long", self.pos)
        raise _err("malformed definition type", self.pos - 1)

    def subtype(self) -> SubType:
        b = self.peek()
        if b == 0x50 or b == 0x4F:
            self.pos += 1
            supers = tuple(self.vec(self.typeidx))
            return SubType(b == 0x4F, supers, self.comptype())
        return SubType(True, (), self.comptype())

    def typeidx(self) -> int:
        return self.u32()

    def limits(self, allow_shared: bool) -> Tuple[Limits, bool, bool]:
        flags = self.byte()
        allowed = 0x07 if allow_shared else 0x05
        if flags & ~allowed & 0xFF:
            raise _err("malformed limits flags", self.pos - 1)
        mn = self.u64()
        mx = self.u64() if flags & 1 else None
        return Limits(mn, mx), bool(flags & 4), bool(flags & 2)

    def tabletype(self) -> TableType:
        rt = self.reftype()
        lim, is64, _ = self.limits(False)
        return TableType(rt, lim, is64)

    def memtype(self) -> MemType:
        lim, is64, shared = self.limits(True)
        return MemType(lim, is64, shared)

    def globaltype(self) -> GlobalType:
        t = self.valtype()
        return GlobalType(t, self.mutability())

    def tagtype(self) -> int:
        if self.byte() != 0:
            raise _err("zero byte expected", self.pos - 1)
        return self.u32()

    # -- instructions ------------------------------------------------------------------------------
    def blocktype(self):
        b = self.peek()
        if b == 0x40:
            self.pos += 1
            return None
        if b is not None and b < 0x40:
            self.pos += 1
            return b
        pos = self.pos
        try:
            v = self.s33()
            if v >= 0:
                return v
        except MalformedModule:
            pass
        self.pos = pos
        return self.valtype()

    def memarg(self) -> MemArg:
        pos = self.pos
        flags = self.u32()
        if flags >= 0x80:
            raise _err("malformed memop flags", pos)
        mem = self.u32() if flags & 0x40 else 0
        offset = self.u64()
        return MemArg(flags & 0x3F, offset, mem)

    def catch(self) -> Catch:
        k = self.byte()
        if k == 0 or k == 1:
            tag = self.u32()
            return Catch(CATCH_KINDS[k], tag, self.u32())
        if k == 2 or k == 3:
            return Catch(CATCH_KINDS[k], None, self.u32())
        raise _err("malformed catch clause", self.pos - 1)

    def imm(self, kind: str):
        return _IMM_READERS[kind](self)

    def expr(self) -> Expr:
        """Instructions up to and including the ``end`` that closes the expression."""
        data = self.data
        out: List[Instr] = []
        # control stack of open block opcodes: "b" (block/loop/try_table), "i" (if, no else yet),
        # "e" (if after else), "t" (legacy try)
        ctl: List[str] = []
        primary = O.PRIMARY
        prefixed = O.PREFIXED
        readers = _IMM_READERS
        n = self.len
        while True:
            pos = self.pos
            if pos >= n:
                raise _err(EOF_MSG, n)
            b = data[pos]
            self.pos = pos + 1
            if b == 0x0B:
                out.append(Instr("end", None, pos))
                if not ctl:
                    return out
                ctl.pop()
                continue
            if b == 0x05:
                if not ctl or ctl[-1] != "i":
                    raise _err("END opcode expected", pos)
                ctl[-1] = "e"
                out.append(Instr("else", None, pos))
                continue
            ent = primary.get(b)
            sub = 0
            if ent is None:
                tbl = prefixed.get(b)
                if tbl is None:
                    raise _err(f"illegal opcode {b:02x}", pos)
                sub = self.u32()
                ent = tbl.get(sub)
                if ent is None:
                    raise _err(f"illegal opcode {b:02x} {sub:02x}", pos)
            name, kind = ent
            imm: object
            if kind == "none":
                imm = None
            elif kind == "cast":
                imm = RefType(bool(sub & 1), self.heaptype())  # 0xFB 21/23 are the nullable forms
            else:
                imm = readers[kind](self)
            if name in O.BLOCK_OPS:
                ctl.append("i" if name == "if" else ("t" if name == "try" else "b"))
            elif name == "catch" or name == "catch_all":
                if not ctl or ctl[-1] != "t":
                    raise _err("END opcode expected", pos)
            elif name == "delegate":
                if not ctl or ctl[-1] != "t":
                    raise _err("END opcode expected", pos)
                ctl.pop()
            elif name in O.DATA_OPS:
                self.uses_data = True
            out.append(Instr(name, imm, pos))


def _i32(r: Reader) -> int:
    return r.s32() & 0xFFFFFFFF


def _i64(r: Reader) -> int:
    return r.s64() & 0xFFFFFFFFFFFFFFFF


def _br_table(r: Reader):
    labels = tuple(r.vec(r.u32))
    return (labels, r.u32())


def _br_on_cast(r: Reader):
    pos = r.pos
    flags = r.byte()
    if flags & 0xFC:
        raise _err("malformed br_on_cast flags", pos)
    label = r.u32()
    h1 = r.heaptype()
    h2 = r.heaptype()
    return (label, RefType(bool(flags & 1), h1), RefType(bool(flags & 2), h2))


def _two(r: Reader):
    a = r.u32()
    return (a, r.u32())


def _swapped(r: Reader):
    a = r.u32()
    b = r.u32()
    return (b, a)


def _call_indirect(r: Reader):
    y = r.u32()
    return (y, r.u32())


def _zero(r: Reader):
    if r.byte() != 0:
        raise _err("zero byte expected", r.pos - 1)
    return None


_IMM_READERS: Dict[str, Callable[[Reader], object]] = {
    O.K_BLOCK: Reader.blocktype,
    O.K_TRY_TABLE: lambda r: (r.blocktype(), tuple(r.vec(r.catch))),
    O.K_LABEL: Reader.u32,
    O.K_BR_TABLE: _br_table,
    O.K_BR_ON_CAST: _br_on_cast,
    O.K_FUNC: Reader.u32,
    O.K_CALL_INDIRECT: _call_indirect,
    O.K_TYPE: Reader.u32,
    O.K_SELECT_T: lambda r: tuple(r.vec(r.valtype)),
    O.K_LOCAL: Reader.u32,
    O.K_GLOBAL: Reader.u32,
    O.K_TABLE: Reader.u32,
    O.K_ELEM: Reader.u32,
    O.K_DATA: Reader.u32,
    O.K_TAG: Reader.u32,
    O.K_MEMARG: Reader.memarg,
    O.K_MEMARG_LANE: lambda r: (r.memarg(), r.byte()),
    O.K_MEM: Reader.u32,
    O.K_MEM2: _two,
    O.K_MEM_INIT: _swapped,
    O.K_TABLE2: _two,
    O.K_TABLE_INIT: _swapped,
    O.K_I32: _i32,
    O.K_I64: _i64,
    O.K_F32: lambda r: _F32.unpack(r.bytes_(4))[0],
    O.K_F64: lambda r: _F64.unpack(r.bytes_(8))[0],
    O.K_V128: lambda r: int.from_bytes(r.bytes_(16), "little"),
    O.K_LANE: Reader.byte,
    O.K_SHUFFLE: lambda r: tuple(r.bytes_(16)),
    O.K_HEAPTYPE: Reader.heaptype,
    O.K_TYPE_FIELD: _two,
    O.K_TYPE_N: _two,
    O.K_TYPE_DATA: _two,
    O.K_TYPE_ELEM: _two,
    O.K_TYPE2: _two,
    O.K_ZERO: _zero,
}


# -- sections ---------------------------------------------------------------------------------------
def _import(r: Reader) -> Import:
    module = r.name()
    name = r.name()
    k = r.byte()
    if k == 0:
        desc = ImportDesc("func", r.u32())
    elif k == 1:
        desc = ImportDesc("table", r.tabletype())
    elif k == 2:
        desc = ImportDesc("memory", r.memtype())
    elif k == 3:
        desc = ImportDesc("global", r.globaltype())
    elif k == 4:
        desc = ImportDesc("tag", r.tagtype())
    else:
        raise _err("malformed import kind", r.pos - 1)
    return Import(module, name, desc)


def _table(r: Reader) -> Table:
    d = r.data
    p = r.pos
    if p + 1 < r.len and d[p] == 0x40 and d[p + 1] == 0x00:
        r.pos = p + 2
        tt = r.tabletype()
        return Table(tt, r.expr())
    return Table(r.tabletype())


def _export(r: Reader) -> Export:
    name = r.name()
    k = r.byte()
    if k > 4:
        raise _err("malformed export kind", r.pos - 1)
    return Export(name, EXTERN_KINDS[k], r.u32())


_FUNC_NONNULL = RefType(False, "func")
_FUNCREF = RefType(True, "func")


def _elem_kind(r: Reader) -> RefType:
    if r.byte() != 0:
        raise _err("malformed element kind", r.pos - 1)
    return _FUNC_NONNULL


def _elem(r: Reader) -> Elem:
    pos = r.pos
    form = r.u32()
    if form > 7:
        raise _err("malformed elements segment kind", pos)
    table = 0
    offset = None
    if form & 1:
        mode = "declarative" if form & 2 else "passive"
    else:
        mode = "active"
        if form & 2:
            table = r.u32()
        offset = r.expr()
    if form & 4:
        if form == 4:
            rt = _FUNCREF
        else:
            rt = r.reftype()
        init = r.vec(r.expr)
    else:
        rt = _FUNC_NONNULL if form == 0 else _elem_kind(r)
        init = [[Instr("ref.func", x, -1), Instr("end")] for x in r.vec(r.u32)]
    return Elem(mode, rt, init, table, offset)


def _data(r: Reader) -> Data:
    pos = r.pos
    form = r.u32()
    if form == 0:
        offset = r.expr()
        return Data("active", r.bytes_(r.len32()), 0, offset)
    if form == 1:
        return Data("passive", r.bytes_(r.len32()))
    if form == 2:
        mem = r.u32()
        offset = r.expr()
        return Data("active", r.bytes_(r.len32()), mem, offset)
    raise _err("malformed data segment kind", pos)


def _code(r: Reader) -> Tuple[List[Tuple[int, ValType]], Expr, int, int]:
    size = r.len32()
    start = r.pos
    lpos = r.pos
    locs = []
    total = 0
    for _ in range(r.len32()):
        n = r.u32()
        t = r.valtype()
        total += n
        locs.append((n, t))
    if total >= 1 << 32:
        raise _err("too many locals", lpos)
    body = r.expr()
    if r.pos != start + size:
        raise _err("section size mismatch", start)
    return locs, body, start, size


def _rec(r: Reader, m: Module) -> None:
    if r.peek() == 0x4E:
        r.pos += 1
        group = r.vec(r.subtype)
        m.types.extend(group)
        m.rec_sizes.append(len(group))
    else:
        m.types.append(r.subtype())
        m.rec_sizes.append(1)


def decode_module(data: bytes) -> Module:
    """Decode a module binary; raises :class:`MalformedModule` with the spec's message."""
    data = bytes(data)
    r = Reader(data)
    magic = r.bytes_(4)
    if magic != MAGIC:
        raise _err("magic header not detected", 0)
    version = r.bytes_(4)
    if version != VERSION:
        raise _err("unknown binary version", 4)
    m = Module()
    func_types: List[int] = []
    codes: list = []
    uses_data = False
    slot = 0  # index into SECTION_ORDER of the next section we may see
    last = 0  # id of the last non-custom section
    n = r.len
    while r.pos < n:
        sid = data[r.pos]
        if sid > 13:
            raise _err("malformed section id", r.pos)
        if sid == 0:
            r.pos += 1
            size = r.len32()
            start = r.pos
            name = r.name()
            content = r.bytes_(size - (r.pos - start))
            m.customs.append(Custom(name, content, last))
            continue
        try:
            idx = SECTION_ORDER.index(sid, slot)
        except ValueError:
            raise _err("unexpected content after last section", r.pos) from None
        slot = idx + 1
        last = sid
        r.pos += 1
        size = r.len32()
        start = r.pos
        if sid == 1:
            for _ in range(r.len32()):
                _rec(r, m)
        elif sid == 2:
            m.imports = r.vec(lambda: _import(r))
        elif sid == 3:
            func_types = r.vec(r.u32)
        elif sid == 4:
            m.tables = r.vec(lambda: _table(r))
        elif sid == 5:
            m.memories = [Memory(t) for t in r.vec(r.memtype)]
        elif sid == 13:
            m.tags = [Tag(t) for t in r.vec(r.tagtype)]
        elif sid == 6:
            m.globals = r.vec(lambda: Global(r.globaltype(), r.expr()))
        elif sid == 7:
            m.exports = r.vec(lambda: _export(r))
        elif sid == 8:
            m.start = r.u32()
        elif sid == 9:
            m.elems = r.vec(lambda: _elem(r))
        elif sid == 12:
            m.data_count = r.u32()
        elif sid == 10:
            r.uses_data = False  # only function bodies count (like the reference's Free.func)
            codes = r.vec(lambda: _code(r))
            uses_data = r.uses_data
        elif sid == 11:
            m.datas = r.vec(lambda: _data(r))
        if r.pos != start + size:
            raise _err("section size mismatch", start)
    if len(func_types) != len(codes):
        raise _err("function and code section have inconsistent lengths", n)
    if m.data_count is not None and m.data_count != len(m.datas):
        raise _err("data count and data section have inconsistent lengths", n)
    if m.data_count is None and uses_data:
        raise _err("data count section required", n)
    m.funcs = [
        Func(t, locs, body, start, size) for t, (locs, body, start, size) in zip(func_types, codes)
    ]
    return m
