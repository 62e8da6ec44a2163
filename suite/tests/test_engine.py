"""The reference engine: explicit frames, call-depth limit, the exact counting rule, traps."""

from __future__ import annotations

import pytest
import wasmtime
from hypothesis import given, settings
from hypothesis import strategies as st

from vm.api import Store, instantiate
from vm.errors import Exhaustion, Trap


def inst_of(wat: str, store: Store = None):
    store = store or Store()
    return store, instantiate(store, wasmtime.wat2wasm(wat))


def call(store, inst, name, *args):
    res = store.invoke(inst.exports[name], list(args))
    return res, store.instructions


FAC = """
(module
  (func $fac (export "fac") (param i64) (result i64)
    (if (result i64) (i64.eqz (local.get 0))
      (then (i64.const 1))
      (else (i64.mul (local.get 0) (call $fac (i64.sub (local.get 0) (i64.const 1))))))))
"""


def test_deep_recursion_uses_no_python_stack():
    store, inst = inst_of(FAC, Store(max_call_depth=50_000))
    res, _ = call(store, inst, "fac", 20_000)
    assert res == [0]  # 20000! has far more than 64 factors of two
    res, _ = call(store, inst, "fac", 20)
    assert res == [2432902008176640000]


def test_call_stack_exhausted_is_a_trap_of_its_own_kind():
    store, inst = inst_of(FAC, Store(max_call_depth=100))
    with pytest.raises(Exhaustion, match="call stack exhausted"):
        call(store, inst, "fac", 1000)
    # the store is usable afterwards
    assert call(store, inst, "fac", 5)[0] == [120]


@pytest.mark.parametrize(
    "body,expected_count",
    [
        # local.get, end
        ("(local.get 0)", 2),
        # block, i32.const, end(block), end(func)
        ("(block (result i32) (i32.const 1))", 4),
        # block, i32.const, br (skips the block's end), end(func)
        ("(block (result i32) (br 0 (i32.const 1)))", 4),
        # i32.const 0, if, [false → no else → end counts], i32.const 7, end
        ("(if (i32.const 0) (then (nop))) (i32.const 7)", 5),
        # i32.const 1, if, nop, else (counts, jumps past end), i32.const, end(func)
        ("(if (i32.const 1) (then (nop)) (else (nop))) (i32.const 7)", 6),
        # i32.const 0, if, [false → after else], nop, end(if), i32.const, end
        ("(if (i32.const 0) (then (nop)) (else (nop))) (i32.const 7)", 6),
    ],
)
def test_counting_rule(body, expected_count):
    wat = f'(module (func (export "f") (param i32) (result i32) {body}))'
    store, inst = inst_of(wat)
    _, n = call(store, inst, "f", 3)
    assert n == expected_count


def test_loop_branch_reexecutes_the_loop_instruction():
    # loop counts once per iteration: 3 iterations of (loop, local.get, i32.const, i32.sub,
    # local.tee, br_if) then end(loop), local.get, end(func).
    wat = """(module (func (export "f") (param i32) (result i32)
      (loop $l (br_if $l (local.tee 0 (i32.sub (local.get 0) (i32.const 1)))))
      (local.get 0)))"""
    store, inst = inst_of(wat)
    res, n = call(store, inst, "f", 3)
    assert res == [0]
    assert n == 3 * 6 + 3


def test_trapping_instruction_counts():
    wat = '(module (func (export "f") (result i32) (i32.div_u (i32.const 1) (i32.const 0))))'
    store, inst = inst_of(wat)
    with pytest.raises(Trap, match="integer divide by zero"):
        call(store, inst, "f")
    assert store.instructions == 3


@settings(max_examples=40, deadline=None)
@given(n=st.integers(min_value=0, max_value=60))
def test_count_matches_wasmtime_fuel_shape(n):
    """The count of a simple counted loop is linear in the trip count, with the documented slope."""
    wat = """(module (func (export "f") (param i32) (result i32) (local i32)
      (block $done (loop $l
        (br_if $done (i32.eqz (local.get 0)))
        (local.set 1 (i32.add (local.get 1) (local.get 0)))
        (local.set 0 (i32.sub (local.get 0) (i32.const 1)))
        (br $l)))
      (local.get 1)))"""
    store, inst = inst_of(wat)
    res, count = call(store, inst, "f", n)
    assert res == [n * (n + 1) // 2]
    # per iteration: loop, local.get, i32.eqz, br_if, local.get, local.get, i32.add, local.set,
    # local.get, i32.const, i32.sub, local.set, br = 13; exit: loop, local.get, i32.eqz, br_if;
    # entry: block; after: local.get, end.
    assert count == 13 * n + 4 + 1 + 2


# ------------------------------------------------------------------------------------------------
# vm.api: the one load/instantiate front door
# ------------------------------------------------------------------------------------------------

def test_load_module_is_cached_by_sha256_and_raises_vm_errors():
    from vm.api import load_module
    from vm.errors import MalformedModule

    data = wasmtime.wat2wasm(FAC)
    a, b = load_module(data), load_module(bytearray(data))
    assert a is b and a.module is b.module and a.data == data
    with pytest.raises(MalformedModule):
        load_module(b"\0asm\x02\0\0\0")


def test_instantiate_resolves_registered_instances_and_spectest():
    from vm.errors import LinkError

    store = Store()
    provider = instantiate(store, wasmtime.wat2wasm(FAC), name="M")
    user = instantiate(store, wasmtime.wat2wasm("""(module
      (import "M" "fac" (func $fac (param i64) (result i64)))
      (import "spectest" "print_i64" (func $p (param i64)))
      (func (export "run") (param i64) (call $p (call $fac (local.get 0)))))"""))
    assert user.funcs[0] is provider.exports["fac"]
    assert user.sha256 and provider.name == "M" and user.name is None
    store.invoke(user.exports["run"], [5])
    assert store.host_log == [("print_i64", (120,))]
    with pytest.raises(LinkError, match="unknown import N.f"):
        instantiate(store, wasmtime.wat2wasm('(module (import "N" "f" (func)))'))
