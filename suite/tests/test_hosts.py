"""Tests of the hosts (runners.hosts): inproc and python:PATH subprocesses, crash/timeout reporting, and
the rule that vm/ and runners/ import the standard library only (a bare interpreter must run them)."""

from __future__ import annotations

import ast
import hashlib
import os
import stat
import sys
from pathlib import Path

import pytest

from runners.framing import encode_frame
from runners.hosts import HostError, InProcHost, PythonHost, get_host, known_python_hosts, parse_hosts
from vm.api import Store, instantiate
from vm.snapshot import SnapshotError, checkpoint, encode, run_to

wasmtime = pytest.importorskip("wasmtime")

REPO = Path(__file__).resolve().parents[2]
PY312 = "/root/.pyenv/versions/3.12.1/bin/python"

WAT = """(module
  (import "spectest" "print_i32" (func $p (param i32)))
  (memory 1)
  (global $g (mut f32) (f32.const nan:0x200001))
  (func $f (export "f") (param i32) (result i32 f32)
    (call $p (local.get 0))
    (i32.store (local.get 0) (local.get 0))
    (if (result i32 f32) (i32.lt_u (local.get 0) (i32.const 3))
      (then (local.get 0) (global.get $g))
      (else (call $f (i32.sub (local.get 0) (i32.const 1)))))))"""


@pytest.fixture(scope="module")
def mod():
    data = bytes(wasmtime.wat2wasm(WAT))
    return data, {hashlib.sha256(data).hexdigest(): data}


def _snapshot(data: bytes, k: int) -> bytes:
    store = Store()
    inst = instantiate(store, data)
    return encode(checkpoint(store, run_to(store, inst.exports["f"], [9], k)))


def test_inproc_and_python_host_agree(mod):
    data, mods = mod
    hosts = [InProcHost()]
    h = PythonHost(PY312)
    ok, why = h.available()
    if ok:
        hosts.append(h)
    ref = InProcHost().restore_and_finish(_snapshot(data, 0), mods)
    assert ref["results"] == ["i32:2", "f32:0x7fa00001"]
    snap = _snapshot(data, 37)
    for h in hosts:
        assert h.restore_and_finish(snap, mods) == ref, h.name
    if not ok:
        pytest.skip(why)


def test_snapshot_error_crosses_the_process_boundary(mod):
    data, mods = mod
    h = PythonHost(PY312)
    ok, why = h.available()
    if not ok:
        pytest.skip(why)
    bad = bytearray(_snapshot(data, 10))
    bad[-1] ^= 0xFF
    with pytest.raises(SnapshotError, match="sha256"):
        h.restore_and_finish(bytes(bad), mods)


def _fake_python(tmp_path: Path, body: str) -> str:
    p = tmp_path / "fakepython"
    p.write_text("#!/bin/sh\n" + body + "\n")
    p.chmod(p.stat().st_mode | stat.S_IEXEC)
    return str(p)


def test_crash_and_timeout_are_reported(tmp_path, mod):
    data, mods = mod
    snap = _snapshot(data, 5)
    crash = PythonHost(_fake_python(tmp_path, "echo boom >&2; exit 3"))
    with pytest.raises(HostError) as e:
        crash.restore_and_finish(snap, mods)
    assert e.value.kind == "crash" and "boom" in str(e.value)
    slow = PythonHost(_fake_python(tmp_path, "exec sleep 30"), timeout=0.5)
    with pytest.raises(HostError) as e:
        slow.restore_and_finish(snap, mods)
    assert e.value.kind == "timeout"


def test_garbled_reply_is_a_protocol_error(tmp_path, mod):
    """A child that answers a frame that is not JSON is a protocol failure, not a crash or a result."""
    data, mods = mod
    bad = PythonHost(_fake_python(tmp_path, "head -c 4 >/dev/null; printf '\\000\\000\\000\\003abc'; sleep 5"))
    with pytest.raises(HostError) as e:
        bad.restore_and_finish(_snapshot(data, 5), mods)
    assert e.value.kind == "protocol"
    bad.close()


def _py312() -> PythonHost:
    h = PythonHost(PY312)
    ok, why = h.available()
    if not ok:
        pytest.skip(why)
    return h


def test_step_is_one_chain_hop_on_every_host(mod):
    """step = restore, run to k in total, checkpoint: a chain inproc → python → inproc ends with the
    uninterrupted outcome, and each host's hop gives the same snapshot bytes."""
    data, mods = mod
    py = _py312()
    inproc = InProcHost()
    ref = inproc.restore_and_finish(_snapshot(data, 0), mods)
    snap = _snapshot(data, 5)
    a = py.step(snap, mods, 20)
    assert a == inproc.step(snap, mods, 20)
    b = inproc.step(a, mods, 33)
    assert py.restore_and_finish(b, mods) == ref
    assert ref["instructions"] > 33
    with pytest.raises(SnapshotError):
        py.step(snap[:-1] + bytes([snap[-1] ^ 0xFF]), mods, 20)
    py.close()


def test_persistent_child_sends_modules_once_and_is_reused(mod):
    data, mods = mod
    h = _py312()
    snap = _snapshot(data, 5)
    sizes = []
    orig = h._child.request

    def spy(obj, timeout):
        sizes.append(len(encode_frame(obj)))
        return orig(obj, timeout)

    h._child.request = spy  # type: ignore[method-assign]
    first = h.step(snap, mods, 9)
    h.restore_and_finish(first, mods)
    h.step(snap, mods, 9)
    assert h.starts == 1
    assert sizes[0] - sizes[2] >= len(data)  # the module's bytes went with the first request only
    h.close()


def test_faults_reach_the_child_and_a_stale_child_is_replaced(mod):
    """WCR_FAULTS follows this process's active faults, also for a child started before they changed."""
    from vm.snapshot import faults

    data, mods = mod
    h = _py312()
    snap = _snapshot(data, 12)
    clean = h.restore_and_finish(snap, mods)
    assert clean == InProcHost().restore_and_finish(snap, mods)
    try:
        faults.set_active(["counter_not_restored"])
        broken = h.restore_and_finish(snap, mods)
        assert broken == InProcHost().restore_and_finish(snap, mods)
        assert broken["instructions"] != clean["instructions"]
        assert h.starts == 2
        faults.ACTIVE = frozenset()  # assigned directly, environment untouched: the child follows ACTIVE
        assert h.restore_and_finish(snap, mods) == clean
        assert h.starts == 3
    finally:
        faults.set_active(())
        h.close()


def test_host_specs():
    assert get_host("inproc").name == "inproc"
    assert [h.name for h in parse_hosts("inproc, python:/x/py")] == ["inproc", "python:/x/py"]
    assert PythonHost("/nonexistent/python").available()[0] is False
    with pytest.raises(ValueError):
        get_host("java:/usr/bin/java")
    assert all(s.startswith("python:") for s in known_python_hosts())


def _is_stdlib(name: str) -> bool:
    """Python 3.10+ lists the stdlib; on 3.9 (and PyPy 3.9) ask where the module would load from."""
    names = getattr(sys, "stdlib_module_names", None)
    if names is not None:
        return name in names
    if name in sys.builtin_module_names:
        return True
    import importlib.util
    import sysconfig

    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return False
    if spec.origin in ("built-in", "frozen"):
        return True
    roots = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib")}
    origin = os.path.realpath(spec.origin)
    return "site-packages" not in origin and any(origin.startswith(os.path.realpath(r)) for r in roots)


def test_vm_and_runners_import_stdlib_only():
    allowed = {"vm", "runners"}
    bad = []
    # the host side: vm/ and what the python:PATH child imports (runners/native/ drives native
    # runtimes in the parent process and may use their Python packages)
    files = sorted((REPO / "vm").rglob("*.py")) + [REPO / "runners" / n for n in
                                                    ("__init__.py", "hosts.py", "child.py", "framing.py")]
    for path in files:
        if True:
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    mods = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    mods = [node.module]
                else:
                    continue
                for m in mods:
                    top = m.split(".")[0]
                    if top not in allowed and not _is_stdlib(top):
                        bad.append(f"{path.relative_to(REPO)}:{node.lineno}: {m}")
    assert not bad, bad


@pytest.mark.skipif(not os.path.exists("/root/.pyenv/versions/3.9.18/bin/python"), reason="no 3.9")
def test_oldest_supported_python(mod):
    data, mods = mod
    h = PythonHost("/root/.pyenv/versions/3.9.18/bin/python")
    out = h.restore_and_finish(_snapshot(data, 21), mods)
    assert out == InProcHost().restore_and_finish(_snapshot(data, 21), mods)
