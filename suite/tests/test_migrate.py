"""``wcr migrate``: a WASI command started on our VM, checkpointed at K, continued on another host, and
compared with our uninterrupted run and wasmtime's WASI (exit 0 all agree, 1 divergence, 2 bad input).
The user's directory is never written (each run works on its own copy or in memory)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, List

import pytest

wasmtime = pytest.importorskip("wasmtime")

from runners.hosts import known_python_hosts  # noqa: E402
from suite.tests._cli import wcr  # noqa: E402

FILES_WAT = (Path(__file__).parent / "wasi" / "files.wat").read_text()
#: prints one digit of clock_time_get(realtime): (t / 10**17) % 10, 6 on our virtual clock (it starts at
#: 2021-01-01), another digit on wasmtime's real one (any date after 2023), so the two runs differ
CLOCK_WAT = """(module
  (import "wasi_snapshot_preview1" "clock_time_get" (func $t (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (drop (call $t (i32.const 0) (i64.const 1) (i32.const 16)))
    (i64.store8 (i32.const 32) (i64.add (i64.const 48)
      (i64.rem_u (i64.div_u (i64.load (i32.const 16)) (i64.const 100000000000000000)) (i64.const 10))))
    (i32.store (i32.const 0) (i32.const 32)) (i32.store (i32.const 4) (i32.const 1))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"""


@pytest.fixture()
def prog(tmp_path: Path) -> Path:
    p = tmp_path / "files.wasm"
    p.write_bytes(bytes(wasmtime.wat2wasm(FILES_WAT)))
    return p


@pytest.fixture()
def sandbox(tmp_path: Path) -> Path:
    d = tmp_path / "sandbox"
    d.mkdir()
    (d / "in.txt").write_bytes(b"INPUT\n")
    return d


def _migrate(capsys: Any, *argv: str) -> Any:
    return wcr(capsys, "migrate", *argv)


def test_migrate_inproc_agrees(capsys: Any, prog: Path, sandbox: Path, tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    code, out, err = _migrate(capsys, str(prog), "--at", "120", "--to", "inproc", "--dir", f"{sandbox}::/sandbox",
                              "--json", str(report), "--", "arg1", "--arg2")
    assert code == 0, err
    assert out.startswith("hello\nline 0\n") and out.endswith("line 9\nINPUT\n")
    assert "exit status: 7" in err and "verdict: all agree" in err
    r = json.loads(report.read_text())
    assert r["at"] == 120 and r["exit_status"] == 7 and r["wasmtime"] == 7 and r["differences"] == []
    assert sorted(p.name for p in sandbox.iterdir()) == ["in.txt"]  # the user's directory is untouched


def test_migrate_random_k_is_seeded(capsys: Any, prog: Path, tmp_path: Path) -> None:
    ats = []
    for _ in range(2):
        report = tmp_path / "r.json"
        code, _, err = _migrate(capsys, str(prog), "--at", "random", "--seed", "5", "--to", "inproc",
                                "--dir", f"{tmp_path}::/sandbox", "--json", str(report))
        assert code == 0, err
        r = json.loads(report.read_text())
        assert 0 <= r["at"] <= r["total"]
        ats.append(r["at"])
    assert ats[0] == ats[1]


def _other_python() -> List[str]:
    here = str(Path(sys.executable).resolve())
    return [s for s in known_python_hosts() if s != "python:pypy3" and str(Path(s[7:]).resolve()) != here][-1:]


@pytest.mark.parametrize("host", _other_python() or ["none"])
def test_migrate_between_pythons(capsys: Any, prog: Path, sandbox: Path, host: str) -> None:
    if host == "none":
        pytest.skip("no other Python interpreter on this machine")
    code, out, err = _migrate(capsys, str(prog), "--at", "200", "--from", host, "--to", "inproc",
                              "--dir", f"{sandbox}::/sandbox")
    assert code == 0, err
    code, out, err = _migrate(capsys, str(prog), "--at", "200", "--to", host, "--dir", f"{sandbox}::/sandbox")
    assert code == 0, err
    assert out.endswith("INPUT\n")


def test_divergence_from_wasmtime_is_exit_1(capsys: Any, tmp_path: Path) -> None:
    p = tmp_path / "clock.wasm"
    p.write_bytes(bytes(wasmtime.wat2wasm(CLOCK_WAT)))
    code, out, err = _migrate(capsys, str(p), "--at", "3", "--to", "inproc")
    assert code == 1 and out == "6"
    assert "verdict: DIVERGENCE" in err and "wasmtime: wasi.stdout differs at byte 0" in err


@pytest.mark.parametrize("argv,what", [
    (["--at", "abc", "--to", "inproc"], "--at 'abc'"),
    (["--at", "-1", "--to", "inproc"], "--at -1"),
    (["--at", "99999999", "--to", "inproc"], "outside 0.."),
    (["--at", "3", "--to", "no-such-target"], "--to no-such-target"),
    (["--at", "3", "--from", "wasmtime", "--to", "inproc"], "--from wasmtime"),
    (["--at", "3", "--to", "inproc", "--env", "NOEQ"], "--env 'NOEQ'"),
    (["--at", "3", "--to", "inproc", "--dir", "/no/such/dir"], "is not a directory"),
])
def test_bad_input_is_exit_2(capsys: Any, prog: Path, argv: List[str], what: str) -> None:
    code, out, err = _migrate(capsys, str(prog), *argv)
    assert code == 2 and what in err and "Traceback" not in err, err


def test_not_a_wasi_command_is_exit_2(capsys: Any, tmp_path: Path) -> None:
    p = tmp_path / "m.wasm"
    p.write_bytes(bytes(wasmtime.wat2wasm('(module (func (export "f")))')))
    code, _, err = _migrate(capsys, str(p), "--at", "0", "--to", "inproc")
    assert code == 2 and "no _start" in err
    code, _, err = _migrate(capsys, str(tmp_path / "missing.wasm"), "--at", "0", "--to", "inproc")
    assert code == 2 and "no such file" in err


def test_migrate_to_a_native_target(capsys: Any, prog: Path, sandbox: Path) -> None:
    """Continued on wasmtime (the resume module under wasmtime's WASI, the fd table recreated in a copy
    of the sandbox): the program's output, exit status and files agree with the uninterrupted runs."""
    from runners.session import resolve

    ok, why = resolve("wasmtime")[0].available()
    if not ok:
        pytest.skip(f"wasmtime target: {why}")
    code, out, err = _migrate(capsys, str(prog), "--at", "250", "--to", "wasmtime", "--dir", f"{sandbox}::/sandbox")
    assert code == 0, err
    assert out.startswith("hello\n") and out.endswith("INPUT\n") and "verdict: all agree" in err
