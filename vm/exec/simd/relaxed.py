"""Relaxed SIMD (WebAssembly 3.0): one deterministic allowed behaviour per op — the spec's own.

The spec lets an implementation pick, once and for all, one of a short list of results for each relaxed
op (a global parameter ``R_*`` per op; document/core/exec/numerics.rst, "Relaxed Operations").  wcr must
pick one fixed choice, because a checkpoint restored on another engine or another Python must continue
bit for bit (``wcr spec --cr`` compares restored outcomes with our own uninterrupted run exactly).  We
pick the **deterministic profile** of the spec — every parameter 0 — which is also what the reference
interpreter does except where noted below; for each op that is the non-relaxed counterpart:

==========================================  ============================================================
op                                          deterministic profile (what this module computes)
==========================================  ============================================================
``i8x16.relaxed_swizzle``                   ``i8x16.swizzle``: an index >= 16 selects 0
``i32x4.relaxed_trunc_f32x4_s/_u``,         ``i32x4.trunc_sat_*``: NaN -> 0, out of range saturates
``i32x4.relaxed_trunc_f64x2_s/u_zero``
``f32x4/f64x2.relaxed_madd``                *unfused*: ``add(mul(a, b), c)``, two roundings
``f32x4/f64x2.relaxed_nmadd``               ``relaxed_madd(neg(a), b, c)``, unfused
``i*x*.relaxed_laneselect``                 ``v128.bitselect`` (every mask bit selects on its own)
``f32x4/f64x2.relaxed_min/max``             ``f32x4/f64x2.min/max`` (NaN and -0 < +0 rules)
``i16x8.relaxed_q15mulr_s``                 ``i16x8.q15mulr_sat_s``: -32768 * -32768 -> 32767
``i16x8.relaxed_dot_i8x16_i7x16_s``         both operands signed, pairs added with signed saturation
``i32x4.relaxed_dot_i8x16_i7x16_add_s``     that i16x8 dot, ``extadd_pairwise_i16x8_s``, ``i32x4.add``
==========================================  ============================================================

Two of these differ from the reference interpreter (``interpreter/exec/eval_vec.ml``), which computes
``relaxed_madd`` fused and sums the relaxed dot products without the intermediate i16 saturation; we
follow the spec text (numerics.rst / ``specification/wasm-3.0/3.2-numerics.vector.spectec``: madd is
``relaxed(R_fmadd)[fadd(fmul(..)), fma(..)]``, dot is ``ivdot_sat``), whose index 0 is the
deterministic profile.  Both choices are within the testsuite's ``either`` alternatives.

Where the deterministic profile *is* a non-relaxed op, the relaxed op is that op's entry of
:mod:`.ints` / :mod:`.floats` (one home: a relaxed op and its counterpart cannot drift apart); the
multiply-adds are the f32x4/f64x2 ``mul`` then ``add``; only the dot products are computed here.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Tuple

from . import floats as _floats
from . import ints as _ints
from .lanes import join, sat_s, split, split_s

__all__ = ["COUNTERPARTS", "LANE_OPS", "OPS"]

Fn = Callable[..., int]
OPS: Dict[str, Tuple[int, Fn]] = {}
LANE_OPS: Dict[str, Callable[[int], Tuple[int, Fn]]] = {}

#: relaxed op -> the op whose result is its deterministic profile
COUNTERPARTS: Dict[str, str] = {
    "i8x16.relaxed_swizzle": "i8x16.swizzle",
    "i32x4.relaxed_trunc_f32x4_s": "i32x4.trunc_sat_f32x4_s",
    "i32x4.relaxed_trunc_f32x4_u": "i32x4.trunc_sat_f32x4_u",
    "i32x4.relaxed_trunc_f64x2_s_zero": "i32x4.trunc_sat_f64x2_s_zero",
    "i32x4.relaxed_trunc_f64x2_u_zero": "i32x4.trunc_sat_f64x2_u_zero",
    "f32x4.relaxed_min": "f32x4.min", "f32x4.relaxed_max": "f32x4.max",
    "f64x2.relaxed_min": "f64x2.min", "f64x2.relaxed_max": "f64x2.max",
    "i8x16.relaxed_laneselect": "v128.bitselect", "i16x8.relaxed_laneselect": "v128.bitselect",
    "i32x4.relaxed_laneselect": "v128.bitselect", "i64x2.relaxed_laneselect": "v128.bitselect",
    "i16x8.relaxed_q15mulr_s": "i16x8.q15mulr_sat_s",
}


def _dot_i16(a: int, b: int) -> List[int]:
    """The i16x8 relaxed dot: signed i8 products of lane pairs, added with signed i16 saturation."""
    xs, ys = split_s(a, 8), split_s(b, 8)
    return [sat_s(xs[i] * ys[i] + xs[i + 1] * ys[i + 1], 16) for i in range(0, 16, 2)]


def relaxed_dot_i8x16_i7x16_s(a: int, b: int) -> int:
    return join(_dot_i16(a, b), 16)


def relaxed_dot_i8x16_i7x16_add_s(a: int, b: int, c: int) -> int:
    """The i16x8 dot, then pairwise added (signed, exact in i32), then added to ``c`` (wrapping)."""
    d = _dot_i16(a, b)
    return join([d[2 * i] + d[2 * i + 1] + z for i, z in enumerate(split(c, 32))], 32)


def _madd(shape: str, negate: bool) -> Fn:
    """Unfused ``a * b + c`` (``-a * b + c`` for nmadd): the shape's ``mul``, then its ``add``."""
    mul, add = _floats.OPS[f"{shape}.mul"][1], _floats.OPS[f"{shape}.add"][1]
    if not negate:
        return lambda a, b, c: add(mul(a, b), c)
    neg = _floats.OPS[f"{shape}.neg"][1]
    return lambda a, b, c: add(mul(neg(a), b), c)


def _fill() -> None:
    tables = {**_ints.OPS, **_floats.OPS}
    for name, same in COUNTERPARTS.items():
        OPS[name] = tables[same]
    for shape in ("f32x4", "f64x2"):
        OPS[f"{shape}.relaxed_madd"] = (3, _madd(shape, False))
        OPS[f"{shape}.relaxed_nmadd"] = (3, _madd(shape, True))
    OPS["i16x8.relaxed_dot_i8x16_i7x16_s"] = (2, relaxed_dot_i8x16_i7x16_s)
    OPS["i32x4.relaxed_dot_i8x16_i7x16_add_s"] = (3, relaxed_dot_i8x16_i7x16_add_s)


_fill()
