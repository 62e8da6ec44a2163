"""Python hosts for fuzzing: ``inproc`` and a persistent ``python:PATH`` worker (:mod:`suite.fuzz.worker`).

Both offer the two operations a trial needs, on encoded snapshots:

* ``finish(snapshot, modules) -> outcome dict`` — restore and run to the end;
* ``step(snapshot, modules, k) -> snapshot`` — restore, run until k instructions, checkpoint again
  (one hop of a migration chain).

A :class:`vm.snapshot.SnapshotError` from the host is raised as such; a crash, timeout or protocol
failure raises :class:`runners.hosts.HostError`.  The worker is restarted after a crash or timeout.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import threading
from typing import Any, Dict, Optional, Set

from runners.hosts import REPO_ROOT, HostError, PythonHost
from vm.snapshot import SnapshotError, advance, checkpoint, decode, encode, finish, restore


class InProcFuzzHost:
    name = "inproc"

    def available(self):
        return True, ""

    def finish(self, snapshot: bytes, modules: Dict[str, bytes]) -> Dict[str, Any]:
        store, run = restore(decode(snapshot), modules)
        if run is None:
            raise SnapshotError("snapshot has no thread to resume")
        return finish(store, run).to_dict()

    def step(self, snapshot: bytes, modules: Dict[str, bytes], k: int) -> bytes:
        store, run = restore(decode(snapshot), modules)
        if run is None:
            raise SnapshotError("snapshot has no thread to resume")
        advance(store, run, k)
        return encode(checkpoint(store, run))

    def close(self) -> None:
        pass


class WorkerHost:
    """``python:PATH`` kept alive across requests (one JSON line each way)."""

    def __init__(self, spec: str, timeout: float = 60.0):
        if not spec.startswith("python:") or len(spec) <= len("python:"):
            raise ValueError(f"not a python host: {spec!r}")
        self.name = spec
        self.path = spec[len("python:"):]
        self.timeout = timeout
        self._proc: Optional[subprocess.Popen] = None
        self._sent: Set[str] = set()
        self.python = ""

    def available(self):
        return PythonHost(self.path).available()

    def _start(self) -> subprocess.Popen:
        exe = PythonHost(self.path)._exe()
        if exe is None:
            raise HostError("unavailable", f"{self.path}: not found")
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.pop("PYTHONHOME", None)
        self._proc = subprocess.Popen([exe, "-m", "suite.fuzz.worker"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                                      cwd=str(REPO_ROOT))
        self._sent = set()
        hello = self._readline()
        self.python = json.loads(hello).get("ready", "")
        return self._proc

    def _readline(self) -> str:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        timer = threading.Timer(self.timeout, proc.kill)
        timer.start()
        try:
            line = proc.stdout.readline()
        finally:
            timer.cancel()
        if not line:
            rc = proc.poll()
            self.close()
            if rc is None or rc < 0:
                raise HostError("timeout", f"{self.name} gave no answer within {self.timeout:g} s")
            raise HostError("crash", f"{self.name} exited with status {rc}")
        return line.decode("utf-8")

    def _request(self, req: Dict[str, Any], modules: Dict[str, bytes]) -> Dict[str, Any]:
        proc = self._proc if self._proc is not None and self._proc.poll() is None else self._start()
        new = {sha: base64.b64encode(b).decode("ascii") for sha, b in modules.items() if sha not in self._sent}
        req["modules_b64"] = new
        try:
            assert proc.stdin is not None
            proc.stdin.write((json.dumps(req) + "\n").encode("ascii"))
            proc.stdin.flush()
        except OSError as e:
            self.close()
            raise HostError("crash", f"{self.name}: {e}") from None
        self._sent.update(new)
        try:
            reply = json.loads(self._readline())
        except ValueError:
            self.close()
            raise HostError("protocol", f"{self.name} sent a malformed reply") from None
        err = reply.get("error")
        if err:
            if err.get("type") == "SnapshotError":
                raise SnapshotError(err.get("message", ""))
            raise HostError("crash", f"{self.name}: {err.get('type')}: {err.get('message')}")
        return reply

    def finish(self, snapshot: bytes, modules: Dict[str, bytes]) -> Dict[str, Any]:
        req = {"op": "finish", "snapshot_b64": base64.b64encode(snapshot).decode("ascii")}
        return self._request(req, modules)["outcome"]

    def step(self, snapshot: bytes, modules: Dict[str, bytes], k: int) -> bytes:
        req = {"op": "step", "k": int(k), "snapshot_b64": base64.b64encode(snapshot).decode("ascii")}
        return base64.b64decode(self._request(req, modules)["snapshot_b64"])

    def close(self) -> None:
        p, self._proc = self._proc, None
        if p is not None:
            try:
                if p.stdin:
                    p.stdin.close()
                p.wait(timeout=5)
            except Exception:  # noqa: BLE001 - best effort: make sure it is gone
                p.kill()
                p.wait()


def make_host(spec: str, timeout: float = 60.0):
    if spec == "inproc":
        return InProcFuzzHost()
    if spec.startswith("python:"):
        return WorkerHost(spec, timeout)
    raise ValueError(f"unknown host {spec!r} (expected inproc or python:PATH)")
