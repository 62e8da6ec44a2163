"""The resource-limit flags every command shares, and their one mapping to :class:`vm.api.StoreLimits`.

The limits are the caller's settings, never a snapshot's or a report's: the CLI configures them for
the whole process (and, through the environment, for the child hosts it starts), so instantiation,
growth, restore and snapshot decompression all obey the same numbers.
"""

from __future__ import annotations

import argparse
from contextlib import contextmanager
from typing import Iterator

from vm.runtime.limits import DEFAULT_LIMITS, StoreLimits, configure, current

__all__ = ["add_limit_flags", "apply_limits"]


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {n}")
    return n


def add_limit_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("resource limits (of this machine's runs and restores, never a snapshot's)")
    g.add_argument("--max-memory-pages", type=_positive, default=DEFAULT_LIMITS.max_memory_pages, metavar="N",
                   help="64 KiB pages of all memories of a store together "
                        f"(default {DEFAULT_LIMITS.max_memory_pages} = 1 GiB)")
    g.add_argument("--max-table-elements", type=_positive, default=DEFAULT_LIMITS.max_table_elements,
                   metavar="N", help=f"elements of all tables of a store together "
                                     f"(default {DEFAULT_LIMITS.max_table_elements})")
    g.add_argument("--max-call-depth", type=_positive, default=DEFAULT_LIMITS.max_call_depth, metavar="N",
                   help=f"Wasm frames of one invocation (default {DEFAULT_LIMITS.max_call_depth})")


@contextmanager
def apply_limits(args: argparse.Namespace) -> Iterator[None]:
    """Make the parsed flags this process's limits (and its children's) while the command runs;
    the previous ones come back after (``main`` is also called in-process, e.g. by tests)."""
    previous = current()
    configure(StoreLimits(max_memory_pages=args.max_memory_pages, max_table_elements=args.max_table_elements,
                     max_call_depth=args.max_call_depth))
    try:
        yield
    finally:
        configure(previous)
