"""The ``wcr`` command line: exit codes, one-line errors for bad input, ``run`` output, reports."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, List, Tuple

import pytest

from spec_tests.convert import wasm_tools_exe
from suite.cli import main
from suite.commands.run import parse_arg
from suite.tests._cli import wcr


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WCR_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "wcr-cache"))




def wat(tmp_path: Path, text: str, name: str = "m.wasm") -> Path:
    src = tmp_path / (name + ".wat")
    src.write_text(text)
    out = tmp_path / name
    subprocess.run([wasm_tools_exe(), "parse", str(src), "-o", str(out)], check=True)
    return out


MOD = """(module
  (import "spectest" "print_i32" (func $p (param i32)))
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
  (func (export "sub64") (param i64 i64) (result i64) (i64.sub (local.get 0) (local.get 1)))
  (func (export "fneg") (param f32) (result f32) (f32.neg (local.get 0)))
  (func (export "d") (param f64) (result f64) (local.get 0))
  (func (export "ext") (param externref) (result externref) (local.get 0))
  (func (export "div") (param i32) (result i32) (i32.div_u (i32.const 1) (local.get 0)))
  (func (export "pr") (call $p (i32.const 7)))
  (global (export "g") i32 (i32.const 0))
)"""


OUTCOME = ("results", "trap", "instructions", "host_log", "state_digest", "stopped")


def test_version(capsys: pytest.CaptureFixture) -> None:
    code, out, _ = wcr(capsys, "--version")
    assert code == 0 and out.startswith("wcr ")


def test_python_dash_m(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "suite", "--version"], capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parents[2])
    assert p.returncode == 0 and p.stdout.startswith("wcr ")


def test_run_results(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    m = str(wat(tmp_path, MOD))
    cases: List[Tuple[List[str], List[str], Any]] = [
        (["add", "i32:2", "i32:3"], ["i32:5"], None),
        (["add", "i32:-1", "i32:0"], ["i32:4294967295"], None),
        (["sub64", "i64:-3", "i64:1"], ["i64:18446744073709551612"], None),
        (["fneg", "f32:0x7fc00000"], ["f32:0xffc00000"], None),
        (["d", "f64:1.5"], ["f64:0x3ff8000000000000"], None),
        (["ext", "externref:3"], ["ref.extern:3"], None),
        (["ext", "externref:null"], ["ref.null"], None),
        (["ext", "ref.extern:3"], ["ref.extern:3"], None),
        (["ext", "ref.null"], ["ref.null"], None),
        (["div", "i32:0"], [], "integer divide by zero"),
        (["pr"], [], None),
    ]
    for (name, *args), results, trap in cases:
        code, out, err = wcr(capsys, "run", m, "--invoke", name, *args)
        assert code == 0, err
        doc = json.loads(out)
        assert list(doc) == list(OUTCOME)  # the one outcome shape (vm.snapshot.Outcome.to_dict)
        assert doc["results"] == results and doc["trap"] == trap
        assert isinstance(doc["instructions"], int)
    code, out, _ = wcr(capsys, "run", m, "--invoke", "pr")
    assert json.loads(out)["host_log"] == [["print_i32", ["i32:7"]]]


@pytest.mark.parametrize("argv,needle", [
    (["run", "{dir}/missing.wasm", "--invoke", "f"], "missing.wasm: no such file"),
    (["run", "{m}", "--invoke", "add", "i32"], "expected TYPE:VALUE"),
    (["run", "{m}", "--invoke", "add", "i32:x", "i32:1"], "argument 'i32:x': bad i32 value"),
    (["run", "{m}", "--invoke", "add", "i32:", "i32:1"], "argument 'i32:'"),
    (["run", "{m}", "--invoke", "ext", "i32:1"], "argument 0 must be externref, got i32"),
    (["run", "{m}", "--invoke", "ext", "ref.func:0"], "argument 'ref.func:0'"),
    (["run", "{m}", "--invoke", "add", "externref:null", "i32:1"], "argument 0 must be i32, got ref.null"),
    (["run", "{m}", "--invoke", "add", "i32:99999999999", "i32:1"], "out of range"),
    (["run", "{m}", "--invoke", "add", "q32:1", "i32:1"], "unknown type"),
    (["run", "{m}", "--invoke", "nope"], "no exported function 'nope'"),
    (["run", "{m}", "--invoke", "g"], "is not a function"),
    (["run", "{m}", "--invoke", "add", "i32:1"], "expects 2 arguments"),
    (["run", "{m}", "--invoke", "add", "i64:1", "i32:1"], "argument 0 must be i32"),
    (["run", "{bad}", "--invoke", "f"], "malformed module"),
    (["run", "{inv}", "--invoke", "f"], "invalid module"),
    (["run", "{imp}", "--invoke", "f"], "unknown import env.f"),
    (["run", "{m}"], "--invoke"),
    (["spec", "--testsuite", "{dir}/nowhere"], "not a directory"),
    (["spec", "--testsuite", "{dir}", "nope.wast"], "nope.wast: no such file"),
    (["spec", "--testsuite", "{dir}", "zz*.wast"], "no .wast file"),
    (["spec", "--testsuite", "{dir}", "--list", "nolist"], "no such list"),
    (["spec", "--testsuite", "{dir}", "-j", "0"], "at least 1"),
    (["bogus"], "invalid choice"),
])
def test_bad_input_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture, argv: List[str], needle: str) -> None:
    m = wat(tmp_path, MOD)
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(b"\0asm\x01\0\0\0\x01\x05")
    inv = wat(tmp_path, "(module (func (export \"f\") (result i32) (i64.const 0)))", "inv.wasm")
    imp = wat(tmp_path, "(module (import \"env\" \"f\" (func)) (func (export \"f\")))", "imp.wasm")
    (tmp_path / "a.wast").write_text("(module)")
    subst = {"dir": str(tmp_path), "m": str(m), "bad": str(bad), "inv": str(inv), "imp": str(imp)}
    argv = [a.format(**subst) for a in argv]
    try:
        code = main(argv)
    except SystemExit as e:  # argparse errors
        code = e.code
    out, err = capsys.readouterr()
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wcr: "), err
    assert needle in lines[0]
    assert "Traceback" not in err


def test_parse_arg_floats() -> None:
    assert parse_arg("f32:1.5") == ("f32", 0x3FC00000)
    assert parse_arg("f32:-0") == ("f32", 0x80000000)
    assert parse_arg("f64:-inf") == ("f64", 0xFFF0000000000000)
    assert parse_arg("f32:0x7fa00001") == ("f32", 0x7FA00001)
    assert parse_arg("i64:0xffffffffffffffff") == ("i64", (1 << 64) - 1)
    assert parse_arg("i32:-2147483648") == ("i32", 0x80000000)


def test_spec_exit_codes_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    suite = tmp_path / "ts"
    (suite / "custom").mkdir(parents=True)
    good = '(module (func (export "f") (result i32) (i32.const 1)))\n(assert_return (invoke "f") (i32.const 1))\n'
    (suite / "good.wast").write_text(good)
    (suite / "custom" / "also.wast").write_text(good)
    (suite / "bad.wast").write_text(good + '(assert_return (invoke "f") (i32.const 2))\n')
    code, out, err = wcr(capsys, "spec", "--testsuite", str(suite), "good.wast", "custom/*.wast")
    assert code == 0, out + err
    assert "2 files: 4 passed, 0 failed, 0 skipped" in out
    js, xml = tmp_path / "s.json", tmp_path / "s.xml"
    code, out, err = wcr(capsys, "spec", "--testsuite", str(suite), "-j", "2", "--json", str(js), "--junit", str(xml))
    assert code == 1
    assert "bad.wast:3 assert_return f: result 0 mismatch" in out
    assert "expected: [i32:2]" in out and "actual:   [i32:1]" in out
    doc = json.loads(js.read_text())
    assert doc["totals"] == {"passed": 6, "failed": 1, "skipped": 0}
    assert set(doc["files"]) == {"bad.wast", "custom/also.wast", "good.wast"}
    assert doc["files"]["bad.wast"] == {"passed": 2, "failed": 1, "skipped": 0}
    assert len(ET.parse(xml).getroot().findall("testsuite")) == 3


def test_spec_env_var(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "x.wast").write_text("(module)\n")
    monkeypatch.setenv("WASM_TESTSUITE", str(tmp_path))
    code, out, _ = wcr(capsys, "spec")
    assert code == 0 and "x.wast" in out


CR_MOD = """(module
  (import "spectest" "print_i32" (func $p (param i32)))
  (memory 1)
  (global $g (mut i32) (i32.const 0))
  (func $fac (export "fac") (param i64) (result i64)
    (global.set $g (i32.add (global.get $g) (i32.const 1)))
    (i32.store (i32.const 8) (global.get $g))
    (call $p (global.get $g))
    (if (result i64) (i64.eqz (local.get 0)) (then (i64.const 1))
      (else (i64.mul (local.get 0) (call $fac (i64.sub (local.get 0) (i64.const 1)))))))
  (func (export "boom") (param i32) (result i32) (i32.div_u (i32.const 1) (local.get 0))))"""


def test_run_checkpoint_and_restore(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    m = wat(tmp_path, CR_MOD)
    code, out, _ = wcr(capsys, "run", str(m), "--invoke", "fac", "i64:6")
    plain = json.loads(out)
    assert code == 0 and plain["results"] == ["i64:720"] and plain["state_digest"].startswith("sha256:")
    snap = tmp_path / "f.snap"
    code, out, _ = wcr(capsys, "run", str(m), "--invoke", "fac", "i64:6", "--checkpoint-at", "40",
                       "--snapshot", str(snap))
    cp = json.loads(out)
    assert code == 0 and cp["state_digest"] == plain["state_digest"] and cp["instructions"] == plain["instructions"]
    assert cp["checkpoint"]["k"] == 40 and len(cp["checkpoint"]["frames"]) >= 2
    assert all(f["name"] == "fac" and f["func"] == 1 and f["pc"] > 0 for f in cp["checkpoint"]["frames"])
    code, out, _ = wcr(capsys, "restore", str(snap), "--module", str(m))
    got = json.loads(out)
    assert code == 0 and got == dict({k: plain[k] for k in OUTCOME}, restored_on="inproc")
    assert got["results"] == ["i64:720"] and [entry[0] for entry in got["host_log"]] == ["print_i32"] * 7
    # elsewhere the same shape, plus the verdict against our VM resuming the same snapshot here
    code, out, _ = wcr(capsys, "restore", str(snap), "--module", str(m), "--host", f"python:{sys.executable}")
    py = json.loads(out)
    assert code == 0 and {k: py[k] for k in OUTCOME} == {k: got[k] for k in OUTCOME}
    assert py["verdict"] == "match" and py["differences"] == [] and py["reference"] == {k: got[k] for k in OUTCOME}
    code, out, _ = wcr(capsys, "restore", str(snap), "--module", str(m), "--target", "wasmtime")
    nat = json.loads(out)
    assert code == 0 and nat["verdict"] == "match" and nat["restored_on"] == "wasmtime", nat
    assert nat["results"] == got["results"] and nat["host_log"] == got["host_log"]
    # a native runtime neither counts nor sees our canonical store: it says so instead of a lookalike
    assert nat["instructions"] is None and nat["state_digest"] is None
    code, out, _ = wcr(capsys, "snapshot", "show", str(snap))
    assert code == 0 and "frames:" in out and "fac" in out
    # the finished run (K = total) is a valid snapshot; beyond the total is an error
    total = plain["instructions"]
    code, out, _ = wcr(capsys, "run", str(m), "--invoke", "fac", "i64:6", "--checkpoint-at", str(total),
                       "--snapshot", str(tmp_path / "done.snap"))
    assert code == 0 and json.loads(out)["checkpoint"]["status"] == "done"
    code, _, err = wcr(capsys, "run", str(m), "--invoke", "fac", "i64:6", "--checkpoint-at", str(total + 1),
                       "--snapshot", str(tmp_path / "x.snap"))
    assert code == 2 and f"ends after {total}" in err and err.count("\n") == 1


def test_run_checkpoint_of_a_trap(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    m = wat(tmp_path, CR_MOD)
    snap = tmp_path / "t.snap"
    code, out, _ = wcr(capsys, "run", str(m), "--invoke", "boom", "i32:0", "--checkpoint-at", "1",
                       "--snapshot", str(snap))
    ran = json.loads(out)
    assert code == 0 and ran["trap"] == "integer divide by zero"
    code, out, _ = wcr(capsys, "restore", str(snap), "--module", str(m))
    assert code == 0 and json.loads(out) == dict({k: ran[k] for k in OUTCOME}, restored_on="inproc")
    # was: "trap": null, "not_convertible": "trapped" with exit 0 — the trapped state resumes natively too
    code, out, _ = wcr(capsys, "restore", str(snap), "--module", str(m), "--target", "wasmtime")
    nat = json.loads(out)
    assert code == 0 and nat["verdict"] == "match" and nat["trap"] == "integer divide by zero", nat


def test_restore_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    m = wat(tmp_path, CR_MOD)
    other = wat(tmp_path, "(module (func (export \"f\")))", "o.wasm")
    snap = tmp_path / "f.snap"
    assert wcr(capsys, "run", str(m), "--invoke", "fac", "i64:3", "--checkpoint-at", "9",
               "--snapshot", str(snap))[0] == 0
    data = snap.read_bytes()
    cases = {"trunc.snap": data[: len(data) // 2], "flip.snap": data[:-3] + bytes([data[-3] ^ 1]) + data[-2:],
             "version.snap": data[:4] + bytes([data[4] ^ 0x7F]) + data[5:], "junk.snap": b"not a snapshot"}
    for name, blob in cases.items():
        p = tmp_path / name
        p.write_bytes(blob)
        for argv in (("restore", str(p), "--module", str(m)), ("snapshot", "show", str(p))):
            code, out, err = wcr(capsys, *argv)
            assert code == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err, (name, err)
    code, _, err = wcr(capsys, "restore", str(snap), "--module", str(other))
    assert code == 2 and "refused" in err
    code, _, err = wcr(capsys, "restore", str(snap), "--module", str(m), "--host", "java:x")
    assert code == 2 and err.count("\n") == 1
    code, _, err = wcr(capsys, "run", str(m), "--invoke", "fac", "i64:3", "--checkpoint-at", "9")
    assert code == 2 and "go together" in err


def test_report_paths_directories_created_and_unwritable_is_one_line(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    """`tox -e spec` writes `--json out/spec.json` on a fresh clone where out/ does not exist (it
    crashed with a traceback); an output path that cannot be written is one line and exit 2."""
    suite = tmp_path / "ts"
    suite.mkdir()
    (suite / "good.wast").write_text('(module (func (export "f") (result i32) (i32.const 1)))\n'
                                     '(assert_return (invoke "f") (i32.const 1))\n')
    js = tmp_path / "out" / "deeper" / "s.json"
    xml = tmp_path / "out2" / "j.xml"
    code, out, err = wcr(capsys, "spec", "--testsuite", str(suite), "--json", str(js), "--junit", str(xml))
    assert code == 0 and js.is_file() and xml.is_file(), err
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, out, err = wcr(capsys, "spec", "--testsuite", str(suite), "--json", str(blocker / "x.json"))
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_error_messages_escape_control_characters(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # was: names from the command line, modules and snapshots echoed raw (a terminal would interpret them)
    code, _, err = wcr(capsys, "run", str(tmp_path / "evil\x1b[2J\nname.wasm"), "--invoke", "f")
    assert code == 2 and "\x1b" not in err and err.count("\n") == 1 and "\\x1b[2J\\nname.wasm" in err


def test_campaign_directories_never_take_over_foreign_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # was: `wcr selftest --dir D` deleted D with whatever it held
    d = tmp_path / "mine"
    d.mkdir()
    (d / "thesis.tex").write_text("precious")
    code, _, err = wcr(capsys, "selftest", "--dir", str(d), "--faults", "pc_off_by_one", "--budget-per-fault", "1")
    assert code == 2 and "not a selftest directory" in err and (d / "thesis.tex").read_text() == "precious"
    code, _, err = wcr(capsys, "fuzz", "--budget", "1", "--dir", str(d), "--targets", "")
    assert code == 2 and "holds no campaign" in err and (d / "thesis.tex").read_text() == "precious"
