"""A run that had already trapped at its checkpoint (k = total) resumes on a native target as the same
trap: the resume module rebuilds the store, then raises that kind for certain (was: not convertible,
so targets never saw trapped snapshots)."""

from __future__ import annotations

import pytest

from runners.native.restorer import target_restorer
from runners.restore import MATCH
from runners.session import items_for
from vm.snapshot.resume import NotConvertible, make_resume_module

wasmtime = pytest.importorskip("wasmtime")

BODY = {
    "unreachable": "unreachable",
    "integer divide by zero": "(drop (i32.div_s (i32.const 7) (i32.const 0)))",
    "integer overflow": "(drop (i64.div_s (i64.const 0x8000000000000000) (i64.const -1)))",
    "invalid conversion to integer": "(drop (i64.trunc_f64_u (f64.const nan)))",
    "out of bounds memory access": "(drop (i32.load (i32.const 70000)))",
    "out of bounds table access": "(drop (table.get $t (i32.const 12)))",
    "undefined element": "(call_indirect $t (type $v) (i32.const 99))",
    "uninitialized element": "(call_indirect $t (type $v) (i32.const 3))",
    "indirect call type mismatch": "(call_indirect $t (param i64) (i64.const 1) (i32.const 0))",
    "null reference": "(drop (ref.as_non_null (ref.null extern)))",
}


def _module(body: str) -> bytes:
    # the store changes before the trap: the resumed run must end with the same memory and global
    return bytes(wasmtime.wat2wasm(f"""(module
      (type $v (func)) (memory 1) (global $g (mut i32) (i32.const 0))
      (table $t 10 funcref) (func $f) (elem (table $t) (i32.const 0) func $f $f)
      (func (export "main") (result i32)
        (i32.store (i32.const 8) (i32.const 0x1234)) (global.set $g (i32.const 5))
        {body} (i32.const 1)))"""))


@pytest.mark.parametrize("kind", sorted(BODY))
def test_trapped_snapshot_resumes_as_the_same_trap(kind: str) -> None:
    """On wasmtime; the other targets are covered by the C/R spec runs (traps.wast etc.)."""
    (item,) = items_for(_module(BODY[kind]), "main", ks=[10 ** 9])  # k = total: the trapped run
    assert item.state.thread.status == "trapped" and item.reference["trap"].startswith(kind)
    rm = make_resume_module(item.state, item.modules)
    assert rm.manifest.results == ("i32",)
    (res,) = target_restorer("wasmtime").check_many([item])
    assert res.status == MATCH, (res.status, res.detail)


def test_a_trap_without_a_certain_trigger_is_not_convertible() -> None:
    # no memory to fault in: raising "out of bounds memory access" would be a guess
    wasm = bytes(wasmtime.wat2wasm('(module (memory $m 0) (func (export "main") (drop (i32.load (i32.const 1)))))'))
    (item,) = items_for(wasm, "main", ks=[10 ** 9])
    state = item.state
    state.thread.trap = "call stack exhausted"  # a kind with no portable trigger
    with pytest.raises(NotConvertible, match="trapped"):
        make_resume_module(state, item.modules)
