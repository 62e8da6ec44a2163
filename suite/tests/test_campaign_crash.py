"""Crash-proof campaigns: ``kill -9`` of ``wcr fuzz`` leaves no worker or host child behind, every chunk
is on disk whole or not at all, and ``--resume`` ends with exactly the trials of an uninterrupted run of
the same seed and budget (nothing lost, nothing twice).  Also the chunk log's reading rules on their own
(torn lines, chunks without their marker, a cut chunk replaced by its re-run)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from suite.fuzz.chunklog import CampaignBusy, ChunkLog, chunk_records, committed, resume_point, write_chunk
from suite.fuzz.summary import summarize

ROOT = Path(__file__).resolve().parents[2]
linux_only = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc (Linux)")


def _env(marker: str) -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["WCR_CRASH_TEST_MARKER"] = marker  # inherited by workers and host children: how we find them
    return env


#: chunks per worker of the compared campaigns
CHUNKS = 5


def _fuzz(d: Path, workers: int, *extra: str, chunks: int = CHUNKS) -> List[str]:
    return [sys.executable, "-m", "suite", "fuzz", "--chunks", str(chunks), "--seed", "7", "--workers", str(workers),
            "--hosts", f"inproc,python:{sys.executable}", "--targets", "", "--dir", str(d), *extra]


def _marked(marker: str) -> List[int]:
    """Live processes (not zombies) whose environment carries ``marker``."""
    needle = f"WCR_CRASH_TEST_MARKER={marker}".encode()
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            if needle in (p / "environ").read_bytes() and ") Z " not in (p / "stat").read_text():
                out.append(int(p.name))
        except OSError:
            continue  # gone meanwhile, or not ours
    return out



def _kill_and_expect_no_survivors(proc: Any, marker: str, what: str) -> None:
    """kill -9 of ``proc`` only (not its group); every process carrying ``marker`` must be gone soon:
    the kernel delivers the parent-death signals at once, the loop only waits for the deliveries."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    left: List[int] = []
    for _ in range(200):
        left = _marked(marker)
        if not left:
            break
        time.sleep(0.05)
    assert not left, f"{what} still run: {left}"

def _trials(d: Path) -> List[Tuple]:
    """Every recorded trial as (file, chunk, index, case, schedule, instructions, checkpoints, outcome)."""
    return sorted((p.name, r["chunk"], r["i"], r["case"], r["sched"], r["N"], r["checkpoints"],
                   json.dumps(r["divergences"]), r["inconclusive"])
                  for p in sorted(d.glob("trials-*.jsonl")) for _c, (recs, _m) in committed(p).items()
                  for r in recs if r["t"] == "trial")


def _committed_chunks(d: Path) -> int:
    return sum(len(committed(p)) for p in d.glob("trials-*.jsonl"))


@linux_only
@pytest.mark.parametrize("workers", [1, 2])
def test_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path, workers):
    ref, crash = tmp_path / "ref", tmp_path / "crash"
    r = subprocess.run(_fuzz(ref, workers), env=_env("ref"), capture_output=True, timeout=600)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    marker = uuid.uuid4().hex
    # the killed campaign is given far more chunks than it gets to run, so that a worker that outlived
    # it would still be running (and writing) long after the check below; --resume then sets CHUNKS
    proc = subprocess.Popen(_fuzz(crash, workers, chunks=100), env=_env(marker), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while _committed_chunks(crash) < 1 and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, "the campaign ended before it could be killed"
        children = [p for p in _marked(marker) if p != proc.pid]
        assert children, "the campaign should have workers or host children running"
        _kill_and_expect_no_survivors(proc, marker, "processes of the killed campaign")
    finally:
        for pid in _marked(marker):  # a failed test must not leave them running either
            os.kill(pid, signal.SIGKILL)
    killed = _trials(crash)
    assert all(t[1] < CHUNKS for t in killed), "killed too late to compare"
    assert killed and set(killed) < set(_trials(ref))  # only whole chunks, each equal to the reference's
    r = subprocess.run(_fuzz(crash, workers, "--resume"), env=_env(marker), capture_output=True, timeout=600)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    resumed = _trials(crash)
    assert len(resumed) == len(set(resumed))  # no trial twice
    assert resumed == _trials(ref)  # none lost, none different
    assert summarize(crash)["trials"] == summarize(ref)["trials"] == len(resumed)


def test_a_finished_campaign_resumed_runs_nothing_and_says_so_unless_given_more_chunks(tmp_path):
    d = tmp_path / "c"
    env = _env("x")
    argv = [sys.executable, "-m", "suite", "fuzz", "--chunks", "1", "--hosts", "inproc", "--targets", "",
            "--workers", "1", "--dir", str(d)]
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    first = json.loads(r.stdout)["trials"]
    r = subprocess.run(argv + ["--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "1 chunks per worker already" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = subprocess.run(argv + ["--resume", "--chunks", "2"], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and json.loads(r.stdout)["trials"] > first > 0, r.stderr


def test_resume_of_an_old_format_campaign_is_refused(tmp_path):
    d = tmp_path / "old"
    d.mkdir()
    (d / "meta.json").write_text(json.dumps({"seed": 1, "dir": str(d)}))
    (d / "trials-0-0.jsonl").write_text(json.dumps({"t": "trial", "chunk": 0}) + "\n")
    r = subprocess.run([sys.executable, "-m", "suite", "fuzz", "--resume", "--budget", "1", "--dir", str(d)],
                       env=_env("x"), capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "another version of wcr" in r.stderr, r.stderr


# -- the chunk log's reading rules --------------------------------------------------------------------------
def _t(i: int) -> Dict:
    return {"t": "trial", "i": i}


def test_torn_lines_and_chunks_without_marker_are_ignored(tmp_path):
    p = tmp_path / "trials-0-0.jsonl"
    write_chunk(p, 0, [_t(0), _t(1), {"t": "targets"}])
    with open(p, "a") as f:  # chunk 1 cut by a kill: two records, no marker, a torn last line
        f.write(json.dumps(dict(_t(0), chunk=1)) + "\n" + json.dumps(dict(_t(1), chunk=1)) + "\n" + '{"t": "tri')
    assert sorted(committed(p)) == [0] and len(committed(p)[0][0]) == 3
    rp = resume_point(p)
    assert rp.next_chunk == 1 and rp.floor == 0 and len(rp.records) == 3
    write_chunk(p, 1, [_t(0)])  # the re-run of chunk 1 after the torn line: starts on a line of its own
    assert sorted(committed(p)) == [0, 1] and [r["t"] for r in chunk_records(tmp_path)] == ["trial", "trial", "targets", "trial"]


def test_a_cut_chunk_counts_until_its_rerun_replaces_it(tmp_path):
    p = tmp_path / "trials-0-0.jsonl"
    write_chunk(p, 0, [_t(0)])
    write_chunk(p, 1, [_t(0), _t(1)], complete=False, elapsed=3.0)
    assert summarize(tmp_path)["trials"] == 3
    rp = resume_point(p)
    assert rp.next_chunk == 1 and rp.floor == 2 and rp.elapsed == 3.0
    write_chunk(p, 1, [_t(0), _t(1), _t(2)], elapsed=4.0)
    assert summarize(tmp_path)["trials"] == 4 and resume_point(p).next_chunk == 2


def test_a_marker_whose_lines_do_not_match_is_not_a_chunk(tmp_path):
    p = tmp_path / "trials-0-0.jsonl"
    lines = [dict(_t(0), chunk=0), {"t": "chunk", "chunk": 0, "lines": 2, "complete": True},
             dict(_t(0), chunk=3), {"t": "chunk", "chunk": 1, "lines": 1, "complete": True}]
    p.write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert committed(p) == {}


def test_a_written_campaign_file_is_locked(tmp_path):
    p = tmp_path / "trials-0-0.jsonl"
    log = ChunkLog(p)
    try:
        with pytest.raises(CampaignBusy, match="still writing"):
            ChunkLog(p)
    finally:
        log.close()
    ChunkLog(p).close()  # free again


# -- a killed `wcr spec` keeps what finished and resumes --------------------------------------------------
#: small files, slow enough under --cr that a -j 2 run can be killed between its first and last file
SPEC_FILES = ["fac.wast", "br.wast", "loop.wast", "call.wast", "block.wast", "if.wast"]
needs_testsuite = pytest.mark.skipif(not os.environ.get("WASM_TESTSUITE"), reason="no testsuite")


def _spec(out: Path, *extra: str) -> List[str]:
    return [sys.executable, "-m", "suite", "spec", *SPEC_FILES, "--cr", "random", "--seed", "3", "-j", "2",
            "--quiet", "--json", str(out), *extra]


def _comparable(summary: Dict) -> Dict:
    """A spec JSON summary without its timings."""
    return {k: v for k, v in summary.items() if k not in ("elapsed_s", "asserts_per_s")}


def _finished(state: Path) -> List[str]:
    if not state.exists():
        return []
    return [json.loads(x)["result"]["file"] for x in state.read_text().splitlines()[1:]
            if x.endswith("}") and '"t": "file"' in x]


@linux_only
@needs_testsuite
def test_killed_spec_run_resumes(tmp_path):
    from reports.spec import read_state

    ref, out = tmp_path / "ref.json", tmp_path / "out.json"
    r = subprocess.run(_spec(ref), env=_env("ref"), capture_output=True, timeout=900)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    marker = uuid.uuid4().hex
    state = tmp_path / "out.json.state.jsonl"  # the default place: next to --json
    proc = subprocess.Popen(_spec(out), env=_env(marker), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        while not _finished(state) and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
        _kill_and_expect_no_survivors(proc, marker, "workers of the killed run")
    finally:
        for pid in _marked(marker):
            os.kill(pid, signal.SIGKILL)
    kept = _finished(state)
    assert 1 <= len(kept) < len(SPEC_FILES) and not out.exists()
    _head, recs = read_state(state)  # readable as it was left
    assert [x["result"]["file"] for _i, x in recs if x["t"] == "file"] == kept
    # a resume with other options is refused, and names the difference
    r = subprocess.run(_spec(out, "--resume", "--seed", "4"), env=_env(marker), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2 and "seed: 3 there, 4 here" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = subprocess.run(_spec(out, "--resume"), env=_env(marker), capture_output=True, timeout=900)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    assert sorted(_finished(state)) == sorted(SPEC_FILES)  # the kept files were not run again
    assert _comparable(json.loads(out.read_text())) == _comparable(json.loads(ref.read_text()))


def test_spec_resume_without_a_state_is_bad_input(tmp_path):
    r = subprocess.run([sys.executable, "-m", "suite", "spec", "fac.wast", "--resume"], env=_env("x"),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "--resume needs" in r.stderr, r.stderr
    bad = tmp_path / "s.jsonl"
    bad.write_text("not a state\n")
    r = subprocess.run([sys.executable, "-m", "suite", "spec", "fac.wast", "--resume", "--state", str(bad)],
                       env=_env("x"), capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "not a wcr spec state file" in r.stderr, r.stderr


def test_fuzz_needs_a_budget(tmp_path, capsys):
    from suite.cli import main

    assert main(["fuzz", "--dir", str(tmp_path / "d"), "--targets", ""]) == 2
    assert "--budget SECONDS, --chunks N or both" in capsys.readouterr().err


def test_spec_state_keeps_whole_files_and_names_a_bad_line(tmp_path):
    from reports.spec import SpecState, StateError
    from spec_tests.results import PASSED, CaseResult, FileResult

    p, opts = tmp_path / "s.jsonl", {"cr": None, "files": ["a.wast", "b.wast"]}
    st = SpecState(p, opts, resume=False)
    a = FileResult("a.wast", [CaseResult("a.wast", 3, "assert_return", "a.wast:3 assert_return", PASSED)], 0.5)
    st.add(a)
    st.close()
    with open(p, "a") as f:
        f.write('{"t": "file", "session": 0, "result": {"file": "b.wa')  # killed while writing b
    st = SpecState(p, opts, resume=True)
    assert st.done == {"a.wast": a} and st.session == 1
    st.add(FileResult("b.wast"))
    st.close()
    assert set(SpecState(p, opts, resume=True).done) == {"a.wast", "b.wast"}
    with pytest.raises(StateError, match="files: 2 files there, 1 files here"):
        SpecState(p, dict(opts, files=["a.wast"]), resume=True)
    with open(p, "a") as f:
        f.write(json.dumps({"t": "file", "result": {"file": "c.wast", "cases": [{"line": "x"}]}}) + "\n")
    with pytest.raises(StateError, match=r"s\.jsonl:\d+: .*case 0"):
        SpecState(p, opts, resume=True)
