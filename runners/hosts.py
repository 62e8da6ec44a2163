"""Hosts: where a snapshot of our VM is resumed.

* ``inproc`` — a fresh store in this process.
* ``python:PATH`` — a subprocess of any Python interpreter (CPython 3.9–3.13, PyPy) running our VM from
  this source tree: ``PATH -m runners.child --serve`` with ``PYTHONPATH`` set to the repository root, so
  a bare interpreter works without installing wcr (vm/ and runners/ import the standard library only).

  The host keeps **one long-lived child** that answers many requests in wcr's one framed protocol
  (:mod:`runners.framing`, the parent's side is :class:`runners.framing.FramedChild`): starting an
  interpreter and importing the VM costs ~0.1 s (CPython) to ~0.5 s (PyPy) per call, far more than a
  typical spec-test restore, and a long-lived child also keeps its decoded/validated module cache and a
  JIT warm.  Module bytes are sent once per child (the child caches them by sha256).  A crash, timeout
  or garbled reply of one request raises :class:`HostError` with ``kind`` "crash" / "timeout" /
  "protocol" for that request (the child is killed and a fresh one started for the next), so a batch
  never hangs.

Every host has ``name``, ``available() -> (bool, reason)``, ``close()`` and two operations on encoded
snapshots:

* ``restore_and_finish(snapshot_bytes, modules, fuel=None, seconds=None) -> dict``
  (:meth:`vm.snapshot.Outcome.to_dict`) — restore and run to the end (the spec runner, ``wcr restore``,
  the fuzzer).  **Every restore is bounded**: by fuel (the caller passes :func:`instruction_cap` of the
  reference run, or less when the user asked for less; without one,
  :data:`runners.child.DEFAULT_MAX_INSTRUCTIONS`) and by ``seconds`` of wall time (default: the host's
  ``timeout`` times :data:`CHILD_SHARE`), on ``inproc`` too.  A run that hits either is described as it
  stands with ``"stopped"`` set (:func:`runners.child.finish_within`); the oracle judges it
  (:func:`runners.oracle.compare_stopped`: a restore that ran past the reference's total is a divergence
  that replays, anything else stopped is inconclusive), and nothing waits forever.  A ``python:PATH``
  child enforces ``seconds`` itself; the parent kills one that has not answered :func:`parent_wait`
  later (a child stuck outside the instruction loop);
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
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from vm.runtime.limits import current as current_limits
from vm.snapshot.model import SnapshotError

from .child import finish_within
from .framing import ChildError, FramedChild

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TIMEOUT = 120.0
#: share of a child's timeout it may spend before it stops the run itself (it then answers before the
#: parent gives up on it and kills it, so the outcome carries the run's state)
CHILD_SHARE = 0.8
#: at least this many seconds between a child's own clock running out and the parent killing it
#: (decoding, restoring and digesting happen outside the instruction loop)
GRACE = 5.0


def parent_wait(seconds: float) -> float:
    """How long the parent waits for a child told to stop its run after ``seconds``: a quarter more,
    and at least :data:`GRACE` more."""
    return seconds + max(GRACE, 0.25 * seconds)


def instruction_cap(reference: Any) -> Optional[int]:
    """The instruction cap of a restore whose uninterrupted run retired ``reference["instructions"]``
    (an outcome dict or the total itself): twice that plus 10,000.  Any restore that runs past the
    total already differs from the reference, so the margin only buys a clearer report; None when the
    total is unknown (the host's default cap applies), also when the reference was itself stopped by a
    limit: its count is where the clock or the fuel ran out, not a total (a faster restorer would then
    run out of this cap first and report "fuel exhausted" for what is a timeout)."""
    if isinstance(reference, dict) and reference.get("stopped"):
        return None
    total = reference.get("instructions") if isinstance(reference, dict) else reference
    if not isinstance(total, int):
        return None
    return 2 * total + 10_000


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

    timeout: float = DEFAULT_TIMEOUT

    def restore_and_finish(self, snapshot: bytes, modules: Dict[str, bytes], fuel: Optional[int] = None,
                           seconds: Optional[float] = None) -> Dict[str, Any]:
        raise NotImplementedError

    def step(self, snapshot: bytes, modules: Dict[str, bytes], k: int) -> bytes:
        """Restore, run until ``k`` instructions have retired in total, checkpoint: the new snapshot."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the host holds (a child process); it may still be used afterwards."""


class InProcHost(Host):
    """Restore into a fresh store of this process."""

    name = "inproc"

    def __init__(self, timeout: float = DEFAULT_TIMEOUT):
        self.timeout = timeout

    def restore_and_finish(self, snapshot: bytes, modules: Dict[str, bytes], fuel: Optional[int] = None,
                           seconds: Optional[float] = None) -> Dict[str, Any]:
        from vm.snapshot import decode, restore

        store, run = restore(decode(snapshot), modules)
        if run is None:
            raise SnapshotError("snapshot has no thread to resume")
        return finish_within(store, run, fuel, self.timeout if seconds is None else seconds)

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
    """Restore in a long-lived subprocess: ``PATH -m runners.child --serve``."""

    def __init__(self, path: str, timeout: float = DEFAULT_TIMEOUT):
        self.path = path
        self.timeout = timeout
        self.name = f"python:{path}"
        self._child = FramedChild([path, "-m", "runners.child", "--serve"], cwd=str(REPO_ROOT), name=self.name)
        self._sent: Set[str] = set()  # module sha256s the current child already holds
        self._faults = ""  # WCR_FAULTS and WCR_LIMITS of the current child

    @property
    def starts(self) -> int:
        """Children started so far (for tests and benchmarks)."""
        return self._child.starts

    def _exe(self) -> Optional[str]:
        """The interpreter's absolute path (a relative PATH is relative to the current directory, not to
        the child's), or None when there is no such executable."""
        if os.sep in self.path or (os.altsep and os.altsep in self.path):
            ok = os.path.isfile(self.path) and os.access(self.path, os.X_OK)
            return os.path.abspath(self.path) if ok else None
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

    def restore_and_finish(self, snapshot: bytes, modules: Dict[str, bytes], fuel: Optional[int] = None,
                           seconds: Optional[float] = None) -> Dict[str, Any]:
        """The child stops its run after ``seconds`` (default: :data:`CHILD_SHARE` of the host's
        timeout) and the parent waits :func:`parent_wait` of that (default: the host's timeout)."""
        own = self.timeout * CHILD_SHARE if seconds is None else float(seconds)
        req: Dict[str, Any] = {"op": "finish", "seconds": round(own, 3)}
        if fuel is not None:
            req["fuel"] = int(fuel)
        wait = self.timeout if seconds is None else parent_wait(own)
        return self._call(req, snapshot, modules, "outcome", wait)

    def step(self, snapshot: bytes, modules: Dict[str, bytes], k: int) -> bytes:
        b64 = self._call({"op": "step", "k": int(k)}, snapshot, modules, "snapshot_b64")
        try:
            return base64.b64decode(b64, validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise HostError("protocol", f"{self.name} replied with a malformed snapshot") from None

    def close(self) -> None:
        """Stop the child (it also exits by itself when our end of its stdin closes)."""
        self._child.close()

    def _prepare_child(self, exe: str) -> None:
        """A child started under other faults or other store limits is replaced (its restores would not
        be this process's: both travel in its environment); a child that is not running will be started
        with the current ones and holds no modules."""
        faults = active_faults() + "|" + current_limits().to_env()
        if self._child.alive() and self._faults != faults:
            self._child.close()
        if not self._child.alive():
            self._child.cmd[0] = exe
            self._child.env = self._env(active_faults())
            self._faults = faults
            self._sent = set()

    def _call(self, req: Dict[str, Any], snapshot: bytes, modules: Dict[str, bytes], key: str,
              wait: Optional[float] = None) -> Any:
        exe = self._exe()
        if exe is None:
            raise HostError("unavailable", f"{self.path}: not found")
        self._prepare_child(exe)
        request = dict(req, **{
            "snapshot_b64": base64.b64encode(snapshot).decode("ascii"),
            "modules_b64": {sha: base64.b64encode(b).decode("ascii") for sha, b in modules.items()
                            if sha not in self._sent},
            "module_shas": sorted(modules),
        })
        try:
            reply = self._child.request(request, self.timeout if wait is None else wait)
        except ChildError as e:
            raise HostError(e.kind, str(e)) from None
        self._sent.update(modules)
        if not isinstance(reply, dict):
            self._child.close()
            raise HostError("protocol", f"{self.name} replied {reply!r}")
        _raise_error(self.name, reply)
        if key not in reply:
            raise HostError("protocol", f"{self.name} replied without {key!r}")
        return reply[key]


def _raise_error(name: str, reply: Dict[str, Any]) -> None:
    """An ``error`` reply as the exception the caller expects (SnapshotError crosses the boundary)."""
    err = reply.get("error")
    if err:
        if err.get("type") == "SnapshotError":
            raise SnapshotError(err.get("message", ""))
        raise HostError("crash", f"{name}: {err.get('type')}: {err.get('message')}")


def get_host(spec: str, timeout: float = DEFAULT_TIMEOUT) -> Host:
    """``"inproc"`` or ``"python:PATH"`` → a host (what ``--host`` / ``--restore-on`` take)."""
    if spec == "inproc":
        return InProcHost(timeout)
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


# ------------------------------------------------------------------------- what a stranger's file may run
#: the environment variable listing the ``python:PATH`` hosts this machine lets a bug report name
#: (comma-separated, as ``--restore-on`` takes them)
HOSTS_ENV = "WCR_HOSTS"
#: hosts that run nothing but this process's own VM: always allowed
BUILTIN_HOSTS = ("inproc",)


def host_spec(name: str) -> str:
    """A host name as ``--restore-on`` spells it, in its one form (``pypy3`` is ``python:pypy3``)."""
    name = name.strip()
    return "python:pypy3" if name == "pypy3" else name


def allowed_hosts(named: Sequence[str] = (), environ: Optional[Mapping[str, str]] = None) -> Set[str]:
    """The hosts a file from elsewhere (a bug report) may make this machine use: :data:`BUILTIN_HOSTS`,
    plus every host the user named (``--restore-on``/``--host``) or configured (:data:`HOSTS_ENV`).
    Why: a ``python:PATH`` host *runs the program at PATH* (even asking whether it is available runs
    it), and a report is downloaded from an issue tracker; only the replaying user may choose what
    runs.  Names compare as written (``python:./x.py`` and ``python:/abs/x.py`` are different names)."""
    env = os.environ if environ is None else environ
    extra = [x for item in named for x in item.split(",")] + env.get(HOSTS_ENV, "").split(",")
    return set(BUILTIN_HOSTS) | {host_spec(x) for x in extra if x.strip()}


def not_allowed_message(spec: str) -> str:
    """What is printed for a host a report names that this machine does not allow."""
    return (f"host {spec} named by the report is not allowed here; pass --restore-on {spec} "
            f"(or list it in {HOSTS_ENV}) to use it")
