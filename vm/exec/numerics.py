"""Scalar numeric instructions of WebAssembly (i32, i64, f32, f64): the one place that defines them.

Representation (a hard rule of the whole VM, because snapshots must be bit-exact):

* ``i32``/``i64`` values are Python ints holding the *unsigned* bit pattern (``0 .. 2**N - 1``);
* ``f32``/``f64`` values are Python ints holding the raw IEEE-754 bit pattern.  A Python ``float`` is
  used only transiently inside an operation, never returned, so NaN payloads and the sign of zero
  survive everything that the spec says must preserve them.

``OPS`` maps a mnemonic (``"i32.add"``, ``"f32.convert_i64_u"`` ...) to a function that takes the
operands as positional ints and returns one int; ``ARITY`` gives the operand count and ``TYPES`` the
``(param types, result type)`` signature.  Traps raise :class:`vm.errors.Trap` with the spec's wording.

Float rules (deterministic choices inside what the spec allows; documented because every engine and
host of wcr must agree bit for bit):

* an operation with a NaN operand returns that operand made quiet (the *first* NaN operand for binary
  operations); an operation that creates a NaN from non-NaN operands returns the canonical positive
  quiet NaN (``0x7fc00000`` / ``0x7ff8000000000000``).  This satisfies both ``nan:canonical`` (a
  canonical input stays canonical) and ``nan:arithmetic`` (the result is always quiet);
* ``abs``/``neg``/``copysign`` and the ``reinterpret`` conversions are pure bit operations: they keep
  payloads, signalling ones included;
* ``promote``/``demote`` of a NaN give a quiet NaN keeping the sign and the payload bits that fit
  (the top ones), so a canonical NaN stays canonical;
* ``min``/``max``: NaN as above, ``min(-0, +0) = -0``, ``max(-0, +0) = +0``;
* ``nearest`` rounds ties to even; ``ceil``/``floor``/``trunc``/``nearest`` keep the sign of zero.

Why binary64 arithmetic is enough for f32: for ``+ - * / sqrt`` the exact result rounded to binary64
and then to binary32 equals the exact result rounded once to binary32 (53 >= 2*24 + 2, the classic
"innocuous double rounding" bound).  Integer -> f32 conversions of 64-bit values are *not* in that
class (an integer can sit just beside a binary32 tie), so they are rounded directly from the int.
Python's ``float(int)`` is correctly rounded (ties to even), which covers integer -> f64.

Speed: these functions are the interpreter's inner loop.  Integer ops are single lambdas; float ops
test NaN on the bit pattern (no float conversion needed for comparisons, min/max, abs, neg ...) and use
precompiled :class:`struct.Struct` objects for the bits <-> float round trips.
"""

from __future__ import annotations

import math
import struct
from typing import Callable, Dict, Tuple

from ..errors import Trap

__all__ = [
    "OPS", "ARITY", "TYPES",
    "CANONICAL_NAN32", "CANONICAL_NAN64",
    "f32_to_float", "float_to_f32", "f64_to_float", "float_to_f64",
    "is_nan32", "is_nan64", "is_nan", "is_quiet_nan", "is_canonical_nan", "is_arithmetic_nan",
    "to_signed", "to_unsigned",
    "int_to_f32", "int_to_f64",
]

# ---------------------------------------------------------------------------------------------
# Constants and bit helpers

M32 = 0xFFFFFFFF
M64 = 0xFFFFFFFFFFFFFFFF
S32 = 0x80000000
S64 = 0x8000000000000000

ABS32 = 0x7FFFFFFF
INF32 = 0x7F800000
NEGINF32 = 0xFF800000
QUIET32 = 0x00400000
CANONICAL_NAN32 = 0x7FC00000

ABS64 = 0x7FFFFFFFFFFFFFFF
INF64 = 0x7FF0000000000000
NEGINF64 = 0xFFF0000000000000
QUIET64 = 0x0008000000000000
CANONICAL_NAN64 = 0x7FF8000000000000

# Magnitudes (as bit patterns) from which every float is an integer: 2**23 and 2**52.
_INTEGRAL32 = 0x4B000000
_INTEGRAL64 = 0x4330000000000000

_I = struct.Struct("<I")
_F = struct.Struct("<f")
_Q = struct.Struct("<Q")
_D = struct.Struct("<d")
_pack_I = _I.pack
_unpack_I = _I.unpack
_pack_F = _F.pack
_unpack_F = _F.unpack
_pack_Q = _Q.pack
_unpack_Q = _Q.unpack
_pack_D = _D.pack
_unpack_D = _D.unpack
# Both operands of a binary op converted in one pack + one unpack (fewer C calls on the hot path).
_pack_II = struct.Struct("<II").pack
_unpack_FF = struct.Struct("<ff").unpack
_pack_QQ = struct.Struct("<QQ").pack
_unpack_DD = struct.Struct("<dd").unpack

_TRAP_DIV0 = "integer divide by zero"  # (kinds of vm.errors.TRAP_KINDS)
_TRAP_OVERFLOW = "integer overflow"
_TRAP_INVALID = "invalid conversion to integer"


def to_signed(v: int, bits: int) -> int:
    """Interpret the unsigned ``bits``-wide pattern ``v`` as two's complement."""
    sign = 1 << (bits - 1)
    return ((v & ((sign << 1) - 1)) ^ sign) - sign


def to_unsigned(v: int, bits: int) -> int:
    """The ``bits``-wide unsigned pattern of any (possibly negative) int ``v``."""
    return v & ((1 << bits) - 1)


def is_nan32(bits: int) -> bool:
    return (bits & ABS32) > INF32


def is_nan64(bits: int) -> bool:
    return (bits & ABS64) > INF64


# The NaN classes by width (32 or 64): one home for the predicates every layer needs (the spec
# runner's nan:canonical / nan:arithmetic patterns, the native oracle's NaN rule, the value codec).
def is_nan(bits: int, width: int) -> bool:
    return is_nan32(bits) if width == 32 else is_nan64(bits)


def is_quiet_nan(bits: int, width: int) -> bool:
    """A NaN with the quiet bit set (what float arithmetic may return: an *arithmetic* NaN)."""
    return is_nan(bits, width) and bool(bits & (QUIET32 if width == 32 else QUIET64))


def is_canonical_nan(bits: int, width: int) -> bool:
    """``nan:canonical``: the quiet NaN with an empty payload, either sign."""
    if width == 32:
        return bits & ABS32 == CANONICAL_NAN32
    return bits & ABS64 == CANONICAL_NAN64


def is_arithmetic_nan(bits: int, width: int) -> bool:
    """``nan:arithmetic``: any quiet NaN, either sign."""
    return is_quiet_nan(bits, width)


def f32_to_float(bits: int) -> float:
    """The value of an f32 pattern as a Python float (exact; a NaN's payload may not survive)."""
    return _unpack_F(_pack_I(bits))[0]


def f64_to_float(bits: int) -> float:
    """The value of an f64 pattern as a Python float (exact; payloads survive on common platforms)."""
    return _unpack_D(_pack_Q(bits))[0]


def float_to_f32(x: float) -> int:
    """Round a Python float to binary32 (nearest, ties to even) and return its bit pattern.

    Overflow gives +-inf (``struct`` would raise); a NaN gives the canonical NaN with ``x``'s sign
    ignored, because a host float's NaN payload is not something we can rely on.
    """
    if x != x:
        return CANONICAL_NAN32
    try:
        return _unpack_I(_pack_F(x))[0]
    except OverflowError:
        return INF32 if x > 0 else NEGINF32


def float_to_f64(x: float) -> int:
    """The bit pattern of a Python float (a NaN becomes the canonical NaN, see :func:`float_to_f32`)."""
    if x != x:
        return CANONICAL_NAN64
    return _unpack_Q(_pack_D(x))[0]


def _r32(x: float) -> int:
    """Bits of an arithmetic result rounded to binary32; a NaN produced here is canonical."""
    if x != x:
        return CANONICAL_NAN32
    try:
        return _unpack_I(_pack_F(x))[0]
    except OverflowError:
        return INF32 if x > 0 else NEGINF32


def _r64(x: float) -> int:
    if x != x:
        return CANONICAL_NAN64
    return _unpack_Q(_pack_D(x))[0]


def int_to_f32(n: int) -> int:
    """Round an integer (any size that fits binary32's range) directly to binary32 bits.

    Ties to even.  Needed because ``float(n)`` would round a 64-bit integer to 53 bits first and a
    second rounding to 24 bits can then be wrong (double rounding).
    """
    if -(1 << 53) <= n <= (1 << 53):
        return _unpack_I(_pack_F(float(n)))[0]  # float(n) is exact: one rounding only
    neg = n < 0
    m = -n if neg else n
    shift = m.bit_length() - 24
    q = m >> shift
    rem = m - (q << shift)
    half = 1 << (shift - 1)
    if rem > half or (rem == half and q & 1):
        q += 1
    x = float(q << shift)  # at most 25 significant bits: exact
    return _r32(-x if neg else x)


def int_to_f64(n: int) -> int:
    """Round an integer to binary64 bits (``float(int)`` is correctly rounded, ties to even)."""
    return _unpack_Q(_pack_D(float(n)))[0]


# ---------------------------------------------------------------------------------------------
# Integer operations


def _clz32(a: int) -> int:
    return 32 - a.bit_length()


def _clz64(a: int) -> int:
    return 64 - a.bit_length()


def _ctz32(a: int) -> int:
    return (a & -a).bit_length() - 1 if a else 32


def _ctz64(a: int) -> int:
    return (a & -a).bit_length() - 1 if a else 64


def _bit_count_py39(a: int) -> int:  # pragma: no cover - Python 3.9 has no int.bit_count
    return bin(a).count("1")


_bit_count: Callable[[int], int] = getattr(int, "bit_count", _bit_count_py39)  # Python >= 3.10


def _make_int_ops(bits: int) -> Dict[str, Callable[..., int]]:
    """Build the integer ops for one width (closures over constants: no per-call width checks)."""
    M = (1 << bits) - 1
    S = 1 << (bits - 1)
    SH = bits - 1  # shift-count mask
    MIN = S

    def div_s(a: int, b: int) -> int:
        if b == 0:
            raise Trap(_TRAP_DIV0)
        if a < S and b < S:  # the common case: both non-negative
            return a // b
        if a == MIN and b == M:
            raise Trap(_TRAP_OVERFLOW)
        sa = (a ^ S) - S
        sb = (b ^ S) - S
        q = abs(sa) // abs(sb)
        if (sa < 0) != (sb < 0):
            q = -q
        return q & M

    def div_u(a: int, b: int) -> int:
        if b == 0:
            raise Trap(_TRAP_DIV0)
        return a // b

    def rem_s(a: int, b: int) -> int:
        if b == 0:
            raise Trap(_TRAP_DIV0)
        if a < S and b < S:
            return a % b
        sa = (a ^ S) - S
        sb = (b ^ S) - S
        r = abs(sa) % abs(sb)
        return (-r if sa < 0 else r) & M

    def rem_u(a: int, b: int) -> int:
        if b == 0:
            raise Trap(_TRAP_DIV0)
        return a % b

    def rotl(a: int, b: int) -> int:
        k = b & SH
        return ((a << k) | (a >> (bits - k))) & M

    def rotr(a: int, b: int) -> int:
        k = b & SH
        return ((a >> k) | (a << (bits - k))) & M

    ops: Dict[str, Callable[..., int]] = {
        "eqz": lambda a: 1 if a == 0 else 0,
        "eq": lambda a, b: 1 if a == b else 0,
        "ne": lambda a, b: 1 if a != b else 0,
        # XOR with the sign bit maps two's complement order onto unsigned order.
        "lt_s": lambda a, b: 1 if (a ^ S) < (b ^ S) else 0,
        "lt_u": lambda a, b: 1 if a < b else 0,
        "gt_s": lambda a, b: 1 if (a ^ S) > (b ^ S) else 0,
        "gt_u": lambda a, b: 1 if a > b else 0,
        "le_s": lambda a, b: 1 if (a ^ S) <= (b ^ S) else 0,
        "le_u": lambda a, b: 1 if a <= b else 0,
        "ge_s": lambda a, b: 1 if (a ^ S) >= (b ^ S) else 0,
        "ge_u": lambda a, b: 1 if a >= b else 0,
        "clz": _clz32 if bits == 32 else _clz64,
        "ctz": _ctz32 if bits == 32 else _ctz64,
        "popcnt": _bit_count,
        "add": lambda a, b: (a + b) & M,
        "sub": lambda a, b: (a - b) & M,
        "mul": lambda a, b: (a * b) & M,
        "div_s": div_s,
        "div_u": div_u,
        "rem_s": rem_s,
        "rem_u": rem_u,
        "and": lambda a, b: a & b,
        "or": lambda a, b: a | b,
        "xor": lambda a, b: a ^ b,
        "shl": lambda a, b: (a << (b & SH)) & M,
        "shr_s": lambda a, b: (((a ^ S) - S) >> (b & SH)) & M,
        "shr_u": lambda a, b: a >> (b & SH),
        "rotl": rotl,
        "rotr": rotr,
        "extend8_s": lambda a: (((a & 0xFF) ^ 0x80) - 0x80) & M,
        "extend16_s": lambda a: (((a & 0xFFFF) ^ 0x8000) - 0x8000) & M,
    }
    if bits == 64:
        ops["extend32_s"] = lambda a: (((a & M32) ^ S32) - S32) & M64
    return ops


# ---------------------------------------------------------------------------------------------
# Float operations.  Both widths are written out (not generated) so each is a flat function with
# its constants inlined as globals: this is the hot path.

# --- f32 ---


def f32_add(a: int, b: int) -> int:
    if (a & ABS32) > INF32:
        return a | QUIET32
    if (b & ABS32) > INF32:
        return b | QUIET32
    x, y = _unpack_FF(_pack_II(a, b))
    r = x + y
    if r != r:
        return CANONICAL_NAN32
    try:
        return _unpack_I(_pack_F(r))[0]
    except OverflowError:
        return INF32 if r > 0 else NEGINF32


def f32_sub(a: int, b: int) -> int:
    if (a & ABS32) > INF32:
        return a | QUIET32
    if (b & ABS32) > INF32:
        return b | QUIET32
    x, y = _unpack_FF(_pack_II(a, b))
    r = x - y
    if r != r:
        return CANONICAL_NAN32
    try:
        return _unpack_I(_pack_F(r))[0]
    except OverflowError:
        return INF32 if r > 0 else NEGINF32


def f32_mul(a: int, b: int) -> int:
    if (a & ABS32) > INF32:
        return a | QUIET32
    if (b & ABS32) > INF32:
        return b | QUIET32
    x, y = _unpack_FF(_pack_II(a, b))
    r = x * y
    if r != r:
        return CANONICAL_NAN32
    try:
        return _unpack_I(_pack_F(r))[0]
    except OverflowError:
        return INF32 if r > 0 else NEGINF32


def f32_div(a: int, b: int) -> int:
    if (a & ABS32) > INF32:
        return a | QUIET32
    if (b & ABS32) > INF32:
        return b | QUIET32
    if b & ABS32 == 0:  # division by +-0: Python raises, IEEE gives inf or NaN
        if a & ABS32 == 0:
            return CANONICAL_NAN32
        return INF32 | ((a ^ b) & S32)
    x, y = _unpack_FF(_pack_II(a, b))
    return _r32(x / y)


def f32_sqrt(a: int) -> int:
    if (a & ABS32) > INF32:
        return a | QUIET32
    if a >= S32:
        return a if a == S32 else CANONICAL_NAN32  # sqrt(-0) = -0; sqrt(negative) = NaN
    return _r32(math.sqrt(_unpack_F(_pack_I(a))[0]))


def f32_min(a: int, b: int) -> int:
    if (a & ABS32) > INF32:
        return a | QUIET32
    if (b & ABS32) > INF32:
        return b | QUIET32
    if (a | b) & ABS32 == 0:
        return a | b  # both zeros: -0 wins
    ka = a if a < S32 else S32 - a  # sign-magnitude -> ordered int key
    kb = b if b < S32 else S32 - b
    return a if ka <= kb else b


def f32_max(a: int, b: int) -> int:
    if (a & ABS32) > INF32:
        return a | QUIET32
    if (b & ABS32) > INF32:
        return b | QUIET32
    if (a | b) & ABS32 == 0:
        return a & b  # both zeros: +0 wins
    ka = a if a < S32 else S32 - a
    kb = b if b < S32 else S32 - b
    return a if ka >= kb else b


def _make_compares(abs_mask: int, inf: int, sign: int) -> Dict[str, Callable[[int, int], int]]:
    """The six IEEE comparisons on bit patterns of one width (f32 and f64 share the logic; only the
    masks differ).  A NaN operand makes every comparison false except ``ne``; a key of
    -(magnitude) for negatives makes -0 and +0 equal, as IEEE comparison requires."""

    def eq(a: int, b: int) -> int:
        if (a & abs_mask) > inf or (b & abs_mask) > inf:
            return 0
        return 1 if a == b or (a | b) & abs_mask == 0 else 0

    def ne(a: int, b: int) -> int:
        if (a & abs_mask) > inf or (b & abs_mask) > inf:
            return 1
        return 0 if a == b or (a | b) & abs_mask == 0 else 1

    def lt(a: int, b: int) -> int:
        if (a & abs_mask) > inf or (b & abs_mask) > inf:
            return 0
        return 1 if (a if a < sign else sign - a) < (b if b < sign else sign - b) else 0

    def gt(a: int, b: int) -> int:
        if (a & abs_mask) > inf or (b & abs_mask) > inf:
            return 0
        return 1 if (a if a < sign else sign - a) > (b if b < sign else sign - b) else 0

    def le(a: int, b: int) -> int:
        if (a & abs_mask) > inf or (b & abs_mask) > inf:
            return 0
        return 1 if (a if a < sign else sign - a) <= (b if b < sign else sign - b) else 0

    def ge(a: int, b: int) -> int:
        if (a & abs_mask) > inf or (b & abs_mask) > inf:
            return 0
        return 1 if (a if a < sign else sign - a) >= (b if b < sign else sign - b) else 0

    return {"eq": eq, "ne": ne, "lt": lt, "gt": gt, "le": le, "ge": ge}


_CMP32 = _make_compares(ABS32, INF32, S32)
f32_eq, f32_ne, f32_lt, f32_gt, f32_le, f32_ge = (_CMP32[k] for k in ("eq", "ne", "lt", "gt", "le", "ge"))


def _make_round32(fn: Callable[[float], int]) -> Callable[[int], int]:
    def op(a: int) -> int:
        m = a & ABS32
        if m > INF32:
            return a | QUIET32
        if m >= _INTEGRAL32 or m == 0:
            return a  # already integral (or inf, or zero)
        r = fn(_unpack_F(_pack_I(a))[0])
        if r == 0:
            return a & S32  # the sign of zero follows the operand (ceil(-0.5) = -0)
        return _unpack_I(_pack_F(float(r)))[0]  # |r| <= 2**23: exact

    return op


# --- f64 ---


def f64_add(a: int, b: int) -> int:
    if (a & ABS64) > INF64:
        return a | QUIET64
    if (b & ABS64) > INF64:
        return b | QUIET64
    x, y = _unpack_DD(_pack_QQ(a, b))
    r = x + y
    return CANONICAL_NAN64 if r != r else _unpack_Q(_pack_D(r))[0]


def f64_sub(a: int, b: int) -> int:
    if (a & ABS64) > INF64:
        return a | QUIET64
    if (b & ABS64) > INF64:
        return b | QUIET64
    x, y = _unpack_DD(_pack_QQ(a, b))
    r = x - y
    return CANONICAL_NAN64 if r != r else _unpack_Q(_pack_D(r))[0]


def f64_mul(a: int, b: int) -> int:
    if (a & ABS64) > INF64:
        return a | QUIET64
    if (b & ABS64) > INF64:
        return b | QUIET64
    x, y = _unpack_DD(_pack_QQ(a, b))
    r = x * y
    return CANONICAL_NAN64 if r != r else _unpack_Q(_pack_D(r))[0]


def f64_div(a: int, b: int) -> int:
    if (a & ABS64) > INF64:
        return a | QUIET64
    if (b & ABS64) > INF64:
        return b | QUIET64
    if b & ABS64 == 0:
        if a & ABS64 == 0:
            return CANONICAL_NAN64
        return INF64 | ((a ^ b) & S64)
    x, y = _unpack_DD(_pack_QQ(a, b))
    r = x / y
    return CANONICAL_NAN64 if r != r else _unpack_Q(_pack_D(r))[0]


def f64_sqrt(a: int) -> int:
    if (a & ABS64) > INF64:
        return a | QUIET64
    if a >= S64:
        return a if a == S64 else CANONICAL_NAN64
    return _unpack_Q(_pack_D(math.sqrt(_unpack_D(_pack_Q(a))[0])))[0]


def f64_min(a: int, b: int) -> int:
    if (a & ABS64) > INF64:
        return a | QUIET64
    if (b & ABS64) > INF64:
        return b | QUIET64
    if (a | b) & ABS64 == 0:
        return a | b
    ka = a if a < S64 else S64 - a
    kb = b if b < S64 else S64 - b
    return a if ka <= kb else b


def f64_max(a: int, b: int) -> int:
    if (a & ABS64) > INF64:
        return a | QUIET64
    if (b & ABS64) > INF64:
        return b | QUIET64
    if (a | b) & ABS64 == 0:
        return a & b
    ka = a if a < S64 else S64 - a
    kb = b if b < S64 else S64 - b
    return a if ka >= kb else b


_CMP64 = _make_compares(ABS64, INF64, S64)
f64_eq, f64_ne, f64_lt, f64_gt, f64_le, f64_ge = (_CMP64[k] for k in ("eq", "ne", "lt", "gt", "le", "ge"))


def _make_round64(fn: Callable[[float], int]) -> Callable[[int], int]:
    def op(a: int) -> int:
        m = a & ABS64
        if m > INF64:
            return a | QUIET64
        if m >= _INTEGRAL64 or m == 0:
            return a
        r = fn(_unpack_D(_pack_Q(a))[0])
        if r == 0:
            return a & S64
        return _unpack_Q(_pack_D(float(r)))[0]  # |r| <= 2**52: exact

    return op


def _nearest(x: float) -> int:
    return round(x)  # Python's round() on a float is ties-to-even and exact


# ---------------------------------------------------------------------------------------------
# Conversions


def _make_trunc(src_bits: int, lo: int, hi: int, out_mask: int, sat: bool) -> Callable[[int], int]:
    """``iN.trunc[_sat]_fM_[su]``: truncate toward zero, trap (or saturate) outside ``[lo, hi]``."""
    if src_bits == 32:
        absm, inf, unpack, pack = ABS32, INF32, _unpack_F, _pack_I
    else:
        absm, inf, unpack, pack = ABS64, INF64, _unpack_D, _pack_Q

    if sat:

        def op(a: int) -> int:
            m = a & absm
            if m > inf:
                return 0
            if m == inf:
                return (lo if a > absm else hi) & out_mask
            t = int(unpack(pack(a))[0])  # int() of a float truncates toward zero, exactly
            if t < lo:
                t = lo
            elif t > hi:
                t = hi
            return t & out_mask

    else:

        def op(a: int) -> int:
            m = a & absm
            if m > inf:
                raise Trap(_TRAP_INVALID)
            if m == inf:
                raise Trap(_TRAP_OVERFLOW)
            t = int(unpack(pack(a))[0])
            if t < lo or t > hi:
                raise Trap(_TRAP_OVERFLOW)
            return t & out_mask

    return op


def f32_demote_f64(a: int) -> int:
    if (a & ABS64) > INF64:
        # Quiet NaN keeping the sign and the top 22 payload bits (canonical stays canonical).
        return ((a >> 32) & S32) | INF32 | QUIET32 | ((a >> 29) & 0x3FFFFF)
    return _r32(_unpack_D(_pack_Q(a))[0])


def f64_promote_f32(a: int) -> int:
    if (a & ABS32) > INF32:
        return ((a & S32) << 32) | INF64 | QUIET64 | ((a & 0x3FFFFF) << 29)
    return _unpack_Q(_pack_D(_unpack_F(_pack_I(a))[0]))[0]


def _f32_convert_i32_s(a: int) -> int:
    # An i32 is exact in a double, so packing it rounds once.
    return _unpack_I(_pack_F(float((a ^ S32) - S32)))[0]


def _f32_convert_i32_u(a: int) -> int:
    return _unpack_I(_pack_F(float(a)))[0]


def _f64_convert_i32_s(a: int) -> int:
    return _unpack_Q(_pack_D(float((a ^ S32) - S32)))[0]


def _f64_convert_i32_u(a: int) -> int:
    return _unpack_Q(_pack_D(float(a)))[0]


def _f64_convert_i64_s(a: int) -> int:
    return _unpack_Q(_pack_D(float((a ^ S64) - S64)))[0]


def _f64_convert_i64_u(a: int) -> int:
    return _unpack_Q(_pack_D(float(a)))[0]


def _f32_convert_i64_s(a: int) -> int:
    return int_to_f32((a ^ S64) - S64)


def _identity(a: int) -> int:
    return a


# ---------------------------------------------------------------------------------------------
# The table

OPS: Dict[str, Callable[..., int]] = {}
TYPES: Dict[str, Tuple[Tuple[str, ...], str]] = {}

_INT_UNARY = ("eqz", "clz", "ctz", "popcnt", "extend8_s", "extend16_s", "extend32_s")
_INT_TESTS = ("eqz",)
_INT_RELS = ("eq", "ne", "lt_s", "lt_u", "gt_s", "gt_u", "le_s", "le_u", "ge_s", "ge_u")

for _bits in (32, 64):
    _t = f"i{_bits}"
    for _name, _fn in _make_int_ops(_bits).items():
        _op = f"{_t}.{_name}"
        OPS[_op] = _fn
        if _name in _INT_UNARY:
            TYPES[_op] = ((_t,), "i32" if _name in _INT_TESTS else _t)
        else:
            TYPES[_op] = ((_t, _t), "i32" if _name in _INT_RELS else _t)

_FLOAT_TABLE: Dict[str, Dict[str, Callable[..., int]]] = {
    "f32": {
        "add": f32_add, "sub": f32_sub, "mul": f32_mul, "div": f32_div, "min": f32_min, "max": f32_max,
        "copysign": lambda a, b: (a & ABS32) | (b & S32),
        "eq": f32_eq, "ne": f32_ne, "lt": f32_lt, "gt": f32_gt, "le": f32_le, "ge": f32_ge,
        "abs": lambda a: a & ABS32,
        "neg": lambda a: a ^ S32,
        "sqrt": f32_sqrt,
        "ceil": _make_round32(math.ceil),
        "floor": _make_round32(math.floor),
        "trunc": _make_round32(math.trunc),
        "nearest": _make_round32(_nearest),
    },
    "f64": {
        "add": f64_add, "sub": f64_sub, "mul": f64_mul, "div": f64_div, "min": f64_min, "max": f64_max,
        "copysign": lambda a, b: (a & ABS64) | (b & S64),
        "eq": f64_eq, "ne": f64_ne, "lt": f64_lt, "gt": f64_gt, "le": f64_le, "ge": f64_ge,
        "abs": lambda a: a & ABS64,
        "neg": lambda a: a ^ S64,
        "sqrt": f64_sqrt,
        "ceil": _make_round64(math.ceil),
        "floor": _make_round64(math.floor),
        "trunc": _make_round64(math.trunc),
        "nearest": _make_round64(_nearest),
    },
}
_FLOAT_UNARY = ("abs", "neg", "sqrt", "ceil", "floor", "trunc", "nearest")
_FLOAT_RELS = ("eq", "ne", "lt", "gt", "le", "ge")

for _t, _table in _FLOAT_TABLE.items():
    for _name, _fn in _table.items():
        _op = f"{_t}.{_name}"
        OPS[_op] = _fn
        if _name in _FLOAT_UNARY:
            TYPES[_op] = ((_t,), _t)
        else:
            TYPES[_op] = ((_t, _t), "i32" if _name in _FLOAT_RELS else _t)

_CONVERSIONS: Dict[str, Tuple[Callable[[int], int], str, str]] = {
    "i32.wrap_i64": (lambda a: a & M32, "i64", "i32"),
    "i64.extend_i32_s": (lambda a: ((a ^ S32) - S32) & M64, "i32", "i64"),
    "i64.extend_i32_u": (_identity, "i32", "i64"),
    "f32.convert_i32_s": (_f32_convert_i32_s, "i32", "f32"),
    "f32.convert_i32_u": (_f32_convert_i32_u, "i32", "f32"),
    "f32.convert_i64_s": (_f32_convert_i64_s, "i64", "f32"),
    "f32.convert_i64_u": (int_to_f32, "i64", "f32"),
    "f64.convert_i32_s": (_f64_convert_i32_s, "i32", "f64"),
    "f64.convert_i32_u": (_f64_convert_i32_u, "i32", "f64"),
    "f64.convert_i64_s": (_f64_convert_i64_s, "i64", "f64"),
    "f64.convert_i64_u": (_f64_convert_i64_u, "i64", "f64"),
    "f32.demote_f64": (f32_demote_f64, "f64", "f32"),
    "f64.promote_f32": (f64_promote_f32, "f32", "f64"),
    "i32.reinterpret_f32": (_identity, "f32", "i32"),
    "i64.reinterpret_f64": (_identity, "f64", "i64"),
    "f32.reinterpret_i32": (_identity, "i32", "f32"),
    "f64.reinterpret_i64": (_identity, "i64", "f64"),
}

_INT_RANGES = {
    ("i32", "s"): (-(1 << 31), (1 << 31) - 1, M32),
    ("i32", "u"): (0, M32, M32),
    ("i64", "s"): (-(1 << 63), (1 << 63) - 1, M64),
    ("i64", "u"): (0, M64, M64),
}
for _dst in ("i32", "i64"):
    for _src in ("f32", "f64"):
        for _sx in ("s", "u"):
            _lo, _hi, _mask = _INT_RANGES[(_dst, _sx)]
            for _sat in (False, True):
                _op = f"{_dst}.trunc{'_sat' if _sat else ''}_{_src}_{_sx}"
                _CONVERSIONS[_op] = (
                    _make_trunc(int(_src[1:]), _lo, _hi, _mask, _sat), _src, _dst)

for _op, (_fn, _src, _dst) in _CONVERSIONS.items():
    OPS[_op] = _fn
    TYPES[_op] = ((_src,), _dst)

ARITY: Dict[str, int] = {op: len(params) for op, (params, _res) in TYPES.items()}

del _bits, _t, _name, _fn, _op, _table, _dst, _src, _sx, _lo, _hi, _mask, _sat
