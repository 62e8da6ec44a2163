"""Float-lane SIMD ops (:mod:`vm.exec.simd.floats`) against the scalar numerics, lane by lane.

The oracle is deliberately naive and independent of the implementation: lanes are cut out of the v128
int with shifts and masks (no ``struct``), the *scalar* op of :data:`vm.exec.numerics.OPS` is applied
to each lane, and the lanes are shifted back together.  A lane of a SIMD op must equal the scalar op
bit for bit — NaN payloads included, because both follow the same documented NaN rule — so the
comparison is exact.  The scalar ops themselves are checked against wasmtime in ``test_numerics.py``;
the spec files (``simd_f32x4*.wast`` ...) check the whole path through the engine.

Lane values mix random bit patterns with edge values (signed zeros, infinities, canonical, arithmetic
and signalling NaNs with payloads, subnormals, rounding ties, the integer range boundaries of the
truncations).
"""

from __future__ import annotations

from typing import Callable, List

from hypothesis import given, settings
from hypothesis import strategies as st

from vm.exec.numerics import OPS as SCALAR
from vm.exec.simd import OPS, floats

# ---------------------------------------------------------------------------------------------
# The independent splitter / joiner


def lanes_of(v: int, bits: int) -> List[int]:
    return [(v >> (i * bits)) & ((1 << bits) - 1) for i in range(128 // bits)]


def v128_of(lanes: List[int], bits: int) -> int:
    out = 0
    for i, x in enumerate(lanes):
        assert 0 <= x < (1 << bits)
        out |= x << (i * bits)
    return out


# ---------------------------------------------------------------------------------------------
# Lane strategies

EDGE32 = [
    0x00000000, 0x80000000, 0x7F800000, 0xFF800000,  # +-0, +-inf
    0x7FC00000, 0xFFC00000, 0x7FC00001, 0xFFE12345,  # canonical / arithmetic NaNs
    0x7F800001, 0xFFA00000, 0x7FBFFFFF,  # signalling NaNs
    0x00000001, 0x807FFFFF, 0x00800000, 0x7F7FFFFF, 0xFF7FFFFF,  # subnormals, min normal, max
    0x3F000000, 0xBF000000, 0x3FC00000, 0x40200000, 0xC0200000,  # 0.5 -0.5 1.5 2.5 -2.5
    0x3F800000, 0xBF800000, 0x4B000000, 0x4AFFFFFF, 0xCB7FFFFF,  # 1 -1 2**23 ...
    0x4F000000, 0xCF000000, 0x4F800000, 0x4EFFFFFF, 0x4F7FFFFF, 0xBF7FFFFF,  # 2**31, 2**32 ...
    0xFFFFFFFF, 0x7FFFFFFF, 0x80000001,  # also as integers: -1, INT_MAX, INT_MIN + 1
]
EDGE64 = [
    0x0000000000000000, 0x8000000000000000, 0x7FF0000000000000, 0xFFF0000000000000,
    0x7FF8000000000000, 0xFFF8000000000000, 0x7FF8000000000001, 0xFFFC0000DEADBEEF,
    0x7FF0000000000001, 0xFFF4000000000000, 0x7FF7FFFFFFFFFFFF,
    0x0000000000000001, 0x800FFFFFFFFFFFFF, 0x0010000000000000, 0x7FEFFFFFFFFFFFFF,
    0x3FE0000000000000, 0xBFE0000000000000, 0x3FF8000000000000, 0x4004000000000000,
    0x3FF0000000000000, 0xBFF0000000000000, 0x4330000000000000, 0x432FFFFFFFFFFFFF,
    0x41E0000000000000, 0xC1E0000000000000, 0x41DFFFFFFFC00000, 0x41EFFFFFFFE00000,
    0x41F0000000000000, 0xC1E0000000200000, 0xBFEFFFFFFFFFFFFF,
    0x36A0000000000000, 0x47EFFFFFE0000000, 0x47EFFFFFF0000000, 0x3690000000000001,  # demote edges
    0xFFFFFFFFFFFFFFFF,
]


def _lane(bits: int) -> st.SearchStrategy[int]:
    edge = EDGE32 if bits == 32 else EDGE64
    exp_all = 0x7F800000 if bits == 32 else 0x7FF0000000000000
    sign = 1 << (bits - 1)
    payload = (sign - 1) ^ exp_all
    nan = st.tuples(st.integers(0, 1), st.integers(1, payload)).map(
        lambda t: (t[0] * sign) | exp_all | t[1])  # any NaN: either sign, any non-zero payload
    return st.one_of(st.sampled_from(edge), st.integers(0, (1 << bits) - 1), nan)


def _v128(bits: int) -> st.SearchStrategy[int]:
    return st.lists(_lane(bits), min_size=128 // bits, max_size=128 // bits).map(lambda ls: v128_of(ls, bits))


V32 = _v128(32)
V64 = _v128(64)
SETTINGS = settings(max_examples=150, deadline=None)

# ---------------------------------------------------------------------------------------------
# The references


def _ref_lanewise(scalar: Callable[..., int], bits: int, *vs: int) -> int:
    return v128_of([scalar(*xs) for xs in zip(*(lanes_of(v, bits) for v in vs))], bits)


def _ref_compare(scalar: Callable[..., int], bits: int, a: int, b: int) -> int:
    ones = (1 << bits) - 1
    return v128_of([ones if scalar(x, y) else 0 for x, y in zip(lanes_of(a, bits), lanes_of(b, bits))], bits)


def _ref_pmin(lt: Callable[[int, int], int]) -> Callable[[int, int], int]:
    return lambda a, b: b if lt(b, a) else a  # the spec: pmin(z1, z2) = flt(z2, z1) ? z2 : z1


def _ref_pmax(lt: Callable[[int, int], int]) -> Callable[[int, int], int]:
    return lambda a, b: b if lt(a, b) else a  # pmax(z1, z2) = flt(z1, z2) ? z2 : z1


SHAPES = {"f32x4": ("f32", 32, V32), "f64x2": ("f64", 64, V64)}
UNARY = ("abs", "neg", "sqrt", "ceil", "floor", "trunc", "nearest")
BINARY = ("add", "sub", "mul", "div", "min", "max")
COMPARES = ("eq", "ne", "lt", "gt", "le", "ge")
CONVERSIONS = (
    "f32x4.convert_i32x4_s", "f32x4.convert_i32x4_u", "f64x2.convert_low_i32x4_s",
    "f64x2.convert_low_i32x4_u", "i32x4.trunc_sat_f32x4_s", "i32x4.trunc_sat_f32x4_u",
    "i32x4.trunc_sat_f64x2_s_zero", "i32x4.trunc_sat_f64x2_u_zero", "f32x4.demote_f64x2_zero",
    "f64x2.promote_low_f32x4",
)


def _run(op: str, *args: int) -> int:
    arity, fn = OPS[op]
    assert arity == len(args)
    r = fn(*args)
    assert isinstance(r, int) and 0 <= r < (1 << 128), (op, r)
    return r


# ---------------------------------------------------------------------------------------------
# The table


def test_every_float_op_is_in_the_merged_table_with_its_arity() -> None:
    expected = {f"{s}.{n}": 1 for s in SHAPES for n in UNARY}
    expected.update({f"{s}.{n}": 2 for s in SHAPES for n in BINARY + COMPARES + ("pmin", "pmax")})
    expected.update({c: 1 for c in CONVERSIONS})
    assert {op: ar for op, (ar, _fn) in floats.OPS.items()} == expected
    for op in expected:
        assert OPS[op] is floats.OPS[op]


# ---------------------------------------------------------------------------------------------
# Properties: every lane is the scalar op of its lanes


@SETTINGS
@given(st.sampled_from(sorted(SHAPES)), st.sampled_from(UNARY), st.data())
def test_unary_is_the_scalar_op_per_lane(shape: str, name: str, data: st.DataObject) -> None:
    t, bits, vs = SHAPES[shape]
    a = data.draw(vs)
    assert _run(f"{shape}.{name}", a) == _ref_lanewise(SCALAR[f"{t}.{name}"], bits, a)


@SETTINGS
@given(st.sampled_from(sorted(SHAPES)), st.sampled_from(BINARY), st.data())
def test_binary_is_the_scalar_op_per_lane(shape: str, name: str, data: st.DataObject) -> None:
    t, bits, vs = SHAPES[shape]
    a, b = data.draw(vs), data.draw(vs)
    assert _run(f"{shape}.{name}", a, b) == _ref_lanewise(SCALAR[f"{t}.{name}"], bits, a, b)


def _non_nan_v128(bits: int) -> st.SearchStrategy[int]:
    """Lanes that are never NaN (the case ``add``/``sub``/``mul``/``div`` compute as host floats)."""
    absm, inf = ((0x7FFFFFFF, 0x7F800000) if bits == 32 else (0x7FFFFFFFFFFFFFFF, 0x7FF0000000000000))
    lane = _lane(bits).filter(lambda x: x & absm <= inf)
    big = st.integers(inf - 0x1000, inf).map(lambda x: x | (1 << (bits - 1)) * (x & 1))  # near overflow
    return st.lists(st.one_of(lane, big), min_size=128 // bits, max_size=128 // bits).map(
        lambda ls: v128_of(ls, bits))


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(SHAPES)), st.sampled_from(("add", "sub", "mul", "div")), st.data())
def test_arith_without_nan_operands_is_the_scalar_op_per_lane(shape: str, name: str, data: st.DataObject) -> None:
    t, bits, _vs = SHAPES[shape]
    a, b = data.draw(_non_nan_v128(bits)), data.draw(_non_nan_v128(bits))
    assert _run(f"{shape}.{name}", a, b) == _ref_lanewise(SCALAR[f"{t}.{name}"], bits, a, b)


@SETTINGS
@given(st.sampled_from(sorted(SHAPES)), st.sampled_from(COMPARES), st.data())
def test_compare_gives_lane_masks_of_the_scalar_relation(shape: str, name: str, data: st.DataObject) -> None:
    t, bits, vs = SHAPES[shape]
    a = data.draw(vs)
    b = data.draw(st.one_of(vs, st.just(a)))  # equal operands too (x == x unless NaN)
    assert _run(f"{shape}.{name}", a, b) == _ref_compare(SCALAR[f"{t}.{name}"], bits, a, b)


@SETTINGS
@given(st.sampled_from(sorted(SHAPES)), st.sampled_from(("pmin", "pmax")), st.data())
def test_pmin_pmax_are_the_spec_selects(shape: str, name: str, data: st.DataObject) -> None:
    t, bits, vs = SHAPES[shape]
    a, b = data.draw(vs), data.draw(vs)
    lt = SCALAR[f"{t}.lt"]
    ref = _ref_pmin(lt) if name == "pmin" else _ref_pmax(lt)
    assert _run(f"{shape}.{name}", a, b) == _ref_lanewise(ref, bits, a, b)


def _ref_conversion(op: str, a: int) -> int:
    """Conversions spelled out from the spec's definitions over the scalar ops."""
    if op in ("f32x4.convert_i32x4_s", "f32x4.convert_i32x4_u", "i32x4.trunc_sat_f32x4_s",
              "i32x4.trunc_sat_f32x4_u"):
        dst, rest = op.split(".")
        scalar = {"convert_i32x4_s": "f32.convert_i32_s", "convert_i32x4_u": "f32.convert_i32_u",
                  "trunc_sat_f32x4_s": "i32.trunc_sat_f32_s", "trunc_sat_f32x4_u": "i32.trunc_sat_f32_u"}[rest]
        return _ref_lanewise(SCALAR[scalar], 32, a)
    if op.startswith("f64x2."):  # the low two 32-bit lanes widened to two 64-bit lanes
        scalar = {"f64x2.convert_low_i32x4_s": "f64.convert_i32_s", "f64x2.convert_low_i32x4_u": "f64.convert_i32_u",
                  "f64x2.promote_low_f32x4": "f64.promote_f32"}[op]
        return v128_of([SCALAR[scalar](x) for x in lanes_of(a, 32)[:2]], 64)
    # the two 64-bit lanes narrowed into 32-bit lanes 0 and 1; lanes 2 and 3 are zero
    scalar = {"i32x4.trunc_sat_f64x2_s_zero": "i32.trunc_sat_f64_s", "i32x4.trunc_sat_f64x2_u_zero": "i32.trunc_sat_f64_u",
              "f32x4.demote_f64x2_zero": "f32.demote_f64"}[op]
    return v128_of([SCALAR[scalar](x) for x in lanes_of(a, 64)] + [0, 0], 32)


@SETTINGS
@given(st.sampled_from(CONVERSIONS), st.data())
def test_conversions_are_the_scalar_conversion_per_lane(op: str, data: st.DataObject) -> None:
    a = data.draw(V64 if "f64x2_" in op or "demote" in op else V32)
    assert _run(op, a) == _ref_conversion(op, a)


# ---------------------------------------------------------------------------------------------
# Examples: known answers (lane 0 first in the lists), NaN payloads


def f32x4(*lanes: int) -> int:
    return v128_of(list(lanes), 32)


def f64x2(*lanes: int) -> int:
    return v128_of(list(lanes), 64)


def test_nan_operands_come_back_quiet_with_their_payload_per_lane() -> None:
    a = f32x4(0x7F800001, 0x3F800000, 0xFFA00000, 0x7FC00000)
    b = f32x4(0x3F800000, 0x7FA00005, 0x3F800000, 0x3F800000)
    assert lanes_of(_run("f32x4.add", a, b), 32) == [0x7FC00001, 0x7FE00005, 0xFFE00000, 0x7FC00000]
    assert lanes_of(_run("f64x2.mul", f64x2(0x7FF0000000000001, 0), f64x2(0, 0xFFF4000000000000)), 64) == [
        0x7FF8000000000001, 0xFFFC000000000000]


def test_created_nans_are_canonical_positive_per_lane() -> None:
    inf, ninf = 0x7F800000, 0xFF800000
    r = _run("f32x4.add", f32x4(inf, 0, 0x3F800000, 0), f32x4(ninf, 0x80000000, 0x3F800000, 0))
    assert lanes_of(r, 32) == [0x7FC00000, 0, 0x40000000, 0]
    assert lanes_of(_run("f64x2.sqrt", f64x2(0xBFF0000000000000, 0x8000000000000000)), 64) == [
        0x7FF8000000000000, 0x8000000000000000]  # sqrt(-1) = NaN, sqrt(-0) = -0
    assert lanes_of(_run("f32x4.div", f32x4(0, 0x3F800000, 0xBF800000, 0), f32x4(0, 0, 0, 0x80000000)), 32) == [
        0x7FC00000, 0x7F800000, 0xFF800000, 0x7FC00000]


def test_arith_overflow_and_created_nan_in_one_lane_leave_the_other_lanes_exact() -> None:
    fmax, one = 0x7F7FFFFF, 0x3F800000
    r = _run("f32x4.add", f32x4(fmax, one, 0xFF7FFFFF, 0x7F800000), f32x4(fmax, one, 0xFF7FFFFF, 0xFF800000))
    assert lanes_of(r, 32) == [0x7F800000, 0x40000000, 0xFF800000, 0x7FC00000]
    r = _run("f32x4.mul", f32x4(0x7F800000, 0x00000001, 0x3F000000, 0x00000001), f32x4(0, 0x3F000000, one, 0x3F400000))
    assert lanes_of(r, 32) == [0x7FC00000, 0, 0x3F000000, 0x00000001]  # inf*0; subnormal ties to even
    r = _run("f64x2.sub", f64x2(0xFFF0000000000000, 0x3FF0000000000000), f64x2(0xFFF0000000000000, 0x3FF0000000000000))
    assert lanes_of(r, 64) == [0x7FF8000000000000, 0]


def test_abs_neg_keep_signalling_payloads() -> None:
    a = f32x4(0xFF800001, 0x7FA00000, 0x80000000, 0xBF800000)
    assert lanes_of(_run("f32x4.abs", a), 32) == [0x7F800001, 0x7FA00000, 0, 0x3F800000]
    assert lanes_of(_run("f32x4.neg", a), 32) == [0x7F800001, 0xFFA00000, 0, 0x3F800000]
    assert lanes_of(_run("f64x2.neg", f64x2(0x7FF0000000000001, 0)), 64) == [0xFFF0000000000001, 1 << 63]


def test_min_max_signed_zeros_and_pmin_pmax_select_operands_unchanged() -> None:
    pz, nz, snan = 0, 0x80000000, 0x7F800001
    assert lanes_of(_run("f32x4.min", f32x4(pz, nz, pz, 0x3F800000), f32x4(nz, pz, pz, snan)), 32) == [
        nz, nz, pz, 0x7FC00001]
    assert lanes_of(_run("f32x4.max", f32x4(pz, nz, nz, 0x3F800000), f32x4(nz, pz, nz, snan)), 32) == [
        pz, pz, nz, 0x7FC00001]
    # pmin(a, b) = b < a ? b : a: zeros compare equal, so the first operand; a NaN is never "less"
    assert lanes_of(_run("f32x4.pmin", f32x4(pz, nz, snan, 0x3F800000), f32x4(nz, pz, 0x3F800000, snan)), 32) == [
        pz, nz, snan, 0x3F800000]
    assert lanes_of(_run("f32x4.pmax", f32x4(pz, nz, snan, 0x3F800000), f32x4(nz, pz, 0x3F800000, snan)), 32) == [
        pz, nz, snan, 0x3F800000]
    assert lanes_of(_run("f64x2.pmin", f64x2(0x4000000000000000, 0x7FF8000000000000),
                         f64x2(0x3FF0000000000000, 0x3FF0000000000000)), 64) == [0x3FF0000000000000, 0x7FF8000000000000]


def test_compare_lanes_are_all_ones_or_all_zeros() -> None:
    nan = 0x7FC00000
    a = f32x4(0, 0x3F800000, nan, 0xBF800000)
    b = f32x4(0x80000000, 0x40000000, nan, 0xBF800000)
    ones = 0xFFFFFFFF
    assert lanes_of(_run("f32x4.eq", a, b), 32) == [ones, 0, 0, ones]
    assert lanes_of(_run("f32x4.ne", a, b), 32) == [0, ones, ones, 0]
    assert lanes_of(_run("f32x4.lt", a, b), 32) == [0, ones, 0, 0]
    assert lanes_of(_run("f64x2.ge", f64x2(0, 0x7FF8000000000000), f64x2(1 << 63, 0)), 64) == [(1 << 64) - 1, 0]


def test_rounding_keeps_the_sign_of_zero_and_ties_to_even() -> None:
    a = f32x4(0xBF000000, 0x3FC00000, 0x40200000, 0xBEFFFFFF)  # -0.5 1.5 2.5 -0.49999997
    assert lanes_of(_run("f32x4.nearest", a), 32) == [0x80000000, 0x40000000, 0x40000000, 0x80000000]
    assert lanes_of(_run("f32x4.ceil", a), 32) == [0x80000000, 0x40000000, 0x40400000, 0x80000000]
    assert lanes_of(_run("f32x4.floor", a), 32) == [0xBF800000, 0x3F800000, 0x40000000, 0xBF800000]
    assert lanes_of(_run("f32x4.trunc", a), 32) == [0x80000000, 0x3F800000, 0x40000000, 0x80000000]


def test_trunc_sat_saturates_and_zeroes_nan_and_the_high_lanes() -> None:
    a = f32x4(0x7FC00000, 0x4F000000, 0xCF000001, 0xC0200000)  # NaN 2**31 -2**31-eps -2.5
    assert lanes_of(_run("i32x4.trunc_sat_f32x4_s", a), 32) == [0, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE]
    assert lanes_of(_run("i32x4.trunc_sat_f32x4_u", a), 32) == [0, 0x80000000, 0, 0]
    b = f64x2(0x41F0000000000000, 0xFFF0000000000000)  # 2**32, -inf
    assert lanes_of(_run("i32x4.trunc_sat_f64x2_u_zero", b), 32) == [0xFFFFFFFF, 0, 0, 0]
    assert lanes_of(_run("i32x4.trunc_sat_f64x2_s_zero", b), 32) == [0x7FFFFFFF, 0x80000000, 0, 0]


def test_int_to_float_conversions_round_to_nearest_even() -> None:
    a = f32x4(0xFFFFFFFF, 0x01000001, 0x7FFFFFFF, 0x80000000)
    assert lanes_of(_run("f32x4.convert_i32x4_s", a), 32) == [0xBF800000, 0x4B800000, 0x4F000000, 0xCF000000]
    assert lanes_of(_run("f32x4.convert_i32x4_u", a), 32) == [0x4F800000, 0x4B800000, 0x4F000000, 0x4F000000]
    assert lanes_of(_run("f64x2.convert_low_i32x4_s", a), 64) == [0xBFF0000000000000, 0x4170000010000000]
    assert lanes_of(_run("f64x2.convert_low_i32x4_u", a), 64) == [0x41EFFFFFFFE00000, 0x4170000010000000]


def test_demote_promote_keep_nan_payload_top_bits_and_sign() -> None:
    d = _run("f32x4.demote_f64x2_zero", f64x2(0xFFF4000020000000, 0x7FF0000000000001))
    assert lanes_of(d, 32) == [0xFFE00001, 0x7FC00000, 0, 0]  # signalling NaN made quiet, payload kept
    p = _run("f64x2.promote_low_f32x4", f32x4(0xFFA00001, 0x3F800000, 0x7FC00000, 0x7FC00000))
    assert lanes_of(p, 64) == [0xFFFC000020000000, 0x3FF0000000000000]  # lanes 2-3 ignored
    overflow = _run("f32x4.demote_f64x2_zero", f64x2(0x47EFFFFFF0000000, 0xC7EFFFFFF0000000))
    assert lanes_of(overflow, 32) == [0x7F800000, 0xFF800000, 0, 0]  # rounds past FLT_MAX: inf
