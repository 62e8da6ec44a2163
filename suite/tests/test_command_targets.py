"""Targets defined by a command line: the WASI-command wrapper's framing, outcome reading, ``cmd:`` specs,
the config file, ``wcr.targets`` entry points, and WAMR (skipped with the reason when it is not
installed; it is in the ``native`` extra)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import List

import pytest

wasmtime = pytest.importorskip("wasmtime")
from hypothesis import assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from runners.native import NativeOutcome, get_target  # noqa: E402
from runners.native import command_wrap as cw  # noqa: E402
from runners.native.cmdspec import CmdTarget, parse_cmd  # noqa: E402
from runners.native.command import SPEC_WORDS, Invocation, check_template, expand, parse, read_outcome  # noqa: E402
from runners.native.restorer import TargetRestorer  # noqa: E402
from runners.restore import MATCH  # noqa: E402
from runners.session import items_for, split_restore_on  # noqa: E402
from vm.binary import decode_module  # noqa: E402
from vm.snapshot.resume import Manifest  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
NONCE = bytes(range(1, 17))  # border-free: all bytes distinct


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def wcr(*args: str, cwd: str = ".") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "suite", *args], capture_output=True, text=True, env=_env(),
                          cwd=cwd, timeout=900)


# ------------------------------------------------------------------------------------------ framing
def _record(kind: str, payload: bytes, nonce: bytes = NONCE) -> bytes:
    return nonce + kind.encode() + struct.pack("<I", len(payload)) + payload


LAYOUT = cw.Layout(nonce=NONCE, results=("i32",), globals=(), memories=(), tables=())
tricky = st.one_of(st.binary(max_size=40), st.sampled_from([
    NONCE[:15], NONCE[1:], NONCE[:-1] + b"\x00", b"\x00" + NONCE[:8], bytes(16), _record("E", b"\0" * 4, bytes(16))]))


@settings(deadline=None, max_examples=200)
@given(chunks=st.lists(tricky, max_size=6), prints=st.lists(st.integers(0, 2**32 - 1), max_size=5))
def test_program_stdout_is_everything_outside_the_records(chunks: List[bytes], prints: List[int]) -> None:
    """Whatever the program writes (prefixes of the nonce, a record framed with another nonce) is its
    stdout, byte for byte; the wrapper's records between its writes are all found."""
    out = b""
    records = 2
    for i, c in enumerate(chunks):
        out += c
        if i < len(prints):
            out += _record("P", bytes([1]) + struct.pack("<I", prints[i]))
            records += 1
    out += _record("R", struct.pack("<I", 7)) + _record("E", struct.pack("<I", 0))
    # the program never writes the nonce itself (it is random per module; here fixed): pieces that only
    # together spell it, e.g. NONCE[:15] then NONCE[15:], are excluded as such (found by CI's Hypothesis run)
    assume(out.count(NONCE) == records)
    p = parse(out, LAYOUT)
    assert p.stdout == b"".join(chunks)
    assert p.host_log == [("print_i32", (("i32", v),)) for v in prints[:len(chunks)]]
    assert p.results == [("i32", 7)] and p.ended


def test_a_record_cut_short_is_an_error_not_a_result() -> None:
    with pytest.raises(ValueError, match="cut short"):
        parse(b"hi" + _record("R", b"\1\2\3\4")[:-2], LAYOUT)
    out = NativeOutcome("t")
    read_outcome(out, LAYOUT, 0, b"hi" + NONCE + b"R", b"", SPEC_WORDS)
    assert out.inconclusive and not out.results


def test_nonces_are_border_free() -> None:
    for _ in range(50):
        n = cw.new_nonce()
        assert len(n) == 16 and not any(n[:k] == n[-k:] for k in range(1, 16))


WASI_PROGRAM = """(module
 (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
 (memory (export "memory") 1) (global $g (export "g") (mut i64) (i64.const 5))
 (data (i32.const 0) "scratch bytes of the program, kept")
 (data (i32.const 100) "NONCE_GOES_HERE!NONCE_GOES_HERE!NONCE_GOES_HERE!")
 (func $put (param i32 i32) (i32.store (i32.const 200) (local.get 0)) (i32.store (i32.const 204) (local.get 1))
   (drop (call $w (i32.const 1) (i32.const 200) (i32.const 1) (i32.const 208))))
 (func (export "resume") (result i32 f32)
   (call $put (i32.const 100) (i32.const 15)) (call $put (i32.const 116) (i32.const 32))
   (global.set $g (i64.const -2))
   (if (i32.load8_u (i32.const 300)) (then (call $exit (i32.const 3))))
   (i32.const 42) (f32.const nan:0x200001)))"""


def _wasi_program() -> bytes:
    """The program prints the first 15 bytes of the nonce, then the nonce with its last byte changed,
    twice (a data segment patched with the test's fixed nonce)."""
    data = bytes(wasmtime.wat2wasm(WASI_PROGRAM))
    return data.replace(b"NONCE_GOES_HERE!" * 3, NONCE[:15] + b"|" + NONCE[:15] + b"\xff" + NONCE[:15] + b"\x00")


def _run_wrapped(runtime: str, wasm: bytes, man: Manifest, tmp_path: Path, monkeypatch, poke: bool = False):
    """Wrap ``wasm`` (with the test's nonce) and run its ``_start`` under ``runtime``: (stdout, layout,
    exit status).  ``poke``: a data segment sets the byte that makes the program call proc_exit(3)."""
    monkeypatch.setattr(cw, "new_nonce", lambda: NONCE)
    m = decode_module(wasm)
    if poke:
        from vm.module import Data, Instr
        m.datas.append(Data("active", b"\1", 0, [Instr("i32.const", 300), Instr("end")]))
    data, lay = cw.wrap(m, man)
    if runtime == "wamr":
        t = _wamr_or_skip().target
        (tmp_path / "w.wasm").write_bytes(data)
        p = subprocess.run(t.command(t.prepare(str(tmp_path / "w.wasm"), str(tmp_path), 60), Invocation()),
                           capture_output=True, timeout=60)
        return p.stdout, lay, p.returncode
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    cfg = wasmtime.WasiConfig()
    cfg.stdout_file = str(tmp_path / "out")
    store.set_wasi(cfg)
    inst = linker.instantiate(store, wasmtime.Module(engine, data))
    status = 0
    try:
        inst.exports(store)["_start"](store)
    except wasmtime.ExitTrap as e:
        status = e.code
    return (tmp_path / "out").read_bytes(), lay, status


MAN = Manifest(entry="resume", memories={0: "memory"}, globals={0: "g"}, tables={}, results=("i32", "f32"),
               imports=[])


@pytest.mark.parametrize("runtime", ["wasmtime", "wamr"])
def test_wasi_program_output_and_results_are_told_apart(runtime: str, tmp_path: Path, monkeypatch) -> None:
    raw, lay, status = _run_wrapped(runtime, _wasi_program(), MAN, tmp_path, monkeypatch)
    out = NativeOutcome("t")
    read_outcome(out, lay, status, raw, b"", SPEC_WORDS)
    assert out.details["stdout"] == NONCE[:15] + NONCE[:15] + b"\xff" + NONCE[:15] + b"\x00"
    assert out.results == [("i32", 42), ("f32", 0x7FA00001)]  # f32 NaN bits exact (never a host float)
    assert out.globals == {"g": ("i64", 2**64 - 2)}
    assert out.memories["memory"].startswith(b"scratch bytes of the program, kept")  # the borrowed bytes
    assert len(out.memories["memory"]) == 65536 and out.trap is None and not out.inconclusive


@pytest.mark.parametrize("runtime", ["wasmtime", "wamr"])
def test_proc_exit_is_the_exit_trap_with_the_final_state(runtime: str, tmp_path: Path, monkeypatch) -> None:
    raw, lay, status = _run_wrapped(runtime, _wasi_program(), MAN, tmp_path, monkeypatch, poke=True)
    assert status == 3
    out = NativeOutcome("t")
    read_outcome(out, lay, status, raw, b"", SPEC_WORDS)
    assert out.trap == "exit" and out.details["exit_code"] == 3 and not out.results
    assert out.globals == {"g": ("i64", 2**64 - 2)} and out.memories["memory"][300] == 1


def test_traps_map_through_the_table_or_are_inconclusive() -> None:
    out = NativeOutcome("t")
    read_outcome(out, LAYOUT, 1, b"", b"error\nwasm trap: integer divide by zero\n", SPEC_WORDS)
    assert out.trap == "integer divide by zero" and not out.inconclusive
    out = NativeOutcome("t")
    read_outcome(out, LAYOUT, 1, b"", b"Error: AOT execution failed: error.WasmTrap\n", SPEC_WORDS)
    assert out.trap is None and "error.WasmTrap" in (out.inconclusive or "")
    out = NativeOutcome("t")
    read_outcome(out, LAYOUT, -11, b"", b"", SPEC_WORDS)
    assert out.trap is None and "SIGSEGV" in (out.inconclusive or "")
    out = NativeOutcome("t")  # records of a finished run, but the runtime says it failed: not a pass
    read_outcome(out, LAYOUT, 1, _record("R", b"\0" * 4) + _record("E", b"\0" * 4), b"boom", SPEC_WORDS)
    assert out.inconclusive and not out.results


def test_spectest_module_without_memory_gains_wasi_imports_only_for_the_wrapper(monkeypatch) -> None:
    m = decode_module(bytes(wasmtime.wat2wasm("""(module (import "spectest" "print_i32" (func $p (param i32)))
      (func (export "resume") (result i32) (call $p (i32.const 9)) (i32.const 1)))""")))
    data, _ = cw.wrap(m, Manifest(entry="resume", memories={}, globals={}, tables={}, results=("i32",), imports=[]))
    w = decode_module(data)
    assert [(i.module, i.name) for i in w.imports] == [("wasi_snapshot_preview1", "fd_write"),
                                                       ("wasi_snapshot_preview1", "proc_exit")]
    assert {e.name for e in w.exports} >= {"_start", "resume", "memory"}


# ------------------------------------------------------------------------------------------ templates
def test_template_expansion() -> None:
    words = check_template("rt run [--dir {dir}::{guest}] [--env {env}] {wasm} -- {args}")
    inv = Invocation(args=["a b", "c"], env=[("K", "V")], preopens=[("/h1", "/g1"), ("/h2", "/g2")])
    assert expand(words, "/x.wasm", inv) == ["rt", "run", "--dir", "/h1::/g1", "--dir", "/h2::/g2", "--env", "K=V",
                                             "/x.wasm", "--", "a b", "c"]
    assert expand(words, "/x.wasm", Invocation()) == ["rt", "run", "/x.wasm", "--"]


@pytest.mark.parametrize("spec, words", [
    ("cmd:x=echo", "does not name the module"),
    ("cmd:x=rt {wasm} {nope}", "unknown placeholder {nope}"),
    ("cmd:x[simd,quantum]=rt {wasm}", "unknown feature 'quantum'"),
    ("cmd:wasmtime=rt {wasm}", "taken by a built-in"),
    ("cmd:x=rt [--dir {dir} {wasm}", "not closed"),
    ("cmd:x=rt x{args} {wasm}", "word of its own"),
    ("cmd:x y=rt {wasm}", "must be letters"),
    ("cmd:x", "cmd:NAME=COMMAND"),
])
def test_bad_cmd_specs_are_one_line_exit_2(spec: str, words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("{", r"\{").replace("(", r"\(")):
        get_target(spec)
    p = wcr("spec", "i32.wast", "--cr", "random", "--restore-on", f"inproc,{spec}")
    assert p.returncode == 2 and words in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_a_cmd_item_runs_to_the_end_of_the_list() -> None:
    assert split_restore_on("inproc,wamr") == ["inproc", "wamr"]
    assert split_restore_on("inproc,cmd:a[simd,bulk-memory]=rt --x=1,2 {wasm}") == [
        "inproc", "cmd:a[simd,bulk-memory]=rt --x=1,2 {wasm}"]
    assert parse_cmd("cmd:a[simd, bulk-memory]=rt {wasm}", []).features == {"mvp", "simd", "bulk-memory"}


# ------------------------------------------------------------------------------------------ a cmd: runtime
RUNNER = textwrap.dedent("""\
    import sys, wasmtime
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    cfg = wasmtime.WasiConfig()
    cfg.inherit_stdout()
    cfg.argv = sys.argv[1:]
    store.set_wasi(cfg)
    try:
        inst = linker.instantiate(store, wasmtime.Module.from_file(engine, sys.argv[1]))
        inst.exports(store)["_start"](store)
    except wasmtime.ExitTrap as e:
        sys.exit(e.code)
    except wasmtime.Trap as e:
        print(e, file=sys.stderr)
        sys.exit(1)
    """)

PROGRAM = """(module
 (import "spectest" "print_i32" (func $p (param i32)))
 (memory 1) (global $g (mut i32) (i32.const 0)) (table 2 funcref) (elem (i32.const 1) $rec)
 (func $rec (param i32) (result i32)
   (if (result i32) (i32.eqz (local.get 0)) (then (global.get $g))
     (else (i32.add (local.get 0) (call $rec (i32.sub (local.get 0) (i32.const 1)))))))
 (func (export "main") (param i32) (result i32) (local i32 i32)
   (loop $l
     (global.set $g (i32.add (global.get $g) (i32.const 1)))
     (local.set 2 (i32.add (local.get 2) (call $rec (i32.const 5))))
     (i32.store (i32.mul (local.get 1) (i32.const 4)) (local.get 2))
     (call $p (local.get 2))
     (local.set 1 (i32.add (local.get 1) (i32.const 1)))
     (br_if $l (i32.lt_u (local.get 1) (i32.const 3))))
   (i32.div_u (local.get 2) (local.get 0))))"""


@pytest.fixture(scope="module")
def runner(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("rt") / "runner.py"
    path.write_text(RUNNER)
    return f"{sys.executable} {path} {{wasm}}"


@pytest.mark.parametrize("arg", [1, 0])
def test_cmd_target_restores_checkpoints_like_the_vm(runner: str, arg: int) -> None:
    """Checkpoints (in recursion, before a print, before a division by zero) restored through a
    ``cmd:`` target agree with the uninterrupted run: results or the trap, prints, final state."""
    target = parse_cmd(f"cmd:pyrt[bulk-memory,reference-types,multi-value,mutable-globals]={runner}", [])
    items = items_for(bytes(wasmtime.wat2wasm(PROGRAM)), "main", [arg])
    picked = items[:: max(1, len(items) // 8)] + [items[-1]]
    res = TargetRestorer(target).check_many(picked)
    assert [r.status for r in res] == [MATCH] * len(picked), [(r.status, r.detail) for r in res]


def test_cmd_target_features_are_probed_when_not_declared(runner: str) -> None:
    t = parse_cmd(f"cmd:pyrt={runner}", [])
    assert {"mvp", "simd", "gc", "bulk-memory", "tail-call"} <= t.features
    assert "memory64" not in t.features  # the wrapper needs a 32-bit memory 0: memory64 never applies


def test_spec_cr_through_a_cmd_target(runner: str, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    p = wcr("spec", "forward.wast", "--cr", "random", "--restore-on", f"cmd:pyrt[mvp]={runner}", "--json", str(out))
    assert p.returncode == 0, p.stderr
    t = json.loads(out.read_text())["cr"]["targets"]["pyrt"]
    assert t["mismatches"] == 0 and t["errors"] == 0 and t["matches"] > 0, t


# ------------------------------------------------------------------------------------------ config, plugins
def test_config_file_targets(runner: str, tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "wcr.ini").write_text(f"[targets]\npyrt = {runner}\n\n[target.pyrt]\nfeatures = bulk-memory, simd\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WCR_CONFIG", raising=False)
    t = get_target("pyrt")
    assert isinstance(t, CmdTarget) and t.features == {"mvp", "bulk-memory", "simd"}
    p = wcr("targets", "--json", cwd=str(tmp_path))
    row = next(r for r in json.loads(p.stdout) if r["name"] == "pyrt")
    assert row["available"] and row["features"] == ["bulk-memory", "mvp", "simd"]


@pytest.mark.parametrize("text, words", [
    ("[targets]\nx = rt run\n", "does not name the module"),
    ("[targets]\nx = rt {wasm}\n[target.y]\nfeatures = simd\n", "section [target.y]"),
    ("[targets]\nx = rt {wasm}\n[target.x]\nfeature = simd\n", "unknown key 'feature'"),
    ("[targets]\nv8 = rt {wasm}\n", "taken by a built-in"),
    ("[targets\nx = 1\n", "config"),
])
def test_bad_config_is_one_line_exit_2(tmp_path: Path, text: str, words: str) -> None:
    cfg = tmp_path / "bad.ini"
    cfg.write_text(text)
    p = wcr("targets", "--config", str(cfg))
    assert p.returncode == 2 and words in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    (tmp_path / "wcr.ini").write_text(text)  # the same file found in the working directory
    p = wcr("targets", cwd=str(tmp_path))
    assert p.returncode == 2 and words in p.stderr, p.stderr
    assert wcr("targets", "--config", str(tmp_path / "missing.ini")).returncode == 2


PLUGIN = textwrap.dedent("""\
    from runners.native.wasmtime import WasmtimeTarget

    class Mine(WasmtimeTarget):
        name = "mine"

    def broken():
        raise RuntimeError("no runtime here")
    """)


def _install_plugin(tmp_path: Path, monkeypatch, value: str) -> None:
    (tmp_path / "wcr_plugin_mod.py").write_text(PLUGIN)
    dist = tmp_path / "wcr_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: wcr-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[wcr.targets]\nmine = {value}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def test_entry_point_adapter_is_a_target(tmp_path: Path, monkeypatch) -> None:
    _install_plugin(tmp_path, monkeypatch, "wcr_plugin_mod:Mine")
    t = get_target("mine")
    assert t.name == "mine" and t.available()[0]
    items = items_for(bytes(wasmtime.wat2wasm(PROGRAM)), "main", [1])
    assert [r.status for r in TargetRestorer(t).check_many(items[:3])] == [MATCH] * 3
    p = wcr("targets")
    assert p.returncode == 0 and "mine" in p.stdout


def test_broken_entry_point_is_one_line_exit_2(tmp_path: Path, monkeypatch) -> None:
    _install_plugin(tmp_path, monkeypatch, "wcr_plugin_mod:broken")
    p = wcr("targets")
    assert p.returncode == 2 and "entry point mine" in p.stderr and "no runtime here" in p.stderr, p.stderr


# ------------------------------------------------------------------------------------------ WAMR
def _wamr_or_skip() -> TargetRestorer:
    r = TargetRestorer(get_target("wamr"))
    ok, why = r.available()
    if not ok:
        pytest.skip(f"wamr unavailable: {why}")
    return r


def test_wamr_declares_what_its_probes_find() -> None:
    from runners.native.probes import probe

    r = _wamr_or_skip()
    assert probe(r.target) == r.target.features


def test_wamr_restores_spec_checkpoints(tmp_path: Path) -> None:
    _wamr_or_skip()
    out = tmp_path / "r.json"
    p = wcr("spec", "i32.wast", "memory.wast", "--cr", "random", "--restore-on", "wamr", "--json", str(out), "--quiet")
    assert p.returncode == 0, p.stderr[-2000:]
    t = json.loads(out.read_text())["cr"]["targets"]["wamr"]
    assert t["mismatches"] == 0 and t["errors"] == 0 and t["matches"] > 500, t
