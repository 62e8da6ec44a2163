"""Operand/result types of the instructions whose typing is a fixed signature.

Derived from the mnemonic patterns of the spec's instruction index rather than listed one by one,
so that a new numeric or SIMD op of an existing shape is covered automatically.
"""

from __future__ import annotations

import re
from typing import Dict, Optional, Tuple

I32, I64, F32, F64, V128 = "i32", "i64", "f32", "f64", "v128"

Sig = Tuple[Tuple[str, ...], Tuple[str, ...]]

SIMPLE: Dict[str, Sig] = {}


def _add(names, pops, pushes):
    for n in names.split():
        SIMPLE[n] = (tuple(pops), tuple(pushes))


for _t in (I32, I64):
    _add(" ".join(f"{_t}.{o}" for o in "clz ctz popcnt extend8_s extend16_s".split()), [_t], [_t])
    _add(f"{_t}.eqz", [_t], [I32])
    _add(" ".join(f"{_t}.{o}" for o in
                  "add sub mul div_s div_u rem_s rem_u and or xor shl shr_s shr_u rotl rotr".split()),
         [_t, _t], [_t])
    _add(" ".join(f"{_t}.{o}" for o in "eq ne lt_s lt_u gt_s gt_u le_s le_u ge_s ge_u".split()),
         [_t, _t], [I32])
_add("i64.extend32_s", [I64], [I64])
for _t in (F32, F64):
    _add(" ".join(f"{_t}.{o}" for o in "abs neg ceil floor trunc nearest sqrt".split()), [_t], [_t])
    _add(" ".join(f"{_t}.{o}" for o in "add sub mul div min max copysign".split()), [_t, _t], [_t])
    _add(" ".join(f"{_t}.{o}" for o in "eq ne lt gt le ge".split()), [_t, _t], [I32])
_add("i32.wrap_i64", [I64], [I32])
for _d in (I32, I64):
    for _s in (F32, F64):
        for _o in ("trunc", "trunc_sat"):
            _add(f"{_d}.{_o}_{_s}_s {_d}.{_o}_{_s}_u", [_s], [_d])
_add("i64.extend_i32_s i64.extend_i32_u", [I32], [I64])
for _d in (F32, F64):
    for _s in (I32, I64):
        _add(f"{_d}.convert_{_s}_s {_d}.convert_{_s}_u", [_s], [_d])
_add("f32.demote_f64", [F64], [F32])
_add("f64.promote_f32", [F32], [F64])
_add("i32.reinterpret_f32", [F32], [I32])
_add("i64.reinterpret_f64", [F64], [I64])
_add("f32.reinterpret_i32", [I32], [F32])
_add("f64.reinterpret_i64", [I64], [F64])
_add("i32.const", [], [I32])
_add("i64.const", [], [I64])
_add("f32.const", [], [F32])
_add("f64.const", [], [F64])
_add("v128.const", [], [V128])
_add("nop", [], [])

LANE_SCALAR = {"i8x16": I32, "i16x8": I32, "i32x4": I32, "i64x2": I64, "f32x4": F32, "f64x2": F64}
LANES = {"i8x16": 16, "i16x8": 8, "i32x4": 4, "i64x2": 2, "f32x4": 4, "f64x2": 2}

_SIMD_UNARY_WORDS = ("not", "abs", "neg", "sqrt", "ceil", "floor", "trunc", "nearest", "popcnt")
_SIMD_UNARY_PARTS = ("extend_low", "extend_high", "convert", "trunc_sat", "demote", "promote",
                     "extadd_pairwise", "relaxed_trunc")
_SIMD_TERNARY = ("bitselect", "relaxed_laneselect", "relaxed_madd", "relaxed_nmadd",
                 "relaxed_dot_i8x16_i7x16_add_s")


def simd_sig(op: str) -> Optional[Sig]:
    """Signature of a SIMD op without memory/lane immediates, or None if ``op`` is not one."""
    shape, _, name = op.partition(".")
    if shape not in LANE_SCALAR and shape != "v128":
        return None
    if "load" in name or "store" in name or name == "const":
        return None
    if name == "splat":
        return ((LANE_SCALAR[shape],), (V128,))
    if name.startswith("extract_lane"):
        return ((V128,), (LANE_SCALAR[shape],))
    if name == "replace_lane":
        return ((V128, LANE_SCALAR[shape]), (V128,))
    if name in ("any_true", "all_true", "bitmask"):
        return ((V128,), (I32,))
    if name in ("shl", "shr_s", "shr_u"):
        return ((V128, I32), (V128,))
    if name in _SIMD_TERNARY:
        return ((V128, V128, V128), (V128,))
    if name in _SIMD_UNARY_WORDS or any(p in name for p in _SIMD_UNARY_PARTS):
        return ((V128,), (V128,))
    if name == "shuffle":
        return ((V128, V128), (V128,))
    return ((V128, V128), (V128,))


# Loads and stores: op -> (value type, natural size in bytes, is_store)
MEMOPS: Dict[str, Tuple[str, int, bool]] = {}
for _t, _n in ((I32, 4), (I64, 8), (F32, 4), (F64, 8), (V128, 16)):
    MEMOPS[f"{_t}.load"] = (_t, _n, False)
    MEMOPS[f"{_t}.store"] = (_t, _n, True)
for _t, _sizes in ((I32, (8, 16)), (I64, (8, 16, 32))):
    for _b in _sizes:
        MEMOPS[f"{_t}.load{_b}_s"] = (_t, _b // 8, False)
        MEMOPS[f"{_t}.load{_b}_u"] = (_t, _b // 8, False)
        MEMOPS[f"{_t}.store{_b}"] = (_t, _b // 8, True)
for _b in (8, 16, 32):
    MEMOPS[f"v128.load{_b}x{64 // _b}_s"] = (V128, 8, False)
    MEMOPS[f"v128.load{_b}x{64 // _b}_u"] = (V128, 8, False)
for _b in (8, 16, 32, 64):
    MEMOPS[f"v128.load{_b}_splat"] = (V128, _b // 8, False)
for _b in (32, 64):
    MEMOPS[f"v128.load{_b}_zero"] = (V128, _b // 8, False)

# Lane loads/stores: op -> (natural size in bytes, number of lanes, is_store)
LANEMEMOPS: Dict[str, Tuple[int, int, bool]] = {}
for _b in (8, 16, 32, 64):
    LANEMEMOPS[f"v128.load{_b}_lane"] = (_b // 8, 128 // _b, False)
    LANEMEMOPS[f"v128.store{_b}_lane"] = (_b // 8, 128 // _b, True)

ATOMIC_RE = re.compile(r"atomic|^memory\.atomic")
