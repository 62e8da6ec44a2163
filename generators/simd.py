"""The SIMD part of the module generator (:mod:`generators.modules`, feature ``simd``): v128 values in
locals, globals, parameters, results and on the operand stack, and a representative set of the
fixed-width SIMD instructions that make and consume them.

Why a part of its own: a checkpoint holding a live v128 must survive capture, the codec, restore and the
resume module (``v128.const``) bit for bit, and only programs that keep v128 values live at checkpoints
test that.  The instructions chosen cover each *kind* of SIMD operation once or more rather than all of
them (the spec files test the semantics): const, shuffle, swizzle, splat, extract/replace lane, integer
lane arithmetic (plain, saturating, min/max, avgr, abs/neg/popcnt, shifts, extadd, extmul, dot, q15mulr,
narrow/extend), comparisons, bitmask/all_true/any_true, bitwise ops and bitselect, float lane arithmetic,
min/max/pmin/pmax, rounding, sqrt, conversions and the v128 loads and stores (plain, extend, splat, zero,
lane).  Relaxed SIMD is left out: its answers are implementation-defined, so targets may legally differ.

NaN determinism as for scalars (:mod:`generators.modules`): with ``canon_nans`` every lane an arithmetic
float op produced is canonicalised (``bitselect(x, +nan, x == x)`` in the op's lane shape), so every
v128 in the program is a deterministic bit pattern.
"""

from __future__ import annotations

from typing import Any, Tuple

from hypothesis import strategies as st

from vm.module import Instr, MemArg
from vm.types import F32, F64, I32, I64, V128

__all__ = ["SimdOps", "V128_EDGES", "V128_LOADS", "V128_STORES"]

#: edge v128 values: zero, all ones, lane patterns that are NaNs / infinities / extremes in some shapes
V128_EDGES: Tuple[int, ...] = (
    0, (1 << 128) - 1, 1, 0x7FC00000_7F800000_FFC00000_00000001, 0x7FF8000000000000_FFF0000000000001,
    0x80000000_7FFFFFFF_80000000_7FFFFFFF, 0x8000_7FFF_FFFF_0001_8000_7FFF_FFFF_0001,
    0x807F_FF01_7F80_01FF_807F_FF01_7F80_01FF, 0x3F800000_BF800000_4F000000_CF000000,
    0x00010203_04050607_08090A0B_0C0D0E0F,
)
#: (op, natural alignment log2) of the v128 loads without a lane operand
V128_LOADS = (("v128.load", 4), ("v128.load8x8_s", 3), ("v128.load16x4_u", 3), ("v128.load32x2_s", 3),
              ("v128.load8_splat", 0), ("v128.load16_splat", 1), ("v128.load32_splat", 2),
              ("v128.load64_splat", 3), ("v128.load32_zero", 2), ("v128.load64_zero", 3))
V128_STORES = (("v128.store", 4),)

_SHAPES = ("i8x16", "i16x8", "i32x4", "i64x2")
#: unary v128 → v128 without float arithmetic (bit-exact everywhere)
_UN_BITS = ("v128.not", "i8x16.abs", "i8x16.neg", "i8x16.popcnt", "i16x8.abs", "i32x4.neg", "i64x2.abs",
            "i16x8.extend_low_i8x16_s", "i32x4.extend_high_i16x8_u", "i64x2.extend_low_i32x4_s",
            "i16x8.extadd_pairwise_i8x16_s", "i32x4.extadd_pairwise_i16x8_u")
_UN_FLOAT_BITS = ("f32x4.abs", "f64x2.neg", "i32x4.trunc_sat_f32x4_s", "i32x4.trunc_sat_f64x2_u_zero",
                  "f32x4.convert_i32x4_u", "f64x2.convert_low_i32x4_s")
#: unary float arithmetic (may make NaNs): op → lane shape to canonicalise in
_UN_ARITH = {"f32x4.sqrt": F32, "f32x4.ceil": F32, "f32x4.nearest": F32, "f64x2.floor": F64,
             "f64x2.trunc": F64, "f64x2.sqrt": F64, "f32x4.demote_f64x2_zero": F32,
             "f64x2.promote_low_f32x4": F64}
_BIN_BITS = ("v128.and", "v128.or", "v128.xor", "v128.andnot", "i8x16.add", "i8x16.sub_sat_u",
             "i8x16.add_sat_s", "i8x16.min_u", "i8x16.avgr_u", "i8x16.swizzle", "i8x16.narrow_i16x8_s",
             "i16x8.mul", "i16x8.sub", "i16x8.max_s", "i16x8.q15mulr_sat_s", "i16x8.narrow_i32x4_u",
             "i16x8.extmul_low_i8x16_u", "i32x4.add", "i32x4.mul", "i32x4.min_s", "i32x4.dot_i16x8_s",
             "i32x4.extmul_high_i16x8_s", "i64x2.add", "i64x2.sub", "i64x2.mul",
             "i8x16.eq", "i8x16.lt_s", "i16x8.gt_u", "i32x4.le_s", "i32x4.ge_u", "i64x2.ne", "i64x2.lt_s")
_BIN_FLOAT_BITS = ("f32x4.pmin", "f64x2.pmax", "f32x4.eq", "f32x4.lt", "f64x2.le", "f64x2.ne")
_BIN_ARITH = {"f32x4.add": F32, "f32x4.sub": F32, "f32x4.mul": F32, "f32x4.div": F32, "f32x4.min": F32,
              "f32x4.max": F32, "f64x2.add": F64, "f64x2.mul": F64, "f64x2.div": F64, "f64x2.min": F64,
              "f64x2.max": F64}
_SHIFTS = ("i8x16.shl", "i8x16.shr_s", "i16x8.shr_u", "i32x4.shl", "i32x4.shr_s", "i64x2.shr_u")
_LANES = {"i8x16": 16, "i16x8": 8, "i32x4": 4, "i64x2": 2, "f32x4": 4, "f64x2": 2}
#: scalar type → the shapes whose lanes it is (splat / extract / replace)
_SCALAR_SHAPES = {I32: ("i8x16", "i16x8", "i32x4"), I64: ("i64x2",), F32: ("f32x4",), F64: ("f64x2",)}
_CANON_V = {F32: int.from_bytes((0x7FC00000).to_bytes(4, "little") * 4, "little"),
            F64: int.from_bytes((0x7FF8000000000000).to_bytes(8, "little") * 2, "little")}
_EQ = {F32: "f32x4.eq", F64: "f64x2.eq"}


class SimdOps:
    """Mixed into the generator (:class:`generators.modules._Gen`), whose drawing, emitting and value
    methods it uses (``draw``, ``pick``, ``flag``, ``emit``, ``value``, ``address``, ``ctx``, ``f``)."""

    draw: Any
    pick: Any
    flag: Any
    emit: Any
    value: Any
    address: Any
    ctx: Any
    f: Any
    code: Any

    def simd_floats(self) -> bool:
        return "floats" in self.f

    def canon_v(self, lane: str) -> None:
        """Canonicalise the NaN lanes of the v128 on top of the stack (``lane``: f32 or f64)."""
        if "canon_nans" not in self.f:
            return
        tmp = self.ctx.scratch_local(V128)
        self.code += [Instr("local.tee", tmp), Instr("v128.const", _CANON_V[lane]), Instr("local.get", tmp),
                      Instr("local.get", tmp), Instr(_EQ[lane]), Instr("v128.bitselect")]

    def v128_local(self) -> None:
        """Usually a v128 local set from a drawn v128 at function entry, which the random code may then
        read and write: a frame of a SIMD program then holds a live v128 wherever it is checkpointed
        (the entry function has no v128 parameters, so without this most frames would hold none)."""
        if self.draw(st.integers(0, 3)) == 0:
            return
        i = self.ctx.new_local(V128)
        self.value(V128)
        self.emit("local.set", i)

    def v128_unop(self) -> None:
        ops = list(_UN_BITS) + (list(_UN_FLOAT_BITS) + list(_UN_ARITH) if self.simd_floats() else [])
        op = self.pick(ops)
        self.value(V128)
        self.emit(op)
        if op in _UN_ARITH:
            self.canon_v(_UN_ARITH[op])

    def v128_binop(self) -> None:
        k = self.draw(st.integers(0, 9))
        if k == 0:
            self.value(V128)
            self.value(I32)
            self.emit(self.pick(_SHIFTS))
            return
        if k == 1:
            self.value(V128)
            self.value(V128)
            self.value(V128)
            self.emit("v128.bitselect")
            return
        if k == 2:
            self.value(V128)
            self.value(V128)
            self.emit("i8x16.shuffle", tuple(self.draw(st.integers(0, 31)) for _ in range(16)))
            return
        ops = list(_BIN_BITS) + (list(_BIN_FLOAT_BITS) + list(_BIN_ARITH) if self.simd_floats() else [])
        op = self.pick(ops)
        self.value(V128)
        self.value(V128)
        self.emit(op)
        if op in _BIN_ARITH:
            self.canon_v(_BIN_ARITH[op])

    def v128_from_scalars(self) -> None:
        """splat or replace_lane (the ``convert`` alternative of a v128 value)."""
        types = [t for t in (I32, I64, F32, F64) if self.simd_floats() or t in (I32, I64)]
        t = self.pick(types)
        shape = self.pick(_SCALAR_SHAPES[t])
        if self.flag():
            self.value(V128)
            self.value(t)
            self.emit(f"{shape}.replace_lane", self.draw(st.integers(0, _LANES[shape] - 1)))
        else:
            self.value(t)
            self.emit(f"{shape}.splat")

    def v128_load_lane(self) -> None:
        """``v128.loadN_lane``: a load that also takes a v128 operand."""
        n = self.pick((8, 16, 32, 64))
        nat = {8: 0, 16: 1, 32: 2, 64: 3}[n]
        off = self.address(n // 8)
        self.value(V128)
        self.emit(f"v128.load{n}_lane", (MemArg(self.draw(st.integers(0, nat)), off),
                                         self.draw(st.integers(0, 128 // n - 1))))

    def v128_store_lane(self) -> None:
        """``v128.storeN_lane`` (a statement)."""
        n = self.pick((8, 16, 32, 64))
        nat = {8: 0, 16: 1, 32: 2, 64: 3}[n]
        off = self.address(n // 8)
        self.value(V128)
        self.emit(f"v128.store{n}_lane", (MemArg(self.draw(st.integers(0, nat)), off),
                                          self.draw(st.integers(0, 128 // n - 1))))

    def scalar_from_v128(self, t: Any) -> None:
        """A scalar of type ``t`` read out of a v128: extract_lane, or for i32 also any_true, all_true
        and bitmask."""
        shape = self.pick(_SCALAR_SHAPES[t])
        k = self.draw(st.integers(0, 3)) if t == I32 else 0
        self.value(V128)
        if k == 0:
            suffix = ("_s" if self.flag() else "_u") if shape in ("i8x16", "i16x8") else ""
            self.emit(f"{shape}.extract_lane{suffix}", self.draw(st.integers(0, _LANES[shape] - 1)))
        elif k == 1:
            self.emit("v128.any_true")
        else:
            self.emit(f"{self.pick(_SHAPES)}.{'all_true' if k == 2 else 'bitmask'}")
