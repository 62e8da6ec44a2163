"""Integer and bitwise v128 ops, and the lane moves of every shape (the table :mod:`vm.exec.simd` merges).

Every table entry is generated over the integer shapes from one definition per concept, so that no
lane width has its own copy.  Speed choices: bitwise ops, ``add``/``sub``/``neg``/shifts/``splat``/
``eq``/``ne``/``all_true`` work directly on the 128-bit int (SWAR: the lane masks keep carries and
borrows inside their lane); ``popcnt``/``swizzle``/``shuffle`` are one ``bytes.translate``; the rest
split the v128 once with ``struct`` (:mod:`.lanes`), map a builtin or a list comprehension over the
lanes and pack once.

``extract_lane``/``replace_lane`` of ``f32x4``/``f64x2`` live here too: float lanes are bit patterns,
so those are pure bit moves, identical to the ``i32x4``/``i64x2`` ones.
"""

from __future__ import annotations

import operator
from typing import Callable, Dict, List, Sequence, Tuple

from .lanes import MASK128, join, pack_s, pack_u, repeat, split, split_s

__all__ = ["LANE_OPS", "OPS", "shuffle"]

Fn = Callable[..., int]
OPS: Dict[str, Tuple[int, Fn]] = {}
LANE_OPS: Dict[str, Callable[[int], Tuple[int, Fn]]] = {}

INT_SHAPES = (("i8x16", 8), ("i16x8", 16), ("i32x4", 32), ("i64x2", 64))

OPS.update({
    "v128.not": (1, lambda a: a ^ MASK128),
    "v128.and": (2, operator.and_),
    "v128.andnot": (2, lambda a, b: a & ~b),
    "v128.or": (2, operator.or_),
    "v128.xor": (2, operator.xor),
    "v128.bitselect": (3, lambda a, b, c: (a & c) | (b & ~c)),
    "v128.any_true": (1, lambda a: 1 if a else 0),
})


# -- whole-int (SWAR) arithmetic ------------------------------------------------------------------

def _swar(p: str, bits: int) -> None:
    m = (1 << bits) - 1
    hi = repeat(1 << (bits - 1), bits)  # the sign bit of every lane
    low = MASK128 ^ hi
    shl_mask = [repeat((m << k) & m, bits) for k in range(bits)]
    shr_mask = [repeat(m >> k, bits) for k in range(bits)]
    fill = [m ^ (m >> k) for k in range(bits)]  # the top k bits of a lane (shr_s sign fill)
    top = bits - 1

    def add(a: int, b: int) -> int:
        return ((a & low) + (b & low)) ^ ((a ^ b) & hi)

    def sub(a: int, b: int) -> int:
        return ((a | hi) - (b & low)) ^ ((a ^ ~b) & hi)

    def shl(a: int, k: int) -> int:
        k %= bits
        return (a << k) & shl_mask[k]

    def shr_u(a: int, k: int) -> int:
        k %= bits
        return (a >> k) & shr_mask[k]

    def shr_s(a: int, k: int) -> int:
        k %= bits
        return ((a >> k) & shr_mask[k]) | (((a & hi) >> top) * fill[k])

    ones = repeat(1, bits)

    def nonzero(x: int) -> int:
        """1 in the low bit of every lane of ``x`` that is not 0 (the carry of ``low`` never crosses lanes)."""
        return ((((x & low) + low) | x) & hi) >> top

    OPS.update({
        p + "eq": (2, lambda a, b: (nonzero(a ^ b) ^ ones) * m),
        p + "ne": (2, lambda a, b: nonzero(a ^ b) * m),
        p + "all_true": (1, lambda a: 1 if nonzero(a) == ones else 0),
        p + "splat": (1, lambda x: repeat(x, bits)),
        p + "add": (2, add), p + "sub": (2, sub), p + "neg": (1, lambda a: sub(0, a)),
        p + "shl": (2, shl), p + "shr_u": (2, shr_u), p + "shr_s": (2, shr_s),
    })


# -- lane-wise arithmetic -------------------------------------------------------------------------

def _lanewise(p: str, bits: int) -> None:
    m = (1 << bits) - 1
    smin, smax = -(1 << (bits - 1)), (1 << (bits - 1)) - 1

    def bitmask(a: int) -> int:
        r = 0
        for i, x in enumerate(split(a, bits)):
            r |= (x >> (bits - 1)) << i
        return r

    OPS.update({
        p + "abs": (1, lambda a: join(list(map(abs, split_s(a, bits))), bits)),
        p + "bitmask": (1, bitmask),
    })
    if bits != 8:
        OPS[p + "mul"] = (2, lambda a, b: join(list(map(operator.mul, split(a, bits), split(b, bits))), bits))
    if bits <= 16:
        def add_sat_s(a: int, b: int) -> int:
            return pack_s([smin if v < smin else smax if v > smax else v
                           for v in map(operator.add, split_s(a, bits), split_s(b, bits))], bits)

        def sub_sat_s(a: int, b: int) -> int:
            return pack_s([smin if v < smin else smax if v > smax else v
                           for v in map(operator.sub, split_s(a, bits), split_s(b, bits))], bits)

        def add_sat_u(a: int, b: int) -> int:
            return pack_u([m if v > m else v for v in map(operator.add, split(a, bits), split(b, bits))], bits)

        def sub_sat_u(a: int, b: int) -> int:
            return pack_u([0 if v < 0 else v for v in map(operator.sub, split(a, bits), split(b, bits))], bits)

        def avgr_u(a: int, b: int) -> int:
            return pack_u([(x + y + 1) >> 1 for x, y in zip(split(a, bits), split(b, bits))], bits)

        OPS.update({p + "add_sat_s": (2, add_sat_s), p + "sub_sat_s": (2, sub_sat_s),
                    p + "add_sat_u": (2, add_sat_u), p + "sub_sat_u": (2, sub_sat_u),
                    p + "avgr_u": (2, avgr_u)})
    if bits <= 32:
        for name, fn in (("min", min), ("max", max)):
            OPS[p + name + "_s"] = (2, _map2(fn, split_s, pack_s, bits))
            OPS[p + name + "_u"] = (2, _map2(fn, split, pack_u, bits))


def _map2(fn: Callable[[int, int], int], sp: Callable[[int, int], Sequence[int]],
          pack: Callable[[Sequence[int], int], int], bits: int) -> Fn:
    """``pack(map(fn, lanes(a), lanes(b)))``: for ops whose result lanes stay in the input's range."""
    return lambda a, b: pack(list(map(fn, sp(a, bits), sp(b, bits))), bits)


# -- comparisons -------------------------------------------------------------------------------

_CMP = {"lt": operator.lt, "gt": operator.gt,
        "le": operator.le, "ge": operator.ge}


def _compares(p: str, bits: int) -> None:
    m = (1 << bits) - 1

    def make(op: Callable[[int, int], bool], sp: Callable[[int, int], Sequence[int]]) -> Fn:
        return lambda a, b: pack_u([m if t else 0 for t in map(op, sp(a, bits), sp(b, bits))], bits)

    for name, op in _CMP.items():  # eq and ne are SWAR (:func:`_swar`)
        OPS[p + name + "_s"] = (2, make(op, split_s))
        if bits != 64:  # i64x2 has only the signed orderings
            OPS[p + name + "_u"] = (2, make(op, split))


# -- widening and narrowing (a result shape of `bits` from lanes of `bits // 2`) --------------------

def _widening(p: str, bits: int) -> None:
    half = bits // 2
    n = 128 // bits
    src = {8: "i8x16", 16: "i16x8", 32: "i32x4"}[half]
    for sx, sp, pack in (("s", split_s, pack_s), ("u", split, pack_u)):
        OPS[f"{p}extend_low_{src}_{sx}"] = (1, _take(sp, pack, half, bits, 0, n))
        OPS[f"{p}extend_high_{src}_{sx}"] = (1, _take(sp, pack, half, bits, n, 2 * n))
        OPS[f"{p}extmul_low_{src}_{sx}"] = (2, _extmul(sp, pack, half, bits, 0, n))
        OPS[f"{p}extmul_high_{src}_{sx}"] = (2, _extmul(sp, pack, half, bits, n, 2 * n))
        if bits <= 32:
            OPS[f"{p}extadd_pairwise_{src}_{sx}"] = (1, _pairwise(sp, pack, half, bits))


def _take(sp: Callable, pack: Callable, half: int, bits: int, lo: int, hi: int) -> Fn:
    return lambda a: pack(sp(a, half)[lo:hi], bits)


def _extmul(sp: Callable, pack: Callable, half: int, bits: int, lo: int, hi: int) -> Fn:
    return lambda a, b: pack(list(map(operator.mul, sp(a, half)[lo:hi], sp(b, half)[lo:hi])), bits)


def _pairwise(sp: Callable, pack: Callable, half: int, bits: int) -> Fn:
    def f(a: int) -> int:
        x = sp(a, half)
        return pack(list(map(operator.add, x[0::2], x[1::2])), bits)
    return f


def _narrowing(p: str, bits: int) -> None:
    wide = bits * 2
    src = {16: "i16x8", 32: "i32x4"}[wide]
    smin, smax, umax = -(1 << (bits - 1)), (1 << (bits - 1)) - 1, (1 << bits) - 1

    def narrow_s(a: int, b: int) -> int:
        lanes: List[int] = list(split_s(a, wide)) + list(split_s(b, wide))
        return pack_s([smin if v < smin else smax if v > smax else v for v in lanes], bits)

    def narrow_u(a: int, b: int) -> int:
        lanes: List[int] = list(split_s(a, wide)) + list(split_s(b, wide))
        return pack_u([0 if v < 0 else umax if v > umax else v for v in lanes], bits)

    OPS[f"{p}narrow_{src}_s"] = (2, narrow_s)
    OPS[f"{p}narrow_{src}_u"] = (2, narrow_u)


# -- the odd ones ---------------------------------------------------------------------------------

_POPCNT = bytes(bin(i).count("1") for i in range(256))
_ZEROS = bytes(256)


def _popcnt(a: int) -> int:
    return int.from_bytes(a.to_bytes(16, "little").translate(_POPCNT), "little")


def _swizzle(a: int, s: int) -> int:
    """Lane i of the result is lane ``s[i]`` of ``a``, or 0 when ``s[i] >= 16``: one 256-byte table."""
    return int.from_bytes(s.to_bytes(16, "little").translate(a.to_bytes(16, "little") + _ZEROS[:240]), "little")


def shuffle(lanes: Sequence[int]) -> Fn:
    """``i8x16.shuffle`` with its 16 immediate lane indices (each < 32, checked by the validator)."""
    idx = bytes(lanes)

    def f(a: int, b: int) -> int:
        table = a.to_bytes(16, "little") + b.to_bytes(16, "little") + _ZEROS[:224]
        return int.from_bytes(idx.translate(table), "little")
    return f


def _dot(a: int, b: int) -> int:
    p = list(map(operator.mul, split_s(a, 16), split_s(b, 16)))
    return join(list(map(operator.add, p[0::2], p[1::2])), 32)


def _q15mulr(a: int, b: int) -> int:
    return pack_s([32767 if v > 32767 else v
                   for v in [(x * y + 0x4000) >> 15 for x, y in zip(split_s(a, 16), split_s(b, 16))]], 16)


OPS.update({
    "i8x16.popcnt": (1, _popcnt),
    "i8x16.swizzle": (2, _swizzle),
    "i32x4.dot_i16x8_s": (2, _dot),
    "i16x8.q15mulr_sat_s": (2, _q15mulr),
})


# -- lane moves (every shape; float lanes are bit patterns) --------------------------------------------

def _extract(bits: int, sign_to: int) -> Callable[[int], Tuple[int, Fn]]:
    """``extract_lane`` of a lane of ``bits``; ``sign_to`` > 0 sign-extends to that many bits (``_s``)."""
    m = (1 << bits) - 1

    def make(lane: int) -> Tuple[int, Fn]:
        sh = lane * bits
        if not sign_to:
            return 1, lambda v: (v >> sh) & m
        sb = 1 << (bits - 1)
        out = (1 << sign_to) - 1
        return 1, lambda v: ((((v >> sh) & m) ^ sb) - sb) & out
    return make


def _replace(bits: int) -> Callable[[int], Tuple[int, Fn]]:
    m = (1 << bits) - 1

    def make(lane: int) -> Tuple[int, Fn]:
        sh = lane * bits
        keep = MASK128 ^ (m << sh)
        return 2, lambda v, x: (v & keep) | ((x & m) << sh)
    return make


for _shape, _bits in INT_SHAPES + (("f32x4", 32), ("f64x2", 64)):
    if _bits <= 16:
        LANE_OPS[_shape + ".extract_lane_s"] = _extract(_bits, 32)
        LANE_OPS[_shape + ".extract_lane_u"] = _extract(_bits, 0)
    else:
        LANE_OPS[_shape + ".extract_lane"] = _extract(_bits, 0)
    LANE_OPS[_shape + ".replace_lane"] = _replace(_bits)

for _shape, _bits in INT_SHAPES:
    _p = _shape + "."
    _swar(_p, _bits)
    _lanewise(_p, _bits)
    _compares(_p, _bits)
    if _bits >= 16:
        _widening(_p, _bits)
    if _bits <= 16:
        _narrowing(_p, _bits)
