"""Differential tests of :mod:`vm.exec.numerics` against wasmtime, op by op.

Every scalar numeric instruction is wrapped in one exported function of a single wasmtime module
whose parameters and results are integers: floats cross the boundary as bit patterns
(``f32.reinterpret_i32`` inside, ``i32.reinterpret_f32`` outside), because wasmtime-py quiets f32 NaN
payloads when an f32 crosses into Python.

The oracle (:func:`_check`):

* non-NaN results must be bit-identical;
* when wasmtime returns a NaN, ours must be a NaN obeying the spec's rule: canonical when every NaN
  operand is canonical (or there is none), otherwise arithmetic (quiet).  Pure bit operations
  (``abs``/``neg``/``copysign``/``reinterpret``) must keep payloads, so they compare bit-exactly;
* traps must agree in kind (wasmtime trap code vs. our message).

Two layers: a deterministic cross product of edge values for every op (cheap, always the same), and
Hypothesis properties mixing edge values, random bit patterns, random NaN payloads and values near
rounding / range boundaries.  ``WCR_HYPOTHESIS_PROFILE=long`` raises the example count.
"""

from __future__ import annotations

import itertools
import os
import struct
from typing import Dict, List, Optional, Tuple

import pytest

wasmtime = pytest.importorskip("wasmtime")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from vm.errors import Trap  # noqa: E402
from vm.exec import numerics  # noqa: E402
from vm.exec.numerics import ARITY, OPS, TYPES  # noqa: E402

# ---------------------------------------------------------------------------------------------
# Settings

_PROFILE = os.environ.get("WCR_HYPOTHESIS_PROFILE", "default")
settings.register_profile(
    "wcr-numerics-default", max_examples=60, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "wcr-numerics-long", max_examples=1000, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# Applied per test (not with load_profile) so this file does not change other files' settings.
_SETTINGS = settings.get_profile("wcr-numerics-long" if _PROFILE == "long" else "wcr-numerics-default")

BITS = {"i32": 32, "i64": 64, "f32": 32, "f64": 64}
INT_OF = {"i32": "i32", "i64": "i64", "f32": "i32", "f64": "i64"}

_TRAP_CODES = {
    "INTEGER_DIVISION_BY_ZERO": "integer divide by zero",
    "INTEGER_OVERFLOW": "integer overflow",
    "BAD_CONVERSION_TO_INTEGER": "invalid conversion to integer",
}

# Ops whose result must keep NaN payloads bit for bit.
_BITWISE = {"f32.abs", "f32.neg", "f32.copysign", "f64.abs", "f64.neg", "f64.copysign",
            "f32.reinterpret_i32", "f64.reinterpret_i64", "i32.reinterpret_f32", "i64.reinterpret_f64"}


# ---------------------------------------------------------------------------------------------
# The wasmtime side


_OUT = 0x20000  # batch results start here; arguments are 16-byte records from 0
_BATCH = _OUT // 16  # records per batch


def _wat_func(op: str, i: int) -> str:
    """The op as an integer-typed function, plus a batch runner looping over memory records.

    The batch runner sets the exported global ``$k`` before each call, so when one case traps we
    know which one, ask the single function for its trap, and continue with the next record.
    """
    params, result = TYPES[op]
    sig = "".join(f" (param {INT_OF[t]})" for t in params) + f" (result {INT_OF[result]})"
    body = []
    for j, t in enumerate(params):
        body.append(f"local.get {j}")
        if t[0] == "f":
            body.append(f"{t}.reinterpret_{INT_OF[t]}")
    body.append(op)
    if result[0] == "f":
        body.append(f"{INT_OF[result]}.reinterpret_{result}")
    loads = " ".join(f"({INT_OF[t]}.load offset={8 * j} (local.get $p))" for j, t in enumerate(params))
    value = f"(call $f{i} {loads})"
    if INT_OF[result] == "i32":
        value = f"(i64.extend_i32_u {value})"
    return (
        f'  (func $f{i} (export "{op}"){sig}\n    ' + "\n    ".join(body) + ")\n"
        f'  (func (export "batch {op}") (param $from i32) (param $n i32) (local $p i32)\n'
        f"    (global.set $k (local.get $from))\n"
        f"    (block $done (loop $next\n"
        f"      (br_if $done (i32.ge_u (global.get $k) (local.get $n)))\n"
        f"      (local.set $p (i32.mul (global.get $k) (i32.const 16)))\n"
        f"      (i64.store (i32.add (i32.const {_OUT}) (i32.shr_u (local.get $p) (i32.const 1))) {value})\n"
        f"      (global.set $k (i32.add (global.get $k) (i32.const 1)))\n"
        f"      (br $next))))"
    )


class Oracle:
    """One wasmtime instance exporting every op (compiling one module is cheaper than 136)."""

    def __init__(self) -> None:
        funcs = "\n".join(_wat_func(op, i) for i, op in enumerate(sorted(OPS)))
        wat = f'(module (memory (export "mem") 4) (global $k (export "k") (mut i32) (i32.const 0))\n{funcs}\n)'
        self.store = wasmtime.Store(wasmtime.Engine())
        module = wasmtime.Module(self.store.engine, wat)
        instance = wasmtime.Instance(self.store, module, [])
        exports = instance.exports(self.store)
        self.funcs = {op: exports[op] for op in OPS}
        self.batches = {op: exports["batch " + op] for op in OPS}
        self.mem = exports["mem"]
        self.k = exports["k"]

    def run(self, op: str, args: Tuple[int, ...]) -> Tuple[Optional[int], Optional[str]]:
        """(result as unsigned bits, None) or (None, trap message)."""
        params, result = TYPES[op]
        signed = [numerics.to_signed(a, BITS[t]) for a, t in zip(args, params)]
        try:
            r = self.funcs[op](self.store, *signed)
        except wasmtime.Trap as e:
            code = e.trap_code
            name = code.name if code is not None else str(e)
            return None, _TRAP_CODES.get(name, f"wasmtime:{name}")
        return numerics.to_unsigned(r, BITS[result]), None

    def run_many(self, op: str, cases: List[Tuple[int, ...]]) -> List[Tuple[Optional[int], Optional[str]]]:
        """:meth:`run` for many cases, executed in wasm loops (a Python->wasm call costs ~25 us)."""
        out: List[Tuple[Optional[int], Optional[str]]] = []
        mask = (1 << BITS[TYPES[op][1]]) - 1
        for start in range(0, len(cases), _BATCH):
            chunk = cases[start:start + _BATCH]
            records = bytearray(16 * len(chunk))
            for n, args in enumerate(chunk):
                for j, a in enumerate(args):
                    struct.pack_into("<Q", records, 16 * n + 8 * j, a)
            self.mem.write(self.store, bytes(records), 0)
            traps: Dict[int, str] = {}
            k = 0
            while k < len(chunk):
                try:
                    self.batches[op](self.store, k, len(chunk))
                    break
                except wasmtime.Trap:
                    k = self.k.value(self.store)
                    trap = self.run(op, chunk[k])[1]
                    assert trap is not None, f"{op}{chunk[k]}: trapped in batch only"
                    traps[k] = trap
                    k += 1
            raw = self.mem.read(self.store, _OUT, _OUT + 8 * len(chunk))
            values = struct.unpack(f"<{len(chunk)}Q", raw)
            out.extend((None, traps[n]) if n in traps else (values[n] & mask, None) for n in range(len(chunk)))
        return out


@pytest.fixture(scope="module")
def oracle() -> Oracle:
    return Oracle()


def _ours(op: str, args: Tuple[int, ...]) -> Tuple[Optional[int], Optional[str]]:
    try:
        r = OPS[op](*args)
    except Trap as e:
        return None, e.message
    return r, None


def _is_nan(v: int, t: str) -> bool:
    return numerics.is_nan32(v) if t == "f32" else numerics.is_nan64(v)


def _is_canonical(v: int, t: str) -> bool:
    if t == "f32":
        return v & 0x7FFFFFFF == numerics.CANONICAL_NAN32
    return v & 0x7FFFFFFFFFFFFFFF == numerics.CANONICAL_NAN64


def _is_quiet_nan(v: int, t: str) -> bool:
    return _is_nan(v, t) and bool(v & (0x00400000 if t == "f32" else 0x0008000000000000))


def _check(op: str, args: Tuple[int, ...], theirs: Optional[int], their_trap: Optional[str]) -> None:
    """Compare our result for ``op(*args)`` with wasmtime's (``theirs`` or ``their_trap``)."""
    params, result = TYPES[op]
    for a, t in zip(args, params):
        assert isinstance(a, int) and 0 <= a < (1 << BITS[t])
    ours, our_trap = _ours(op, args)
    shown = f"{op}({', '.join(hex(a) for a in args)})"
    if their_trap is not None or our_trap is not None:
        assert our_trap == their_trap, f"{shown}: trap {our_trap!r}, wasmtime {their_trap!r} / {theirs!r}"
        return
    assert isinstance(ours, int) and 0 <= ours < (1 << BITS[result]), f"{shown}: bad value {ours!r}"
    if result[0] != "f" or not _is_nan(theirs, result) or op in _BITWISE:
        assert ours == theirs, f"{shown}: ours {ours:#x}, wasmtime {theirs:#x}"
        return
    assert _is_nan(ours, result), f"{shown}: ours {ours:#x} is not NaN, wasmtime {theirs:#x}"
    if all(_is_canonical(a, t) for a, t in zip(args, params) if t[0] == "f" and _is_nan(a, t)):
        assert _is_canonical(ours, result), f"{shown}: {ours:#x} must be a canonical NaN"
    else:
        assert _is_quiet_nan(ours, result), f"{shown}: {ours:#x} must be an arithmetic NaN"


# ---------------------------------------------------------------------------------------------
# Values


def _f32(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


def _f64(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


_INT_EDGES = {
    32: [0, 1, 2, 3, 7, 31, 32, 33, 63, 64, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF,
         0x7FFFFFFF, 0x80000000, 0x80000001, 0xFFFFFFFE, 0xFFFFFFFF, 0x01000001, 0x12345678],
}
_INT_EDGES[64] = sorted(set(_INT_EDGES[32] + [
    0x7FFFFFFFFFFFFFFF, 0x8000000000000000, 0x8000000000000001, 0xFFFFFFFFFFFFFFFF,
    0xFFFFFFFFFFFFFFFE, 0x100000000, 0xFFFFFFFF80000000, 0x0020000000000001, 0x0020000000000003,
    0x8000008000000001, 0xFFFFFF7FFFFFFFFF, 0x0123456789ABCDEF]))

_F32_EDGES = sorted(set(
    [0x00000000, 0x80000000, 0x00000001, 0x80000001, 0x007FFFFF, 0x00800000, 0x807FFFFF,
     0x7F7FFFFF, 0xFF7FFFFF, 0x7F800000, 0xFF800000,
     0x7FC00000, 0xFFC00000, 0x7FA00001, 0xFF800001, 0x7FFFFFFF, 0x7FC00001]
    + [_f32(x) for x in (1.0, -1.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0.9999999, -0.9999999,
                         2147483648.0, -2147483648.0, 4294967296.0, 9.223372036854775808e18,
                         -9.223372036854775808e18, 1.8446744073709552e19, 3.0, 1e-40, 1e30)]
    + [0x4EFFFFFF, 0xCF000001, 0x4F7FFFFF, 0x5EFFFFFF, 0xDF000001, 0x5F7FFFFF]))

_F64_EDGES = sorted(set(
    [0x0000000000000000, 0x8000000000000000, 0x0000000000000001, 0x8000000000000001,
     0x000FFFFFFFFFFFFF, 0x0010000000000000, 0x7FEFFFFFFFFFFFFF, 0xFFEFFFFFFFFFFFFF,
     0x7FF0000000000000, 0xFFF0000000000000, 0x7FF8000000000000, 0xFFF8000000000000,
     0x7FF4000000000001, 0xFFF0000000000001, 0x7FFFFFFFFFFFFFFF, 0x7FF8000000000001,
     0x47EFFFFFE0000000, 0x47EFFFFFF0000000, 0x36A0000000000000, 0x3690000000000001]
    + [_f64(x) for x in (1.0, -1.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0.9999999999, -0.9999999999,
                         2147483647.9, 2147483648.0, -2147483648.9, -2147483649.0, 4294967295.5,
                         4294967296.0, 9.223372036854775808e18, -9.223372036854775808e18,
                         1.8446744073709552e19, 3.0, 1e-310, 1e300, 3.4028235677973366e38)]))

_EDGES = {"i32": _INT_EDGES[32], "i64": _INT_EDGES[64], "f32": _F32_EDGES, "f64": _F64_EDGES}


def _nan(bits: int) -> st.SearchStrategy[int]:
    """NaNs of both signs with random payloads (quiet, signalling, canonical)."""
    mant = 23 if bits == 32 else 52
    exp = ((1 << (bits - 1 - mant)) - 1) << mant
    return st.builds(
        lambda sign, payload: (sign << (bits - 1)) | exp | payload,
        st.integers(0, 1),
        st.one_of(st.integers(1, (1 << mant) - 1), st.just(1 << (mant - 1)),
                  st.integers(1, (1 << (mant - 1)) - 1)))


def _near(values: List[int], span: int, mask: int) -> st.SearchStrategy[int]:
    """Bit patterns within ``span`` ulps of given patterns (rounding / range boundaries)."""
    return st.builds(lambda v, d: (v + d) & mask, st.sampled_from(values), st.integers(-span, span))


def _ties64() -> st.SearchStrategy[int]:
    """64-bit integers on, beside and around binary32/binary64 rounding ties (signed or not)."""

    def build(m: int, shift: int, delta: int, neg: bool) -> int:
        n = (m << shift) + (1 << (shift - 1)) + delta if shift else m + delta
        n = -n if neg else n
        return n & ((1 << 64) - 1)

    return st.builds(build, st.integers(1 << 23, (1 << 25) - 1) | st.integers(1 << 52, (1 << 54) - 1),
                     st.integers(0, 40), st.sampled_from([-1, 0, 1, -2, 2]), st.booleans())


def _demote_boundaries() -> st.SearchStrategy[int]:
    """f64 values halfway (or one ulp beside) between two binary32 values, incl. subnormal range."""
    half = 1 << 28
    return st.builds(
        lambda f, low: (numerics.OPS["f64.promote_f32"](f) & ~((1 << 29) - 1)) | low,
        st.integers(0, 0x7F7FFFFF) | st.integers(0x80000000, 0xFF7FFFFF),
        st.sampled_from([half, half - 1, half + 1, 0, (1 << 29) - 1]) | st.integers(0, (1 << 29) - 1),
    ).filter(lambda v: not numerics.is_nan64(v))


_BOUNDARIES32 = [_f32(x) for x in (2147483648.0, -2147483648.0, 4294967296.0, 9.223372036854775808e18,
                                   -9.223372036854775808e18, 1.8446744073709552e19, 1.0, -1.0, 0.5,
                                   8388608.0, 16777216.0, 0.0)]
_BOUNDARIES64 = [_f64(x) for x in (2147483648.0, -2147483648.0, -2147483649.0, 4294967296.0,
                                   9.223372036854775808e18, -9.223372036854775808e18,
                                   1.8446744073709552e19, 1.0, -1.0, 0.5, 4503599627370496.0, 0.0,
                                   3.4028234663852886e38, 1.1754943508222875e-38, 1.401298464324817e-45)]

_STRATEGIES: Dict[str, st.SearchStrategy[int]] = {
    "i32": st.one_of(st.sampled_from(_INT_EDGES[32]), st.integers(0, (1 << 32) - 1),
                     st.integers(0, 64), st.integers(-(1 << 24), 1 << 24).map(lambda v: v & 0xFFFFFFFF)),
    "i64": st.one_of(st.sampled_from(_INT_EDGES[64]), st.integers(0, (1 << 64) - 1),
                     st.integers(0, 128), st.integers(-(1 << 32), 1 << 32).map(lambda v: v & ((1 << 64) - 1)),
                     _ties64()),
    "f32": st.one_of(st.sampled_from(_F32_EDGES), st.integers(0, (1 << 32) - 1), _nan(32),
                     st.floats(width=32, allow_nan=False).map(_f32),
                     st.floats(-4.0, 4.0, width=32).map(_f32),
                     _near(_BOUNDARIES32, 3, 0xFFFFFFFF),
                     st.integers(-(1 << 24), 1 << 24).map(lambda v: _f32(float(v) + 0.5))),
    "f64": st.one_of(st.sampled_from(_F64_EDGES), st.integers(0, (1 << 64) - 1), _nan(64),
                     st.floats(allow_nan=False).map(_f64), st.floats(-4.0, 4.0).map(_f64),
                     _near(_BOUNDARIES64, 3, (1 << 64) - 1), _demote_boundaries(),
                     st.integers(-(1 << 53), 1 << 53).map(lambda v: _f64(float(v) + 0.5))),
}

ALL_OPS = sorted(OPS)


# ---------------------------------------------------------------------------------------------
# Tests


def test_op_table_is_complete() -> None:
    """Every MVP + sign-extension + saturating-truncation numeric instruction is there, once."""
    assert len(OPS) == 136
    assert set(OPS) == set(ARITY) == set(TYPES)
    for op in OPS:
        assert ARITY[op] == len(TYPES[op][0]) in (1, 2)


@pytest.mark.parametrize("op", ["i32.div_s", "i64.rem_u", "f32.add", "i64.trunc_f64_u", "f32.demote_f64"])
def test_batch_oracle_matches_single_calls(oracle: Oracle, op: str) -> None:
    """The batched wasmtime runner (traps included) answers exactly like one call per case."""
    params = TYPES[op][0]
    cases = list(itertools.product(*(_EDGES[t][:12] for t in params)))
    assert oracle.run_many(op, cases) == [oracle.run(op, args) for args in cases]


@pytest.mark.parametrize("op", ALL_OPS)
def test_edges_against_wasmtime(oracle: Oracle, op: str) -> None:
    """The full cross product of edge values, deterministic."""
    params = TYPES[op][0]
    cases = list(itertools.product(*(_EDGES[t] for t in params)))
    for args, (theirs, their_trap) in zip(cases, oracle.run_many(op, cases)):
        _check(op, args, theirs, their_trap)


_ARGS = {params: st.tuples(*(_STRATEGIES[t] for t in params)) for params, _r in set(TYPES.values())}


def _random_test(op: str):
    """One Hypothesis test per op (a fixed strategy per test is cheaper than ``st.data()``)."""

    @_SETTINGS
    @given(args=_ARGS[TYPES[op][0]])
    def test(oracle: Oracle, args: Tuple[int, ...]) -> None:
        _check(op, args, *oracle.run(op, args))

    test.__name__ = test.__qualname__ = "test_random_" + op.replace(".", "_")
    return test


for _op in ALL_OPS:
    globals()["test_random_" + _op.replace(".", "_")] = _random_test(_op)
del _op


# --- our deterministic NaN choices (stricter than the spec; engines and hosts must agree on them)

@_SETTINGS
@given(op=st.sampled_from([op for op in ALL_OPS if op[0] == "f" and TYPES[op][1] == op[:3]
                           and op not in _BITWISE and "convert" not in op]),
       data=st.data())
def test_nan_operand_is_propagated_quieted(op: str, data: st.DataObject) -> None:
    params, result = TYPES[op]
    args = tuple(data.draw(_STRATEGIES[t]) for t in params)
    nans = [a for a, t in zip(args, params) if _is_nan(a, t)]
    if not nans:
        return
    first = nans[0]
    ours = OPS[op](*args)
    if op.endswith("promote_f32") or op.endswith("demote_f64"):
        assert _is_quiet_nan(ours, result)
        assert ours >> (BITS[result] - 1) == first >> (BITS[params[0]] - 1)  # sign kept
        return
    assert ours == first | (0x00400000 if result == "f32" else 0x0008000000000000)


def test_produced_nan_is_canonical_positive() -> None:
    inf32, inf64 = 0x7F800000, 0x7FF0000000000000
    assert OPS["f32.sub"](inf32, inf32) == numerics.CANONICAL_NAN32
    assert OPS["f32.div"](0, 0x80000000) == numerics.CANONICAL_NAN32
    assert OPS["f32.sqrt"](_f32(-1.0)) == numerics.CANONICAL_NAN32
    assert OPS["f64.mul"](inf64, 0x8000000000000000) == numerics.CANONICAL_NAN64
    assert OPS["f64.add"](inf64, inf64 | (1 << 63)) == numerics.CANONICAL_NAN64
    assert OPS["f64.promote_f32"](numerics.CANONICAL_NAN32) == numerics.CANONICAL_NAN64
    assert OPS["f32.demote_f64"](numerics.CANONICAL_NAN64) == numerics.CANONICAL_NAN32


def test_helpers() -> None:
    assert numerics.to_signed(0xFFFFFFFF, 32) == -1
    assert numerics.to_signed(0x7FFFFFFF, 32) == 0x7FFFFFFF
    assert numerics.to_unsigned(-1, 64) == (1 << 64) - 1
    assert numerics.float_to_f32(1e39) == 0x7F800000
    assert numerics.float_to_f32(-1e39) == 0xFF800000
    assert numerics.float_to_f32(1.401298464324817e-45) == 1
    assert numerics.float_to_f32(float("nan")) == numerics.CANONICAL_NAN32
    assert numerics.f32_to_float(0x3F800000) == 1.0
    assert numerics.float_to_f64(-0.0) == 1 << 63
    assert numerics.f64_to_float(numerics.float_to_f64(0.1)) == 0.1
    assert numerics.is_nan32(0x7F800001) and not numerics.is_nan32(0x7F800000)
    assert numerics.is_nan64(0xFFF0000000000001) and not numerics.is_nan64(0xFFF0000000000000)
    # the classic double-rounding trap: 2**63 + 2**39 + 1 must round up, not to even
    assert OPS["f32.convert_i64_u"]((1 << 63) + (1 << 39) + 1) == 0x5F000001
    assert OPS["f32.convert_i64_s"](0x0020000020000001) == 0x5A000001
