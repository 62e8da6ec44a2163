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

Per-lane float rules are the scalar home's (:mod:`vm.exec.numerics`: NaN propagation, signed zeros,
trunc_sat), so a relaxed op and its counterpart cannot drift apart.
"""

from __future__ import annotations

from typing import Callable, Dict, Tuple

from .. import numerics as _n
from .lanes import join, sat_s, split, split_s

__all__ = ["LANE_OPS", "OPS"]

Fn = Callable[..., int]
OPS: Dict[str, Tuple[int, Fn]] = {}
LANE_OPS: Dict[str, Callable[[int], Tuple[int, Fn]]] = {}

_M128 = (1 << 128) - 1
_ZEROS_240 = bytes(240)
#: the sign bit of every lane (``neg`` of a whole f32x4 / f64x2 is one xor)
_SIGNS = {32: int.from_bytes(b"\x00\x00\x00\x80" * 4, "little"),
          64: int.from_bytes(b"\x00" * 7 + b"\x80" + b"\x00" * 7 + b"\x80", "little")}


def relaxed_swizzle(a: int, s: int) -> int:
    """Lane ``i`` = ``a``'s byte ``s[i]``, or 0 when ``s[i] >= 16`` (the deterministic choice for 16..127
    too).  ``bytes.translate`` maps every index byte through a 256-entry table in C."""
    table = a.to_bytes(16, "little") + _ZEROS_240
    return int.from_bytes(s.to_bytes(16, "little").translate(table), "little")


def relaxed_laneselect(a: int, b: int, m: int) -> int:
    """``v128.bitselect``: bits of ``a`` where ``m`` is 1, of ``b`` where it is 0 (any lane width)."""
    return (a & m) | (b & ~m & _M128)


def relaxed_q15mulr_s(a: int, b: int) -> int:
    """``(a * b + 0x4000) >> 15`` per signed i16 lane, saturated: only -32768 * -32768 overflows."""
    return join([sat_s((x * y + 0x4000) >> 15, 16) for x, y in zip(split_s(a, 16), split_s(b, 16))], 16)


def _dot_i16(a: int, b: int) -> list:
    """The i16x8 relaxed dot: signed i8 products of lane pairs, added with signed i16 saturation."""
    xs, ys = split_s(a, 8), split_s(b, 8)
    return [sat_s(xs[i] * ys[i] + xs[i + 1] * ys[i + 1], 16) for i in range(0, 16, 2)]


def relaxed_dot_i8x16_i7x16_s(a: int, b: int) -> int:
    return join(_dot_i16(a, b), 16)


def relaxed_dot_i8x16_i7x16_add_s(a: int, b: int, c: int) -> int:
    """The i16x8 dot, then pairwise added (signed, exact in i32), then added to ``c`` (wrapping)."""
    d = _dot_i16(a, b)
    return join([d[2 * i] + d[2 * i + 1] + z for i, z in enumerate(split(c, 32))], 32)


def _lanewise2(bits: int, fn: Callable[[int, int], int]) -> Fn:
    def op(a: int, b: int) -> int:
        return join([fn(x, y) for x, y in zip(split(a, bits), split(b, bits))], bits)
    return op


def _madd(bits: int, negate: bool) -> Fn:
    """Unfused ``a * b + c`` per lane (``-a * b + c`` for nmadd): the scalar mul, then the scalar add."""
    mul, add = (_n.f32_mul, _n.f32_add) if bits == 32 else (_n.f64_mul, _n.f64_add)
    sign = _SIGNS[bits] if negate else 0

    def op(a: int, b: int, c: int) -> int:
        return join([add(mul(x, y), z) for x, y, z in
                     zip(split(a ^ sign, bits), split(b, bits), split(c, bits))], bits)
    return op


def _trunc(src: str, sx: str) -> Fn:
    """``trunc_sat`` per lane; the f64x2 forms fill lanes 2 and 3 with zeros."""
    scalar = _n.OPS[f"i32.trunc_sat_{src}_{sx}"]
    if src == "f32":
        return lambda a: join([scalar(x) for x in split(a, 32)], 32)
    return lambda a: join([scalar(x) for x in split(a, 64)] + [0, 0], 32)


def _fill() -> None:
    OPS["i8x16.relaxed_swizzle"] = (2, relaxed_swizzle)
    for sx in ("s", "u"):
        OPS[f"i32x4.relaxed_trunc_f32x4_{sx}"] = (1, _trunc("f32", sx))
        OPS[f"i32x4.relaxed_trunc_f64x2_{sx}_zero"] = (1, _trunc("f64", sx))
    for shape, bits in (("f32x4", 32), ("f64x2", 64)):
        OPS[f"{shape}.relaxed_madd"] = (3, _madd(bits, False))
        OPS[f"{shape}.relaxed_nmadd"] = (3, _madd(bits, True))
        f = "f32" if bits == 32 else "f64"
        OPS[f"{shape}.relaxed_min"] = (2, _lanewise2(bits, _n.OPS[f"{f}.min"]))
        OPS[f"{shape}.relaxed_max"] = (2, _lanewise2(bits, _n.OPS[f"{f}.max"]))
    for shape in ("i8x16", "i16x8", "i32x4", "i64x2"):
        OPS[f"{shape}.relaxed_laneselect"] = (3, relaxed_laneselect)
    OPS["i16x8.relaxed_q15mulr_s"] = (2, relaxed_q15mulr_s)
    OPS["i16x8.relaxed_dot_i8x16_i7x16_s"] = (2, relaxed_dot_i8x16_i7x16_s)
    OPS["i32x4.relaxed_dot_i8x16_i7x16_add_s"] = (3, relaxed_dot_i8x16_i7x16_add_s)


_fill()
