"""Lanes of a v128 (an int, lane 0 in the low bits): split, join, signedness, saturation.

Shared by every SIMD op table so that no shape has its own copy.  ``int.to_bytes``/``struct`` do the
splitting in C: a v128 is never a list of per-lane Python objects longer than it must be.
"""

from __future__ import annotations

import struct
from typing import Dict, Sequence

__all__ = ["MASK128", "SHAPES", "join", "pack_s", "pack_u", "repeat", "sat_s", "sat_u", "signed", "split",
           "split_s"]

MASK128 = (1 << 128) - 1

#: shape -> (lane count, lane bits)
SHAPES: Dict[str, tuple] = {"i8x16": (16, 8), "i16x8": (8, 16), "i32x4": (4, 32), "i64x2": (2, 64),
                            "f32x4": (4, 32), "f64x2": (2, 64)}

_FMT_U = {8: "<16B", 16: "<8H", 32: "<4I", 64: "<2Q"}
_FMT_S = {8: "<16b", 16: "<8h", 32: "<4i", 64: "<2q"}
_STRUCT_U = {b: struct.Struct(f) for b, f in _FMT_U.items()}
_STRUCT_S = {b: struct.Struct(f) for b, f in _FMT_S.items()}


def split(v: int, bits: int) -> Sequence[int]:
    """The unsigned lanes of ``v`` (lane 0 first)."""
    return _STRUCT_U[bits].unpack(v.to_bytes(16, "little"))


def split_s(v: int, bits: int) -> Sequence[int]:
    """The signed lanes of ``v`` (lane 0 first)."""
    return _STRUCT_S[bits].unpack(v.to_bytes(16, "little"))


def join(lanes: Sequence[int], bits: int) -> int:
    """The v128 of ``lanes`` (lane 0 first); each lane is wrapped to ``bits`` (signed lanes welcome)."""
    m = (1 << bits) - 1
    return int.from_bytes(_STRUCT_U[bits].pack(*[x & m for x in lanes]), "little")


def signed(x: int, bits: int) -> int:
    return x - (1 << bits) if x >> (bits - 1) & 1 else x


def sat_s(x: int, bits: int) -> int:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return lo if x < lo else hi if x > hi else x


def sat_u(x: int, bits: int) -> int:
    hi = (1 << bits) - 1
    return 0 if x < 0 else hi if x > hi else x


def pack_u(lanes: Sequence[int], bits: int) -> int:
    """The v128 of unsigned lanes already in range (no masking: the caller guarantees the range)."""
    return int.from_bytes(_STRUCT_U[bits].pack(*lanes), "little")


def pack_s(lanes: Sequence[int], bits: int) -> int:
    """The v128 of signed lanes already in range (no masking: the caller guarantees the range)."""
    return int.from_bytes(_STRUCT_S[bits].pack(*lanes), "little")


def repeat(x: int, bits: int) -> int:
    """``x`` (wrapped to ``bits``) in every lane: splat, and the lane masks of SWAR arithmetic."""
    return (x & ((1 << bits) - 1)) * _ONES[bits]


#: bits -> the v128 with 1 in every lane (multiplying a lane value by it fills every lane)
_ONES = {b: sum(1 << (i * b) for i in range(128 // b)) for b in (8, 16, 32, 64)}
