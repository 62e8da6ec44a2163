"""``wcr replay`` runs only what the replaying user allows: a bug report is a file from an issue tracker,
and a ``python:PATH`` host it names would run the program at PATH (issue 10, item 2)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Tuple

import pytest
import wasmtime

from reports.bugreport import build_report, write_report
from runners.hosts import HOSTS_ENV, allowed_hosts
from runners.trial import Case, Divergence
from suite.tests._cli import wcr
from vm.snapshot.schedule import Schedule

WAT = """(module (func (export "count") (param i32) (result i32)
  (block $d (loop $l (br_if $d (i32.eqz (local.get 0)))
    (local.set 0 (i32.sub (local.get 0) (i32.const 1))) (br $l)))
  (local.get 0)))"""
EVIL = "python:./evil.py"


@pytest.fixture()
def evil_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding ``evil.py``, a program that leaves ``MARKER`` when anything runs it."""
    script = tmp_path / "evil.py"
    script.write_text('#!/bin/sh\ntouch "$(dirname "$0")/MARKER"\nexit 1\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(HOSTS_ENV, raising=False)
    return tmp_path


def _report(directory: Path, where: str, hosts: Tuple[str, ...] = ("inproc", EVIL), shape: str = "single") -> Path:
    case = Case(bytes(wasmtime.wat2wasm(WAT)), "count", [3], "own")
    sched = Schedule(shape, (5,) * len(hosts) if shape == "chain" else (5,), hosts=hosts)
    rep = build_report(case, sched, Divergence("cr-host", where, "results: expected [i32:0], got [i32:1]", 5))
    return write_report(rep, directory / "reports", "r.yaml")




def test_a_host_the_report_names_is_not_run(evil_dir: Path, capsys: pytest.CaptureFixture) -> None:
    rep = _report(evil_dir, EVIL)
    code, _, err = wcr(capsys, "replay", str(rep))
    assert not (evil_dir / "MARKER").exists()
    assert code == 2 and f"host {EVIL} named by the report is not allowed here" in err
    assert f"--restore-on {EVIL}" in err and "cannot be replayed without it" in err


def test_other_hosts_are_skipped_and_said_so(evil_dir: Path, capsys: pytest.CaptureFixture) -> None:
    rep = _report(evil_dir, "inproc")
    code, out, err = wcr(capsys, "replay", str(rep))
    assert not (evil_dir / "MARKER").exists()
    assert code == 0 and "fixed" in out  # the finding on inproc replays; the skipped host is not in it
    assert f"skipped: host {EVIL} named by the report is not allowed here" in err


def test_a_chain_through_a_host_not_allowed_is_refused(evil_dir: Path, capsys: pytest.CaptureFixture) -> None:
    rep = _report(evil_dir, "inproc", hosts=(EVIL, "inproc"), shape="chain")  # the hop on evil comes first
    code, _, err = wcr(capsys, "replay", str(rep))
    assert not (evil_dir / "MARKER").exists()
    assert code == 2 and EVIL in err


@pytest.mark.parametrize("how", ["flag", "env"])
def test_the_user_can_allow_it(evil_dir: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch,
                               how: str) -> None:
    rep = _report(evil_dir, EVIL)
    if how == "flag":
        code, _, err = wcr(capsys, "replay", str(rep), "--restore-on", EVIL)
    else:
        monkeypatch.setenv(HOSTS_ENV, f"python:/nowhere,{EVIL}")
        code, _, err = wcr(capsys, "replay", str(rep))
    assert (evil_dir / "MARKER").exists()  # the user asked for it: it ran (and is no Python: unavailable)
    assert code == 2 and "not available" in err and "not allowed" not in err


def test_the_report_spells_out_its_hosts_in_its_replay_line(evil_dir: Path) -> None:
    import yaml

    rep = yaml.safe_load(_report(evil_dir, EVIL).read_text())
    assert rep["replay"].endswith(f"r.yaml --restore-on {EVIL}")


def test_allowed_hosts() -> None:
    assert allowed_hosts((), {}) == {"inproc"}
    assert allowed_hosts(["python:/a,pypy3"], {HOSTS_ENV: "python:/b, "}) == \
        {"inproc", "python:/a", "python:pypy3", "python:/b"}
    assert os.environ.get(HOSTS_ENV) is None or allowed_hosts() >= {"inproc"}
