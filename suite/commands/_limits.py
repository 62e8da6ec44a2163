"""``--fuel N`` and ``--timeout S``: the same two flags, with the same checks and wording, on every command
that runs code (``run``, ``restore``, ``spec`` per command, ``fuzz`` per trial).  The limits themselves
are :class:`vm.exec.budget.Limits`; a run they stop is *stopped* (:data:`vm.errors.STOP_KINDS`), never
trapped."""

from __future__ import annotations

import argparse
from typing import Optional

from suite.commands import UsageError
from vm.exec.budget import Limits

#: the largest --timeout (about four months; a clock must stay a finite number)
MAX_SECONDS = 1e7


def add_limit_flags(p: argparse.ArgumentParser, per: str, default_timeout: Optional[float] = None,
                    fuel_default: str = "no limit", timeout_default: str = "") -> None:
    """Add ``--fuel`` and ``--timeout``; ``per`` says what one limit covers ("run", "command", "trial");
    ``*_default`` name a default the command applies itself (its help says so)."""
    p.add_argument("--fuel", type=int, metavar="N",
                   help=f"stop after N retired instructions per {per} (default: {fuel_default})")
    shown = timeout_default or (f"{default_timeout:g}" if default_timeout is not None else "no limit")
    p.add_argument("--timeout", type=float, default=default_timeout, metavar="S",
                   help=f"stop after S seconds of wall time per {per} (default: {shown}; 0 = no limit)")


def limits_of(args: argparse.Namespace) -> Limits:
    """The flags as :class:`vm.exec.budget.Limits`; a negative fuel, a negative or endless timeout is
    bad input."""
    fuel, seconds = args.fuel, args.timeout
    if fuel is not None and fuel < 0:
        raise UsageError(f"--fuel {fuel}: must be at least 0")
    if seconds is not None and not 0 <= seconds <= MAX_SECONDS:
        raise UsageError(f"--timeout {seconds:g}: must be between 0 and {MAX_SECONDS:g} seconds")
    return Limits(fuel, seconds or None)
