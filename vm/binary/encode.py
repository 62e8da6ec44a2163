"""Binary encoder: :class:`vm.module.Module` -> canonical module bytes.

Canonical means: minimal LEB128s, the shortest form of every construct (bare sub types for final
types without supertypes, rec groups only for groups of size != 1, element segment forms 0-3 when
every element is a plain ``ref.func`` of a ``(ref func)`` segment, data form 0 for memory 0), and
sections only when they have content or a custom section is placed after them.  The resume-module
generator builds modules and relies on ``decode_module(encode_module(m)) == m``.
"""

from __future__ import annotations

import struct
from typing import Any, Callable, Dict, Iterable, List, Optional, cast

from ..module import Custom, Data, Elem, Expr, Func, Import, Instr, MemArg, Module
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
)
from . import opcodes as O
from .decode import HEAP_TYPE_CODES, MAGIC, NUM_TYPE_CODES, SECTION_ORDER, VERSION
from .leb128 import encode_s, encode_u

_NUM_CODE = {v: k for k, v in NUM_TYPE_CODES.items()}
_HEAP_CODE = {v: k for k, v in HEAP_TYPE_CODES.items()}
_CATCH_CODE = {"catch": 0, "catch_ref": 1, "catch_all": 2, "catch_all_ref": 3}
_EXTERN_CODE = {"func": 0, "table": 1, "memory": 2, "global": 3, "tag": 4}
_F32 = struct.Struct("<I")
_F64 = struct.Struct("<Q")
_FUNC_NONNULL = RefType(False, "func")
_FUNCREF = RefType(True, "func")


def _vec(items: Iterable[bytes]) -> bytes:
    items = list(items)
    return encode_u(len(items)) + b"".join(items)


def encode_name(s: str) -> bytes:
    raw = s.encode("utf-8")
    return encode_u(len(raw)) + raw


# -- types -------------------------------------------------------------------------------------------
def encode_heaptype(h) -> bytes:
    if isinstance(h, int):
        return encode_s(h)
    return bytes((_HEAP_CODE[h],))


def encode_reftype(t: RefType) -> bytes:
    if t.nullable and isinstance(t.heap, str):
        return bytes((_HEAP_CODE[t.heap],))
    return (b"\x63" if t.nullable else b"\x64") + encode_heaptype(t.heap)


def encode_valtype(t) -> bytes:
    if isinstance(t, RefType):
        return encode_reftype(t)
    return bytes((_NUM_CODE[t],))


def _storagetype(t) -> bytes:
    if t == "i8":
        return b"\x78"
    if t == "i16":
        return b"\x77"
    return encode_valtype(t)


def _fieldtype(f: FieldType) -> bytes:
    return _storagetype(f.storage) + (b"\x01" if f.mutable else b"\x00")


def _comptype(c) -> bytes:
    if isinstance(c, FuncType):
        return b"\x60" + _vec(map(encode_valtype, c.params)) + _vec(map(encode_valtype, c.results))
    if isinstance(c, StructType):
        return b"\x5f" + _vec(map(_fieldtype, c.fields))
    if isinstance(c, ArrayType):
        return b"\x5e" + _fieldtype(c.field)
    raise TypeError(f"not a composite type: {c!r}")


def encode_subtype(st: SubType) -> bytes:
    if st.final and not st.supers:
        return _comptype(st.comp)
    return (b"\x4f" if st.final else b"\x50") + _vec(map(encode_u, st.supers)) + _comptype(st.comp)


def _limits(lim: Limits, is64: bool, shared: bool = False) -> bytes:
    flags = (1 if lim.max is not None else 0) | (2 if shared else 0) | (4 if is64 else 0)
    out = bytes((flags,)) + encode_u(lim.min)
    if lim.max is not None:
        out += encode_u(lim.max)
    return out


def encode_tabletype(t: TableType) -> bytes:
    return encode_reftype(t.elem) + _limits(t.limits, t.is64)


def encode_memtype(t: MemType) -> bytes:
    if t.page_size_log2 != 16:
        raise ValueError("custom page sizes have no encoding in Wasm 3.0")
    return _limits(t.limits, t.is64, t.shared)


def encode_globaltype(t: GlobalType) -> bytes:
    return encode_valtype(t.type) + (b"\x01" if t.mutable else b"\x00")


def encode_blocktype(bt) -> bytes:
    if bt is None:
        return b"\x40"
    if isinstance(bt, int):
        return encode_s(bt)
    return encode_valtype(bt)


# -- instructions ------------------------------------------------------------------------------------
def _memarg(m: MemArg) -> bytes:
    if m.memidx:
        return encode_u(m.align | 0x40) + encode_u(m.memidx) + encode_u(m.offset)
    return encode_u(m.align) + encode_u(m.offset)


def _s32(v: int) -> bytes:
    v &= 0xFFFFFFFF
    return encode_s(v - (1 << 32) if v & 0x80000000 else v)


def _s64(v: int) -> bytes:
    v &= 0xFFFFFFFFFFFFFFFF
    return encode_s(v - (1 << 64) if v & (1 << 63) else v)


def _pair(imm) -> bytes:
    return encode_u(imm[0]) + encode_u(imm[1])


def _swap(imm) -> bytes:
    return encode_u(imm[1]) + encode_u(imm[0])


def _br_on_cast(imm) -> bytes:
    label, t1, t2 = imm
    flags = (1 if t1.nullable else 0) | (2 if t2.nullable else 0)
    return bytes((flags,)) + encode_u(label) + encode_heaptype(t1.heap) + encode_heaptype(t2.heap)


def _catch(c) -> bytes:
    out = bytes((_CATCH_CODE[c.kind],))
    if c.kind in ("catch", "catch_ref"):
        out += encode_u(c.tag)
    return out + encode_u(c.label)


_IMM_WRITERS: Dict[str, Callable[[Any], bytes]] = {
    O.K_BLOCK: encode_blocktype,
    O.K_TRY_TABLE: lambda imm: encode_blocktype(imm[0]) + _vec(map(_catch, imm[1])),
    O.K_LABEL: encode_u,
    O.K_BR_TABLE: lambda imm: _vec(map(encode_u, imm[0])) + encode_u(imm[1]),
    O.K_BR_ON_CAST: _br_on_cast,
    O.K_FUNC: encode_u,
    O.K_CALL_INDIRECT: _pair,
    O.K_TYPE: encode_u,
    O.K_SELECT_T: lambda imm: _vec(map(encode_valtype, imm)),
    O.K_LOCAL: encode_u,
    O.K_GLOBAL: encode_u,
    O.K_TABLE: encode_u,
    O.K_ELEM: encode_u,
    O.K_DATA: encode_u,
    O.K_TAG: encode_u,
    O.K_MEMARG: _memarg,
    O.K_MEMARG_LANE: lambda imm: _memarg(imm[0]) + bytes((imm[1],)),
    O.K_MEM: encode_u,
    O.K_MEM2: _pair,
    O.K_MEM_INIT: _swap,
    O.K_TABLE2: _pair,
    O.K_TABLE_INIT: _swap,
    O.K_I32: _s32,
    O.K_I64: _s64,
    O.K_F32: _F32.pack,
    O.K_F64: _F64.pack,
    O.K_V128: lambda imm: imm.to_bytes(16, "little"),
    O.K_LANE: lambda imm: bytes((imm,)),
    O.K_SHUFFLE: bytes,
    O.K_HEAPTYPE: encode_heaptype,
    O.K_CAST: lambda imm: encode_heaptype(imm.heap),
    O.K_TYPE_FIELD: _pair,
    O.K_TYPE_N: _pair,
    O.K_TYPE_DATA: _pair,
    O.K_TYPE_ELEM: _pair,
    O.K_TYPE2: _pair,
    O.K_ZERO: lambda imm: b"\x00",
}


def encode_instr(ins: Instr) -> bytes:
    """The bytes of one instruction (opcode and immediates)."""
    op = ins.op
    imm = ins.imm
    if op == "select" and imm is not None:
        return b"\x1c" + _vec(map(encode_valtype, imm))
    prefix, code, kind = O.BY_NAME[op]
    if kind == O.K_CAST and imm.nullable:
        code += 1
    head = bytes((code,)) if prefix is None else bytes((prefix,)) + encode_u(code)
    if kind == O.K_NONE:
        return head
    return head + _IMM_WRITERS[kind](imm)


def encode_expr(expr: Expr) -> bytes:
    """Instructions as given (the list must include its closing ``end``)."""
    return b"".join(map(encode_instr, expr))


def encode_func_body(f: Func) -> bytes:
    """A code entry without its size prefix: locals then the body."""
    locs = _vec(encode_u(n) + encode_valtype(t) for n, t in f.locals)
    return locs + encode_expr(f.body)


# -- sections ----------------------------------------------------------------------------------------
def _import(i: Import) -> bytes:
    d = i.desc
    out = encode_name(i.module) + encode_name(i.name) + bytes((_EXTERN_CODE[d.kind],))
    if d.kind == "func":
        return out + encode_u(d.type)
    if d.kind == "table":
        return out + encode_tabletype(d.type)
    if d.kind == "memory":
        return out + encode_memtype(d.type)
    if d.kind == "global":
        return out + encode_globaltype(d.type)
    return out + b"\x00" + encode_u(d.type)


def _funcidx_of(e: Expr) -> Optional[int]:
    if len(e) == 2 and e[0].op == "ref.func" and e[1].op == "end":
        return e[0].imm
    return None


def _elem(e: Elem) -> bytes:
    idxs: Optional[List[int]] = None
    if e.type == _FUNC_NONNULL:
        found = [_funcidx_of(x) for x in e.init]
        if not any(i is None for i in found):
            idxs = cast(List[int], found)
    if idxs is not None:
        items = _vec(map(encode_u, idxs))
        if e.mode == "active":
            if e.table == 0:
                return b"\x00" + encode_expr(e.offset or []) + items
            return b"\x02" + encode_u(e.table) + encode_expr(e.offset or []) + b"\x00" + items
        return (b"\x01" if e.mode == "passive" else b"\x03") + b"\x00" + items
    exprs = _vec(map(encode_expr, e.init))
    if e.mode == "active":
        if e.table == 0 and e.type == _FUNCREF:
            return b"\x04" + encode_expr(e.offset or []) + exprs
        return b"\x06" + encode_u(e.table) + encode_expr(e.offset or []) + encode_reftype(e.type) + exprs
    return (b"\x05" if e.mode == "passive" else b"\x07") + encode_reftype(e.type) + exprs


def _data(d: Data) -> bytes:
    payload = encode_u(len(d.init)) + bytes(d.init)
    if d.mode == "passive":
        return b"\x01" + payload
    if d.memory == 0:
        return b"\x00" + encode_expr(d.offset or []) + payload
    return b"\x02" + encode_u(d.memory) + encode_expr(d.offset or []) + payload


def _types(m: Module) -> bytes:
    sizes = m.rec_sizes if sum(m.rec_sizes) == len(m.types) else [1] * len(m.types)
    out = []
    i = 0
    for n in sizes:
        group = m.types[i:i + n]
        i += n
        if n == 1:
            out.append(encode_subtype(group[0]))
        else:
            out.append(b"\x4e" + _vec(map(encode_subtype, group)))
    return _vec(out)


def _code_entry(f: Func) -> bytes:
    body = encode_func_body(f)
    return encode_u(len(body)) + body


def _section(sid: int, content: bytes) -> bytes:
    return bytes((sid,)) + encode_u(len(content)) + content


def _custom(c: Custom) -> bytes:
    return _section(0, encode_name(c.name) + bytes(c.data))


def encode_module(m: Module) -> bytes:
    """Canonical binary of ``m``."""
    forced = {c.after for c in m.customs}
    present = {
        1: bool(m.types or m.rec_sizes), 2: bool(m.imports), 3: bool(m.funcs), 4: bool(m.tables),
        5: bool(m.memories), 13: bool(m.tags), 6: bool(m.globals), 7: bool(m.exports),
        8: m.start is not None, 9: bool(m.elems), 12: m.data_count is not None,
        10: bool(m.funcs), 11: bool(m.datas),
    }
    out = [MAGIC, VERSION]
    out.extend(_custom(c) for c in m.customs if c.after == 0)
    placed = {0}
    for sid in SECTION_ORDER:
        if not present[sid] and not (sid in forced and sid not in (8, 12)):
            continue
        if sid == 1:
            content = _types(m)
        elif sid == 2:
            content = _vec(map(_import, m.imports))
        elif sid == 3:
            content = _vec(encode_u(f.typeidx) for f in m.funcs)
        elif sid == 4:
            content = _vec(
                (b"\x40\x00" + encode_tabletype(t.type) + encode_expr(t.init)) if t.init is not None
                else encode_tabletype(t.type)
                for t in m.tables
            )
        elif sid == 5:
            content = _vec(encode_memtype(x.type) for x in m.memories)
        elif sid == 13:
            content = _vec(b"\x00" + encode_u(t.typeidx) for t in m.tags)
        elif sid == 6:
            content = _vec(encode_globaltype(g.type) + encode_expr(g.init) for g in m.globals)
        elif sid == 7:
            content = _vec(
                encode_name(e.name) + bytes((_EXTERN_CODE[e.kind],)) + encode_u(e.index)
                for e in m.exports
            )
        elif sid == 8:
            content = encode_u(cast(int, m.start))  # present[8]: not None
        elif sid == 9:
            content = _vec(map(_elem, m.elems))
        elif sid == 12:
            content = encode_u(cast(int, m.data_count))  # present[12]: not None
        elif sid == 10:
            content = _vec(map(_code_entry, m.funcs))
        else:
            content = _vec(map(_data, m.datas))
        out.append(_section(sid, content))
        placed.add(sid)
        out.extend(_custom(c) for c in m.customs if c.after == sid)
    # customs placed after a section that cannot be emitted empty (start, data count): keep them
    # at the end rather than dropping them
    out.extend(_custom(c) for c in m.customs if c.after not in placed)
    return b"".join(out)
