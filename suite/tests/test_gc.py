"""GC instructions in the reference engine (vm/exec/gc.py), the heap operations they share with constant
expressions and the dynamic type test (vm/runtime/heap.py), through WAT modules."""

from __future__ import annotations

from typing import List

import pytest
import wasmtime
from hypothesis import given, settings
from hypothesis import strategies as st

from vm.api import Store, instantiate
from vm.errors import TRAP_KINDS, Exhaustion, ResourceLimit, Trap, trap_kind
from vm.runtime import ArrayInst, ExternRef, HostRef, I31Ref, StoreLimits, StructInst
from vm.runtime.heap import any_convert_extern, extern_convert_any, ref_matches
from vm.types import RefType
from vm.values import from_runtime

M32 = 0xFFFFFFFF


def inst_of(wat: str, store: Store = None):
    store = store or Store()
    return store, instantiate(store, wasmtime.wat2wasm(wat))


def call(store, inst, name, *args) -> List:
    return store.invoke(inst.exports[name], list(args))


def trap_of(store, inst, name, *args) -> str:
    with pytest.raises(Trap) as e:
        call(store, inst, name, *args)
    kind = trap_kind(e.value.message)
    assert kind in TRAP_KINDS
    return kind


STRUCT = """
(module
  (type $s (struct (field (mut i8)) (field (mut i16)) (field (mut f32)) (field (mut i64)) (field (mut anyref))))
  (func $mk (export "mk") (param i32 i32 f32 i64) (result (ref $s))
    (struct.new $s (local.get 0) (local.get 1) (local.get 2) (local.get 3) (ref.null any)))
  (func (export "get8") (param i32) (result i32 i32)
    (struct.get_s $s 0 (call $mk (local.get 0) (i32.const 0) (f32.const 0) (i64.const 0)))
    (struct.get_u $s 0 (call $mk (local.get 0) (i32.const 0) (f32.const 0) (i64.const 0))))
  (func (export "get16") (param i32) (result i32 i32)
    (struct.get_s $s 1 (call $mk (i32.const 0) (local.get 0) (f32.const 0) (i64.const 0)))
    (struct.get_u $s 1 (call $mk (i32.const 0) (local.get 0) (f32.const 0) (i64.const 0))))
  (func (export "f32") (param f32) (result f32)
    (struct.get $s 2 (call $mk (i32.const 0) (i32.const 0) (local.get 0) (i64.const 0))))
  (func (export "set") (param i32) (result i32 i64)
    (local $r (ref $s))
    (local.set $r (struct.new_default $s))
    (struct.set $s 0 (local.get $r) (local.get 0))
    (struct.set $s 3 (local.get $r) (i64.const -1))
    (struct.get_u $s 0 (local.get $r)) (struct.get $s 3 (local.get $r)))
  (func (export "default") (result anyref) (struct.new_default $s))
  (func (export "null-get") (result i64) (struct.get $s 3 (ref.null $s)))
  (func (export "null-set") (struct.set $s 3 (ref.null $s) (i64.const 1))))
"""


def test_struct_fields_packed_and_float_bits():
    store, inst = inst_of(STRUCT)
    assert call(store, inst, "get8", 0x1FF) == [M32, 0xFF]
    assert call(store, inst, "get8", 0x7F) == [0x7F, 0x7F]
    assert call(store, inst, "get16", 0x18000) == [0xFFFF8000, 0x8000]
    assert call(store, inst, "f32", 0x7FA00001) == [0x7FA00001]  # a NaN payload survives the field
    assert call(store, inst, "set", 0x1234) == [0x34, (1 << 64) - 1]
    s = call(store, inst, "default")[0]
    assert isinstance(s, StructInst) and s.fields == [0, 0, 0, 0, None]


def test_struct_null_traps():
    store, inst = inst_of(STRUCT)
    assert trap_of(store, inst, "null-get") == "null structure reference"
    assert trap_of(store, inst, "null-set") == "null structure reference"


ARRAY = """
(module
  (type $b (array (mut i8)))
  (type $f (array (mut f64)))
  (type $r (array (mut funcref)))
  (data $d "\\01\\80\\ff\\02")
  (elem $e func $g $g)
  (func $g)
  (func (export "fixed") (result i32 i32 i32)
    (local $a (ref $b))
    (local.set $a (array.new_fixed $b 3 (i32.const 1) (i32.const 0x1ff) (i32.const 3)))
    (array.len (local.get $a)) (array.get_s $b (local.get $a) (i32.const 1)) (array.get_u $b (local.get $a) (i32.const 1)))
  (func (export "new") (param i32 i32) (result (ref $b)) (array.new $b (local.get 0) (local.get 1)))
  (func (export "new_default") (param i32) (result (ref $f)) (array.new_default $f (local.get 0)))
  (func (export "new_data") (param i32 i32) (result (ref $b)) (array.new_data $b $d (local.get 0) (local.get 1)))
  (func (export "new_data16") (param i32 i32) (result (ref null $f)) (ref.null $f))
  (func (export "new_elem") (param i32 i32) (result (ref $r)) (array.new_elem $r $e (local.get 0) (local.get 1)))
  (func (export "get") (param (ref null $b) i32) (result i32) (array.get_u $b (local.get 0) (local.get 1)))
  (func (export "init_data") (param (ref null $b) i32 i32 i32)
    (array.init_data $b $d (local.get 0) (local.get 1) (local.get 2) (local.get 3)))
  (func (export "init_elem") (param (ref null $r) i32 i32 i32)
    (array.init_elem $r $e (local.get 0) (local.get 1) (local.get 2) (local.get 3)))
  (func (export "len") (param (ref null $b)) (result i32) (array.len (local.get 0))))
"""


def test_array_allocation_forms():
    store, inst = inst_of(ARRAY)
    assert call(store, inst, "fixed") == [3, M32, 0xFF]
    a = call(store, inst, "new", 0x180, 4)[0]
    assert isinstance(a, ArrayInst) and a.elements == [0x80] * 4
    assert call(store, inst, "new_default", 2)[0].elements == [0, 0]
    assert call(store, inst, "new_data", 1, 3)[0].elements == [0x80, 0xFF, 0x02]
    fs = call(store, inst, "new_elem", 0, 2)[0].elements
    assert fs[0] is fs[1] is inst.funcs[0]


def test_array_segment_bounds_trap_on_the_segment_side():
    store, inst = inst_of(ARRAY)
    assert trap_of(store, inst, "new_data", 1, 4) == "out of bounds memory access"
    assert trap_of(store, inst, "new_elem", 1, 2) == "out of bounds table access"
    a = call(store, inst, "new", 0, 3)[0]
    call(store, inst, "init_data", a, 1, 2, 2)
    assert a.elements == [0, 0xFF, 0x02]
    assert trap_of(store, inst, "init_data", a, 2, 0, 2) == "out of bounds array access"
    assert trap_of(store, inst, "init_data", a, 0, 3, 2) == "out of bounds memory access"
    r = call(store, inst, "new_elem", 0, 0)[0]
    assert trap_of(store, inst, "init_elem", r, 0, 0, 1) == "out of bounds array access"
    assert trap_of(store, inst, "get", a, 3) == "out of bounds array access"
    assert trap_of(store, inst, "get", None, 0) == "null array reference"
    assert trap_of(store, inst, "len", None) == "null array reference"
    assert trap_of(store, inst, "init_elem", None, 0, 0, 0) == "null array reference"


def test_array_new_data_decodes_wide_elements_little_endian():
    wat = """(module (type $t (array i16)) (type $v (array v128)) (data $d "\\01\\80\\ff\\7f" "0123456789abcdef")
      (func (export "h") (result (ref $t)) (array.new_data $t $d (i32.const 0) (i32.const 2)))
      (func (export "v") (result (ref $v)) (array.new_data $v $d (i32.const 4) (i32.const 1))))"""
    store, inst = inst_of(wat)
    assert call(store, inst, "h")[0].elements == [0x8001, 0x7FFF]
    assert call(store, inst, "v")[0].elements == [int.from_bytes(b"0123456789abcdef", "little")]


I31 = """
(module
  (func (export "i31") (param i32) (result i32 i32)
    (i31.get_s (ref.i31 (local.get 0))) (i31.get_u (ref.i31 (local.get 0))))
  (func (export "null") (result i32) (i31.get_u (ref.null i31)))
  (func (export "eq") (param i32 i32) (result i32) (ref.eq (ref.i31 (local.get 0)) (ref.i31 (local.get 1))))
  (func (export "same") (result i32) (local $a eqref)
    (local.set $a (struct.new_default $s))
    (ref.eq (local.get $a) (local.get $a)))
  (func (export "other") (result i32) (ref.eq (struct.new_default $s) (struct.new_default $s)))
  (type $s (struct)))
"""


def test_i31_and_ref_eq():
    store, inst = inst_of(I31)
    assert call(store, inst, "i31", 0x40000000) == [0xC0000000, 0x40000000]
    assert call(store, inst, "i31", 0xFFFFFFFF) == [M32, 0x7FFFFFFF]
    assert call(store, inst, "i31", 5) == [5, 5]
    assert trap_of(store, inst, "null") == "null i31 reference"
    assert call(store, inst, "eq", 7, 0x80000007) == [1]  # ref.i31 drops bit 31: equal values
    assert call(store, inst, "eq", 7, 8) == [0]
    assert call(store, inst, "same") == [1] and call(store, inst, "other") == [0]


CASTS = """
(module
  (type $p (sub (struct (field i32))))
  (type $c (sub $p (struct (field i32) (field i64))))
  (type $q (struct (field i32)))
  (func (export "mk") (param i32) (result anyref)
    (if (result anyref) (i32.eqz (local.get 0)) (then (struct.new $p (i32.const 1)))
      (else (if (result anyref) (i32.eq (local.get 0) (i32.const 1)) (then (struct.new $c (i32.const 2) (i64.const 3)))
        (else (ref.i31 (i32.const 9)))))))
  (func (export "test-p") (param anyref) (result i32) (ref.test (ref $p) (local.get 0)))
  (func (export "test-c") (param anyref) (result i32) (ref.test (ref $c) (local.get 0)))
  (func (export "test-q") (param anyref) (result i32) (ref.test (ref $q) (local.get 0)))
  (func (export "test-eq-null") (param anyref) (result i32) (ref.test (ref null eq) (local.get 0)))
  (func (export "cast-c") (param anyref) (result i64) (struct.get $c 1 (ref.cast (ref $c) (local.get 0))))
  (func (export "br") (param anyref) (result i32)
    (block $l (result (ref $p))
      (br_on_cast $l anyref (ref $p) (local.get 0))
      (drop) (return (i32.const -1)))
    (struct.get $p 0))
  (func (export "br-fail") (param anyref) (result i32)
    (block $l (result anyref)
      (return (struct.get $p 0 (br_on_cast_fail $l anyref (ref $p) (local.get 0)))))
    (drop) (i32.const -2)))
"""


def test_casts_follow_declared_subtyping():
    store, inst = inst_of(CASTS)
    p, c, i = (call(store, inst, "mk", k)[0] for k in (0, 1, 2))
    assert [call(store, inst, "test-p", v)[0] for v in (p, c, i, None)] == [1, 1, 0, 0]
    assert [call(store, inst, "test-c", v)[0] for v in (p, c, i, None)] == [0, 1, 0, 0]
    assert [call(store, inst, "test-q", v)[0] for v in (p, c)] == [0, 0]  # $q is final: not $p's equal
    assert [call(store, inst, "test-eq-null", v)[0] for v in (p, i, None, HostRef(1))] == [1, 1, 1, 0]
    assert call(store, inst, "cast-c", c) == [3]
    assert trap_of(store, inst, "cast-c", p) == "cast failure"
    assert [call(store, inst, "br", v)[0] for v in (p, c, i)] == [1, 2, M32]
    assert [call(store, inst, "br-fail", v)[0] for v in (p, c, i, None)] == [1, 2, 0xFFFFFFFE, 0xFFFFFFFE]


def test_casts_work_across_modules_by_canonical_type():
    """A struct made by one module is of a type another module defines equivalently (iso-recursive
    canonical keys), and of no other."""
    store, a = inst_of("(module (type $t (struct (field i32))) (func (export \"mk\") (result anyref) "
                       "(struct.new $t (i32.const 4))))")
    _, b = inst_of("(module (type $u (struct (field i64))) (type $t (struct (field i32))) "
                   "(func (export \"t\") (param anyref) (result i32) (ref.test (ref $t) (local.get 0))) "
                   "(func (export \"u\") (param anyref) (result i32) (ref.test (ref $u) (local.get 0))))", store)
    s = call(store, a, "mk")[0]
    assert call(store, b, "t", s) == [1] and call(store, b, "u", s) == [0]


def test_ref_matches_on_every_kind():
    store, inst = inst_of("(module (type $f (func)) (type $s (struct)) (func (export \"f\") (type $f)) "
                          "(func (export \"s\") (result (ref $s)) (struct.new $s)))")
    keys = inst.canon
    f = inst.exports["f"]
    s = call(store, inst, "s")[0]
    assert ref_matches(f, RefType(False, 0), keys) and ref_matches(f, RefType(False, "func"), keys)
    assert not ref_matches(f, RefType(True, "any"), keys) and not ref_matches(f, RefType(False, "nofunc"), keys)
    assert ref_matches(s, RefType(False, 1), keys) and ref_matches(s, RefType(False, "eq"), keys)
    assert not ref_matches(s, RefType(False, "array"), keys) and not ref_matches(s, RefType(False, 0), keys)
    assert ref_matches(s, RefType(False, keys[1]))  # an already canonical type needs no keys
    assert ref_matches(None, RefType(True, "none")) and not ref_matches(None, RefType(False, "any"))
    assert ref_matches(I31Ref(1), RefType(False, "i31")) and not ref_matches(I31Ref(1), RefType(False, "struct"))
    assert ref_matches(HostRef(1), RefType(False, "any")) and not ref_matches(HostRef(1), RefType(False, "eq"))
    assert ref_matches(ExternRef(1), RefType(False, "extern")) and not ref_matches(ExternRef(1), RefType(True, "any"))
    assert not ref_matches(7, RefType(True, "any"))  # a number is no reference


def test_extern_conversions_round_trip_to_the_same_object():
    s = StructInst(None, [])
    assert any_convert_extern(extern_convert_any(s)) is s
    assert extern_convert_any(HostRef(3)) == ExternRef(3) and any_convert_extern(ExternRef(3)) == HostRef(3)
    assert extern_convert_any(None) is None and any_convert_extern(None) is None
    store, inst = inst_of("(module (func (export \"rt\") (param anyref) (result anyref) "
                          "(any.convert_extern (extern.convert_any (local.get 0)))) "
                          "(func (export \"x\") (param externref) (result externref) "
                          "(extern.convert_any (any.convert_extern (local.get 0)))))")
    i = I31Ref(5)
    assert call(store, inst, "rt", i)[0] == i and call(store, inst, "x", ExternRef(7)) == [ExternRef(7)]


CONSTS = """
(module
  (type $s (struct (field i8) (field (ref null $s))))
  (type $a (array i16))
  (global $g1 (ref $s) (struct.new $s (i32.const 0x1ff) (ref.null $s)))
  (global $g2 (ref $s) (struct.new $s (i32.const 2) (global.get $g1)))
  (global $g3 (ref $a) (array.new_fixed $a 2 (i32.const 0x12345) (i32.const 7)))
  (global $g4 (ref $a) (array.new $a (i32.const 3) (i32.const 2)))
  (global $g5 (ref $a) (array.new_default $a (i32.const 2)))
  (global $g6 (ref i31) (ref.i31 (i32.const -1)))
  (global $g7 externref (extern.convert_any (global.get $g6)))
  (global $g8 anyref (any.convert_extern (global.get $g7)))
  (global $g9 (ref $s) (struct.new_default $s))
  (table $t 2 (ref null $s) (struct.new $s (i32.const 2) (ref.null $s)))
  (elem (table $t) (i32.const 1) (ref null $s) (struct.new $s (i32.const 5) (ref.null $s)))
  (func (export "t") (param i32) (result i32) (struct.get_s $s 0 (table.get $t (local.get 0)))))
"""


def test_constant_expressions_allocate_like_the_engine():
    store, inst = inst_of(CONSTS)
    g = [x.value for x in inst.globals]
    assert g[0].fields == [0xFF, None] and g[1].fields == [2, g[0]]
    assert g[2].elements == [0x2345, 7] and g[3].elements == [3, 3] and g[4].elements == [0, 0]
    assert g[5] == I31Ref(0x7FFFFFFF) and g[6] == ExternRef(g[5]) and g[7] == g[5]
    assert g[8].fields == [0, None]
    assert inst.tables[0].elements[0].fields == [2, None]
    assert call(store, inst, "t", 0) == [2] and call(store, inst, "t", 1) == [5]


def test_heap_limit_is_out_of_memory_when_running_and_a_resource_limit_when_instantiating():
    limits = StoreLimits(max_heap_fields=10)
    store, inst = inst_of("(module (type $a (array i8)) (func (export \"a\") (param i32) (result anyref) "
                          "(array.new_default $a (local.get 0))))", Store(limits=limits))
    call(store, inst, "a", 4)
    call(store, inst, "a", 0)  # an empty array counts 1
    with pytest.raises(Exhaustion, match="out of memory") as e:
        call(store, inst, "a", 6)
    assert trap_kind(e.value.message) == "out of memory"
    assert store.quota.fields == 5
    with pytest.raises(ResourceLimit, match="max-heap-fields"):
        inst_of(CONSTS, Store(limits=StoreLimits(max_heap_fields=3)))


def test_counting_is_unchanged():
    store, inst = inst_of(STRUCT)
    call(store, inst, "set", 1)
    # struct.new_default, local.set; 2 x (local.get, operand, struct.set); 2 x (local.get, struct.get); end
    assert store.instructions == 2 + 2 * 3 + 2 * 2 + 1


def test_tagged_values_without_a_store():
    assert from_runtime(None, I31Ref(5)) == ("ref.i31", 5)
    assert from_runtime(None, HostRef(2)) == ("ref.host", 2)
    assert from_runtime(None, StructInst(None, [])) == ("ref.struct", None)
    assert from_runtime(None, ArrayInst(None, [])) == ("ref.array", None)
    assert from_runtime(None, ExternRef(3)) == ("ref.extern", 3)
    assert from_runtime(None, ExternRef(I31Ref(4))) == ("ref.extern", ("ref.i31", 4))


# -- properties ------------------------------------------------------------------------------------

MODEL = """
(module
  (type $a (array (mut i8)))
  (global $g (mut (ref null $a)) (ref.null $a))
  (func (export "init") (param i32) (global.set $g (array.new_default $a (local.get 0))))
  (func (export "set") (param i32 i32) (array.set $a (global.get $g) (local.get 0) (local.get 1)))
  (func (export "get_s") (param i32) (result i32) (array.get_s $a (global.get $g) (local.get 0)))
  (func (export "get_u") (param i32) (result i32) (array.get_u $a (global.get $g) (local.get 0)))
  (func (export "fill") (param i32 i32 i32) (array.fill $a (global.get $g) (local.get 0) (local.get 1) (local.get 2)))
  (func (export "copy") (param i32 i32 i32)
    (array.copy $a $a (global.get $g) (local.get 0) (global.get $g) (local.get 1) (local.get 2))))
"""

_u32 = st.integers(0, M32)
_idx = st.integers(0, 12)
_ops = st.lists(st.one_of(
    st.tuples(st.just("set"), _idx, _u32),
    st.tuples(st.just("fill"), _idx, _u32, _idx),
    st.tuples(st.just("copy"), _idx, _idx, _idx),
), max_size=12)


def _model(xs: List[int], op: tuple) -> bool:
    """Apply ``op`` to the list model; False when the engine must trap (nothing changes then)."""
    if op[0] == "set":
        _, i, v = op
        if i >= len(xs):
            return False
        xs[i] = v & 0xFF
    elif op[0] == "fill":
        _, d, v, n = op
        if d + n > len(xs):
            return False
        xs[d:d + n] = [v & 0xFF] * n
    else:
        _, d, s, n = op
        if d + n > len(xs) or s + n > len(xs):
            return False
        xs[d:d + n] = xs[s:s + n]
    return True


@settings(deadline=None, max_examples=60)
@given(init=st.lists(st.integers(0, 255), max_size=10), ops=_ops)
def test_array_fill_copy_set_match_a_list_model(init, ops):
    store, inst = inst_of(MODEL)
    call(store, inst, "init", len(init))
    for i, x in enumerate(init):
        call(store, inst, "set", i, x)
    xs = list(init)
    for op in ops:
        if _model(xs, op):
            call(store, inst, *op)
        else:
            assert trap_of(store, inst, *op) == "out of bounds array access"
    for i, x in enumerate(xs):
        assert call(store, inst, "get_u", i) == [x]
        assert call(store, inst, "get_s", i) == [(x - 256 if x & 0x80 else x) & M32]


@settings(deadline=None, max_examples=60)
@given(v=_u32)
def test_packed_struct_fields_round_trip(v):
    store, inst = inst_of(STRUCT)
    b, h = v & 0xFF, v & 0xFFFF
    assert call(store, inst, "get8", v) == [(b - (b & 0x80) * 2) & M32, b]
    assert call(store, inst, "get16", v) == [(h - (h & 0x8000) * 2) & M32, h]
