"""``wcr run PROGRAM.wasm --wasi``: a WASI command run like ``wasmtime run``."""

from __future__ import annotations

import json

import pytest

from suite.tests._cli import wcr
from suite.tests._wasi import RW, Prog

# prints its arguments and GREETING, writes out.txt into fd 3, exits with 5
_P = Prog()
_P.errno("(call $args_sizes_get (i32.const 128) (i32.const 132))")
_P.errno("(call $args_get (i32.const 256) (i32.const 512))")
_P.wat("(call $print (i32.const 512) (i32.load (i32.const 132)))")
_P.errno("(call $environ_sizes_get (i32.const 128) (i32.const 132))")
_P.errno("(call $environ_get (i32.const 256) (i32.const 512))")
_P.wat("(call $print (i32.const 512) (i32.load (i32.const 132)))")
_P.errno(f"(call $open (i32.const 3) {_P.s('out.txt')} (i32.const 9) {RW} (i32.const 0))")
_P.wat(f"(i32.store (i32.const 128) {_P.ptr('written by the program')}) (i32.store (i32.const 132) (i32.const 22))")
_P.errno("(call $fd_write (call $fd) (i32.const 128) (i32.const 1) (i32.const 200))")
_P.wat("(call $proc_exit (i32.const 5))")
PROG = _P.wasm()


@pytest.fixture
def prog(tmp_path):
    path = tmp_path / "prog.wasm"
    path.write_bytes(PROG)
    return str(path)


def _wasm(tmp_path, body: str) -> str:
    p = Prog()
    p.wat(body)
    path = tmp_path / "x.wasm"
    path.write_bytes(p.wasm())
    return str(path)


def test_output_exit_code_args_env_and_write_back(capsys, tmp_path, prog):
    host = tmp_path / "h"
    host.mkdir()
    (host / "out.txt").write_bytes(b"an old and longer content")
    code, out, err = wcr(capsys, "run", prog, "--wasi", "--dir", f"{host}::/data", "--env", "GREETING=hi",
                         "--", "first", "--not-a-flag")
    assert code == 5, err
    lines = out.split("\n")
    assert lines[0] == "0" and "first\x00--not-a-flag\x00" in out and "GREETING=hi\x00" in out
    assert out.endswith("0\n0\n")  # open, write
    assert (host / "out.txt").read_bytes() == b"written by the program"


def test_json_prints_the_outcome_with_wasi(capsys, tmp_path, prog):
    code, out, err = wcr(capsys, "run", prog, "--wasi", "--json", "--dir", str(tmp_path))
    assert code == 0, err
    res = json.loads(out)
    assert res["trap"] == "exit" and res["wasi"]["exit_code"] == 5
    assert set(res["wasi"]) == {"exit_code", "stdout", "stderr", "files"}
    assert (tmp_path / "out.txt").read_bytes() == b"written by the program"


def test_a_trap_is_one_line_and_status_134(capsys, tmp_path):
    code, out, err = wcr(capsys, "run", _wasm(tmp_path, "(call $print (i32.const 0) (i32.const 0)) unreachable"),
                         "--wasi")
    assert code == 134 and err.strip() == "wcr: the program trapped: unreachable"


def test_an_exit_status_outside_wasi_range_is_a_trap_as_in_wasmtime(capsys, tmp_path):
    code, out, err = wcr(capsys, "run", _wasm(tmp_path, "(call $proc_exit (i32.const 126))"), "--wasi")
    assert code == 134 and "126" in err


def test_returning_from_start_is_status_0_and_fuel_stops_with_4(capsys, tmp_path):
    path = _wasm(tmp_path, "(call $print (i32.const 0) (i32.const 0))")
    assert wcr(capsys, "run", path, "--wasi")[0] == 0
    code, out, err = wcr(capsys, "run", path, "--wasi", "--fuel", "3")
    assert code == 4 and "fuel exhausted" in err


@pytest.mark.parametrize("argv,why", [
    (["--wasi", "--dir", "/nonexistent/dir"], "is not a directory"),
    (["--wasi", "--dir", "::/x"], "expected HOST_DIR"),
    (["--wasi", "--env", "NOVALUE"], "expected NAME=VALUE"),
    (["--dir", "."], "--dir needs --wasi"),
    (["--invoke", "_start", "--", "x"], "arguments after -- needs --wasi"),
    (["--wasi", "--invoke", "nothere"], "no exported function 'nothere'"),
    (["--wasi", "--stdin", "/nonexistent/file"], "--stdin"),
    ([], "--invoke NAME is required"),
])
def test_bad_flags_are_one_line_and_status_2(capsys, prog, argv, why):
    code, out, err = wcr(capsys, "run", prog, *argv)
    assert code == 2 and why in err and err.count("\n") == 1, err


def test_a_program_needs_wasi_to_link(capsys, prog):
    code, out, err = wcr(capsys, "run", prog, "--invoke", "_start")
    assert code == 2 and "--wasi" in err


def test_a_directory_beyond_max_fs_bytes_is_refused(capsys, tmp_path, prog):
    (tmp_path / "big").write_bytes(b"x" * 5000)
    code, out, err = wcr(capsys, "run", prog, "--wasi", "--dir", str(tmp_path), "--max-fs-bytes", "1000")
    assert code == 2 and "--max-fs-bytes" in err


def test_arguments_after_dashdash_belong_to_wasi_programs_only(capsys):
    code, out, err = wcr(capsys, "spec", "--", "x")
    assert code == 2 and "WASI program" in err
