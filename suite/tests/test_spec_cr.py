"""The spec runner in C/R mode (``wcr spec --cr``): a slice of the official suite checkpointed at seeded
points and restored on a subprocess Python host, plus proof that the mode can fail (a deliberately
broken restore is reported as a mismatch of the assertion that produced it)."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any, List

import pytest

from runners.hosts import InProcHost
from spec_tests.cr import CrConfig, pick_points
from spec_tests.results import FAILED
from spec_tests.runner import run_file
from spec_tests.testsuite import TestsuiteError, locate_testsuite
from vm.snapshot import decode, encode

# small but diverse: recursion + exhaustion, calls, loops, branches, tee, globals, memory traps, prints
SLICE = ["fac.wast", "call.wast", "loop.wast", "local_tee.wast", "global.wast", "memory_fill.wast",
         "unreachable.wast", "start.wast"]


def _other_python() -> str:
    """Another CPython than the one running the tests if there is one, else this one."""
    mine = f"{sys.version_info[0]}.{sys.version_info[1]}"
    for p in sorted(Path("/root/.pyenv/versions").glob("3.*/bin/python"), reverse=True):
        ver = p.parent.parent.name
        if ver.startswith("3.") and int(ver.split(".")[1]) >= 9 and not ver.startswith(mine + "."):
            return str(p)
    return sys.executable


@pytest.fixture(scope="module")
def root() -> Path:
    try:
        return locate_testsuite(None)
    except TestsuiteError as e:  # pragma: no cover - the testsuite ships with the project
        pytest.skip(str(e))


def test_spec_slice_restored_on_a_subprocess_host(root: Path) -> None:
    host = f"python:{_other_python()}"
    cfg = CrConfig("random", 7, host)
    total_cp = 0
    for f in SLICE:
        r = run_file(root, f, cr=cfg)
        bad = [(c.name, c.message) for c in r.cases if c.status == FAILED]
        assert not bad, bad
        assert r.skipped == 0
        assert r.cr is not None
        assert r.cr["mismatches"] == 0
        assert r.cr["checkpoints"] == 2 * r.cr["invocations"] > 0  # a random k and k = total
        assert r.cr["hosts"] == {host: r.cr["checkpoints"]}
        total_cp += r.cr["checkpoints"]
    assert total_cp > 100


def test_cr_all_mode_and_points(root: Path) -> None:
    r = run_file(root, "fac.wast", cr=CrConfig("all", 1, "inproc", max_points=7))
    assert r.failed == 0 and r.cr["mismatches"] == 0
    assert r.cr["checkpoints"] > r.cr["invocations"]
    assert pick_points(CrConfig("all", max_points=5), random.Random(0), 3) == [0, 1, 2, 3]
    assert pick_points(CrConfig("all", max_points=5), random.Random(0), 100) == [0, 25, 50, 75, 100]
    # random mode: one point in [0, total) from the per-file RNG, same for every run with that seed,
    # plus k = total (the finished or trapped run)
    a = [pick_points(CrConfig("random"), random.Random("1:x.wast"), 1000) for _ in range(2)]
    assert a[0] == a[1] and 0 <= a[0][0] < 1000 and a[0][1] == 1000
    assert pick_points(CrConfig("random"), random.Random(0), 0) == []


def _broken_host(monkeypatch: pytest.MonkeyPatch, mutate: Any) -> List[int]:
    """Make the inproc host restore a mutated copy of every snapshot that has frames."""
    orig = InProcHost.restore_and_finish
    hits: List[int] = []

    def broken(self: Any, data: bytes, modules: Any, *cap: Any) -> Any:
        st = decode(data)
        if st.thread is not None and st.thread.frames and mutate(st):
            hits.append(1)
            data = encode(st)
        return orig(self, data, modules, *cap)

    monkeypatch.setattr(InProcHost, "restore_and_finish", broken)
    return hits


def _first_local_plus_one(st: Any) -> bool:
    for fr in reversed(st.thread.frames):
        for i, (tag, x) in enumerate(fr.locals):
            if tag in ("i32", "i64"):
                fr.locals[i] = (tag, (x + 1) & ((1 << (32 if tag == "i32" else 64)) - 1))
                return True
    return False


def _drop_stack_value(st: Any) -> bool:
    top = st.thread.frames[-1]
    if top.stack:
        top.stack.pop()
        return True
    return False


@pytest.mark.parametrize("mutate", [_first_local_plus_one, _drop_stack_value])
def test_broken_restore_is_reported(root: Path, monkeypatch: pytest.MonkeyPatch, mutate: Any) -> None:
    hits = _broken_host(monkeypatch, mutate)
    r = run_file(root, "fac.wast", cr=CrConfig("all", 3, "inproc", max_points=4))
    assert hits, "the mutation never applied"
    assert r.cr["mismatches"] > 0
    bad = [c for c in r.cases if c.status == FAILED]
    assert bad and all(c.message.startswith("C/R ") for c in bad)
    assert any("on inproc at k=" in c.message for c in bad)


def test_cli_spec_cr_json(tmp_path: Path, root: Path, capsys: pytest.CaptureFixture) -> None:
    from suite.cli import main

    out = tmp_path / "out.json"
    rc = main(["spec", "--testsuite", str(root), "fac.wast", "local_tee.wast", "--cr", "random", "--seed", "1",
               "--json", str(out), "-j", "2", "--quiet"])
    assert rc == 0
    s = json.loads(out.read_text())
    cr = s["cr"]
    assert s["totals"]["failed"] == 0
    assert cr["mismatches"] == 0 and cr["checkpoints"] == 2 * cr["invocations"] == cr["restores"] > 0
    assert cr["hosts"] == {"inproc": cr["restores"]}
    # -j does not change the points: same counts, same pass/fail, with one worker
    out1 = tmp_path / "one.json"
    assert main(["spec", "--testsuite", str(root), "fac.wast", "local_tee.wast", "--cr", "random", "--seed", "1",
                 "--json", str(out1), "--quiet"]) == 0
    assert json.loads(out1.read_text())["cr"] == cr
    assert "C/R (random, seed 1)" in capsys.readouterr().out


def test_cli_spec_cr_bad_restorer(root: Path, capsys: pytest.CaptureFixture) -> None:
    from suite.cli import main

    assert main(["spec", "--testsuite", str(root), "fac.wast", "--cr", "random",
                 "--restore-on", "python:/nonexistent/python"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not available" in err
    assert main(["spec", "--testsuite", str(root), "fac.wast", "--cr", "all", "--cr-max-points", "0"]) == 2


_FINAL_WAST = """
(module
  (func $print (import "spectest" "print_i32") (param i32))
  (memory 1)
  (global $g (mut i32) (i32.const 0))
  (func (export "sum") (param $n i32) (result i32) (local $acc i32)
    (loop $l
      (local.set $acc (i32.add (local.get $acc) (local.get $n)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (local.get $n)))
    (i32.store (i32.const 8) (local.get $acc))
    (global.set $g (local.get $acc))
    (call $print (local.get $acc))
    (local.get $acc))
  (func (export "boom") (param $x i32) (result i32)
    (global.set $g (local.get $x))
    (i32.div_u (local.get $x) (i32.const 0))))
(assert_return (invoke "sum" (i32.const 4)) (i32.const 10))
(assert_trap (invoke "boom" (i32.const 3)) "integer divide by zero")
"""


def _finals_seen(monkeypatch: pytest.MonkeyPatch) -> List[str]:
    """Record the thread status of every snapshot the inproc host restores."""
    orig = InProcHost.restore_and_finish
    seen: List[str] = []

    def spy(self: Any, data: bytes, modules: Any, *cap: Any) -> Any:
        st = decode(data)
        seen.append(st.thread.status if st.thread is not None else "store")
        return orig(self, data, modules, *cap)

    monkeypatch.setattr(InProcHost, "restore_and_finish", spy)
    return seen


@pytest.mark.parametrize("mode", ["random", "all"])
def test_k_total_is_checked_for_finished_and_trapped_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          mode: str) -> None:
    """The finished run and the trapped run are checkpointed at k = total and restored: the counts
    include that final checkpoint for every invocation."""
    (tmp_path / "final.wast").write_text(_FINAL_WAST)
    seen = _finals_seen(monkeypatch)
    r = run_file(tmp_path, "final.wast", cr=CrConfig(mode, 3, "inproc", max_points=100))
    assert r.failed == 0 and r.cr["mismatches"] == 0, [(c.name, c.message) for c in r.cases]
    assert r.cr["invocations"] == 2
    # sum(4): 4 iterations of 10 + 8 instructions; boom: 5 up to and including the trapping div_u
    if mode == "random":
        assert r.cr["checkpoints"] == r.cr["restores"] == 4
    else:
        assert r.cr["checkpoints"] > 4
    assert seen.count("done") == 1 and seen.count("trapped") == 1
    assert r.cr["hosts"] == {"inproc": r.cr["restores"]}


def test_k_total_restore_that_lies_about_the_end_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A restore that gets only the finished snapshot wrong (here: the trapped one reports no trap) is
    now a C/R mismatch: before k = total was checked it passed."""
    (tmp_path / "final.wast").write_text(_FINAL_WAST)
    orig = InProcHost.restore_and_finish

    def liar(self: Any, data: bytes, modules: Any, *cap: Any) -> Any:
        out = orig(self, data, modules, *cap)
        st = decode(data)
        if st.thread is not None and st.thread.status == "trapped":
            out = dict(out, trap=None)
        return out

    monkeypatch.setattr(InProcHost, "restore_and_finish", liar)
    r = run_file(tmp_path, "final.wast", cr=CrConfig("random", 3, "inproc"))
    assert r.cr["mismatches"] == 1
    assert [c.message for c in r.cases if c.status == FAILED][0].startswith("C/R mismatch on inproc at k=")
