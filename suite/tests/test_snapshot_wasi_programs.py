"""A WASI program checkpointed anywhere, encoded, decoded and restored — in this process and in other
Python interpreters (python:PATH hosts) — ends exactly like its uninterrupted run: same stdout, stderr,
exit code, files and final-state digest (the oracle's bit-exact host comparison, Outcome.wasi included).
The program (suite/tests/wasi/files.wat) writes stdout/stderr, creates a file it keeps open while it
writes it, seeks back, reads it, and exits with proc_exit(7); wasmtime's WASI runs it the same way.
"""

from __future__ import annotations

import base64
import hashlib
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

wasmtime = pytest.importorskip("wasmtime")

from runners.hosts import get_host, known_python_hosts  # noqa: E402
from runners.oracle import compare_outcomes, compare_wasi, compare_wasi_outcomes  # noqa: E402
from runners.wasi_run import program_status, vm_run, vm_start, wasmtime_run  # noqa: E402
from vm.runtime.wasi import WasiConfig  # noqa: E402
from vm.snapshot import advance, checkpoint, decode, encode, finish, restore, state_digest  # noqa: E402

WASM = bytes(wasmtime.wat2wasm((Path(__file__).parent / "wasi" / "files.wat").read_text()))
MODULES = {hashlib.sha256(WASM).hexdigest(): WASM}
CONFIG = WasiConfig(args=["files.wasm"], dirs=[("/sandbox", None)])
EXPECTED_STDOUT = b"hello\n" + b"".join(b"line %d\n" % i for i in range(10))


@pytest.fixture(scope="module")
def reference() -> Dict[str, Any]:
    return vm_run(WASM, CONFIG)


def _snapshot(k: int) -> bytes:
    store, run = vm_start(WASM, CONFIG)
    advance(store, run, k)
    return encode(checkpoint(store, run))


def test_uninterrupted_agrees_with_wasmtime(reference: Dict[str, Any]) -> None:
    assert reference["trap"] == "exit" and program_status(reference) == 7
    assert base64.b64decode(reference["wasi"]["stdout"]) == EXPECTED_STDOUT
    assert base64.b64decode(reference["wasi"]["stderr"]) == b"0123456789"
    wt = wasmtime_run(WASM, CONFIG).outcome
    assert program_status(wt) == 7
    assert compare_wasi_outcomes(reference["wasi"], wt["wasi"]) == []


def test_checkpoint_holds_the_open_file(reference: Dict[str, Any]) -> None:
    """Half way, the file is open at a non-zero offset and part of the output is in the snapshot."""
    state = decode(_snapshot(reference["instructions"] // 2))
    ws = state.wasi
    assert ws is not None
    files = [f for f in ws.fds if f.kind == "file"]
    assert len(files) == 1 and files[0].offset > 0
    assert ws.stdout.startswith(b"hello\n") and ws.exit_code is None and ws.memory == 0


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_restore_anywhere_inproc(reference: Dict[str, Any], data: Any) -> None:
    k = data.draw(st.integers(0, reference["instructions"]))
    store, run = restore(decode(_snapshot(k)), MODULES)
    assert run is not None
    got = finish(store, run).to_dict()
    assert compare_outcomes(reference, got) == [], k
    assert got["wasi"] == reference["wasi"] and got["state_digest"] == reference["state_digest"]


def test_digest_sees_wasi_state(reference: Dict[str, Any]) -> None:
    """The oracle's digest changes with the WASI state alone (output, an fd offset, a file's bytes)."""
    k = reference["instructions"] // 2
    store, run = restore(decode(_snapshot(k)), MODULES)
    before = state_digest(store)
    ws = store.wasi
    for change in (lambda: ws.stdout.extend(b"x"), lambda: setattr(ws.fds[4], "offset", ws.fds[4].offset + 1),
                   lambda: next(i for i in ws.fs.inodes.values() if i.kind == "file").data.extend(b"y")):
        change()
        after = state_digest(store)
        assert after != before
        before = after


def _other_pythons() -> List[str]:
    here = Path(sys.executable).resolve()
    out = []
    for spec in known_python_hosts():
        path = spec[len("python:"):]
        if path != "pypy3" and Path(path).resolve() == here:
            continue
        out.append(spec)
    return out


@pytest.mark.parametrize("spec", _other_pythons()[-2:] or ["none"])
def test_restore_on_another_python(reference: Dict[str, Any], spec: str) -> None:
    """The snapshot carries the WASI state into another interpreter; its outcome (wasi included) is the
    uninterrupted run's, bit for bit."""
    if spec == "none":
        pytest.skip("no other Python interpreter on this machine")
    host = get_host(spec)
    ok, why = host.available()
    if not ok:
        pytest.skip(f"{spec}: {why}")
    try:
        total = reference["instructions"]
        for k in (0, total // 3, 2 * total // 3, total):
            got = host.restore_and_finish(_snapshot(k), MODULES)
            assert "wasi" in got and compare_outcomes(reference, got) == [], (spec, k)
    finally:
        host.close()


def test_compare_wasi_prefix() -> None:
    """A native target's output is what it wrote after the checkpoint: with the snapshot's prefix it must
    be the uninterrupted run's; a missing byte is reported with its position."""
    ref = vm_run(WASM, CONFIG)
    state = decode(_snapshot(ref["instructions"] // 2))
    ws = state.wasi
    assert ws is not None
    full_out = base64.b64decode(ref["wasi"]["stdout"])
    full_err = base64.b64decode(ref["wasi"]["stderr"])
    rest = {"exit_code": 7, "files": ref["wasi"]["files"],
            "stdout": base64.b64encode(full_out[len(ws.stdout):]).decode(),
            "stderr": base64.b64encode(full_err[len(ws.stderr):]).decode()}
    assert compare_wasi(ref["wasi"], ws, rest) == []
    short = dict(rest, stdout=base64.b64encode(full_out[len(ws.stdout) + 1:]).decode())
    (diff,) = compare_wasi(ref["wasi"], ws, short)
    assert diff.startswith(f"wasi.stdout differs at byte {len(ws.stdout)}")
    assert compare_wasi(ref["wasi"], ws, None) != []
    assert compare_wasi(ref["wasi"], ws, dict(rest, exit_code=0)) == ["wasi.exit_code: expected 7, got 0"]
