"""Integer/bitwise SIMD ops and the v128 memory forms against a straightforward per-lane reference.

The reference here is written from the spec's per-lane definitions with shifts and masks only (no
``struct``, no SWAR, none of :mod:`vm.exec.simd.lanes`), so a shared bug cannot hide in both.
"""

from __future__ import annotations

from typing import Callable, List

import pytest
import wasmtime
from hypothesis import given, settings
from hypothesis import strategies as st

from vm.api import Store, instantiate
from vm.errors import Trap, Unsupported
from vm.exec import simd
from vm.exec.simd.ints import shuffle

SHAPES = {"i8x16": 8, "i16x8": 16, "i32x4": 32, "i64x2": 64}
V128 = st.integers(0, (1 << 128) - 1)
# lanes near the edges (0, 1, max, min, -1) are where saturation and sign bugs live


def _edge_lanes(b: int) -> st.SearchStrategy:
    m = (1 << b) - 1
    edges = [0, 1, 2, m, m - 1, m >> 1, (m >> 1) + 1, 0x7F, 0x80, 0xFF]
    return st.lists(st.sampled_from([e & m for e in edges]), min_size=128 // b, max_size=128 // b).map(
        lambda xs: sum(x << (i * b) for i, x in enumerate(xs)))


EDGY = st.one_of(V128, *[_edge_lanes(b) for b in (8, 16, 32, 64)])


def lanes(v: int, b: int) -> List[int]:
    return [(v >> (i * b)) & ((1 << b) - 1) for i in range(128 // b)]


def slanes(v: int, b: int) -> List[int]:
    return [x - (1 << b) if x >> (b - 1) else x for x in lanes(v, b)]


def build(xs: List[int], b: int) -> int:
    r = 0
    for i, x in enumerate(xs):
        r |= (x % (1 << b)) << (i * b)
    return r


def clamp(x: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, x))


def ref_binary(name: str, b: int) -> Callable[[int, int], int]:
    smin, smax, umax = -(1 << (b - 1)), (1 << (b - 1)) - 1, (1 << b) - 1
    per_lane = {
        "add": (False, lambda x, y: x + y), "sub": (False, lambda x, y: x - y),
        "mul": (False, lambda x, y: x * y),
        "add_sat_s": (True, lambda x, y: clamp(x + y, smin, smax)),
        "sub_sat_s": (True, lambda x, y: clamp(x - y, smin, smax)),
        "add_sat_u": (False, lambda x, y: clamp(x + y, 0, umax)),
        "sub_sat_u": (False, lambda x, y: clamp(x - y, 0, umax)),
        "min_s": (True, min), "max_s": (True, max), "min_u": (False, min), "max_u": (False, max),
        "avgr_u": (False, lambda x, y: (x + y + 1) // 2),
        "eq": (False, lambda x, y: -(x == y)), "ne": (False, lambda x, y: -(x != y)),
    }
    for cmp, f in (("lt", lambda x, y: x < y), ("gt", lambda x, y: x > y),
                   ("le", lambda x, y: x <= y), ("ge", lambda x, y: x >= y)):
        per_lane[cmp + "_s"] = (True, lambda x, y, f=f: -int(f(x, y)))
        per_lane[cmp + "_u"] = (False, lambda x, y, f=f: -int(f(x, y)))
    signed, f = per_lane[name]
    get = slanes if signed else lanes
    return lambda a, c: build([f(x, y) for x, y in zip(get(a, b), get(c, b))], b)


BINARY = [(s, n) for s in SHAPES for n in
          ["add", "sub", "mul", "add_sat_s", "sub_sat_s", "add_sat_u", "sub_sat_u", "min_s", "max_s",
           "min_u", "max_u", "avgr_u", "eq", "ne", "lt_s", "lt_u", "gt_s", "gt_u", "le_s", "le_u",
           "ge_s", "ge_u"] if f"{s}.{n}" in simd.OPS]


def test_the_table_has_every_integer_op_of_the_spec():
    missing = [f"{s}.{n}" for s, n in [
        ("i8x16", "add_sat_s"), ("i16x8", "avgr_u"), ("i32x4", "min_u"), ("i64x2", "ge_s"),
        ("i16x8", "mul"), ("i64x2", "mul"), ("i32x4", "lt_u")] if f"{s}.{n}" not in simd.OPS]
    assert not missing
    # what the spec does not define must not be there
    for op in ("i8x16.mul", "i64x2.lt_u", "i64x2.min_s", "i32x4.add_sat_s", "i64x2.avgr_u"):
        assert op not in simd.OPS


@pytest.mark.parametrize("shape,name", BINARY)
@settings(deadline=None, max_examples=60)
@given(a=EDGY, c=EDGY)
def test_binary_lanewise(shape, name, a, c):
    assert simd.OPS[f"{shape}.{name}"][1](a, c) == ref_binary(name, SHAPES[shape])(a, c)


@pytest.mark.parametrize("shape", SHAPES)
@settings(deadline=None, max_examples=60)
@given(a=EDGY, k=st.integers(0, 0xFFFFFFFF), x=st.integers(0, (1 << 64) - 1))
def test_unary_shift_splat_reduce(shape, a, k, x):
    b = SHAPES[shape]
    op = {n: f for n, (_, f) in simd.OPS.items()}
    p = shape + "."
    s = k % b
    assert op[p + "neg"](a) == build([-v for v in lanes(a, b)], b)
    assert op[p + "abs"](a) == build([abs(v) for v in slanes(a, b)], b)
    assert op[p + "shl"](a, k) == build([v << s for v in lanes(a, b)], b)
    assert op[p + "shr_u"](a, k) == build([v >> s for v in lanes(a, b)], b)
    assert op[p + "shr_s"](a, k) == build([v >> s for v in slanes(a, b)], b)
    assert op[p + "all_true"](a) == int(all(lanes(a, b)))
    assert op[p + "bitmask"](a) == sum(1 << i for i, v in enumerate(slanes(a, b)) if v < 0)
    assert op[p + "splat"](x) == build([x] * (128 // b), b)


@settings(deadline=None, max_examples=100)
@given(a=EDGY, c=EDGY, m=EDGY)
def test_bitwise_and_byte_ops(a, c, m):
    op = {n: f for n, (_, f) in simd.OPS.items()}
    full = (1 << 128) - 1
    assert op["v128.not"](a) == full - a
    assert op["v128.and"](a, c) == a & c
    assert op["v128.andnot"](a, c) == a & (full - c)
    assert op["v128.or"](a, c) == a | c
    assert op["v128.xor"](a, c) == a ^ c
    assert op["v128.bitselect"](a, c, m) == build(
        [x if s else y for x, y, s in zip(lanes(a, 1), lanes(c, 1), lanes(m, 1))], 1)
    assert op["v128.any_true"](a) == int(a != 0)
    assert op["i8x16.popcnt"](a) == build([bin(v).count("1") for v in lanes(a, 8)], 8)
    src = lanes(a, 8)
    assert op["i8x16.swizzle"](a, c) == build([src[i] if i < 16 else 0 for i in lanes(c, 8)], 8)


@settings(deadline=None, max_examples=100)
@given(a=EDGY, c=EDGY, idx=st.lists(st.integers(0, 31), min_size=16, max_size=16))
def test_shuffle(a, c, idx):
    both = lanes(a, 8) + lanes(c, 8)
    assert shuffle(idx)(a, c) == build([both[i] for i in idx], 8)


@pytest.mark.parametrize("wide", [16, 32, 64])
@settings(deadline=None, max_examples=60)
@given(a=EDGY, c=EDGY)
def test_widening(wide, a, c):
    half = wide // 2
    n = 128 // wide
    dst, src = [k for k, v in SHAPES.items() if v == wide][0], [k for k, v in SHAPES.items() if v == half][0]
    op = {k: f for k, (_, f) in simd.OPS.items()}
    for sx, get in (("s", slanes), ("u", lanes)):
        la, lc = get(a, half), get(c, half)
        assert op[f"{dst}.extend_low_{src}_{sx}"](a) == build(la[:n], wide)
        assert op[f"{dst}.extend_high_{src}_{sx}"](a) == build(la[n:], wide)
        assert op[f"{dst}.extmul_low_{src}_{sx}"](a, c) == build([x * y for x, y in zip(la[:n], lc[:n])], wide)
        assert op[f"{dst}.extmul_high_{src}_{sx}"](a, c) == build([x * y for x, y in zip(la[n:], lc[n:])], wide)
        if wide <= 32:
            assert op[f"{dst}.extadd_pairwise_{src}_{sx}"](a) == build(
                [la[2 * i] + la[2 * i + 1] for i in range(n)], wide)


@pytest.mark.parametrize("narrow", [8, 16])
@settings(deadline=None, max_examples=60)
@given(a=EDGY, c=EDGY)
def test_narrowing(narrow, a, c):
    wide = narrow * 2
    dst, src = [k for k, v in SHAPES.items() if v == narrow][0], [k for k, v in SHAPES.items() if v == wide][0]
    both = slanes(a, wide) + slanes(c, wide)
    op = {k: f for k, (_, f) in simd.OPS.items()}
    lo, hi = -(1 << (narrow - 1)), (1 << (narrow - 1)) - 1
    assert op[f"{dst}.narrow_{src}_s"](a, c) == build([clamp(v, lo, hi) for v in both], narrow)
    assert op[f"{dst}.narrow_{src}_u"](a, c) == build([clamp(v, 0, (1 << narrow) - 1) for v in both], narrow)


@settings(deadline=None, max_examples=100)
@given(a=EDGY, c=EDGY)
def test_dot_and_q15mulr(a, c):
    x, y = slanes(a, 16), slanes(c, 16)
    dot = simd.OPS["i32x4.dot_i16x8_s"][1](a, c)
    assert dot == build([x[2 * i] * y[2 * i] + x[2 * i + 1] * y[2 * i + 1] for i in range(4)], 32)
    q15 = simd.OPS["i16x8.q15mulr_sat_s"][1](a, c)
    assert q15 == build([clamp((p * q + (1 << 14)) >> 15, -32768, 32767) for p, q in zip(x, y)], 16)


@pytest.mark.parametrize("shape,bits", list(SHAPES.items()) + [("f32x4", 32), ("f64x2", 64)])
@settings(deadline=None, max_examples=40)
@given(a=EDGY, x=st.integers(0, (1 << 64) - 1), data=st.data())
def test_extract_replace_lane(shape, bits, a, x, data):
    lane = data.draw(st.integers(0, 128 // bits - 1))
    if bits <= 16:
        got_s = simd.LANE_OPS[shape + ".extract_lane_s"](lane)[1](a)
        assert got_s == slanes(a, bits)[lane] % (1 << 32)
        got_u = simd.LANE_OPS[shape + ".extract_lane_u"](lane)[1](a)
    else:
        got_u = simd.LANE_OPS[shape + ".extract_lane"](lane)[1](a)
    assert got_u == lanes(a, bits)[lane]
    expect = lanes(a, bits)
    expect[lane] = x % (1 << bits)
    assert simd.LANE_OPS[shape + ".replace_lane"](lane)[1](a, x) == build(expect, bits)


# -- the engine: v128 memory forms, traps, and honest "unsupported" ------------------------------------

MEM = """
(module
  (memory (export "m") 1)
  (func (export "load") (param i32) (result v128) (v128.load offset=1 (local.get 0)))
  (func (export "store") (param i32 v128) (v128.store (local.get 0) (local.get 1)))
  (func (export "l8x8s") (param i32) (result v128) (v128.load8x8_s (local.get 0)))
  (func (export "l16x4u") (param i32) (result v128) (v128.load16x4_u (local.get 0)))
  (func (export "splat16") (param i32) (result v128) (v128.load16_splat (local.get 0)))
  (func (export "zero32") (param i32) (result v128) (v128.load32_zero (local.get 0)))
  (func (export "ldlane") (param i32 v128) (result v128) (v128.load16_lane offset=2 5 (local.get 0) (local.get 1)))
  (func (export "stlane") (param i32 v128) (v128.store32_lane 3 (local.get 0) (local.get 1)))
  (func (export "mix") (param v128 v128) (result v128)
    (i8x16.shuffle 0 17 2 19 4 21 6 23 8 25 10 27 12 29 14 31
      (i16x8.add (local.get 0) (v128.const i16x8 1 2 3 4 5 6 7 8)) (local.get 1))))
"""


def _mem_inst():
    store = Store()
    inst = instantiate(store, wasmtime.wat2wasm(MEM))
    return store, inst


def _run(store, inst, name, *args):
    return store.invoke(inst.exports[name], list(args))


def test_v128_memory_forms_round_trip_through_memory():
    store, inst = _mem_inst()
    v = int.from_bytes(bytes(range(0x80, 0x90)), "little")
    _run(store, inst, "store", 100, v)
    assert _run(store, inst, "load", 99) == [v]
    assert _run(store, inst, "l8x8s", 100) == [build(slanes(v, 8)[:8], 16)]
    assert _run(store, inst, "l16x4u", 100) == [build(lanes(v, 16)[:4], 32)]
    assert _run(store, inst, "splat16", 102) == [build([lanes(v, 16)[1]] * 8, 16)]
    assert _run(store, inst, "zero32", 104) == [lanes(v, 32)[1]]
    got = _run(store, inst, "ldlane", 100, 0)[0]
    assert got == lanes(v, 16)[1] << (5 * 16)
    _run(store, inst, "stlane", 0, (1 << 128) - 1 - (0x12345678 << 96) + (0 << 96))
    assert _run(store, inst, "zero32", 0) == [0xFFFFFFFF ^ 0x12345678]


def test_v128_out_of_bounds_traps_like_scalar_loads():
    store, inst = _mem_inst()
    assert _run(store, inst, "load", 65536 - 17) == [0]
    for name, args in (("load", (65536 - 16,)), ("store", (65536 - 15, 0)), ("ldlane", (65536 - 3, 0)),
                       ("stlane", (65536 - 3, 0)), ("l8x8s", (65536 - 7,)), ("splat16", (65535,)),
                       ("load", (0xFFFFFFFF,))):
        with pytest.raises(Trap, match="out of bounds memory access"):
            _run(store, inst, name, *args)


def test_shuffle_and_const_in_the_engine():
    store, inst = _mem_inst()
    a, c = int.from_bytes(bytes(range(16)), "little"), int.from_bytes(bytes(range(16, 32)), "little")
    added = build([x + y for x, y in zip(lanes(a, 16), range(1, 9))], 16)
    both = lanes(added, 8) + lanes(c, 8)
    idx = [0, 17, 2, 19, 4, 21, 6, 23, 8, 25, 10, 27, 12, 29, 14, 31]
    assert _run(store, inst, "mix", a, c) == [build([both[i] for i in idx], 8)]


def test_an_op_missing_from_the_tables_is_unsupported_at_compile_time(monkeypatch):
    monkeypatch.delitem(simd.OPS, "i16x8.add")
    with pytest.raises(Unsupported, match="i16x8.add"):
        store, inst = _mem_inst()  # functions compile at instantiation or at their first call
        _run(store, inst, "mix", 0, 0)


def test_memory64_addresses():
    wat = """(module (memory i64 1)
      (func (export "f") (param i64 v128) (result v128)
        (v128.store (local.get 0) (local.get 1)) (v128.load (local.get 0))))"""
    store = Store()
    inst = instantiate(store, wasmtime.wat2wasm(wat))
    assert store.invoke(inst.exports["f"], [65520, 5 << 100]) == [5 << 100]
    with pytest.raises(Trap, match="out of bounds memory access"):
        store.invoke(inst.exports["f"], [(1 << 64) - 8, 1])
