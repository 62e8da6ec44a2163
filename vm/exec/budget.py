"""Fuel and wall-time limits of an invocation: how far the runner lets a program go before it stops it.

::

    limits = RunLimits(fuel=1000, seconds=2.0)   # plain configuration (picklable: it crosses into workers)
    budget = limits.start()                    # the clock starts now (None when there are no limits)
    kind = budget.run(machine, thread)         # None: the thread ended (a trap raises); else a stop kind

Why here and not in the hot loop: the engine's loop already stops after exactly ``k`` retired
instructions (:meth:`vm.exec.engine.Machine.run`), so fuel costs nothing per instruction, and the clock is
read between slices of :data:`SLICE` instructions (a slice takes well under a second), never per
instruction.  Fuel counts the invocation's retired instructions *from its start* (the counting rule of
docs/execution-model.md), so ``wcr run --fuel N`` and ``wcr restore --fuel N`` of a snapshot of that run
stop at the same instruction.  A stop is not a trap (:data:`vm.errors.STOP_KINDS`).
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple, Optional

from ..errors import FUEL_EXHAUSTED, TIMEOUT, Stopped

__all__ = ["NO_LIMITS", "SLICE", "Budget", "RunLimits"]

#: instructions run between two looks at the clock
SLICE = 100_000


class RunLimits(NamedTuple):
    """What a command allows one unit of work (an invocation, a spec command, a fuzz trial): at most
    ``fuel`` retired instructions, at most ``seconds`` of wall time (None: unlimited)."""

    fuel: Optional[int] = None
    seconds: Optional[float] = None

    def start(self) -> Optional[Budget]:
        """A running budget whose clock starts now; None when nothing is limited."""
        if self.fuel is None and self.seconds is None:
            return None
        return Budget(self.fuel, self.seconds)


class Budget:
    """:class:`RunLimits` with the clock running (``deadline`` on :func:`time.monotonic`)."""

    __slots__ = ("fuel", "seconds", "deadline")

    def __init__(self, fuel: Optional[int] = None, seconds: Optional[float] = None):
        self.fuel = fuel
        self.seconds = seconds
        self.deadline = None if seconds is None else time.monotonic() + seconds

    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def left(self) -> Optional[float]:
        """Seconds left on the clock (never negative); None without a clock."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def run(self, machine: Any, th: Any) -> Optional[str]:
        """Run ``th`` on ``machine`` until it ends (None), traps (the trap is raised, as by
        ``Machine.run``) or a limit stops it: ``"fuel exhausted"`` with exactly ``fuel`` instructions
        retired, or ``"timeout"`` (checked after each slice, so at least one slice runs)."""
        fuel = self.fuel
        while not th.done:
            if fuel is not None and th.count >= fuel:
                return FUEL_EXHAUSTED
            stop_at = th.count + SLICE
            machine.run(th, stop_at if fuel is None else min(stop_at, fuel))
            if not th.done and self.expired():
                return TIMEOUT
        return None

    def stopped(self, kind: str, instructions: int) -> Stopped:
        """The exception of a run this budget stopped (its message names the limit)."""
        return Stopped(kind, instructions, self.seconds)


#: nothing limited (the default of every function that takes limits)
NO_LIMITS = RunLimits()
