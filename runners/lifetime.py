"""Children die with their parent: the one home of wcr's parent-death rule.

Why: a campaign or a spec run that is killed (``kill -9``, a CI runner's timeout, an OOM kill) gets no
chance to clean up, and its children do not notice: a multiprocessing worker keeps running its loop and
appending to the campaign's JSONL, a ``python:PATH`` host or a node server started in a session of its
own keeps waiting.  Every process wcr starts that may outlive a moment (hosts, native servers, gcc and
wasm2c runs, campaign and ``wcr spec -j`` workers) is started through this module:

* :func:`popen_kwargs` — the ``subprocess.Popen`` arguments of such a child: its own session (so a
  timeout kills its whole process group) and, on Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` set in the
  child between fork and exec (it survives exec), so the kernel kills it when its parent dies;
* :func:`die_with_parent` — the same for a Python worker process, called first thing in the worker with
  the pid of the process that started it.  It also checks that this parent is still the one it has (the
  parent may have died before the call: then the worker exits at once).

Where ``prctl`` is missing (not Linux), a worker falls back to a watchdog thread that polls
``os.getppid()``; a ``popen_kwargs`` child cannot get one, but every long-lived child of wcr reads
requests from a pipe of its parent and exits at end of input, which a dead parent's pipe delivers.

Linux's "parent" is the *thread* that forked: a child must be started from a thread that lives at least
as long as the child (wcr starts its long-lived children from the main thread of each process).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any, Callable, Dict, Optional

__all__ = ["die_with_parent", "pdeathsig_supported", "popen_kwargs"]

_PR_SET_PDEATHSIG = 1
#: seconds between two looks at the parent of the fallback watchdog
WATCH_INTERVAL = 0.5


def _load_prctl() -> Optional[Callable[..., int]]:
    """libc's ``prctl``, resolved once in the parent (no library loading between fork and exec)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        fn = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError, ImportError):
        return None
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return fn


_PRCTL: Optional[Callable[..., int]] = None
_LOADED = False


def _prctl() -> Optional[Callable[..., int]]:
    """:func:`_load_prctl`, once (lazily: ``runners.child`` imports this module's neighbours at start)."""
    global _PRCTL, _LOADED
    if not _LOADED:
        _PRCTL, _LOADED = _load_prctl(), True
    return _PRCTL


def pdeathsig_supported() -> bool:
    """True where the kernel kills a child when its parent dies (Linux)."""
    return _prctl() is not None


def _set_pdeathsig(fn: Optional[Callable[..., int]]) -> bool:
    return fn is not None and fn(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0


def popen_kwargs() -> Dict[str, Any]:
    """Keyword arguments for ``subprocess.Popen`` / ``run`` of a child that must die with this process
    (the calling thread, strictly: see the module docstring) and whose process group a timeout kills."""
    fn = _prctl()
    if fn is None:
        return {"start_new_session": True}
    parent = os.getpid()

    def in_child() -> None:  # between fork and exec: no allocation-heavy work, no imports
        if not _set_pdeathsig(fn) or os.getppid() != parent:
            os._exit(137)  # the parent died before the signal was armed: never run orphaned

    return {"start_new_session": True, "preexec_fn": in_child}


def die_with_parent(parent: int) -> None:
    """Make this (worker) process die when ``parent`` dies; exit at once if ``parent`` is already gone
    (or is not our parent: we were orphaned before this call and adopted by another process)."""
    armed = _set_pdeathsig(_prctl())
    if os.getppid() != parent:
        os._exit(137)
    if not armed:
        threading.Thread(target=_watch, args=(parent,), name="wcr-parent-watch", daemon=True).start()


def _watch(parent: int) -> None:
    """The fallback of :func:`die_with_parent`: poll until our parent changes, then die like a SIGKILL."""
    while os.getppid() == parent:
        time.sleep(WATCH_INTERVAL)
    os._exit(137)
