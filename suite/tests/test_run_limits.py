"""Fuel and wall-time limits (``--fuel N``, ``--timeout S``): a run they stop is *stopped* — its own outcome
field and exit status, never a trap — and a comparison with a stopped side is inconclusive unless the
stopped side already ran past the other's whole run.  No test asserts a duration: only that a run
stops and says which limit stopped it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Tuple

import pytest
import wasmtime

from runners.hosts import InProcHost, PythonHost
from runners.oracle import compare_native, compare_stopped
from runners.restore import INCONCLUSIVE, MISMATCH, CheckItem, HostRestorer
from runners.trial import Case, run_trial
from suite.tests._cli import wcr
from vm.api import Store, instantiate
from vm.errors import FUEL_EXHAUSTED, STOP_KINDS, TIMEOUT, TRAP_KINDS, Stopped, Trap
from vm.exec.budget import SLICE, Budget, RunLimits
from vm.snapshot import checkpoint, encode, finish, run_to, start
from vm.snapshot.schedule import Schedule

LOOP = """(module
  (func (export "spin") (loop $l (br $l)))
  (func (export "count") (param i32) (result i32)
    (block $d (loop $l (br_if $d (i32.eqz (local.get 0)))
      (local.set 0 (i32.sub (local.get 0) (i32.const 1))) (br $l)))
    (local.get 0)))"""
START_LOOP = """(module (func $s (loop $l (br $l))) (start $s) (func (export "f")))"""


@pytest.fixture(scope="module")
def loop_wasm() -> bytes:
    return bytes(wasmtime.wat2wasm(LOOP))




def _file(tmp_path: Path, data: bytes, name: str = "loop.wasm") -> str:
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


# -- the vocabulary and the budget ------------------------------------------------------------------------
def test_stop_kinds_are_not_trap_kinds() -> None:
    assert set(STOP_KINDS) == {FUEL_EXHAUSTED, TIMEOUT} and not set(STOP_KINDS) & set(TRAP_KINDS)
    assert not issubclass(Stopped, Trap)  # an assert_trap must never pass because the clock ran out


def test_fuel_stops_at_exactly_n_and_a_run_of_exactly_n_ends(loop_wasm: bytes) -> None:
    store = Store()
    inst = instantiate(store, loop_wasm)
    total = finish(store, start(store, inst.exports["count"], [3])).instructions
    out = finish(store, start(store, inst.exports["count"], [3]), budget=Budget(total))
    assert out.stopped is None and out.results == [("i32", 0)] and out.instructions == total
    out = finish(store, start(store, inst.exports["count"], [3]), budget=Budget(total - 1))
    assert out.stopped == FUEL_EXHAUSTED and out.instructions == total - 1 and out.results == [] and out.trap is None
    out = finish(store, start(store, inst.exports["spin"], []), budget=Budget(3 * SLICE + 7))
    assert out.to_dict()["stopped"] == FUEL_EXHAUSTED and out.instructions == 3 * SLICE + 7


def test_store_invoke_under_a_budget_raises_stopped(loop_wasm: bytes) -> None:
    store = Store()
    inst = instantiate(store, loop_wasm)
    store.budget = RunLimits(fuel=500).start()
    with pytest.raises(Stopped) as e:
        store.invoke(inst.exports["spin"], [])
    assert e.value.kind == FUEL_EXHAUSTED and e.value.instructions == 500
    assert str(e.value) == "fuel exhausted after 500 instructions"
    store.budget = RunLimits(seconds=0.0).start()  # the clock is read after a slice: at least one slice runs
    with pytest.raises(Stopped) as e:
        store.invoke(inst.exports["spin"], [])
    assert e.value.kind == TIMEOUT and str(e.value).startswith("timeout after 0 s")
    assert RunLimits().start() is None


# -- wcr run -----------------------------------------------------------------------------------------------
def test_run_fuel_stops_an_infinite_loop_with_its_own_status(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                            loop_wasm: bytes) -> None:
    code, out, err = wcr(capsys, "run", _file(tmp_path, loop_wasm), "--invoke", "spin", "--fuel", "1000")
    doc = json.loads(out)
    assert code == 4 and doc["stopped"] == "fuel exhausted" and doc["instructions"] == 1000
    assert doc["trap"] is None and doc["results"] == []
    assert err.strip() == "wcr: fuel exhausted after 1000 instructions"


def test_run_timeout_stops_an_infinite_loop(tmp_path: Path, capsys: pytest.CaptureFixture, loop_wasm: bytes) -> None:
    code, out, err = wcr(capsys, "run", _file(tmp_path, loop_wasm), "--invoke", "spin", "--timeout", "1")
    assert code == 4 and json.loads(out)["stopped"] == "timeout"
    assert err.startswith("wcr: timeout after 1 s (") and len(err.strip().splitlines()) == 1


def test_run_limits_bound_the_start_function(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    m = _file(tmp_path, bytes(wasmtime.wat2wasm(START_LOOP)), "start.wasm")
    code, out, err = wcr(capsys, "run", m, "--invoke", "f", "--fuel", "64")
    assert code == 4 and json.loads(out)["stopped"] == "fuel exhausted" and "after 64 instructions" in err


def test_run_within_its_limits_is_unchanged(tmp_path: Path, capsys: pytest.CaptureFixture, loop_wasm: bytes) -> None:
    code, out, _ = wcr(capsys, "run", _file(tmp_path, loop_wasm), "--invoke", "count", "i32:3", "--fuel", "1000",
                       "--timeout", "60")
    doc = json.loads(out)
    assert code == 0 and doc["stopped"] is None and doc["results"] == ["i32:0"]


@pytest.mark.parametrize("flags,needle", [
    (["--fuel", "-1"], "--fuel -1: must be at least 0"),
    (["--timeout", "-1"], "--timeout -1: must be between 0"),
    (["--timeout", "inf"], "--timeout inf: must be between 0"),
    (["--fuel", "10", "--checkpoint-at", "20", "--snapshot", "{dir}/s.snap"], "beyond --fuel 10"),
])
def test_bad_limits_are_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture, loop_wasm: bytes,
                                  flags: Any, needle: str) -> None:
    flags = [f.replace("{dir}", str(tmp_path)) for f in flags]
    code, _, err = wcr(capsys, "run", _file(tmp_path, loop_wasm), "--invoke", "spin", *flags)
    assert code == 2 and needle in err and "Traceback" not in err


# -- wcr restore (inproc, a python:PATH child) -------------------------------------------------------------
def _snapshot(tmp_path: Path, capsys: pytest.CaptureFixture, loop_wasm: bytes) -> Tuple[str, str]:
    m = _file(tmp_path, loop_wasm)
    snap = str(tmp_path / "spin.snap")
    code, out, _ = wcr(capsys, "run", m, "--invoke", "spin", "--fuel", "600", "--checkpoint-at", "500",
                       "--snapshot", snap)
    assert code == 4 and json.loads(out)["checkpoint"]["k"] == 500
    return m, snap


@pytest.mark.parametrize("host", ["inproc", f"python:{sys.executable}"])
def test_restore_fuel_counts_from_the_invocations_start(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                        loop_wasm: bytes, host: str) -> None:
    m, snap = _snapshot(tmp_path, capsys, loop_wasm)
    code, out, err = wcr(capsys, "restore", snap, "--module", m, "--host", host, "--fuel", "2000")
    doc = json.loads(out)
    assert code == 4 and doc["stopped"] == "fuel exhausted" and doc["instructions"] == 2000, err
    assert "fuel exhausted after 2000 instructions" in err
    if host != "inproc":  # both sides stopped: the verdict says nothing
        assert doc["verdict"] == "inconclusive" and doc["reference"]["stopped"] == "fuel exhausted"


@pytest.mark.parametrize("host", ["inproc", f"python:{sys.executable}"])
def test_restore_timeout_stops(tmp_path: Path, capsys: pytest.CaptureFixture, loop_wasm: bytes, host: str) -> None:
    m, snap = _snapshot(tmp_path, capsys, loop_wasm)
    code, out, err = wcr(capsys, "restore", snap, "--module", m, "--host", host, "--timeout", "1")
    assert code == 4 and json.loads(out)["stopped"] == "timeout" and "timeout after 1 s" in err, err


def test_restore_on_a_target_has_a_wall_time_limit(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                   loop_wasm: bytes) -> None:
    """A native target knows no fuel: ``--timeout`` bounds it (wasmtime: epoch interruption), and the
    verdict of a stopped run is inconclusive."""
    m, snap = _snapshot(tmp_path, capsys, loop_wasm)
    code, out, err = wcr(capsys, "restore", snap, "--module", m, "--target", "wasmtime", "--timeout", "1")
    doc = json.loads(out)
    assert code == 4 and doc["stopped"] == "timeout" and doc["verdict"] == "inconclusive", err
    assert doc["instructions"] is None and "timeout after 1 s" in err


def test_python_child_enforces_the_budget_itself(loop_wasm: bytes) -> None:
    """The child gets the limits in the request and answers with a stopped outcome (the parent does not
    have to kill it)."""
    store = Store()
    inst = instantiate(store, loop_wasm)
    import hashlib

    data = encode(checkpoint(store, run_to(store, inst.exports["spin"], [], 10)))
    mods = {hashlib.sha256(loop_wasm).hexdigest(): loop_wasm}
    host = PythonHost(sys.executable, timeout=60)
    try:
        out = host.restore_and_finish(data, mods, 777, None)
        assert out["stopped"] == "fuel exhausted" and out["instructions"] == 777
        out = host.restore_and_finish(data, mods, None, 0.5)
        assert out["stopped"] == "timeout" and host.starts == 1  # answered in time: never killed
    finally:
        host.close()
    assert InProcHost().restore_and_finish(data, mods, 777)["stopped"] == "fuel exhausted"


# -- the oracle -----------------------------------------------------------------------------------------
def _o(instructions: int, stopped: Any = None, results: Any = ()) -> dict:
    return {"results": list(results), "trap": None, "instructions": instructions, "host_log": [],
            "state_digest": "sha256:0", "stopped": stopped}


def test_stopped_is_inconclusive_unless_it_ran_past_the_other() -> None:
    done = _o(100, results=["i32:1"])
    assert compare_stopped(done, done) is None
    assert compare_stopped(done, _o(50, "timeout"))[0] == INCONCLUSIVE
    assert compare_stopped(_o(50, "fuel exhausted"), done)[0] == INCONCLUSIVE
    assert compare_stopped(_o(50, "timeout"), _o(50, "timeout"))[0] == INCONCLUSIVE
    verdict, why = compare_stopped(done, _o(10_200, "fuel exhausted"))
    assert verdict == MISMATCH and "retired 10200 without ending" in why and "ended after 100" in why


def test_host_restorer_counts_a_stopped_restore_inconclusive(loop_wasm: bytes) -> None:
    import hashlib

    store = Store()
    inst = instantiate(store, loop_wasm)
    run = start(store, inst.exports["count"], [50_000])
    data = encode(checkpoint(store, run_to(store, inst.exports["count"], [50_000], 10)))
    ref = finish(store, run).to_dict()
    mods = {hashlib.sha256(loop_wasm).hexdigest(): loop_wasm}
    item = CheckItem(data, None, mods, ref, None, "count@10", 10)
    assert HostRestorer(InProcHost()).check(item).status == "match"
    r = HostRestorer(InProcHost(), fuel=1000).check(item)
    assert r.status == INCONCLUSIVE and "fuel exhausted" in r.detail and r.outcome["stopped"] == "fuel exhausted"


def test_native_comparison_with_a_stopped_reference_is_inconclusive() -> None:
    from runners.native.target import NativeOutcome

    verdict, why = compare_native(_o(50, "timeout"), [], NativeOutcome("wasmtime"))
    assert verdict == INCONCLUSIVE and "stopped" in why[0]
    assert NativeOutcome("v8", inconclusive="timeout: no answer in 20 s").stopped == "timeout"


# -- wcr spec ---------------------------------------------------------------------------------------------
SPIN_WAST = """(module
  (func (export "spin") (result i32) (loop $l (br $l)) (i32.const 0))
  (func (export "one") (result i32) (i32.const 1)))
(assert_return (invoke "spin") (i32.const 0))
(assert_trap (invoke "spin") "unreachable")
(assert_return (invoke "one") (i32.const 1))
(module (func $s (loop $l (br $l))) (start $s))
"""


@pytest.mark.parametrize("flags,message", [
    (["--timeout", "1"], "timeout after 1 s"),
    (["--fuel", "1000"], "fuel exhausted after 1000 instructions"),
    (["--fuel", "1000", "--cr", "random", "--restore-on", f"inproc,python:{sys.executable}"],
     "fuel exhausted after 1000 instructions"),
])
def test_spec_command_that_hits_a_limit_fails_and_the_run_goes_on(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                                  flags: Any, message: str) -> None:
    (tmp_path / "ts").mkdir()
    (tmp_path / "ts" / "spin.wast").write_text(SPIN_WAST)
    code, out, _ = wcr(capsys, "spec", "--testsuite", str(tmp_path / "ts"), "spin.wast", "--json",
                       str(tmp_path / "s.json"), *flags)
    doc = json.loads((tmp_path / "s.json").read_text())
    assert code == 1 and doc["totals"] == {"passed": 2, "failed": 3, "skipped": 0}, out
    fails = {f["line"]: f for f in doc["failures"]}
    assert set(fails) == {4, 5, 7}
    assert all(f["message"].startswith(message) and f["stopped"] for f in fails.values())
    assert fails[4]["expected"] == "[i32:0]"  # the expected result is known and was not produced
    assert sum(doc["stopped"].values()) == 3


def test_spec_has_a_default_command_timeout() -> None:
    from suite.cli import build_parser
    from suite.commands.spec import COMMAND_TIMEOUT

    args = build_parser().parse_args(["spec"])
    assert args.timeout == COMMAND_TIMEOUT and args.fuel is None


# -- wcr fuzz: a trial its limits stop is inconclusive ----------------------------------------------------
def test_fuzz_trial_with_tiny_fuel_is_inconclusive_not_a_divergence(loop_wasm: bytes) -> None:
    from runners.trial import make_hosts

    case = Case(loop_wasm, "count", [1000], "own")
    hosts = make_hosts(["inproc"])
    sched = Schedule("single", (5,), hosts=("inproc",))
    res, _ = run_trial(case, lambda total: sched, hosts, {}, limits=RunLimits(fuel=10))
    assert res.divergences == [] and res.inconclusive >= 1
    assert any(n.get("stopped") == "fuel exhausted" for n in res.notes), res.notes
    res, _ = run_trial(case, lambda total: sched, hosts, {}, only=("cr-host", "inproc"), limits=RunLimits(fuel=10))
    assert res.divergences == [] and res.inconclusive == 1 and res.notes[0]["at"] == "reference run"
    assert res.notes[0]["stopped"] == "fuel exhausted" and "after 10 instructions" in res.notes[0]["detail"]
    res, _ = run_trial(case, lambda total: sched, hosts, {}, limits=RunLimits(fuel=None))
    assert res.divergences == [] and res.inconclusive == 0 and res.restores == {"inproc": 1}


def test_fuzz_trial_out_of_time_leaves_its_restores_inconclusive(loop_wasm: bytes) -> None:
    from runners.trial import make_hosts

    case = Case(loop_wasm, "count", [10], "own")
    sched = Schedule("single", (5,), hosts=("inproc",))
    res, _ = run_trial(case, lambda total: sched, make_hosts(["inproc"]), {}, only=("cr-host", "inproc"),
                       limits=RunLimits(seconds=0.0))  # the reference (shorter than a slice) ends; then no time
    assert res.divergences == [] and res.inconclusive == 1 and res.restores == {}
    assert res.notes[0]["stopped"] == "timeout" and "not restored" in res.notes[0]["detail"]


@pytest.mark.parametrize("argv", [
    ["fuzz", "--budget", "1", "--hosts", "inproc", "--targets", "", "--fuel", "-5", "--dir", "{dir}/c"],
    ["spec", "--testsuite", "{dir}", "--timeout", "-1"],
    ["restore", "{dir}/none.snap", "--module", "{dir}/none.wasm", "--fuel", "-1"],
])
def test_every_command_checks_its_limits(tmp_path: Path, capsys: pytest.CaptureFixture, argv: Any) -> None:
    code, _, err = wcr(capsys, *[a.replace("{dir}", str(tmp_path)) for a in argv])
    assert code == 2 and "must be" in err and "Traceback" not in err


def test_a_clock_replaces_the_default_fuel_backstop(loop_wasm: bytes) -> None:
    """finish_within with only a clock stops by the clock, however fast the host (PyPy's python host
    hit the 100 M default fuel before a 1 s --timeout and reported "fuel exhausted")."""
    from runners.child import finish_within
    from vm.api import Store, instantiate
    from vm.snapshot import start

    store = Store()
    run = start(store, instantiate(store, loop_wasm).exports["spin"], [])
    out = finish_within(store, run, None, 0.3)
    assert out["stopped"] == "timeout"
