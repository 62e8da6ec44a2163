"""WASI programs restored on command-line targets (WAMR, ``cmd:`` targets): the wrapped resume module runs
under the runtime's own WASI with the sandbox copy preopened by the command line (``--map-dir``,
``{dir}::{guest}``), the args, env and the rest of stdin; the oracle compares exit code, stdout/stderr
(the snapshot's prefix + the target's) and the files digest.  The programs and helpers are
test_resume_wasi's (imported, not copied)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("wasmtime")
pytest.importorskip("vm.snapshot.wasi_state", reason="WASI state in snapshots not merged")

from runners.native.cmdspec import parse_cmd  # noqa: E402
from runners.native.command import SPEC_WORDS, read_outcome, wasi_end  # noqa: E402
from runners.native.command_wrap import Layout  # noqa: E402
from runners.native.probes import wasi_works  # noqa: E402
from runners.native.restorer import TargetRestorer, target_restorer  # noqa: E402
from runners.native.sandbox import Sandbox  # noqa: E402
from runners.native.target import NativeOutcome  # noqa: E402
from runners.restore import MATCH, NOT_APPLICABLE  # noqa: E402
from runners.session import Session, items_for, reference_run  # noqa: E402
from vm.snapshot.model import WasiSnapshot  # noqa: E402
from vm.snapshot.resume import Manifest, make_resume_module  # noqa: E402
from vm.snapshot.resume.wasi_part import WasiRun  # noqa: E402

from .test_resume_wasi import ECHO, GAP, PROGRAM, config, planted_missing_file, spread, wasm_of  # noqa: E402

REPO = Path(__file__).resolve().parents[2]

def wamr() -> TargetRestorer:
    r = target_restorer("wamr")
    ok, why = r.available()
    if not ok:
        pytest.skip(why)
    return r


def check_all(restorer: TargetRestorer, wat: str, export: str, cfg=None) -> int:
    """Every checkpoint of ``spread`` restored on ``restorer`` matches; returns how many there were."""
    cfg = cfg or config()
    wasm = wasm_of(wat)
    total = reference_run(wasm, export, [], wasi=cfg).total
    items = items_for(wasm, export, ks=spread(total), wasi=cfg)
    session = Session([restorer])
    for _tag, item, r, res in session.check(items):
        assert res.status == MATCH, (r.name, item.label, res.status, res.detail)
    assert session.counts["targets"][restorer.name]["matches"] == len(items)
    return len(items)


@pytest.mark.parametrize("wat, export", [(PROGRAM, "main"), (PROGRAM, "main_exit"), (GAP, "main")],
                         ids=["program", "program-exit", "gap"])
def test_restored_on_wamr_agree(wat: str, export: str) -> None:
    """Open files and directories reopened at their offsets, stdout prefix + rest, stderr, the exit code
    (``proc_exit(3)`` included) and the files digest agree at every checkpoint."""
    assert check_all(wamr(), wat, export) > 5


def test_stdin_rest_reaches_wamr() -> None:
    """What the snapshot had not read of stdin is WAMR's stdin.  Measured on wamr-bin 3.0.0-dev.14: of a
    piped stdin only the first ``fd_read`` returns bytes, later ones return 0, also when the program runs
    from the start (no C/R involved), so the echo is a prefix of the rest, not all of it."""
    import base64

    r = wamr()
    cfg = dataclasses.replace(config(), stdin=b"the quick brown fox")
    wasm = wasm_of(ECHO)
    total = reference_run(wasm, "main", [], wasi=cfg).total
    seen = 0
    for it in items_for(wasm, "main", ks=spread(total), wasi=cfg):
        rest = it.state.wasi.stdin[next(f.offset for f in it.state.wasi.fds if f.fd == 0):]
        rm = make_resume_module(it.state, it.modules)
        assert rm.manifest.wasi.stdin == rest
        out = r.target.run(rm.bytes, rm.manifest)
        got = base64.b64decode(out.wasi["stdout"]) if out.wasi else None
        assert got is not None and rest.startswith(got) and (got or not rest), (it.label, out)
        seen += 0 < len(rest) < 19
    assert seen


def test_failed_prologue_on_wamr_says_which_fd_and_errno() -> None:
    """The prologue's status reaches us through the wrapper's S record even though the runtime only
    reports a trap: a sandbox that lacks the open file (planted) is wcr's error with fd and errno."""
    r = wamr()
    rm, man = planted_missing_file()
    out = r.target.run(rm.bytes, man)
    assert out.error is not None and "path_open for fd 4 returned errno 44" in out.error, out
    assert out.trap is None and out.inconclusive is None


def test_wcr_migrate_to_wamr(tmp_path: Path) -> None:
    wamr()
    prog = tmp_path / "gap.wasm"
    prog.write_bytes(wasm_of(GAP.replace('(export "main")', '(export "_start")')))
    (tmp_path / "d").mkdir()
    p = subprocess.run([sys.executable, "-m", "suite", "migrate", str(prog), "--at", "random", "--to", "wamr",
                        "--dir", f"{tmp_path / 'd'}::/d0"], capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, PYTHONPATH=str(REPO)), cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout == "23456"  # the program's stdout is ours; the report goes to stderr
    assert "continued on wamr" in p.stderr and "all agree" in p.stderr, p.stderr
    assert not list((tmp_path / "d").iterdir())  # each run works on its own copy


# ------------------------------------------------------------------------------------------ cmd: targets
#: a user's runtime: wasmtime-py behind a command line with --dir HOST::GUEST and --env K=V options
WASI_RUNNER = textwrap.dedent("""\
    import sys, wasmtime
    args, dirs, env = sys.argv[1:], [], []
    while args[0] in ("--dir", "--env"):
        (dirs if args[0] == "--dir" else env).append(args[1])
        args = args[2:]
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    cfg = wasmtime.WasiConfig()
    cfg.argv = args
    cfg.env = [e.split("=", 1) for e in env]
    for d in dirs:
        host, guest = d.split("::", 1)
        cfg.preopen_dir(host, guest)
    cfg.inherit_stdin()
    cfg.inherit_stdout()
    cfg.inherit_stderr()
    store.set_wasi(cfg)
    try:
        inst = linker.instantiate(store, wasmtime.Module.from_file(engine, args[0]))
        inst.exports(store)["_start"](store)
    except wasmtime.ExitTrap as e:
        sys.exit(e.code)
    except wasmtime.Trap as e:
        print(e, file=sys.stderr)
        sys.exit(1)
    """)
FEATURES = "bulk-memory,reference-types,multi-value,mutable-globals"


@pytest.fixture(scope="module")
def wasi_runner(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("rt") / "wasi_runner.py"
    path.write_text(WASI_RUNNER)
    return f"{sys.executable} {path} [--dir {{dir}}::{{guest}}] [--env {{env}}] {{wasm}} {{args}}"


@pytest.mark.parametrize("wat, export", [(PROGRAM, "main_exit"), (GAP, "main")], ids=["program-exit", "gap"])
def test_cmd_target_runs_wasi(wasi_runner: str, wat: str, export: str) -> None:
    """A user's command line gets the sandbox copy, env and stdin through its placeholders."""
    check_all(TargetRestorer(parse_cmd(f"cmd:pywasi[{FEATURES},wasi]={wasi_runner}", [])), wat, export)


def test_cmd_target_without_wasi_is_not_applicable(wasi_runner: str) -> None:
    r = TargetRestorer(parse_cmd(f"cmd:pywasi[{FEATURES}]={wasi_runner}", []))
    wasm = wasm_of(GAP)
    items = items_for(wasm, "main", ks=[10], wasi=config())
    assert [res.status for _t, _i, _r, res in Session([r]).check(items)] == [NOT_APPLICABLE]


def test_wasi_is_probed(wasi_runner: str, tmp_path: Path) -> None:
    """The probe needs the program's stdout back, not just the result: a runner that swallows it fails."""
    assert wasi_works(parse_cmd(f"cmd:pywasi[mvp]={wasi_runner}", []))
    mute = tmp_path / "mute.py"
    mute.write_text(WASI_RUNNER.replace("cfg.inherit_stdout()", "cfg.stdout_file = '/dev/null'"))
    assert not wasi_works(parse_cmd(f"cmd:mute[mvp]={sys.executable} {mute} {{wasm}}", []))


# ------------------------------------------------------------------------------------------ reading the end
def _sandbox_outcome(status: int, stdout: bytes, stderr: bytes) -> NativeOutcome:
    run = WasiRun(snapshot=WasiSnapshot(), roots=[], args=[], env=[], stdin=b"")
    out = NativeOutcome("rt")
    read_outcome(out, Layout(b"N" * 16, (), (), (), ()), status, stdout, stderr, SPEC_WORDS)
    out.details["stderr_bytes"] = stderr
    with Sandbox(run) as sb:
        wasi_end(out, Manifest(wasi=run), sb)
    return out


def test_trap_with_stderr_is_inconclusive_not_a_guess() -> None:
    """A runtime's trap message lands in the program's stderr: which bytes are whose is unknown."""
    out = _sandbox_outcome(1, b"", b"err from the program\nout of bounds memory access\n")
    assert out.trap == "out of bounds memory access" and out.inconclusive and "stderr" in out.inconclusive
    assert out.wasi is None


def test_failed_prologue_status_wins_over_the_trap() -> None:
    rec = b"N" * 16 + b"S" + (4).to_bytes(4, "little") + (0x82000400 | 44).to_bytes(4, "little")
    out = _sandbox_outcome(1, rec, b"wasm trap: unreachable\n")
    assert out.trap is None and out.error and "path_open for fd 4 returned errno 44" in out.error
