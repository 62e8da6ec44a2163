"""The fuzzing campaign: quick self-test (injected C/R faults are caught, minimized and replay), bug report
round trip and corrupt-report handling, campaign resume and the summary's JSON shape."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reports.bugreport import ReportError, build_report, load_report, replay, write_report
from runners.trial import Case, Divergence, Schedule, run_trial
from suite.fuzz.campaign import run_campaign
from suite.fuzz.config import Config
from suite.fuzz.selftest import run_fault, run_selftest
from suite.fuzz.summary import NothingRan, summarize
from suite.tests._cli import wcr as _cli
from vm.errors import trap_kind
from vm.snapshot import faults

ROOT = Path(__file__).resolve().parents[2]
# fuel 3, one function: fuel check, then a counted loop; active data segment (dropped at instantiation)
WAT = """(module (memory 1) (data (i32.const 0) "ab") (global $g (mut i32) (i32.const 3))
  (func (export "run") (param i32) (result i32) (local i32)
    i32.const 4 local.set 1
    (loop $l local.get 0 i32.const 1 i32.add local.set 0
      local.get 1 i32.const 1 i32.sub local.tee 1 br_if $l)
    local.get 0))"""


@pytest.fixture(autouse=True)
def _no_faults():
    faults.set_active(())
    yield
    faults.set_active(())


def _case() -> Case:
    import wasmtime

    wasm = wasmtime.wat2wasm(WAT)
    return Case(bytes(wasm), "run", [5], "own")


def _host():
    from runners.trial import make_hosts

    return make_hosts(["inproc"])


def test_faults_are_off_by_default_and_names_are_checked():
    assert faults.ACTIVE == frozenset()
    with pytest.raises(ValueError):
        faults.set_active(["no_such_fault"])


def test_trial_agrees_without_faults_and_diverges_with_one():
    case = _case()
    sched = Schedule("single", (7,), hosts=("inproc",))
    res, _ = run_trial(case, lambda total: sched, _host(), {})
    assert res.divergences == [] and res.total and res.checkpoints == 1 and res.restores == {"inproc": 1}
    faults.set_active(["counter_not_restored"])
    res, _ = run_trial(case, lambda total: sched, _host(), {})
    assert [d.signature for d in res.divergences] == [("cr-host", "inproc")]
    assert "instructions" in res.divergences[0].detail


def test_chain_schedule_runs_every_hop():
    case = _case()
    sched = Schedule("chain", (2, 5, 9), "inproc", ("inproc", "inproc", "inproc"))
    res, _ = run_trial(case, lambda total: sched, _host(), {})
    assert res.divergences == [] and res.restores == {"inproc": 3} and res.checkpoints == 3


@settings(max_examples=50, deadline=None, database=None)
@given(st.sampled_from(["single", "multi", "chain"]), st.lists(st.integers(0, 99), min_size=1, max_size=4),
       st.lists(st.sampled_from(["wasmtime", "v8"]), max_size=2, unique=True))
def test_schedule_dict_roundtrip(shape, ks, targets):
    ks = tuple(sorted(ks))
    s = Schedule(shape, ks, "inproc", tuple("inproc" for _ in ks), tuple(targets))
    assert Schedule.from_dict(json.loads(json.dumps(s.to_dict()))).key() == s.key()


def test_trap_kind_strips_details():
    assert trap_kind("undefined element 2") == "undefined element"
    assert trap_kind("integer divide by zero") == "integer divide by zero"
    assert trap_kind("something else") is None  # free text is never a trap kind


def _report(tmp_path: Path) -> Path:
    case = _case()
    faults.set_active(["dropped_flag_lost"])
    sched = Schedule("single", (3,), hosts=("inproc",))
    res, _ = run_trial(case, lambda total: sched, _host(), {})
    (div,) = res.divergences
    path = write_report(build_report(case, sched, div), tmp_path)
    faults.set_active(())
    return path


def test_report_roundtrip_and_replay(tmp_path):
    path = _report(tmp_path)
    rep = load_report(path)
    assert rep["kind"] == "cr-host" and rep["where"] == "inproc"
    assert rep["checkpoint"]["k"] == 3 and rep["checkpoint"]["frames"][0]["pc"] > 0
    assert "(module" in rep["module"]["wat"] and rep["snapshot_b64"] and rep["replay"].startswith("wcr replay ")
    assert rep["invocation"]["args"] == ["i32:5"] and rep["environment"]["faults"] == ["dropped_flag_lost"]
    assert replay(rep)[0] is False  # the fault is off here: "fixed"
    faults.set_active(["dropped_flag_lost"])
    assert replay(rep)[0] is True
    faults.set_active(())
    env_run = subprocess.run([sys.executable, "-m", "suite", "replay", str(path)], cwd=str(ROOT),
                             capture_output=True, text=True, env={**_env(), "WCR_FAULTS": "dropped_flag_lost"})
    assert env_run.returncode == 1, env_run.stderr
    assert "still diverges" in env_run.stdout


def _env():
    import os

    e = dict(os.environ)
    e.pop("WCR_FAULTS", None)
    return e


@pytest.mark.parametrize("mutate", ["garbage", "not-a-report", "bad-module", "missing-file"])
def test_corrupt_report_is_rejected(tmp_path, mutate):
    path = _report(tmp_path)
    text = path.read_text()
    if mutate == "garbage":
        path.write_text("{{{: [")
    elif mutate == "not-a-report":
        path.write_text("a: 1\n")
    elif mutate == "bad-module":
        import yaml

        rep = yaml.safe_load(text)
        rep["module"]["wasm_b64"] = "AGFzbQEAAAA="  # an empty module: sha256 no longer matches
        path.write_text(yaml.safe_dump(rep))
    else:
        path = tmp_path / "nope.yaml"
    with pytest.raises(ReportError):
        load_report(path)
    p = subprocess.run([sys.executable, "-m", "suite", "replay", str(path)], cwd=str(ROOT),
                       capture_output=True, text=True, env=_env())
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.startswith("wcr: ") and len(p.stderr.strip().splitlines()) == 1


def test_campaign_resume_and_json_shape(tmp_path):
    d = tmp_path / "camp"
    cfg = Config(budget=1.5, seed=3, hosts=["inproc"], targets=[], dir=str(d), chunk=4)
    s1 = run_campaign(cfg)
    assert {"trials", "checkpoints", "restores", "divergences", "inconclusive", "reports"} <= set(s1)
    assert s1["trials"] > 0 and s1["restores"]["inproc"] > 0 and s1["divergences"] == 0
    lines = (d / "trials-0-0.jsonl").read_text().splitlines()
    markers = [json.loads(x) for x in lines if json.loads(x)["t"] == "chunk"]
    complete = [m["chunk"] for m in markers if m["complete"]]
    assert complete == list(range(len(complete))) and markers[-1]["chunk"] == len(markers) - 1
    cfg.budget = 3.0  # the budget is the campaign's total: resume runs the remaining ~1.5 s
    s2 = run_campaign(cfg)
    assert s2["trials"] > s1["trials"]
    lines2 = (d / "trials-0-0.jsonl").read_text().splitlines()
    assert lines2[:len(lines)] == lines  # nothing lost or rewritten
    new_chunks = {json.loads(x)["chunk"] for x in lines2[len(lines):]}
    # continued, not restarted: only the chunk the budget cut (not complete) is run again
    assert new_chunks and min(new_chunks) == len(complete)
    # a line cut by a kill is ignored, the rest still counts
    with open(d / "trials-0-0.jsonl", "a") as f:
        f.write('{"t": "trial", "chu')
    assert summarize(d)["trials"] == s2["trials"]


@pytest.mark.parametrize("fault", ["counter_not_restored", "dropped_flag_lost", "label_height_wrong"])
def test_quick_selftest(tmp_path, fault):
    # Shrinking ends as soon as it converges (about a second here); the cap only matters on a slow,
    # loaded host (PyPy under CI load needed more than 3 s to get under 30 instructions).
    # a directory relative to the (non-repository) working directory: replay used to resolve it
    # against the repository root and report every replay as failed
    r = run_fault(fault, budget=8.0, directory=Path(os.path.relpath(tmp_path)), seed=0, shrink_seconds=30.0)
    assert r["caught"], r
    assert r["module_instructions"] <= 30
    assert r["replay_with_fault"] == 1 and r["replay_without_fault"] == 0


def test_divergence_signature():
    d = Divergence("cr-target", "v8", "x")
    assert d.signature == ("cr-target", "v8")


# -- a run that tested nothing is an error, never a success ------------------------------------------------
def _broken_trial(*_args, **_kw):
    raise RuntimeError("trial machinery broken")


def test_campaign_with_no_trial_raises(tmp_path, monkeypatch):
    cfg = Config(budget=1e-6, hosts=["inproc"], targets=[], dir=str(tmp_path / "short"), chunk=4)
    with pytest.raises(NothingRan, match="0 trials.*budget"):
        run_campaign(cfg)
    monkeypatch.setattr("suite.fuzz.campaign.run_trial", _broken_trial)
    cfg = Config(budget=0.5, hosts=["inproc"], targets=[], dir=str(tmp_path / "broken"), chunk=4)
    with pytest.raises(NothingRan, match="0 trials.*trial machinery broken") as e:
        run_campaign(cfg)
    assert "\n" not in str(e.value)


def test_resumed_campaign_with_no_new_trial_raises(tmp_path, monkeypatch):
    cfg = Config(budget=1.0, hosts=["inproc"], targets=[], dir=str(tmp_path / "c"), chunk=4)
    assert run_campaign(cfg)["trials"] > 0
    monkeypatch.setattr("suite.fuzz.campaign.run_trial", _broken_trial)
    cfg.budget = 1.5
    with pytest.raises(NothingRan):
        run_campaign(cfg)


def test_selftest_that_runs_nothing_raises(tmp_path, monkeypatch):
    with pytest.raises(NothingRan, match="no fault"):
        run_selftest([], 1.0, tmp_path, log=None)
    monkeypatch.setattr("suite.fuzz.campaign.run_trial", _broken_trial)
    with pytest.raises(NothingRan, match="fault counter_not_restored: .*0 trials"):
        run_selftest(["counter_not_restored"], 0.5, tmp_path, log=None)




@pytest.mark.parametrize("argv,needle", [
    (["fuzz", "--budget", "0.000001", "--hosts", "inproc", "--targets", "", "--workers", "1"], "0 trials"),
    (["selftest", "--faults", ",", "--budget-per-fault", "1"], "names no fault"),
    (["selftest", "--faults", "counter_not_restored", "--hosts", "java:x"], "java:x"),
])
def test_cli_run_that_tests_nothing_is_exit_2(tmp_path, capsys, argv, needle):
    code, out, err = _cli(capsys, *argv, "--dir", str(tmp_path / "d"))
    assert code == 2 and out == "" and "Traceback" not in err, (out, err)
    # the error is one line, after at most the campaign's banner ("wcr fuzz: 1e-06 s, seed 0, ...")
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("wcr fuzz: ")]
    assert len(lines) == 1 and lines[0].startswith("wcr: ") and needle in lines[0], err


def test_cli_selftest_whose_fault_runs_no_trial_is_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("suite.fuzz.campaign.run_trial", _broken_trial)
    code, out, err = _cli(capsys, "selftest", "--faults", "counter_not_restored", "--budget-per-fault", "0.5",
                          "--dir", str(tmp_path / "d"))
    assert code == 2 and out == ""
    assert err.startswith("wcr: fault counter_not_restored: ") and len(err.strip().splitlines()) == 1, err


# -- schedules: every checkpoint (k = total too) reaches hosts and targets ---------------------------------
class _FakeTarget:
    """A target that agrees with everything and remembers the checkpoints it was handed."""

    name = "fake"
    kind = "target"

    def __init__(self):
        self.ks = []
        self.counts = []

    def check_many(self, items):
        from runners.restore import MATCH, CheckResult

        self.ks += [it.k for it in items]
        self.counts += [it.state.thread.count for it in items]
        return [CheckResult(self.name, MATCH) for _ in items]


def _total() -> int:
    from runners.trial import reference

    return reference(_case())[0]["instructions"]


def test_trial_sends_every_checkpoint_and_k_total_to_targets():
    t = _FakeTarget()
    total = _total()
    res, _ = run_trial(_case(), lambda n: Schedule("multi", (0, 3, n), hosts=("inproc",), targets=("fake",)),
                       _host(), {"fake": t})
    assert not res.divergences and t.ks == [0, 3, total] and t.counts == [0, 3, total]
    assert res.restores == {"inproc": 3, "fake": 3}
    # batched: handed back as pending items, one per checkpoint
    res, _ = run_trial(_case(), lambda n: Schedule("multi", (1, n), hosts=("inproc",), targets=("fake",)),
                       _host(), {"fake": t}, batch_targets=True)
    assert [p.k for p in res.pending] == [1, total]


def test_exhaustive_schedule_checks_every_boundary_everywhere():
    t = _FakeTarget()
    total = _total()
    res, sched = run_trial(_case(), lambda n: Schedule.exhaustive(n, ("inproc",), ("fake",)), _host(), {"fake": t})
    assert sched.shape == "exhaustive" and sched.ks == tuple(range(total + 1))
    assert res.checkpoints == total + 1 and t.ks == list(range(total + 1)) and res.restores["inproc"] == total + 1
    assert Schedule.from_dict(sched.to_dict()) == sched
    # an old report's schedule (before "exhaustive") still loads
    assert Schedule.from_dict({"shape": "single", "ks": [3], "hosts": ["inproc"]}).ks == (3,)
    # the minimizer tries the point that diverged first
    from reports.minimize import _candidates

    assert _candidates(sched, ("cr-host", "inproc"), 4)[0] == Schedule("single", (4,), hosts=("inproc",),
                                                                         targets=("fake",))


def test_chain_ends_on_a_target():
    """Hops run on our hosts (restore, run, re-checkpoint); the final snapshot goes to the target."""
    t = _FakeTarget()
    res, _ = run_trial(_case(), lambda n: Schedule("chain", (2, 5), "inproc", ("inproc", "inproc"), ("fake",)),
                       _host(), {"fake": t})
    assert not res.divergences and t.ks == [5] and t.counts == [5]


def test_campaign_draws_exhaustive_schedules_for_small_runs(tmp_path):
    from hypothesis import find

    from suite.fuzz.campaign import Worker

    w = Worker(Config(hosts=["inproc"], targets=[], dir=str(tmp_path)), 0)
    try:
        s = find(st.data(), lambda data: w.draw_schedule(data, 12).shape == "exhaustive",
                 settings=settings(database=None, deadline=None, max_examples=500))
        assert s is not None
        big = find(st.data(), lambda data: w.draw_schedule(data, 500).shape in ("single", "multi", "chain"),
                   settings=settings(database=None, deadline=None, max_examples=50))
        assert big is not None
    finally:
        w.close()


# -- a restore that does not end is a finding, never a stuck campaign --------------------------------------
def test_hanging_restore_ends_as_a_finding_within_the_cap(tmp_path, monkeypatch):
    """locals_zeroed wraps the count-down loop counter: without a cap the restored run would take 2^32
    iterations.  Its fuel (twice the reference's total plus 10,000) runs out past the reference's total,
    so the campaign records a divergence, writes a report, and the report replays (1 with the fault, 0
    without)."""
    from suite.fuzz.campaign import Worker
    from suite.fuzz.selftest import replay_exit

    monkeypatch.setattr(Worker, "draw_case", lambda self, data: _case())
    d = tmp_path / "hang"
    cfg = Config(budget=30.0, seed=1, hosts=["inproc"], targets=[], dir=str(d), chunk=8, shrink_seconds=5.0,
                 stop_on_divergence=True, faults=["locals_zeroed"])
    d.mkdir()
    w = Worker(cfg, 0)
    try:
        w.run(cfg.budget)
    finally:
        w.close()
        faults.set_active(())
    s = summarize(d)
    assert s["divergences"] >= 1 and s["reports"], s
    rep = load_report(s["reports"][0])
    assert "without ending (fuel exhausted)" in rep["detail"], rep["detail"]
    assert replay_exit(s["reports"][0], "locals_zeroed") == 1
    assert replay_exit(s["reports"][0], None) == 0


def test_inproc_restore_has_a_cap_and_a_clock():
    from runners.child import DEFAULT_MAX_INSTRUCTIONS, finish_within
    from runners.hosts import instruction_cap
    from runners.session import fresh_instance
    from vm.snapshot import start

    assert instruction_cap({"instructions": 100}) == 10_200 and instruction_cap({}) is None
    # a reference stopped by a limit has no total: no cap from it (PyPy's python host hit the cap
    # derived from a reference stopped by --timeout and reported "fuel exhausted")
    assert instruction_cap({"instructions": 100, "stopped": "timeout"}) is None
    assert DEFAULT_MAX_INSTRUCTIONS > 0
    store, _inst, func = fresh_instance(_case().wasm, "run")
    out = finish_within(store, start(store, func, [5]), 7)
    assert out["stopped"] == "fuel exhausted" and out["trap"] is None and out["instructions"] == 7
    store, _inst, func = fresh_instance(_case().wasm, "run")
    out = finish_within(store, start(store, func, [5]), None, 0.0)  # the clock: at most one slice
    assert out["trap"] is None and out["stopped"] is None  # shorter than a slice: it ends before the clock is read


def test_reports_written_as_found_then_minimized_over(tmp_path):
    """The as-found report is on disk before shrinking starts; the minimized one replaces it (one path in
    the summary)."""
    r = run_fault("counter_not_restored", budget=8.0, directory=tmp_path, seed=0, shrink_seconds=5.0)
    recs = [json.loads(x) for x in (tmp_path / "counter_not_restored" / "trials-0-0.jsonl").read_text().splitlines()]
    reps = [x for x in recs if x["t"] == "report"]
    assert reps[0]["minimized"] is False and reps[-1]["minimized"] is True
    assert len({x["path"] for x in reps}) == 1 and r["report"] == reps[0]["path"]


def test_selftest_json_shape(tmp_path, capsys):
    out = tmp_path / "st.json"
    code, _, err = _cli(capsys, "selftest", "--faults", "oracle_ignores_host_log,counter_not_restored",
                        "--budget-per-fault", "20", "--dir", str(tmp_path / "d"), "--json", str(out))
    s = json.loads(out.read_text())
    assert code == 0, err
    assert s["score"] == "2/2" and s["caught"] == s["total"] == 2 and s["not_caught"] == [] and s["all_replay"]
    assert "mutation score 2/2" in err
    for row in s["faults"]:
        assert {"fault", "what", "needs", "caught", "seconds_to_catch", "trials", "report", "module_instructions",
                "report_bytes", "replay_with_fault", "replay_without_fault", "replays"} <= set(row)
        assert row["replay_with_fault"] == 1 and row["replay_without_fault"] == 0
    assert [r["kind"] for r in s["faults"]] == ["oracle", "cr-host"]


def test_nonpass_target_verdicts_say_where_and_what(tmp_path: Path) -> None:
    # was: target-nonconformant and inconclusive were only counted, never shown
    from runners.restore import INCONCLUSIVE, NONCONFORMANT, CheckItem, CheckResult
    from runners.trial import PendingTarget, TrialResult, judge_target_results

    item = CheckItem(b"", None, {}, {}, None, "own:abc@3", 3)
    res = TrialResult()
    judge_target_results(
        [PendingTarget("v8", item, 3), PendingTarget("wasm3", item, 3)],
        [CheckResult("v8", INCONCLUSIVE, "call stack exhausted in the native runtime"),
         CheckResult("wasm3", NONCONFORMANT, "results[0]: expected f32:0x7fa00000, got f32:0x7fe00000",
                     extra={"baseline": "results[0] differs without C/R too"})],
        [res, res])
    assert res.inconclusive == 1 and not res.divergences
    by = {n["where"]: n for n in res.notes}
    assert by["v8"]["status"] == INCONCLUSIVE and "stack" in by["v8"]["detail"] and by["v8"]["at"] == "own:abc@3"
    assert by["wasm3"]["uninterrupted_difference"] == "results[0] differs without C/R too"
    # a campaign whose inconclusive share jumps is flagged
    from suite.fuzz.chunklog import write_chunk

    write_chunk(tmp_path / "trials-0.jsonl", 0, [{"t": "trial", "restores": {"inproc": 10}, "inconclusive": 5,
                                                  "notes": res.notes}])
    s = summarize(tmp_path)
    assert s["notes"] == res.notes and s["inconclusive_flag"] and s["inconclusive_rate"] > 0.02


def test_deeply_nested_report_is_bad_input(tmp_path: Path) -> None:
    # was: internal error: RecursionError (exit 1) instead of a clear "bad report" (exit 2)
    p = tmp_path / "deep.yaml"
    p.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ReportError, match="nested too deeply|not valid YAML"):
        load_report(p)
