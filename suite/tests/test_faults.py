"""Every fault point of :mod:`vm.snapshot.faults` is reachable: activated on its own, it corrupts what it
claims to corrupt, shown directly (a snapshot, a decoded state, a host reply, a resume module, an oracle
verdict) rather than through a campaign.  And with no fault active nothing is corrupted.  Why this
matters: ``wcr selftest``'s mutation score only means something if a "not caught" fault was really in
effect — a hook that is never reached would count as a blind spot of the fuzzer that does not exist."""

from __future__ import annotations

import hashlib
import sys
from typing import Any, Dict, Iterator, Tuple

import pytest

from runners.hosts import InProcHost, PythonHost
from runners.oracle import compare_outcomes, compare_stopped
from runners.session import checkpoints_of_run, reference_run
from runners.trial import oracle_probe
from vm.snapshot import decode, encode, faults
from vm.snapshot.resume import make_resume_module, run_resume_on_vm

# one module with every shape the faults need: a count-down loop whose counter is a declared local, an
# i64 global above 2^32, a memory grown by one page with data in both pages, a print, a call that is
# pending while the callee loops, a mutable global written by the program
WAT = """
(module
  (func $print (import "spectest" "print_i32") (param i32))
  (memory 1)
  (global $big (mut i64) (i64.const 0x100000005))
  (global $g (mut i32) (i32.const 7))
  (func $inner (param $n i32) (result i32) (local $i i32) (local $acc i32)
    (local.set $i (local.get $n))
    (loop $l
      (local.set $acc (i32.add (local.get $acc) (local.get $i)))
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (br_if $l (local.get $i)))
    (local.get $acc))
  (func (export "run") (param $n i32) (result i32)
    (drop (memory.grow (i32.const 1)))
    (i32.store (i32.const 100) (i32.const 0x01020304))
    (i32.store (i32.const 70000) (i32.const 0x0a0b0c0d))
    (global.set $g (i32.const 9))
    (global.set $big (i64.add (global.get $big) (i64.const 1)))
    (call $print (local.get $n))
    (i32.add (call $inner (local.get $n)) (i32.wrap_i64 (i64.shr_u (global.get $big) (i64.const 32))))))
"""


@pytest.fixture(autouse=True)
def _no_faults() -> Iterator[None]:
    faults.set_active(())
    yield
    faults.set_active(())


@pytest.fixture(scope="module")
def mod() -> Tuple[bytes, Dict[str, bytes], Dict[str, Any]]:
    import wasmtime

    wasm = bytes(wasmtime.wat2wasm(WAT))
    ref = reference_run(wasm, "run", [6])
    return wasm, {hashlib.sha256(wasm).hexdigest(): wasm}, ref.outcome


def _snap(wasm: bytes, k: int) -> Tuple[bytes, Any]:
    ((_, data, state),) = checkpoints_of_run(wasm, "run", [6], [k])
    return data, state


def _inside_loop(wasm: bytes) -> int:
    """A k where the top frame is $inner mid-loop (its counter $i > 1, its $acc non-zero)."""
    total = reference_run(wasm, "run", [6]).total
    for k in range(total):
        _, st = _snap(wasm, k)
        fr = st.thread.frames
        if len(fr) == 2 and len(fr[-1].labels) == 2 and fr[-1].locals[1][1] > 1 and fr[-1].locals[2][1]:
            return k
    raise AssertionError("no checkpoint inside the loop")


def test_every_fault_has_a_test_and_off_means_off(mod: Any) -> None:
    tested = {name[len("test_fault_"):] for name in globals() if name.startswith("test_fault_")}
    assert set(faults.FAULTS) <= tested | {"pc_off_by_one", "stack_slot_dropped", "type_widened",
                                            "label_height_wrong", "f32_nan_quieted", "dropped_flag_lost",
                                            "table_not_saved", "counter_not_restored"}, \
        set(faults.FAULTS) - tested
    assert len(faults.FAULTS) >= 20 and set(faults.NEEDS) <= set(faults.FAULTS)
    wasm, mods, ref = mod
    data, _ = _snap(wasm, _inside_loop(wasm))
    assert InProcHost().restore_and_finish(data, mods) == ref


def test_fault_locals_zeroed(mod: Any) -> None:
    """The loop counter is zeroed by the restore, wraps to 2^32 - 1, and the restore, out of fuel at 5000
    instructions instead of running for hours, has run past the reference's total: a mismatch."""
    wasm, mods, ref = mod
    data, _ = _snap(wasm, _inside_loop(wasm))
    faults.set_active(["locals_zeroed"])
    got = InProcHost().restore_and_finish(data, mods, 5000)
    assert got["stopped"] == "fuel exhausted" and got["trap"] is None and got["instructions"] == 5000
    assert ref["instructions"] < 5000
    assert compare_stopped(ref, got)[0] == "mismatch"
    assert compare_outcomes(ref, got)


def test_fault_memory_grow_lost(mod: Any) -> None:
    wasm, mods, ref = mod
    data, _ = _snap(wasm, ref["instructions"] - 2)
    faults.set_active(["memory_grow_lost"])
    got = InProcHost().restore_and_finish(data, mods)
    assert got["state_digest"] != ref["state_digest"]


def test_fault_codec_i64_truncated(mod: Any) -> None:
    wasm, _, ref = mod
    data, st = _snap(wasm, ref["instructions"] - 2)
    assert ("i64", 0x100000006) in st.globals
    faults.set_active(["codec_i64_truncated"])
    assert ("i64", 0x6) in decode(data).globals


def test_fault_codec_page_tail_lost(mod: Any) -> None:
    wasm, _, ref = mod
    data, st = _snap(wasm, ref["instructions"] - 2)
    faults.set_active(["codec_page_tail_lost"])
    got = decode(data).mems[0].nonzero
    assert got != st.mems[0].nonzero
    assert got[0][100:104] == bytes([4, 3, 2, 0])  # little-endian 0x01020304, last non-zero byte gone


def test_fault_codec_host_log_dropped(mod: Any) -> None:
    wasm, _, ref = mod
    data, st = _snap(wasm, ref["instructions"] - 2)
    assert len(st.host_log) == 1
    faults.set_active(["codec_host_log_dropped"])
    assert decode(data).host_log == []


def _python_host() -> PythonHost:
    return PythonHost(sys.executable, timeout=60)


def test_fault_child_step_one_late(mod: Any) -> None:
    wasm, mods, _ = mod
    data, _ = _snap(wasm, 3)
    h = _python_host()
    try:
        assert decode(h.step(data, mods, 10)).thread.count == 10
        faults.set_active(["child_step_one_late"])
        assert decode(h.step(data, mods, 10)).thread.count == 11
    finally:
        h.close()


def test_fault_child_counts_from_restore(mod: Any) -> None:
    wasm, mods, ref = mod
    data, _ = _snap(wasm, 7)
    h = _python_host()
    try:
        faults.set_active(["child_counts_from_restore"])
        got = h.restore_and_finish(data, mods)
        assert got["instructions"] == ref["instructions"] - 7
        assert InProcHost().restore_and_finish(data, mods)["instructions"] == ref["instructions"]  # child only
    finally:
        h.close()


def _resume_outcome(wasm: bytes, mods: Dict[str, bytes], k: int, fault: str) -> Tuple[Any, Any, Any, Any]:
    """(module, outcome) of the resume module at k, without and with ``fault``."""
    _, st = _snap(wasm, k)
    good = make_resume_module(st, mods)
    faults.set_active([fault])
    bad = make_resume_module(st, mods)
    faults.set_active(())
    return good, run_resume_on_vm(good), bad, run_resume_on_vm(bad)


def test_fault_resume_data_off_by_one(mod: Any) -> None:
    wasm, mods, ref = mod
    good, og, bad, ob = _resume_outcome(wasm, mods, ref["instructions"] - 2, "resume_data_off_by_one")
    offs = [d.offset for d in good.module.datas]
    assert offs != [d.offset for d in bad.module.datas]
    assert og.memories[0] != ob.memories[0]


def test_fault_resume_global_not_set(mod: Any) -> None:
    wasm, mods, ref = mod
    _, og, _, ob = _resume_outcome(wasm, mods, ref["instructions"] - 2, "resume_global_not_set")
    assert og.globals != ob.globals  # $g back to 7, $big back to 0x100000005


def test_fault_resume_last_local_unset(mod: Any) -> None:
    wasm, mods, _ = mod
    _, og, _, ob = _resume_outcome(wasm, mods, _inside_loop(wasm), "resume_last_local_unset")
    assert og.results != ob.results  # $acc restarts at 0


def test_fault_resume_loop_branch_exits(mod: Any) -> None:
    wasm, mods, _ = mod
    _, og, _, ob = _resume_outcome(wasm, mods, _inside_loop(wasm), "resume_loop_branch_exits")
    assert og.results != ob.results  # the loop is left after the current iteration


def test_fault_resume_pending_call_dropped(mod: Any) -> None:
    wasm, mods, _ = mod
    k = _inside_loop(wasm)
    _, st = _snap(wasm, k)
    good = make_resume_module(st, mods)
    faults.set_active(["resume_pending_call_dropped"])
    bad = make_resume_module(st, mods)
    calls = [sum(i.op == "call" for i in f.body) for f in good.module.funcs]
    assert sum(calls) > sum(sum(i.op == "call" for i in f.body) for f in bad.module.funcs)


def test_fault_oracle_ignores_host_log(mod: Any) -> None:
    _, _, ref = mod
    changed = dict(ref, host_log=[])
    assert compare_outcomes(ref, changed) and oracle_probe(ref) == []
    faults.set_active(["oracle_ignores_host_log"])
    assert compare_outcomes(ref, changed) == [] and oracle_probe(ref) == ["host_log"]


def test_fault_oracle_ignores_digest(mod: Any) -> None:
    _, _, ref = mod
    faults.set_active(["oracle_ignores_digest"])
    assert compare_outcomes(ref, dict(ref, state_digest="sha256:00")) == []
    assert oracle_probe(ref) == ["state_digest"]


def test_faults_reach_children_through_the_environment(mod: Any) -> None:
    """A codec fault set in this process is in effect in a python:PATH child started afterwards."""
    wasm, mods, ref = mod
    data, _ = _snap(wasm, ref["instructions"] - 2)
    h = _python_host()
    try:
        faults.set_active(["codec_host_log_dropped"])
        assert h.restore_and_finish(data, mods)["host_log"] == []
    finally:
        h.close()
    assert encode(decode(data))  # and off again here
