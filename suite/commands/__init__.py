"""The ``wcr`` subcommands, one module per family, and the contract they share with :mod:`suite.cli`.

Each public module here defines ``COMMANDS``, a list of :data:`Command` rows ``(name, help,
add_arguments, run)``; the CLI collects them all, in module-name order (modules whose name starts with
``_`` are helpers, not commands).  ``run(args) -> int`` returns the exit status and signals bad input by
raising :class:`UsageError` (one line on stderr, exit 2) or :class:`UnsupportedInput` (exit 3).

Why the contract lives here and not in ``suite/cli.py``: the commands must not import the module that
dispatches them (no file cycles), so both import it from this package.
"""

from __future__ import annotations

import argparse
from typing import Callable, Tuple

#: exit statuses: success (``spec``: nothing failed); ``spec`` had failures, a divergence, a host that
#: failed; bad input; the input needs a Wasm feature wcr does not support; ``run``/``restore``: a limit
#: the user set (``--fuel``/``--timeout``) stopped the run before it ended
EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_UNSUPPORTED, EXIT_STOPPED = 0, 1, 2, 3, 4

Command = Tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]


class UsageError(Exception):
    """Bad input from the user (missing file, bad argument, malformed module ...): printed as one line,
    exit 2, never a traceback."""


class UnsupportedInput(Exception):
    """Valid input that needs a feature wcr does not support: printed as one line, exit 3."""
