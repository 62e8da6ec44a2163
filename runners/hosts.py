"""Hosts: where a snapshot of our VM is resumed.

* ``inproc`` — a fresh store in this process.
* ``python:PATH`` — a subprocess of any Python interpreter (CPython 3.9–3.13, PyPy) running our VM from
  this source tree: ``PATH -m runners.child`` with ``PYTHONPATH`` set to the repository root, so a bare
  interpreter works without installing wcr (vm/ and runners/ import the standard library only).  The
  snapshot and module bytes go in as JSON on stdin, the outcome JSON (with the final-state digest) comes
  back on stdout.  A crash or timeout of the subprocess raises :class:`HostError` with ``kind`` "crash" /
  "timeout"; it never hangs.

  By default the host keeps **one long-lived child** (``-m runners.child --serve``) that answers many
  requests framed as 4-byte big-endian length + JSON over its stdin/stdout: starting an interpreter and
  importing the VM costs ~0.1 s (CPython) to ~0.5 s (PyPy) per call, far more than a typical spec-test
  restore, and a long-lived child also keeps its decoded/validated module cache and a JIT warm.  Module
  bytes are sent once per child (the child caches them by sha256).  A crash or timeout of one request is
  still reported as such for that request (the child is killed and a fresh one started for the next),
  so the batch never hangs.  ``persistent=False`` gives the old process-per-request behaviour.

Every host has ``name``, ``available() -> (bool, reason)``, ``close()`` and two operations on encoded
snapshots:

* ``restore_and_finish(snapshot_bytes, modules) -> dict`` (:meth:`vm.snapshot.Outcome.to_dict`) — restore
  and run to the end (the spec runner, ``wcr restore``, the fuzzer);
* ``step(snapshot_bytes, modules, k) -> snapshot_bytes`` — restore, run until k instructions have retired
  in total, checkpoint again: one hop of a migration chain (``wcr fuzz``).

A bad snapshot raises :class:`vm.snapshot.SnapshotError` on every host.  Fault injection
(:mod:`vm.snapshot.faults`, ``wcr selftest``) reaches a ``python:PATH`` child through ``WCR_FAULTS``,
which is set from this process's *active* faults when the child starts; a child started under other
faults is replaced before its next request, so a host object can outlive ``faults.set_active``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import select
import shutil
import struct
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from vm.snapshot.model import SnapshotError

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TIMEOUT = 120.0


class HostError(Exception):
    """A host failed for a reason other than the snapshot: ``kind`` is "crash", "timeout",
    "unavailable" or "protocol"."""

    def __init__(self, kind: str, message: str):
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


class Host:
    name = "abstract"

    def available(self) -> Tuple[bool, str]:
        return True, ""

    def restore_and_finish(self, snapshot: bytes, modules: Dict[str, bytes]) -> Dict[str, Any]:
        raise NotImplementedError

    def step(self, snapshot: bytes, modules: Dict[str, bytes], k: int) -> bytes:
        """Restore, run until ``k`` instructions have retired in total, checkpoint: the new snapshot."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the host holds (a child process); it may still be used afterwards."""


class InProcHost(Host):
    """Restore into a fresh store of this process."""

    name = "inproc"

    def restore_and_finish(self, snapshot: bytes, modules: Dict[str, bytes]) -> Dict[str, Any]:
        from vm.snapshot import decode, finish, restore

        store, run = restore(decode(snapshot), modules)
        if run is None:
            raise SnapshotError("snapshot has no thread to resume")
        return finish(store, run).to_dict()

    def step(self, snapshot: bytes, modules: Dict[str, bytes], k: int) -> bytes:
        from vm.snapshot import advance, checkpoint, decode, encode, restore

        store, run = restore(decode(snapshot), modules)
        if run is None:
            raise SnapshotError("snapshot has no thread to resume")
        advance(store, run, k)
        return encode(checkpoint(store, run))


def active_faults() -> str:
    """The ``WCR_FAULTS`` value a child must see: this process's active faults (``faults.ACTIVE`` is the
    truth here — it may have been set after the environment was read, or without touching it)."""
    from vm.snapshot import faults

    return ",".join(sorted(faults.ACTIVE))


class PythonHost(Host):
    """Restore in a subprocess: ``PATH -m runners.child`` (one long-lived child unless
    ``persistent=False``)."""

    def __init__(self, path: str, timeout: float = DEFAULT_TIMEOUT, persistent: bool = True):
        self.path = path
        self.timeout = timeout
        self.persistent = persistent
        self.name = f"python:{path}"
        self._proc: Optional[subprocess.Popen] = None
        self._err: Any = None  # the child's stderr (a temp file: a pipe could fill up and block it)
        self._sent: set = set()  # module sha256s the current child already holds
        self._faults = ""  # WCR_FAULTS of the current child
        self.starts = 0  # children started (for tests and benchmarks)

    def _exe(self) -> Optional[str]:
        if os.sep in self.path or (os.altsep and os.altsep in self.path):
            return self.path if os.path.isfile(self.path) and os.access(self.path, os.X_OK) else None
        return shutil.which(self.path)

    def available(self) -> Tuple[bool, str]:
        exe = self._exe()
        if exe is None:
            return False, f"{self.path}: not found"
        try:
            p = subprocess.run([exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                               capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as e:
            return False, f"{self.path}: cannot run: {e}"
        if p.returncode != 0:
            return False, f"{self.path}: exits with {p.returncode}"
        major, minor = (int(x) for x in p.stdout.strip().split("."))
        if (major, minor) < (3, 9):
            return False, f"{self.path}: Python {major}.{minor} is older than 3.9"
        return True, ""

    def _env(self, fault_names: str) -> Dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.pop("PYTHONHOME", None)
        env.pop("WCR_FAULTS", None)
        if fault_names:
            env["WCR_FAULTS"] = fault_names
        return env

    def restore_and_finish(self, snapshot: bytes, modules: Dict[str, bytes]) -> Dict[str, Any]:
        return self._call({"op": "finish"}, snapshot, modules, "outcome")

    def step(self, snapshot: bytes, modules: Dict[str, bytes], k: int) -> bytes:
        b64 = self._call({"op": "step", "k": int(k)}, snapshot, modules, "snapshot_b64")
        try:
            return base64.b64decode(b64, validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise HostError("protocol", f"{self.name} replied with a malformed snapshot") from None

    def _call(self, req: Dict[str, Any], snapshot: bytes, modules: Dict[str, bytes], key: str) -> Any:
        exe = self._exe()
        if exe is None:
            raise HostError("unavailable", f"{self.path}: not found")
        if self.persistent:
            return self._serve(exe, req, snapshot, modules, key)
        request = json.dumps(dict(req, **{
            "snapshot_b64": base64.b64encode(snapshot).decode("ascii"),
            "modules_b64": {sha: base64.b64encode(b).decode("ascii") for sha, b in modules.items()},
        }))
        try:
            p = subprocess.run([exe, "-m", "runners.child"], input=request.encode("ascii"),
                               capture_output=True, timeout=self.timeout, env=self._env(active_faults()),
                               cwd=str(REPO_ROOT))
        except subprocess.TimeoutExpired:
            raise HostError("timeout", f"{self.name} did not finish within {self.timeout:g} s") from None
        except OSError as e:
            raise HostError("crash", f"{self.name} cannot start: {e}") from None
        return parse_child_output(self.name, p.returncode, p.stdout, p.stderr, key)

    # -- the long-lived child ------------------------------------------------------------------------
    def _spawn(self, exe: str) -> subprocess.Popen:
        self._err = tempfile.TemporaryFile()
        fault_names = active_faults()
        try:
            proc = subprocess.Popen([exe, "-m", "runners.child", "--serve"], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=self._err, env=self._env(fault_names),
                                    cwd=str(REPO_ROOT))
        except OSError as e:
            raise HostError("crash", f"{self.name} cannot start: {e}") from None
        os.set_blocking(proc.stdin.fileno(), False)  # type: ignore[union-attr]
        self._proc = proc
        self._sent = set()
        self._faults = fault_names
        self.starts += 1
        return proc

    def close(self) -> None:
        """Stop the child (it also exits by itself when our end of its stdin closes)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            proc.kill()
        except OSError:
            pass
        proc.wait()
        for f in (proc.stdin, proc.stdout):
            try:
                f.close()  # type: ignore[union-attr]
            except (OSError, ValueError):
                pass

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def _stderr_tail(self) -> str:
        try:
            self._err.seek(0)
            lines = self._err.read().decode("utf-8", "replace").strip().splitlines()[-5:]
        except Exception:
            lines = []
        return " / ".join(lines) or "no output"

    def _serve(self, exe: str, req: Dict[str, Any], snapshot: bytes, modules: Dict[str, bytes],
               key: str) -> Any:
        proc = self._proc if self._proc is not None and self._proc.poll() is None else None
        if proc is not None and self._faults != active_faults():
            proc = None  # started under other faults: its restores would not be this process's
        if proc is None:
            self.close()
            proc = self._spawn(exe)
        request = json.dumps(dict(req, **{
            "snapshot_b64": base64.b64encode(snapshot).decode("ascii"),
            "modules_b64": {sha: base64.b64encode(b).decode("ascii") for sha, b in modules.items()
                            if sha not in self._sent},
            "module_shas": sorted(modules),
        })).encode("ascii")
        try:
            body = self._exchange(proc, struct.pack(">I", len(request)) + request)
        except HostError:
            self.close()
            raise
        self._sent.update(modules)
        try:
            reply = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            self.close()
            raise HostError("protocol", f"{self.name} sent a malformed reply") from None
        if not isinstance(reply, dict):
            self.close()
            raise HostError("protocol", f"{self.name} replied {reply!r}")
        _raise_error(self.name, reply)
        if key not in reply:
            raise HostError("protocol", f"{self.name} replied without {key!r}")
        return reply[key]

    def _exchange(self, proc: subprocess.Popen, out: bytes) -> bytes:
        """Write one framed request and read one framed reply, never blocking past the timeout."""
        deadline = time.monotonic() + self.timeout
        wfd = proc.stdin.fileno()  # type: ignore[union-attr]
        rfd = proc.stdout.fileno()  # type: ignore[union-attr]
        inbuf = bytearray()
        need = -1  # total frame length once the 4-byte header is in
        pos = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise HostError("timeout", f"{self.name} did not finish within {self.timeout:g} s")
            wl = [wfd] if pos < len(out) else []
            r, w, _ = select.select([rfd], wl, [], left)
            if w:
                try:
                    pos += os.write(wfd, out[pos:pos + (1 << 16)])
                except BlockingIOError:
                    pass
                except OSError:  # broken pipe: the child is gone; read what it left and report
                    pos = len(out)
            if r:
                chunk = os.read(rfd, 1 << 16)
                if not chunk:
                    try:
                        rc = proc.wait(timeout=2)
                    except subprocess.TimeoutExpired:
                        rc = None
                    raise HostError("crash", f"{self.name} exited with status {rc} without a result: "
                                    f"{self._stderr_tail()}")
                inbuf += chunk
                if need < 0 and len(inbuf) >= 4:
                    need = 4 + struct.unpack(">I", bytes(inbuf[:4]))[0]
                if 0 <= need <= len(inbuf):
                    return bytes(inbuf[4:need])


def _raise_error(name: str, reply: Dict[str, Any]) -> None:
    """An ``error`` reply as the exception the caller expects (SnapshotError crosses the boundary)."""
    err = reply.get("error")
    if err:
        if err.get("type") == "SnapshotError":
            raise SnapshotError(err.get("message", ""))
        raise HostError("crash", f"{name}: {err.get('type')}: {err.get('message')}")


def parse_child_output(name: str, rc: int, stdout: bytes, stderr: bytes, key: str = "outcome") -> Any:
    """The ``key`` field of a one-shot child's reply, or the error it reports."""
    tail = stderr.decode("utf-8", "replace").strip().splitlines()[-5:]
    try:
        reply = json.loads(stdout.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise HostError("crash", f"{name} exited with status {rc} without a result: "
                        f"{' / '.join(tail) or 'no output'}") from None
    if not isinstance(reply, dict):
        raise HostError("protocol", f"{name} replied {reply!r}")
    _raise_error(name, reply)
    if rc != 0 or key not in reply:
        raise HostError("crash", f"{name} exited with status {rc}: {' / '.join(tail)}")
    return reply[key]


def get_host(spec: str, timeout: float = DEFAULT_TIMEOUT) -> Host:
    """``"inproc"`` or ``"python:PATH"`` → a host (what ``--host`` / ``--restore-on`` take)."""
    if spec == "inproc":
        return InProcHost()
    if spec.startswith("python:") and len(spec) > len("python:"):
        return PythonHost(spec[len("python:"):], timeout)
    raise ValueError(f"unknown host {spec!r} (expected inproc or python:PATH)")


def parse_hosts(specs: str, timeout: float = DEFAULT_TIMEOUT) -> List[Host]:
    """A comma-separated host list (``inproc,python:/usr/bin/python3.12``)."""
    return [get_host(s.strip(), timeout) for s in specs.split(",") if s.strip()]


def known_python_hosts() -> List[str]:
    """Host specs for the interpreters on this machine (pyenv CPython 3.9+ and pypy3 if present)."""
    out = []
    for p in sorted(Path("/root/.pyenv/versions").glob("3.*/bin/python")):
        try:
            minor = int(p.parent.parent.name.split(".")[1])
        except (IndexError, ValueError):
            continue
        if minor >= 9:
            out.append(f"python:{p}")
    if shutil.which("pypy3"):
        out.append("python:pypy3")
    return out
