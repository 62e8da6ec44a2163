"""How an invocation ended, in the form every host and target exchanges and the oracle compares.

::

    finish(store, run, budget=None) -> Outcome                      # run to the end (or the budget), describe it
    outcome_of(store, result_types, results, trap, instructions)    # describe a run someone else did

:func:`outcome_of` is for a live store that ran an invocation by itself (the spec runner's C/R mode
invokes through the store and only then asks for the reference outcome); :func:`finish` uses it too, so
both describe results, the host log and the final state the same way.

``stopped`` is the one field that says a limit, not the program, ended the run (``"fuel exhausted"``,
``"timeout"``: :data:`vm.errors.STOP_KINDS`; null otherwise).  A stopped outcome has no results and no
trap; its instruction count, host log and digest describe the state where it stopped.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..exec.budget import Budget
from ..exec.store import Store
from ..values import format_value
from .capture import Capture
from .digest import state_digest
from .model import DONE, Value
from .run import Run, advance_within

__all__ = ["Outcome", "finish", "outcome_of"]


class Outcome:
    """How an invocation ended: results (tagged values), trap kind, exact instruction count, the
    store's host log, the final-state digest, and the stop kind when a limit ended it.  ``to_dict`` is
    the JSON form hosts exchange."""

    __slots__ = ("results", "trap", "instructions", "host_log", "state_digest", "stopped", "wasi")

    def __init__(self, results: List[Value], trap: Optional[str], instructions: int,
                 host_log: List[Tuple[str, List[Value]]], digest: str, stopped: Optional[str] = None,
                 wasi: Optional[Dict[str, Any]] = None):
        self.results = results
        self.trap = trap
        self.instructions = instructions
        self.host_log = host_log
        self.state_digest = digest
        self.stopped = stopped
        #: a WASI program's observable end (None for a store without WASI):
        #: ``{"exit_code": int or None, "stdout": base64, "stderr": base64, "files": MemFS digest}``
        #: (:meth:`vm.runtime.wasi.WasiState.summary`); ``to_dict`` has the key only when it is set
        self.wasi = wasi

    def to_dict(self) -> Dict[str, Any]:
        return {
            "results": [format_value(v) for v in self.results],
            "trap": self.trap,
            "instructions": self.instructions,
            "host_log": [[name, [format_value(v) for v in vals]] for name, vals in self.host_log],
            "state_digest": self.state_digest,
            "stopped": self.stopped,
            **({"wasi": self.wasi} if self.wasi is not None else {}),
        }

    def __repr__(self) -> str:
        return f"Outcome({self.to_dict()!r})"


def outcome_of(store: Store, result_types: Sequence[Any], results: Optional[Sequence[Any]],
               trap: Optional[str], instructions: int, digest: bool = True,
               stopped: Optional[str] = None, exn: Any = None) -> Outcome:
    """Describe an invocation that ended in ``store``: ``results`` (runtime values, typed by
    ``result_types``; ignored when ``trap`` or ``stopped`` is set) or the trap kind, the
    retired-instruction count, and the store's host log and final-state digest as they are now
    (``digest=False``: no digest).  ``exn``: the exception object that escaped (trap ``uncaught
    exception``); the digest walks it as a root, so its tag and payload are compared like results.
    A store with WASI state also describes its end (``wasi``: :meth:`vm.runtime.wasi.WasiState.summary`)."""
    cap = Capture(store, require_sha=False)
    tagged: List[Value] = []
    roots: Sequence[Any] = ()
    if trap is None and stopped is None:
        roots = list(results or [])
        tagged = [cap.value(t, x) for t, x in zip(result_types, roots)]
    elif exn is not None and stopped is None:
        roots = [exn]
    # heap references among the results are ids of this capture (results first, then the host log): equal
    # for equal runs; the objects' contents are compared through the digest, which walks the results too
    wasi = store.wasi.summary() if store.wasi is not None else None
    return Outcome(tagged, trap, instructions, cap.host_log(), state_digest(store, roots) if digest else "",
                   stopped, wasi)


def finish(store: Store, run: Run, digest: bool = True, budget: Optional[Budget] = None) -> Outcome:
    """Run to the end (no further than ``budget`` allows) and describe the outcome (results typed by
    the entry function's type)."""
    stopped = advance_within(store, run, budget)
    store.instructions = run.thread.count
    results = run.thread.results if run.status == DONE else None
    return outcome_of(store, run.entry.type.results, results, run.trap, run.thread.count, digest, stopped,
                      run.exn)
