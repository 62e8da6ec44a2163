"""How an invocation ended, in the form every host and target exchanges and the oracle compares.

::

    finish(store, run) -> Outcome                                   # run to the end, then describe it
    outcome_of(store, result_types, results, trap, instructions)    # describe a run someone else did

:func:`outcome_of` is for a live store that ran an invocation by itself (the spec runner's C/R mode
invokes through the store and only then asks for the reference outcome); :func:`finish` uses it too, so
both describe results, the host log and the final state the same way.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..exec.store import Store
from ..values import format_value
from .capture import Capture
from .digest import state_digest
from .model import DONE, Value
from .run import Run, advance

__all__ = ["Outcome", "finish", "outcome_of"]


class Outcome:
    """How an invocation ended: results (tagged values), trap kind, exact instruction count, the
    store's host log and the final-state digest.  ``to_dict`` is the JSON form hosts exchange."""

    __slots__ = ("results", "trap", "instructions", "host_log", "state_digest")

    def __init__(self, results: List[Value], trap: Optional[str], instructions: int,
                 host_log: List[Tuple[str, List[Value]]], digest: str):
        self.results = results
        self.trap = trap
        self.instructions = instructions
        self.host_log = host_log
        self.state_digest = digest

    def to_dict(self) -> Dict[str, Any]:
        return {
            "results": [format_value(v) for v in self.results],
            "trap": self.trap,
            "instructions": self.instructions,
            "host_log": [[name, [format_value(v) for v in vals]] for name, vals in self.host_log],
            "state_digest": self.state_digest,
        }

    def __repr__(self) -> str:
        return f"Outcome({self.to_dict()!r})"


def outcome_of(store: Store, result_types: Sequence[Any], results: Optional[Sequence[Any]],
               trap: Optional[str], instructions: int, digest: bool = True) -> Outcome:
    """Describe an invocation that ended in ``store``: ``results`` (runtime values, typed by
    ``result_types``; ignored when ``trap`` is set) or the trap kind, the retired-instruction count,
    and the store's host log and final-state digest as they are now (``digest=False``: no digest)."""
    cap = Capture(store, require_sha=False)
    tagged: List[Value] = []
    if trap is None:
        tagged = [cap.value(t, x) for t, x in zip(result_types, results or [])]
    return Outcome(tagged, trap, instructions, cap.host_log(), state_digest(store) if digest else "")


def finish(store: Store, run: Run, digest: bool = True) -> Outcome:
    """Run to the end and describe the outcome (results typed by the entry function's type)."""
    advance(store, run, None)
    store.instructions = run.thread.count
    results = run.thread.results if run.status == DONE else None
    return outcome_of(store, run.entry.type.results, results, run.trap, run.thread.count, digest)
