"""The robustness probes (``wcr robustness``, :mod:`suite.fuzz.robustness`): a few hundred probes of each
kind find nothing, and the probes do find what they are meant to find (a wrong verdict, an exception, a
hang, a dead worker, a restore that accepts an inconsistent snapshot).

The long runs are ``tox -e robustness``; these use a few small testsuite files (converted in the test's
empty cache) and no timing assertion.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict

import pytest

from generators.mutate import HEADER, mutate_bytes, sections
from suite.fuzz.robustness import modules as mprobes
from suite.fuzz.robustness import snapshots as sprobes
from suite.fuzz.robustness.edits import NEUTRAL, Layout
from suite.fuzz.robustness.runner import Input, run_probes
from suite.fuzz.robustness.targeted import TARGETED
from suite.tests import _wast

#: small scripts with a mix of valid, invalid and malformed modules, globals, tables and segments
FILES = ["i32.wast", "br_table.wast", "global.wast", "table_init.wast", "binary.wast", "call_indirect.wast"]
ROOT = Path(__file__).resolve().parents[2]

needs_tools = pytest.mark.skipif(_wast.testsuite_dir() is None or _wast.wasm_tools() is None,
                                 reason="testsuite or wasm-tools not available")


def _no_findings(s: Dict[str, Any]) -> None:
    assert s["findings"] == 0, json.dumps(s["finding_list"][:5], indent=1)


# ------------------------------------------------------------------------------------- no findings
@needs_tools
def test_module_probes_find_nothing(tmp_path: Path) -> None:
    s = run_probes("modules", budget=3600, seed=1, out_dir=str(tmp_path), max_probes=300, options={"files": FILES})
    _no_findings(s)
    assert s["probes"] == 300 and s["worker_restarts"] == 0
    assert s["verdicts"].get("both-accept", 0) > 0 and s["verdicts"].get("both-reject", 0) > 0
    assert not list(tmp_path.iterdir())


@needs_tools
def test_snapshot_probes_find_nothing(tmp_path: Path) -> None:
    """Every targeted edit refused, every identity/neutral edit restored, nothing else escaping
    (needs the consistency rules of docs/snapshot-format.md in restore)."""
    s = run_probes("snapshots", budget=3600, seed=1, out_dir=str(tmp_path), max_probes=300,
                   options={"files": FILES, "cli_every": 100})
    _no_findings(s)
    v = s["verdicts"]
    assert v.get("targeted:refused", 0) > 0 and v.get("identity:restored", 0) > 0 and s["counts"].get("cli") == 3
    assert v.get("bytes:refused", 0) + v.get("bytes:restored", 0) > 0


# ------------------------------------------------------------------------ the targeted edits, one by one
def _bases(n: int) -> list:
    from suite.fuzz.robustness.sources import Pool

    pool = Pool(FILES)
    rng = random.Random("targeted-bases")
    out = []
    while len(out) < n:
        got = sprobes.base_checkpoint(rng, pool)
        if got is not None:
            out.append(got)
    return out


#: a base that offers every frame and global rule: an immutable global (and an imported spectest one), f calling g (a pending call)
#: with locals and operands, an active data segment, a trapping function
HANDMADE = """(module
  (import "spectest" "global_i32" (global i32))
  (global $c i64 (i64.const 7)) (global $m (mut i32) (i32.const 1))
  (memory 1 2) (data (i32.const 8) "hi")
  (func $g (param i32) (result i32) (local f64)
    (local.set 1 (f64.const 2.5)) (global.set $m (local.get 0)) (i32.add (local.get 0) (i32.const 1)))
  (func (export "f") (param i32) (result i32) (local i64)
    (local.set 1 (global.get $c)) (i32.mul (i32.const 3) (call $g (local.get 0))))
  (func (export "t") (unreachable)))"""


#: a base with heap objects (issue 12): a struct cycle in a global, a packed array in a local
HANDMADE_GC = """(module
  (type $n (struct (field (mut i32)) (field (mut (ref null $n)))))
  (type $b (array (mut i8)))
  (global $g (mut (ref null $n)) (ref.null $n))
  (func (export "h") (result i32) (local $a (ref null $b)) (local $x (ref null $n))
    (local.set $x (struct.new $n (i32.const 1) (ref.null $n)))
    (struct.set $n 1 (local.get $x) (struct.new $n (i32.const 2) (local.get $x)))
    (global.set $g (local.get $x))
    (local.set $a (array.new $b (i32.const 7) (i32.const 3)))
    (array.len (local.get $a))))"""


#: a base stopped inside a legacy catch block (the frame holds the caught exception)
HANDMADE_EH = """(module
  (tag $t (param i32))
  (func (export "e") (result i32)
    try (result i32) i32.const 5 throw $t catch $t nop nop end))"""


def _handmade() -> list:
    import wasmtime

    from vm.api import Store, instantiate
    from vm.snapshot import checkpoint, run_to

    wasm = bytes(wasmtime.wat2wasm(HANDMADE))
    out = []
    for export, args, k in (("f", [5], 5), ("f", [5], 9), ("f", [5], 100), ("t", [], 1)):
        store = Store()
        inst = instantiate(store, wasm)
        out.append((wasm, checkpoint(store, run_to(store, inst.exports[export], args, k)), f"{export}@{k}"))
    from vm.exec import gc

    if "struct.new" in gc.OPS:
        wasm = bytes(wasmtime.wat2wasm(HANDMADE_GC))
        store = Store()
        inst = instantiate(store, wasm)
        out.append((wasm, checkpoint(store, run_to(store, inst.exports["h"], [], 14)), "h@14"))
    from vm.exec import eh

    exe = _wast.wasm_tools()
    if "try" in eh.OPS and exe is not None:  # a frame inside a legacy catch block (rule 23)
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            Path(d, "m.wat").write_text(HANDMADE_EH)
            subprocess.run([exe, "parse", str(Path(d, "m.wat")), "-o", str(Path(d, "m.wasm"))], check=True)
            wasm = Path(d, "m.wasm").read_bytes()
        store = Store()
        inst = instantiate(store, wasm)
        out.append((wasm, checkpoint(store, run_to(store, inst.exports["e"], [], 4)), "e@4"))
    out.append(_wasi_base())
    return out


def _wasi_base() -> tuple:
    """A WASI program stopped with a file open at an offset and output written (section 13; the WASI
    rules 25-37 of the targeted edits apply to it)."""
    import wasmtime

    from runners.wasi_run import vm_start
    from vm.runtime.wasi import WasiConfig
    from vm.snapshot import advance, checkpoint

    wasm = bytes(wasmtime.wat2wasm((Path(__file__).parent / "wasi" / "files.wat").read_text()))
    with tempfile.TemporaryDirectory() as d:  # a subdirectory, so the directory rules (33) have one to break
        Path(d, "sub").mkdir()
        Path(d, "sub", "a.txt").write_bytes(b"a\n")
        store, run = vm_start(wasm, WasiConfig(args=["files.wasm"], dirs=[("/sandbox", d)]))
    advance(store, run, 300)
    return wasm, checkpoint(store, run), "wasi:_start@300"


@pytest.fixture(scope="module")
def bases() -> list:
    if _wast.testsuite_dir() is None or _wast.wasm_tools() is None:
        pytest.skip("testsuite or wasm-tools not available")
    return _handmade() + _bases(40)


@pytest.mark.parametrize("rule", sorted(TARGETED))
def test_targeted_edit_is_refused(rule: str, bases: list) -> None:
    """Each targeted edit that applies to one of 40 real checkpoints is refused by restore with
    SnapshotError (rules that no base offers are skipped: e.g. an immutable spectest global)."""
    from vm.snapshot import SnapshotError, encode

    applied = 0
    for wasm, state0, origin in bases:
        state = copy.deepcopy(state0)
        modules = {hashlib.sha256(wasm).hexdigest(): wasm}
        what = TARGETED[rule](state, Layout(state, modules), random.Random(origin))
        if what is None:
            continue
        applied += 1
        with pytest.raises(SnapshotError):
            sprobes.restore_and_run(encode(state), modules)
    if not applied:
        pytest.skip(f"no base checkpoint offers {rule}")


@pytest.mark.parametrize("rule", sorted(NEUTRAL))
def test_neutral_edit_is_restored(rule: str, bases: list) -> None:
    from vm.snapshot import encode

    for wasm, state0, origin in bases:
        state = copy.deepcopy(state0)
        modules = {hashlib.sha256(wasm).hexdigest(): wasm}
        if NEUTRAL[rule](state, Layout(state, modules), random.Random(origin)) is not None:
            assert sprobes.restore_and_run(encode(state), modules) in ("done", "trapped", "fuel")


# ----------------------------------------------------------------------------- the probes can fail
@needs_tools
def test_a_wrong_verdict_is_a_finding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A validator that accepts everything disagrees with wasm-tools: findings, with files on disk."""
    real = mprobes.our_verdict

    def lenient(data: bytes):  # type: ignore[no-untyped-def]
        verdict, msg, lm = real(data)
        return ("accepted", "", lm) if verdict != "accepted" else (verdict, msg, lm)

    monkeypatch.setattr(mprobes, "our_verdict", lenient)
    s = run_probes("modules", budget=3600, seed=2, out_dir=str(tmp_path), max_probes=40, inproc=True,
                   options={"files": FILES})
    assert s["verdicts"].get("disagree", 0) > 0 and s["findings"] == s["verdicts"]["disagree"]
    f = s["finding_list"][0]
    d = Path(f["dir"])
    assert (d / "module.wasm").is_file()
    reason = (d / "reason.txt").read_text()
    assert reason.count("\n") == 1 and "we say accepted, wasm-tools validate" in reason


@needs_tools
def test_a_restore_that_accepts_an_inconsistent_snapshot_is_a_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    """With restore's checks disabled (a restore that restores whatever it gets and runs the *unedited*
    checkpoint), every applicable targeted edit is the finding "restore exit 0"."""
    monkeypatch.setattr(sprobes, "restore_and_run", lambda blob, modules: "done")
    monkeypatch.setattr(sprobes, "FAMILIES", ("targeted",))
    s = run_probes("snapshots", budget=3600, seed=3, max_probes=40, inproc=True,
                   options={"files": FILES, "cli_every": 0})
    assert s["findings"] == s["verdicts"]["targeted:restored"] > 0
    assert all("restore exit 0 from an inconsistent snapshot" in f["reason"] for f in s["finding_list"])


class ToyProbes:
    """A probe kind for the runner's own tests: probe ``n``'s input names what its judge does."""

    expected_errors = (KeyError,)

    def __init__(self, seed: int = 0, plan: str = "ok,hang,ok,crash,ok,raise,documented"):
        self.plan = plan.split(",")

    def make_input(self, rng: random.Random, n: int) -> Input:
        return Input({"input.bin": bytes([n])}, f"toy:{self.plan[n % len(self.plan)]}")

    def judge(self, inp: Input) -> Dict[str, Any]:
        what = inp.origin.split(":")[1]
        if what == "hang":
            time.sleep(3600)
        if what == "crash":
            os._exit(3)
        if what == "raise":
            raise TypeError("a bug")
        if what == "documented":
            raise KeyError("fine")
        return {"verdict": "ok", "finding": None}


def test_hangs_crashes_and_exceptions_are_findings(tmp_path: Path) -> None:
    s = run_probes(f"{__name__}:ToyProbes", budget=3600, seed=0, out_dir=str(tmp_path), max_probes=7, timeout=3)
    assert s["probes"] == 7 and s["worker_restarts"] == 2
    assert s["verdicts"] == {"ok": 3, "hang": 1, "crash": 1, "exception": 1, "error:KeyError": 1}
    reasons = {f["verdict"]: f["reason"] for f in s["finding_list"]}
    assert reasons["hang"].startswith("hang: no verdict within 3")
    assert reasons["crash"] == "crash: the worker died (exit code 3)"
    assert reasons["exception"] == "TypeError: a bug"
    dirs = {d.name.rsplit("-", 1)[1]: d for d in tmp_path.iterdir()}
    assert sorted(dirs) == ["1", "3", "5"]
    assert (dirs["1"] / "input.bin").read_bytes() == b"\x01" and (dirs["5"] / "traceback.txt").is_file()


# ------------------------------------------------------------------------------------ the command
def _wcr(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "suite", *args], capture_output=True, text=True, cwd=str(ROOT),
                          env=env, timeout=600)


@needs_tools
def test_cli_summary_and_foreign_dir(tmp_path: Path) -> None:
    out = tmp_path / "out" / "m.json"
    p = _wcr("robustness", "modules", "--budget", "600", "--max-probes", "20", "--seed", "4",
             "--dir", str(tmp_path / "findings"), "--json", str(out), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    s = json.loads(out.read_text())
    assert s["probes"] == 20 and s["findings"] == 0 and sum(s["origins"].values()) == 20
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    p = _wcr("robustness", "snapshots", "--budget", "5", "--dir", str(tmp_path / "mine"), cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "not robustness findings" in p.stderr
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


# ------------------------------------------------------------------------------------- mutations
def test_mutations_are_reproducible_and_sections_parse() -> None:
    mod = HEADER + b"\x01\x04\x01\x60\x00\x00" + b"\x03\x02\x01\x00" + b"\x0a\x04\x01\x02\x00\x0b"
    assert [s[0] for s in sections(mod)] == [1, 3, 10]
    a = [mutate_bytes(mod, random.Random(i)) for i in range(50)]
    b = [mutate_bytes(mod, random.Random(i)) for i in range(50)]
    assert a == b and any(m != mod for m, _ in a)
