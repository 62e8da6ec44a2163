"""Entry point of the ``python:PATH`` host: ``python -m runners.child --serve``.

One long-lived process answers many requests in wcr's one framed protocol (:mod:`runners.framing`:
4-byte big-endian length + UTF-8 JSON, both ways; :class:`runners.hosts.PythonHost` is the other end),
until end of input.  A request::

    {"op": "finish" | "step", "k": K, "fuel": N, "seconds": T, "snapshot_b64": "...",
     "modules_b64": {"<sha256 hex>": "..."}, "module_shas": ["<sha256 hex>", ...]}

restores the snapshot into a fresh store and answers (the operations are :class:`runners.hosts.Host`'s):

* ``"op": "finish"`` (the default) — run to the end: ``{"outcome": {...}, "python": "3.12.1 (CPython)"}``,
  but no further than ``fuel`` retired instructions in total and no longer than ``seconds``
  (:func:`finish_within`): a restored run that does not end is an *outcome* (``"stopped": "fuel
  exhausted"`` or ``"timeout"``), which the oracle then judges, never a child that hangs until the parent
  kills it;
* ``"op": "step", "k": K`` — run until K instructions have retired in total and checkpoint again:
  ``{"snapshot_b64": "...", "python": ...}`` (one hop of a migration chain, ``wcr fuzz``);

or ``{"error": {"type": ..., "message": ...}}`` (``type`` "SnapshotError" for a bad snapshot).  A request
may omit the bytes of modules sent earlier (``module_shas`` lists the ones it needs, ``modules_b64``
carries only new ones): they are kept by sha256 for the life of the process.  Standard library only
(bare interpreters run it).  Faults for ``wcr selftest`` come in through ``WCR_FAULTS`` (read by
:mod:`vm.snapshot.faults` at import; the parent sets it from its active faults).
"""

from __future__ import annotations

import base64
import platform
import sys
from typing import Any, Dict, Optional

from runners.framing import serve

#: the fuel of a restore whose caller names none (every restore has a cap)
DEFAULT_MAX_INSTRUCTIONS = 100_000_000


def finish_within(store: Any, run: Any, fuel: Optional[int] = None,
                  seconds: Optional[float] = None) -> Dict[str, Any]:
    """Run a restored ``run`` to its end and describe it (:meth:`vm.snapshot.Outcome.to_dict`), but stop
    at ``fuel`` retired instructions in total (default :data:`DEFAULT_MAX_INSTRUCTIONS` when there is no
    clock either) or after
    ``seconds`` of wall time (:mod:`vm.exec.budget`).  Why both: a corrupted restore (a loop counter
    wrapped) can run for hours, and the fuel makes that a deterministic finding (the caller's fuel is
    more than the uninterrupted run needed, :func:`runners.hosts.instruction_cap`); the clock is the
    backstop for slow hosts.  Either way the run is described as it stands, with ``stopped`` set."""
    from vm.exec.budget import Budget
    from vm.snapshot import finish

    # the default fuel is a backstop for a restore with no bound at all; a caller's clock bounds it
    # already (a fast host, PyPy's JIT, would otherwise hit the default fuel before a short --timeout)
    cap = int(fuel) if fuel is not None else (DEFAULT_MAX_INSTRUCTIONS if seconds is None else None)
    return finish(store, run, budget=Budget(cap, None if seconds is None else float(seconds))).to_dict()


def _run(req: Dict[str, Any], snap: bytes, modules: Dict[str, bytes]) -> Dict[str, Any]:
    """Do the request's operation; every failure becomes an ``error`` reply (never a traceback)."""
    from vm.snapshot import SnapshotError, advance, checkpoint, decode, encode, faults, restore

    op = req.get("op", "finish")
    try:
        if op not in ("finish", "step"):
            return {"error": {"type": "Request", "message": f"unknown op {op!r}"}}
        k = int(req["k"]) if op == "step" else 0
        store, run = restore(decode(snap), modules)
        if run is None:
            raise SnapshotError("snapshot has no thread to resume")
        if op == "step":
            advance(store, run, faults.child_step_k(k) if faults.ACTIVE else k)
            out: Dict[str, Any] = {"snapshot_b64": base64.b64encode(encode(checkpoint(store, run))).decode("ascii")}
        else:
            at = run.count
            outcome = finish_within(store, run, req.get("fuel"), req.get("seconds"))
            if faults.ACTIVE:  # deliberate bugs for `wcr selftest` only (vm/snapshot/faults.py)
                outcome = faults.child_outcome(outcome, at)
            out = {"outcome": outcome}
    except SnapshotError as e:
        return {"error": {"type": "SnapshotError", "message": str(e)}}
    except RecursionError as e:
        return {"error": {"type": "RecursionError", "message": str(e)}}
    except Exception as e:  # any crash of the VM is reported to the caller (a finding for the fuzzer)
        return {"error": {"type": type(e).__name__, "message": str(e)}}
    out["python"] = f"{platform.python_version()} ({platform.python_implementation()})"
    return out


class _Handler:
    """One request → one reply, with the module cache of this process."""

    def __init__(self) -> None:
        self.modules: Dict[str, bytes] = {}

    def __call__(self, req: Any) -> Dict[str, Any]:
        try:
            for sha, b in (req.get("modules_b64") or {}).items():
                self.modules[sha] = base64.b64decode(b)
            missing = [sha for sha in req.get("module_shas", []) if sha not in self.modules]
            if missing:
                raise KeyError(f"module {missing[0]} was never sent")
            modules = {sha: self.modules[sha] for sha in req.get("module_shas", [])}
            snap = base64.b64decode(req["snapshot_b64"])
        except Exception as e:  # malformed request: reported, the loop goes on
            return {"error": {"type": "Request", "message": f"{type(e).__name__}: {e}"}}
        return _run(req, snap, modules)


def main() -> int:
    """Serve until end of input (``--serve`` names the mode; it is the only one)."""
    return serve(_Handler())


if __name__ == "__main__":
    sys.exit(main())
