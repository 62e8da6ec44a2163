"""The single opcode table of Wasm 3.0 (plus the legacy exception opcodes and threads atomics).

Every instruction is described once, by its encoding, its text-format mnemonic and an *immediate kind*
(``K_*`` below).  The decoder, the encoder and, later, the validator and the engines all read this table,
so an opcode number or an immediate layout is never written down twice.

Encodings are either a single byte (``PRIMARY``) or a prefix byte followed by a u32 LEB128 sub-opcode
(``PREFIXED[prefix][sub]``: 0xFB GC, 0xFC numeric/bulk, 0xFD SIMD, 0xFE atomics).  ``BY_NAME`` maps a
mnemonic back to ``(prefix or None, code, kind)``.  ``ref.test``/``ref.cast`` each have two encodings
(non-null / null); ``BY_NAME`` lists the non-null one and the encoder adds 1 when the type is nullable
(kind :data:`K_CAST`).
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

# -- immediate kinds ---------------------------------------------------------------------------
K_NONE = "none"
K_BLOCK = "block"  # blocktype (block, loop, if, legacy try)
K_TRY_TABLE = "try_table"  # blocktype + vec(catch)
K_LABEL = "label"  # labelidx (br, br_if, br_on_null, br_on_non_null, rethrow, delegate)
K_BR_TABLE = "br_table"
K_BR_ON_CAST = "br_on_cast"  # flags byte, labelidx, heaptype, heaptype
K_FUNC = "func"
K_CALL_INDIRECT = "call_indirect"  # typeidx, tableidx
K_TYPE = "type"
K_SELECT_T = "select_t"  # vec(valtype)
K_LOCAL = "local"
K_GLOBAL = "global"
K_TABLE = "table"
K_ELEM = "elem"
K_DATA = "data"
K_TAG = "tag"
K_MEMARG = "memarg"
K_MEMARG_LANE = "memarg_lane"
K_MEM = "mem"  # memidx
K_MEM2 = "mem2"  # memory.copy dst, src
K_MEM_INIT = "mem_init"  # encoded dataidx, memidx; imm (memidx, dataidx)
K_TABLE2 = "table2"  # table.copy dst, src
K_TABLE_INIT = "table_init"  # encoded elemidx, tableidx; imm (tableidx, elemidx)
K_I32 = "i32"
K_I64 = "i64"
K_F32 = "f32"
K_F64 = "f64"
K_V128 = "v128"
K_LANE = "lane"
K_SHUFFLE = "shuffle"
K_HEAPTYPE = "heaptype"
K_CAST = "cast"  # ref.test / ref.cast: heaptype, nullability from the opcode
K_TYPE_FIELD = "type_field"
K_TYPE_N = "type_n"  # array.new_fixed
K_TYPE_DATA = "type_data"
K_TYPE_ELEM = "type_elem"
K_TYPE2 = "type2"  # array.copy
K_ZERO = "zero"  # one reserved 0x00 byte (atomic.fence); imm None

#: Instructions that open a block (closed by ``end``; legacy ``try`` may also close with ``delegate``).
BLOCK_OPS = frozenset(("block", "loop", "if", "try", "try_table"))

PRIMARY: Dict[int, Tuple[str, str]] = {}
PREFIXED: Dict[int, Dict[int, Tuple[str, str]]] = {0xFB: {}, 0xFC: {}, 0xFD: {}, 0xFE: {}}
BY_NAME: Dict[str, Tuple[Optional[int], int, str]] = {}


def _op(code: int, name: str, kind: str = K_NONE) -> None:
    PRIMARY[code] = (name, kind)
    BY_NAME[name] = (None, code, kind)


def _pre(prefix: int, code: int, name: str, kind: str = K_NONE) -> None:
    PREFIXED[prefix][code] = (name, kind)
    if name not in BY_NAME:  # ref.test/ref.cast: keep the first (non-null) encoding
        BY_NAME[name] = (prefix, code, kind)


# -- control -------------------------------------------------------------------------------
_op(0x00, "unreachable")
_op(0x01, "nop")
_op(0x02, "block", K_BLOCK)
_op(0x03, "loop", K_BLOCK)
_op(0x04, "if", K_BLOCK)
_op(0x05, "else")
_op(0x06, "try", K_BLOCK)  # legacy exception handling
_op(0x07, "catch", K_TAG)  # legacy
_op(0x08, "throw", K_TAG)
_op(0x09, "rethrow", K_LABEL)  # legacy
_op(0x0A, "throw_ref")
_op(0x0B, "end")
_op(0x0C, "br", K_LABEL)
_op(0x0D, "br_if", K_LABEL)
_op(0x0E, "br_table", K_BR_TABLE)
_op(0x0F, "return")
_op(0x10, "call", K_FUNC)
_op(0x11, "call_indirect", K_CALL_INDIRECT)
_op(0x12, "return_call", K_FUNC)
_op(0x13, "return_call_indirect", K_CALL_INDIRECT)
_op(0x14, "call_ref", K_TYPE)
_op(0x15, "return_call_ref", K_TYPE)
_op(0x18, "delegate", K_LABEL)  # legacy
_op(0x19, "catch_all")  # legacy
_op(0x1A, "drop")
_op(0x1B, "select")
_op(0x1C, "select", K_SELECT_T)  # typed select; BY_NAME fixed up below
_op(0x1F, "try_table", K_TRY_TABLE)
BY_NAME["select"] = (None, 0x1B, K_NONE)

# -- variables, tables --------------------------------------------------------------------
_op(0x20, "local.get", K_LOCAL)
_op(0x21, "local.set", K_LOCAL)
_op(0x22, "local.tee", K_LOCAL)
_op(0x23, "global.get", K_GLOBAL)
_op(0x24, "global.set", K_GLOBAL)
_op(0x25, "table.get", K_TABLE)
_op(0x26, "table.set", K_TABLE)

# -- memory ---------------------------------------------------------------------------------
for _i, _n in enumerate(
    "i32.load i64.load f32.load f64.load i32.load8_s i32.load8_u i32.load16_s i32.load16_u "
    "i64.load8_s i64.load8_u i64.load16_s i64.load16_u i64.load32_s i64.load32_u "
    "i32.store i64.store f32.store f64.store i32.store8 i32.store16 i64.store8 i64.store16 "
    "i64.store32".split()
):
    _op(0x28 + _i, _n, K_MEMARG)
_op(0x3F, "memory.size", K_MEM)
_op(0x40, "memory.grow", K_MEM)

# -- numeric --------------------------------------------------------------------------------
_op(0x41, "i32.const", K_I32)
_op(0x42, "i64.const", K_I64)
_op(0x43, "f32.const", K_F32)
_op(0x44, "f64.const", K_F64)
for _i, _n in enumerate(
    """i32.eqz i32.eq i32.ne i32.lt_s i32.lt_u i32.gt_s i32.gt_u i32.le_s i32.le_u i32.ge_s i32.ge_u
    i64.eqz i64.eq i64.ne i64.lt_s i64.lt_u i64.gt_s i64.gt_u i64.le_s i64.le_u i64.ge_s i64.ge_u
    f32.eq f32.ne f32.lt f32.gt f32.le f32.ge
    f64.eq f64.ne f64.lt f64.gt f64.le f64.ge
    i32.clz i32.ctz i32.popcnt i32.add i32.sub i32.mul i32.div_s i32.div_u i32.rem_s i32.rem_u
    i32.and i32.or i32.xor i32.shl i32.shr_s i32.shr_u i32.rotl i32.rotr
    i64.clz i64.ctz i64.popcnt i64.add i64.sub i64.mul i64.div_s i64.div_u i64.rem_s i64.rem_u
    i64.and i64.or i64.xor i64.shl i64.shr_s i64.shr_u i64.rotl i64.rotr
    f32.abs f32.neg f32.ceil f32.floor f32.trunc f32.nearest f32.sqrt f32.add f32.sub f32.mul
    f32.div f32.min f32.max f32.copysign
    f64.abs f64.neg f64.ceil f64.floor f64.trunc f64.nearest f64.sqrt f64.add f64.sub f64.mul
    f64.div f64.min f64.max f64.copysign
    i32.wrap_i64 i32.trunc_f32_s i32.trunc_f32_u i32.trunc_f64_s i32.trunc_f64_u
    i64.extend_i32_s i64.extend_i32_u i64.trunc_f32_s i64.trunc_f32_u i64.trunc_f64_s i64.trunc_f64_u
    f32.convert_i32_s f32.convert_i32_u f32.convert_i64_s f32.convert_i64_u f32.demote_f64
    f64.convert_i32_s f64.convert_i32_u f64.convert_i64_s f64.convert_i64_u f64.promote_f32
    i32.reinterpret_f32 i64.reinterpret_f64 f32.reinterpret_i32 f64.reinterpret_i64
    i32.extend8_s i32.extend16_s i64.extend8_s i64.extend16_s i64.extend32_s""".split()
):
    _op(0x45 + _i, _n)
assert PRIMARY[0xC4][0] == "i64.extend32_s"

# -- references -----------------------------------------------------------------------------
_op(0xD0, "ref.null", K_HEAPTYPE)
_op(0xD1, "ref.is_null")
_op(0xD2, "ref.func", K_FUNC)
_op(0xD3, "ref.eq")
_op(0xD4, "ref.as_non_null")
_op(0xD5, "br_on_null", K_LABEL)
_op(0xD6, "br_on_non_null", K_LABEL)

# -- 0xFB: GC --------------------------------------------------------------------------------
for _i, (_n, _k) in enumerate([
    ("struct.new", K_TYPE), ("struct.new_default", K_TYPE), ("struct.get", K_TYPE_FIELD),
    ("struct.get_s", K_TYPE_FIELD), ("struct.get_u", K_TYPE_FIELD), ("struct.set", K_TYPE_FIELD),
    ("array.new", K_TYPE), ("array.new_default", K_TYPE), ("array.new_fixed", K_TYPE_N),
    ("array.new_data", K_TYPE_DATA), ("array.new_elem", K_TYPE_ELEM), ("array.get", K_TYPE),
    ("array.get_s", K_TYPE), ("array.get_u", K_TYPE), ("array.set", K_TYPE), ("array.len", K_NONE),
    ("array.fill", K_TYPE), ("array.copy", K_TYPE2), ("array.init_data", K_TYPE_DATA),
    ("array.init_elem", K_TYPE_ELEM), ("ref.test", K_CAST), ("ref.test", K_CAST),
    ("ref.cast", K_CAST), ("ref.cast", K_CAST), ("br_on_cast", K_BR_ON_CAST),
    ("br_on_cast_fail", K_BR_ON_CAST), ("any.convert_extern", K_NONE),
    ("extern.convert_any", K_NONE), ("ref.i31", K_NONE), ("i31.get_s", K_NONE), ("i31.get_u", K_NONE),
]):
    _pre(0xFB, _i, _n, _k)

# -- 0xFC: saturating truncation, bulk memory/table ------------------------------------------
for _i, _n in enumerate(
    "i32.trunc_sat_f32_s i32.trunc_sat_f32_u i32.trunc_sat_f64_s i32.trunc_sat_f64_u "
    "i64.trunc_sat_f32_s i64.trunc_sat_f32_u i64.trunc_sat_f64_s i64.trunc_sat_f64_u".split()
):
    _pre(0xFC, _i, _n)
_pre(0xFC, 8, "memory.init", K_MEM_INIT)
_pre(0xFC, 9, "data.drop", K_DATA)
_pre(0xFC, 10, "memory.copy", K_MEM2)
_pre(0xFC, 11, "memory.fill", K_MEM)
_pre(0xFC, 12, "table.init", K_TABLE_INIT)
_pre(0xFC, 13, "elem.drop", K_ELEM)
_pre(0xFC, 14, "table.copy", K_TABLE2)
_pre(0xFC, 15, "table.grow", K_TABLE)
_pre(0xFC, 16, "table.size", K_TABLE)
_pre(0xFC, 17, "table.fill", K_TABLE)

# -- 0xFD: SIMD (incl. relaxed SIMD) ---------------------------------------------------------
_SIMD_MEM = (
    "v128.load v128.load8x8_s v128.load8x8_u v128.load16x4_s v128.load16x4_u v128.load32x2_s "
    "v128.load32x2_u v128.load8_splat v128.load16_splat v128.load32_splat v128.load64_splat "
    "v128.store".split()
)
for _i, _n in enumerate(_SIMD_MEM):
    _pre(0xFD, _i, _n, K_MEMARG)
_pre(0xFD, 12, "v128.const", K_V128)
_pre(0xFD, 13, "i8x16.shuffle", K_SHUFFLE)
for _i, _n in enumerate("i8x16.swizzle i8x16.splat i16x8.splat i32x4.splat i64x2.splat f32x4.splat "
                        "f64x2.splat".split()):
    _pre(0xFD, 14 + _i, _n)
for _i, _n in enumerate(
    "i8x16.extract_lane_s i8x16.extract_lane_u i8x16.replace_lane i16x8.extract_lane_s "
    "i16x8.extract_lane_u i16x8.replace_lane i32x4.extract_lane i32x4.replace_lane "
    "i64x2.extract_lane i64x2.replace_lane f32x4.extract_lane f32x4.replace_lane "
    "f64x2.extract_lane f64x2.replace_lane".split()
):
    _pre(0xFD, 21 + _i, _n, K_LANE)
_SIMD_PLAIN = {
    35: """i8x16.eq i8x16.ne i8x16.lt_s i8x16.lt_u i8x16.gt_s i8x16.gt_u i8x16.le_s i8x16.le_u
        i8x16.ge_s i8x16.ge_u
        i16x8.eq i16x8.ne i16x8.lt_s i16x8.lt_u i16x8.gt_s i16x8.gt_u i16x8.le_s i16x8.le_u
        i16x8.ge_s i16x8.ge_u
        i32x4.eq i32x4.ne i32x4.lt_s i32x4.lt_u i32x4.gt_s i32x4.gt_u i32x4.le_s i32x4.le_u
        i32x4.ge_s i32x4.ge_u
        f32x4.eq f32x4.ne f32x4.lt f32x4.gt f32x4.le f32x4.ge
        f64x2.eq f64x2.ne f64x2.lt f64x2.gt f64x2.le f64x2.ge
        v128.not v128.and v128.andnot v128.or v128.xor v128.bitselect v128.any_true""",
    94: """f32x4.demote_f64x2_zero f64x2.promote_low_f32x4
        i8x16.abs i8x16.neg i8x16.popcnt i8x16.all_true i8x16.bitmask i8x16.narrow_i16x8_s
        i8x16.narrow_i16x8_u f32x4.ceil f32x4.floor f32x4.trunc f32x4.nearest i8x16.shl i8x16.shr_s
        i8x16.shr_u i8x16.add i8x16.add_sat_s i8x16.add_sat_u i8x16.sub i8x16.sub_sat_s
        i8x16.sub_sat_u f64x2.ceil f64x2.floor i8x16.min_s i8x16.min_u i8x16.max_s i8x16.max_u
        f64x2.trunc i8x16.avgr_u i16x8.extadd_pairwise_i8x16_s i16x8.extadd_pairwise_i8x16_u
        i32x4.extadd_pairwise_i16x8_s i32x4.extadd_pairwise_i16x8_u
        i16x8.abs i16x8.neg i16x8.q15mulr_sat_s i16x8.all_true i16x8.bitmask i16x8.narrow_i32x4_s
        i16x8.narrow_i32x4_u i16x8.extend_low_i8x16_s i16x8.extend_high_i8x16_s
        i16x8.extend_low_i8x16_u i16x8.extend_high_i8x16_u i16x8.shl i16x8.shr_s i16x8.shr_u
        i16x8.add i16x8.add_sat_s i16x8.add_sat_u i16x8.sub i16x8.sub_sat_s i16x8.sub_sat_u
        f64x2.nearest i16x8.mul i16x8.min_s i16x8.min_u i16x8.max_s i16x8.max_u - i16x8.avgr_u
        i16x8.extmul_low_i8x16_s i16x8.extmul_high_i8x16_s i16x8.extmul_low_i8x16_u
        i16x8.extmul_high_i8x16_u
        i32x4.abs i32x4.neg - i32x4.all_true i32x4.bitmask - - i32x4.extend_low_i16x8_s
        i32x4.extend_high_i16x8_s i32x4.extend_low_i16x8_u i32x4.extend_high_i16x8_u i32x4.shl
        i32x4.shr_s i32x4.shr_u i32x4.add - - i32x4.sub - - - i32x4.mul i32x4.min_s i32x4.min_u
        i32x4.max_s i32x4.max_u i32x4.dot_i16x8_s - i32x4.extmul_low_i16x8_s
        i32x4.extmul_high_i16x8_s i32x4.extmul_low_i16x8_u i32x4.extmul_high_i16x8_u
        i64x2.abs i64x2.neg - i64x2.all_true i64x2.bitmask - - i64x2.extend_low_i32x4_s
        i64x2.extend_high_i32x4_s i64x2.extend_low_i32x4_u i64x2.extend_high_i32x4_u i64x2.shl
        i64x2.shr_s i64x2.shr_u i64x2.add - - i64x2.sub - - - i64x2.mul i64x2.eq i64x2.ne
        i64x2.lt_s i64x2.gt_s i64x2.le_s i64x2.ge_s i64x2.extmul_low_i32x4_s
        i64x2.extmul_high_i32x4_s i64x2.extmul_low_i32x4_u i64x2.extmul_high_i32x4_u
        f32x4.abs f32x4.neg - f32x4.sqrt f32x4.add f32x4.sub f32x4.mul f32x4.div f32x4.min
        f32x4.max f32x4.pmin f32x4.pmax
        f64x2.abs f64x2.neg - f64x2.sqrt f64x2.add f64x2.sub f64x2.mul f64x2.div f64x2.min
        f64x2.max f64x2.pmin f64x2.pmax
        i32x4.trunc_sat_f32x4_s i32x4.trunc_sat_f32x4_u f32x4.convert_i32x4_s f32x4.convert_i32x4_u
        i32x4.trunc_sat_f64x2_s_zero i32x4.trunc_sat_f64x2_u_zero f64x2.convert_low_i32x4_s
        f64x2.convert_low_i32x4_u
        i8x16.relaxed_swizzle i32x4.relaxed_trunc_f32x4_s i32x4.relaxed_trunc_f32x4_u
        i32x4.relaxed_trunc_f64x2_s_zero i32x4.relaxed_trunc_f64x2_u_zero f32x4.relaxed_madd
        f32x4.relaxed_nmadd f64x2.relaxed_madd f64x2.relaxed_nmadd i8x16.relaxed_laneselect
        i16x8.relaxed_laneselect i32x4.relaxed_laneselect i64x2.relaxed_laneselect
        f32x4.relaxed_min f32x4.relaxed_max f64x2.relaxed_min f64x2.relaxed_max
        i16x8.relaxed_q15mulr_s i16x8.relaxed_dot_i8x16_i7x16_s i32x4.relaxed_dot_i8x16_i7x16_add_s""",
}
for _start, _names in _SIMD_PLAIN.items():
    for _i, _n in enumerate(_names.split()):
        if _n != "-":
            _pre(0xFD, _start + _i, _n)
for _i, _n in enumerate("v128.load8_lane v128.load16_lane v128.load32_lane v128.load64_lane "
                        "v128.store8_lane v128.store16_lane v128.store32_lane v128.store64_lane".split()):
    _pre(0xFD, 84 + _i, _n, K_MEMARG_LANE)
_pre(0xFD, 92, "v128.load32_zero", K_MEMARG)
_pre(0xFD, 93, "v128.load64_zero", K_MEMARG)
assert PREFIXED[0xFD][0x53][0] == "v128.any_true"
assert PREFIXED[0xFD][0xFF][0] == "f64x2.convert_low_i32x4_u"
assert PREFIXED[0xFD][0x113][0] == "i32x4.relaxed_dot_i8x16_i7x16_add_s"

# -- 0xFE: threads atomics (not in 3.0; decoded so that shared-memory modules round-trip) -----
_pre(0xFE, 0x00, "memory.atomic.notify", K_MEMARG)
_pre(0xFE, 0x01, "memory.atomic.wait32", K_MEMARG)
_pre(0xFE, 0x02, "memory.atomic.wait64", K_MEMARG)
_pre(0xFE, 0x03, "atomic.fence", K_ZERO)
for _i, _n in enumerate(
    "i32.atomic.load i64.atomic.load i32.atomic.load8_u i32.atomic.load16_u i64.atomic.load8_u "
    "i64.atomic.load16_u i64.atomic.load32_u i32.atomic.store i64.atomic.store i32.atomic.store8 "
    "i32.atomic.store16 i64.atomic.store8 i64.atomic.store16 i64.atomic.store32".split()
):
    _pre(0xFE, 0x10 + _i, _n, K_MEMARG)
for _g, _rmw in enumerate("add sub and or xor xchg cmpxchg".split()):
    for _i, _n in enumerate(
        f"i32.atomic.rmw.{_rmw} i64.atomic.rmw.{_rmw} i32.atomic.rmw8.{_rmw}_u "
        f"i32.atomic.rmw16.{_rmw}_u i64.atomic.rmw8.{_rmw}_u i64.atomic.rmw16.{_rmw}_u "
        f"i64.atomic.rmw32.{_rmw}_u".split()
    ):
        _pre(0xFE, 0x1E + 7 * _g + _i, _n, K_MEMARG)
assert PREFIXED[0xFE][0x4E][0] == "i64.atomic.rmw32.cmpxchg_u"

#: Instructions whose immediates refer to a data segment (they need the data count section).
DATA_OPS = frozenset(("memory.init", "data.drop", "array.new_data", "array.init_data"))


def opcode_of(name: str) -> Tuple[Optional[int], int, str]:
    """``(prefix or None, code, kind)`` of a mnemonic; ``KeyError`` for unknown names."""
    return BY_NAME[name]


def kind_of(name: str) -> str:
    """The immediate kind of a mnemonic (``select`` reports the untyped form)."""
    return BY_NAME[name][2]


#: instruction-name prefixes → the proposal that introduced them (for ``Unsupported(feature, ...)``)
_FEATURE_PREFIXES = (
    ("v128", "simd"), ("i8x16", "simd"), ("i16x8", "simd"), ("i32x4", "simd"), ("i64x2", "simd"),
    ("f32x4", "simd"), ("f64x2", "simd"), ("struct", "gc"), ("array", "gc"), ("ref.i31", "gc"),
    ("i31", "gc"), ("ref.test", "gc"), ("ref.cast", "gc"), ("br_on_cast", "gc"), ("any.", "gc"),
    ("extern.", "gc"), ("try", "exceptions"), ("throw", "exceptions"), ("catch", "exceptions"),
    ("delegate", "exceptions"), ("rethrow", "exceptions"), ("memory.atomic", "threads"),
    ("atomic", "threads"),
)


def feature_of(op: str) -> str:
    """The proposal a mnemonic belongs to (``"simd"``, ``"gc"``, ``"exceptions"``, ``"threads"``,
    else ``"unknown"``): what an engine or the store names when it refuses an instruction, so that
    "not supported" is counted per feature.  It lives with the opcode table because both the store
    (constant expressions) and the engines refuse instructions."""
    for prefix, feat in _FEATURE_PREFIXES:
        if op.startswith(prefix):
            return feat
    if ".atomic" in op:
        return "threads"
    return "unknown"
