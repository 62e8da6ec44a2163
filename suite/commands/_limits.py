"""The limit flags of the commands, with the same checks and wording everywhere, in one place.

Two kinds, both the caller's settings (never a snapshot's or a report's):

- **store limits** (``--max-memory-pages``, ``--max-table-elements``, ``--max-heap-fields``,
  ``--max-call-depth``) on every
  command: :class:`vm.runtime.limits.StoreLimits`, configured for the whole process (and, through the
  environment, for the child hosts it starts), so instantiation, growth, restore and snapshot
  decompression all obey the same numbers;
- **run limits** (``--fuel N``, ``--timeout S``) on the commands that run code (``run``, ``restore``,
  ``spec`` per command, ``fuzz`` per trial): :class:`vm.exec.budget.RunLimits`; a run they stop is
  *stopped* (:data:`vm.errors.STOP_KINDS`), never trapped.
"""

from __future__ import annotations

import argparse
from contextlib import contextmanager
from typing import Iterator, Optional

from suite.commands import UsageError
from vm.exec.budget import RunLimits
from vm.runtime.limits import DEFAULT_LIMITS, StoreLimits, configure, current

__all__ = ["MAX_SECONDS", "add_limit_flags", "add_store_limit_flags", "apply_store_limits", "limits_of"]

#: the largest --timeout (about four months; a clock must stay a finite number)
MAX_SECONDS = 1e7


# -- store limits ------------------------------------------------------------------------------
def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {n}")
    return n


def add_store_limit_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("resource limits (of this machine's runs and restores, never a snapshot's)")
    g.add_argument("--max-memory-pages", type=_positive, default=DEFAULT_LIMITS.max_memory_pages, metavar="N",
                   help="64 KiB pages of all memories of a store together "
                        f"(default {DEFAULT_LIMITS.max_memory_pages} = 1 GiB)")
    g.add_argument("--max-table-elements", type=_positive, default=DEFAULT_LIMITS.max_table_elements,
                   metavar="N", help=f"elements of all tables of a store together "
                                     f"(default {DEFAULT_LIMITS.max_table_elements})")
    g.add_argument("--max-heap-fields", type=_positive, default=DEFAULT_LIMITS.max_heap_fields, metavar="N",
                   help=f"fields of all GC objects of a store together, an array's length counting as its "
                        f"fields (default {DEFAULT_LIMITS.max_heap_fields})")
    g.add_argument("--max-fs-bytes", type=_positive, default=DEFAULT_LIMITS.max_fs_bytes, metavar="N",
                   help=f"bytes of all files of a WASI program's filesystem together "
                        f"(default {DEFAULT_LIMITS.max_fs_bytes} = 256 MiB)")
    g.add_argument("--max-call-depth", type=_positive, default=DEFAULT_LIMITS.max_call_depth, metavar="N",
                   help=f"Wasm frames of one invocation (default {DEFAULT_LIMITS.max_call_depth})")


@contextmanager
def apply_store_limits(args: argparse.Namespace) -> Iterator[None]:
    """Make the parsed flags this process's limits (and its children's) while the command runs;
    the previous ones come back after (``main`` is also called in-process, e.g. by tests)."""
    previous = current()
    configure(StoreLimits(max_memory_pages=args.max_memory_pages, max_table_elements=args.max_table_elements,
                     max_call_depth=args.max_call_depth, max_heap_fields=args.max_heap_fields,
                          max_fs_bytes=args.max_fs_bytes))
    try:
        yield
    finally:
        configure(previous)


# -- run limits --------------------------------------------------------------------------------
def add_limit_flags(p: argparse.ArgumentParser, per: str, default_timeout: Optional[float] = None,
                    fuel_default: str = "no limit", timeout_default: str = "") -> None:
    """Add ``--fuel`` and ``--timeout``; ``per`` says what one limit covers ("run", "command", "trial");
    ``*_default`` name a default the command applies itself (its help says so)."""
    p.add_argument("--fuel", type=int, metavar="N",
                   help=f"stop after N retired instructions per {per} (default: {fuel_default})")
    shown = timeout_default or (f"{default_timeout:g}" if default_timeout is not None else "no limit")
    p.add_argument("--timeout", type=float, default=default_timeout, metavar="S",
                   help=f"stop after S seconds of wall time per {per} (default: {shown}; 0 = no limit)")


def limits_of(args: argparse.Namespace) -> RunLimits:
    """The flags as :class:`vm.exec.budget.RunLimits`; a negative fuel, a negative or endless timeout is
    bad input."""
    fuel, seconds = args.fuel, args.timeout
    if fuel is not None and fuel < 0:
        raise UsageError(f"--fuel {fuel}: must be at least 0")
    if seconds is not None and not 0 <= seconds <= MAX_SECONDS:
        raise UsageError(f"--timeout {seconds:g}: must be between 0 and {MAX_SECONDS:g} seconds")
    return RunLimits(fuel, seconds or None)
