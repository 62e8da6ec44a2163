"""Float lanes of v128 (``f32x4``, ``f64x2``) and the SIMD float <-> int conversions.

Every lane follows the *scalar* rule of :mod:`vm.exec.numerics` (one home for IEEE semantics: the NaN
choices, ties-to-even ``nearest``, the sign of zero, saturating truncation, payload-keeping
``demote``/``promote``), so a lane of ``f32x4.add`` is bit for bit ``f32.add`` of its two lanes.  The
scalar functions are taken from :data:`vm.exec.numerics.OPS` once, at import time.

Shape of an op (speed: these run in the interpreter's inner loop): the v128 ints are split into lanes
by one ``struct`` unpack each, the scalar function is ``map``-ped over the lanes, and one ``pack`` plus
``int.from_bytes`` joins them — no per-lane Python object beyond the lane ints.  Deliberately not
:func:`.lanes.join`: that one wraps each lane (for signed integer lanes), which float results never
need.  ``abs``/``neg`` are single bit operations on the whole v128 (the scalar ones are pure bit
operations too).  A comparison's scalar result is 0 or 1 per lane, so multiplying the joined v128 by
the all-ones lane pattern turns it into the lane mask without a carry between lanes.

``pmin``/``pmax`` are the spec's pseudo-min/max: ``pmin(a, b) = b < a ? b : a`` and
``pmax(a, b) = a < b ? b : a`` with IEEE ``<`` — a select, so a NaN operand comes back unchanged
(signalling payload included) when it is the one selected.

The ``_zero`` conversions fill the high two i32/f32 lanes with zeros; the ``_low`` ones read lanes 0
and 1 only.
"""

from __future__ import annotations

import operator
import struct
from typing import Callable, Dict, Tuple

from ..numerics import OPS as SCALAR

__all__ = ["LANE_OPS", "OPS", "pmax32", "pmax64", "pmin32", "pmin64"]

Fn = Callable[..., int]
Scalar = Callable[..., int]

OPS: Dict[str, Tuple[int, Fn]] = {}
LANE_OPS: Dict[str, Callable[[int], Tuple[int, Fn]]] = {}

_from_bytes = int.from_bytes
_L4 = struct.Struct("<4I")  # four 32-bit lanes
_L2 = struct.Struct("<2Q")  # two 64-bit lanes

#: shape -> (scalar type, lane struct, all-ones lane)
_SHAPES = {"f32x4": ("f32", _L4, 0xFFFFFFFF), "f64x2": ("f64", _L2, 0xFFFFFFFFFFFFFFFF)}
_SIGNS32 = 0x80000000800000008000000080000000  # the sign bit of every lane
_SIGNS64 = 0x80000000000000008000000000000000
# Added to the lane magnitudes, these carry into a lane's sign bit exactly when the lane is a NaN
# (magnitude > the infinity pattern): a NaN test of every lane in three int operations.
_NAN_CARRY32 = 0x007FFFFF007FFFFF007FFFFF007FFFFF
_NAN_CARRY64 = 0x000FFFFFFFFFFFFF000FFFFFFFFFFFFF
_ABS32 = ((1 << 128) - 1) ^ _SIGNS32  # every bit but the lanes' sign bits
_ABS64 = ((1 << 128) - 1) ^ _SIGNS64


# ---------------------------------------------------------------------------------------------
# Lane-wise lifting of a scalar function (one struct unpack per operand, one pack for the result)


def _unary(f: Scalar, st: struct.Struct) -> Fn:
    unpack, pack = st.unpack, st.pack

    def op(a: int) -> int:
        return _from_bytes(pack(*map(f, unpack(a.to_bytes(16, "little")))), "little")

    return op


def _binary(f: Scalar, st: struct.Struct) -> Fn:
    unpack, pack = st.unpack, st.pack

    def op(a: int, b: int) -> int:
        return _from_bytes(pack(*map(f, unpack(a.to_bytes(16, "little")), unpack(b.to_bytes(16, "little")))),
                           "little")

    return op


def _arith(f: Scalar, py_op: Callable[[float, float], float], lanes: struct.Struct, floats: struct.Struct,
           carry: int, signs: int) -> Fn:
    """``add``/``sub``/``mul``/``div``: the scalar ``f`` per lane, with a fast path for the common case.

    When no operand lane is a NaN, IEEE fixes the result completely, so all lanes are computed as host
    floats in one unpack/pack (``floats``: ``<4f``/``<2d``) — the very rounding the scalar op does per
    lane (binary64 arithmetic, then ``struct``'s rounding to binary32; see :mod:`vm.exec.numerics`).
    Anything the NaN rule or the host could decide differently — a NaN operand, a NaN result, a
    division by zero, an f32 overflow — takes the lane-by-lane scalar path instead, so the NaN rule
    keeps its one home.
    """
    unpack, pack = lanes.unpack, lanes.pack
    funpack, fpack = floats.unpack, floats.pack
    absm = ((1 << 128) - 1) ^ signs

    def op(a: int, b: int) -> int:
        ba, bb = a.to_bytes(16, "little"), b.to_bytes(16, "little")
        if not (((a & absm) + carry) | ((b & absm) + carry)) & signs:
            try:
                r = _from_bytes(fpack(*map(py_op, funpack(ba), funpack(bb))), "little")
            except (OverflowError, ZeroDivisionError):
                pass
            else:
                if not ((r & absm) + carry) & signs:
                    return r
        return _from_bytes(pack(*map(f, unpack(ba), unpack(bb))), "little")

    return op


def _compare(f: Scalar, st: struct.Struct, ones: int) -> Fn:
    """A comparison: the scalar 0/1 per lane, widened to all-zeros/all-ones lanes."""
    unpack, pack = st.unpack, st.pack

    def op(a: int, b: int) -> int:
        return _from_bytes(pack(*map(f, unpack(a.to_bytes(16, "little")), unpack(b.to_bytes(16, "little")))),
                           "little") * ones

    return op


# ---------------------------------------------------------------------------------------------
# pmin / pmax (per lane; not scalar wasm ops, so their home is here)

_lt32 = SCALAR["f32.lt"]
_lt64 = SCALAR["f64.lt"]


def pmin32(a: int, b: int) -> int:
    """``f32x4.pmin`` of one lane: ``b < a ? b : a`` (a select: NaNs pass unchanged)."""
    return b if _lt32(b, a) else a


def pmax32(a: int, b: int) -> int:
    """``f32x4.pmax`` of one lane: ``a < b ? b : a``."""
    return b if _lt32(a, b) else a


def pmin64(a: int, b: int) -> int:
    return b if _lt64(b, a) else a


def pmax64(a: int, b: int) -> int:
    return b if _lt64(a, b) else a


_PSEUDO = {"f32x4": {"pmin": pmin32, "pmax": pmax32}, "f64x2": {"pmin": pmin64, "pmax": pmax64}}


# ---------------------------------------------------------------------------------------------
# Conversions


def _narrow_2x64_to_low_2x32(f: Scalar) -> Fn:
    """``f64x2 -> i32x4/f32x4 _zero``: lanes 0-1 from the two 64-bit lanes, lanes 2-3 zero."""
    unpack = _L2.unpack

    def op(a: int) -> int:
        lo, hi = unpack(a.to_bytes(16, "little"))
        return f(lo) | f(hi) << 32

    return op


def _widen_low_2x32_to_2x64(f: Scalar) -> Fn:
    """``*_low``: the two 64-bit result lanes from 32-bit lanes 0 and 1 of the operand."""

    def op(a: int) -> int:
        return f(a & 0xFFFFFFFF) | f(a >> 32 & 0xFFFFFFFF) << 64

    return op


_CONVERSIONS: Dict[str, Fn] = {
    "f32x4.convert_i32x4_s": _unary(SCALAR["f32.convert_i32_s"], _L4),
    "f32x4.convert_i32x4_u": _unary(SCALAR["f32.convert_i32_u"], _L4),
    "i32x4.trunc_sat_f32x4_s": _unary(SCALAR["i32.trunc_sat_f32_s"], _L4),
    "i32x4.trunc_sat_f32x4_u": _unary(SCALAR["i32.trunc_sat_f32_u"], _L4),
    "f64x2.convert_low_i32x4_s": _widen_low_2x32_to_2x64(SCALAR["f64.convert_i32_s"]),
    "f64x2.convert_low_i32x4_u": _widen_low_2x32_to_2x64(SCALAR["f64.convert_i32_u"]),
    "f64x2.promote_low_f32x4": _widen_low_2x32_to_2x64(SCALAR["f64.promote_f32"]),
    "i32x4.trunc_sat_f64x2_s_zero": _narrow_2x64_to_low_2x32(SCALAR["i32.trunc_sat_f64_s"]),
    "i32x4.trunc_sat_f64x2_u_zero": _narrow_2x64_to_low_2x32(SCALAR["i32.trunc_sat_f64_u"]),
    "f32x4.demote_f64x2_zero": _narrow_2x64_to_low_2x32(SCALAR["f32.demote_f64"]),
}


# ---------------------------------------------------------------------------------------------
# The table

_UNARY = ("sqrt", "ceil", "floor", "trunc", "nearest")
_ARITH = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv}
_FLOATS = {"f32x4": (struct.Struct("<4f"), _NAN_CARRY32, _SIGNS32), "f64x2": (struct.Struct("<2d"), _NAN_CARRY64, _SIGNS64)}
_BINARY = ("min", "max")
_COMPARES = ("eq", "ne", "lt", "gt", "le", "ge")


def _build() -> None:
    for shape, (scalar, st, ones) in _SHAPES.items():
        for name in _UNARY:
            OPS[f"{shape}.{name}"] = (1, _unary(SCALAR[f"{scalar}.{name}"], st))
        for name, py_op in _ARITH.items():
            OPS[f"{shape}.{name}"] = (2, _arith(SCALAR[f"{scalar}.{name}"], py_op, st, *_FLOATS[shape]))
        for name in _BINARY:
            OPS[f"{shape}.{name}"] = (2, _binary(SCALAR[f"{scalar}.{name}"], st))
        for name, fn in _PSEUDO[shape].items():
            OPS[f"{shape}.{name}"] = (2, _binary(fn, st))
        for name in _COMPARES:
            OPS[f"{shape}.{name}"] = (2, _compare(SCALAR[f"{scalar}.{name}"], st, ones))
    # abs/neg: the sign bit of every lane at once (bit operations, payloads kept, like the scalars).
    OPS["f32x4.abs"] = (1, lambda a: a & _ABS32)
    OPS["f64x2.abs"] = (1, lambda a: a & _ABS64)
    OPS["f32x4.neg"] = (1, lambda a: a ^ _SIGNS32)
    OPS["f64x2.neg"] = (1, lambda a: a ^ _SIGNS64)
    for name, fn in _CONVERSIONS.items():
        OPS[name] = (1, fn)


_build()
