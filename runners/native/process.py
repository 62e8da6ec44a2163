"""Bounded subprocesses of the native targets: one-shot toolchain calls (:func:`run_proc`) and requests to
long-lived servers (:func:`ask`, over the one framed protocol of :mod:`runners.framing`), plus the two
exceptions every target raises for "we could not ask the runtime" (plus :class:`InvalidModule`, "the
module we hand over is wrong") and the cache folder.

Why here and not in each target: a hung gcc or node must never hang a campaign, and a killed process
must take its children along (gcc's ``cc1`` survived a plain ``subprocess.run`` timeout at 6 GB), so
the kill rule is written once; and every such process dies with the process that started it
(:mod:`runners.lifetime`), so a killed campaign leaves no compiler running.  In :meth:`runners.native.target.Target.run`, :class:`Timeout` becomes an
*inconclusive* outcome (a resource limit, with its reason), :class:`Unrunnable` an *unsupported* one (the
runtime cannot take this module: not applicable, never a verdict) and :class:`InvalidModule` an *error*
of ours (every module a target is given is one we made); :class:`ServerDied` (a crash of the runtime's
process) is inconclusive too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Optional, Sequence

from ..framing import ChildError, ChildTimeout, FramedChild
from ..lifetime import popen_kwargs


class Unrunnable(Exception):
    """The module needs something this target cannot provide (reported as not applicable)."""


class InvalidModule(Unrunnable):
    """The module (or its manifest) handed to a target is wrong: a resume module or a baseline wrapper
    that fails validation, or a manifest that does not fit its module.  Every such module is ours, so
    this is wcr's error (status ``error``), never the target's and never inconclusive."""


class Timeout(Exception):
    """A run exceeded its wall-clock limit (reported as inconclusive)."""

    stdout: str  # what the process printed before it was killed (set where it is raised)


class ServerDied(Exception):
    """A long-lived server exited (crash, native stack overflow) or broke the protocol while handling
    a request; the next request starts a fresh process."""


def cache_dir() -> Path:
    """Where compiled artefacts are cached (``WCR_CACHE_DIR`` or a per-user temp dir)."""
    base = os.environ.get("WCR_CACHE_DIR")
    uid = os.getuid() if hasattr(os, "getuid") else 0
    p = Path(base) if base else Path(tempfile.gettempdir()) / f"wcr-native-cache-{uid}"
    p.mkdir(parents=True, exist_ok=True)
    return p


def run_proc(cmd: Sequence[str], timeout: float, cwd: Optional[str] = None,
             input: Optional[bytes] = None) -> subprocess.CompletedProcess:
    """Run ``cmd`` with a hard wall-clock limit; :class:`Timeout` when exceeded (the process group is
    killed, so no grandchild survives; the output so far is on the exception's ``stdout``)."""
    proc = subprocess.Popen(list(cmd), cwd=cwd, stdin=subprocess.PIPE if input is not None else None,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen_kwargs())
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
        out, err = proc.communicate()
        t = Timeout(f"{Path(cmd[0]).name} did not finish in {timeout:.0f} s")
        t.stdout = out.decode("utf-8", "replace") if out else ""
        raise t from exc
    return subprocess.CompletedProcess(list(cmd), proc.returncode, out, err)


def ask(server: FramedChild, request: Any, timeout: float) -> Any:
    """One request to a long-lived server.  The protocol's failures become the targets' vocabulary: no
    answer in time → :class:`Timeout`, a crash or a garbled reply → :class:`ServerDied` (the server has
    been killed either way, so one bad module costs only its own run)."""
    try:
        return server.request(request, timeout)
    except ChildTimeout as exc:
        raise Timeout(f"no answer in {timeout:.0f} s") from exc
    except ChildError as exc:
        raise ServerDied(str(exc)) from exc
