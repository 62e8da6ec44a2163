"""Driving an invocation so that it can stop between any two instructions.

::

    start(store, func, args) -> Run          # an invocation at k = 0 (nothing executed yet)
    advance(store, run, k) -> Run            # run until k instructions are retired (or it ends)
    advance_within(store, run, budget) -> stop kind or None   # to the end, within fuel/wall time
    run_to(store, func, args, k) -> Run      # start + advance

A :class:`Run` wraps the engine's :class:`~vm.exec.engine.Thread` with what the thread itself does not
hold: the entry function and arguments, and the trap that ended it (if any).  A run stopped by ``k`` is
*between* instructions: the top frame's pc is the next instruction to execute.  ``k`` equal to the total
of a finished run gives a ``done`` run; ``k`` equal to the total of a trapping run gives a ``trapped`` one
(the trapping instruction counts, as in the counting rule of docs/execution-model.md).  A trap ends the
run and is recorded, never raised, so that a checkpoint can describe it.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence

from ..errors import Trap, WasmException
from ..exec.budget import Budget
from ..exec.engine import Thread
from ..exec.store import Store
from ..runtime.objects import FuncInst
from .model import DONE, RUNNING, TRAPPED

__all__ = ["Run", "advance", "advance_within", "run_to", "start"]


class Run:
    """An invocation in progress or ended: the engine thread plus entry, arguments and trap kind."""

    __slots__ = ("thread", "entry", "args", "trap", "exn")

    def __init__(self, thread: Thread, entry: FuncInst, args: List[Any], trap: Optional[str] = None):
        self.thread = thread
        self.entry = entry
        self.args = args
        self.trap = trap
        #: the exception object that escaped (trap kind ``uncaught exception``): part of the run's end
        #: state, so a checkpoint of the ended run holds it and the oracle compares its tag and payload
        self.exn: Any = None

    @property
    def status(self) -> str:
        if self.trap is not None:
            return TRAPPED
        return DONE if self.thread.done else RUNNING

    @property
    def count(self) -> int:
        return self.thread.count


def start(store: Store, func: FuncInst, args: Sequence[Any]) -> Run:
    """An invocation of ``func`` stopped before its first instruction (k = 0).  A host function has no
    instructions: it runs at once and the run is ``done`` (or ``trapped``)."""
    args = list(args)
    if len(args) != len(func.type.params):
        raise ValueError(f"expected {len(func.type.params)} arguments, got {len(args)}")
    th = Thread()
    run = Run(th, func, args)
    if func.host is not None:
        try:
            th.results = list(func.host(list(args)))
        except Trap as e:
            run.trap = e.message
        except WasmException as e:
            run.trap, run.exn = e.message, e.exn
        th.done = True
        return run
    th.frames.append(store.machine.new_frame(func, args))
    return run


def advance(store: Store, run: Run, k: Optional[int] = None) -> Run:
    """Run until ``k`` instructions are retired in total (``None``: to the end).  A trap ends the run
    (``run.trap``); it is not raised."""
    th = run.thread
    if run.status != RUNNING or (k is not None and th.count >= k):
        return run
    _drive(store, run, lambda: store.machine.run(th, k))
    return run


def advance_within(store: Store, run: Run, budget: Optional[Budget]) -> Optional[str]:
    """Run to the end, but no further than ``budget`` allows (:mod:`vm.exec.budget`): the stop kind
    (:data:`vm.errors.STOP_KINDS`) when a limit stopped the run (it is then still ``running``, between
    two instructions, and can be checkpointed), else None.  Traps are recorded as by :func:`advance`."""
    if budget is None:
        advance(store, run, None)
        return None
    if run.status != RUNNING:
        return None
    return _drive(store, run, lambda: budget.run(store.machine, run.thread))


def _drive(store: Store, run: Run, go: Callable[[], Optional[str]]) -> Optional[str]:
    """Run ``go`` and record a trap or an escaping exception as the run's end (never raised)."""
    stop = None
    try:
        stop = go()
    except Trap as e:
        run.trap = e.kind
    except WasmException as e:
        run.trap, run.exn = e.message, e.exn
    store.instructions = run.thread.count
    return stop


def run_to(store: Store, func: FuncInst, args: Sequence[Any], k: Optional[int]) -> Run:
    """Invoke ``func`` and stop before retired instruction ``k`` (or where it ends)."""
    return advance(store, start(store, func, args), k)
