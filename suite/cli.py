"""The ``wcr`` command line: parser building, dispatch, and the mapping of errors to exit statuses.

The commands themselves live in :mod:`suite.commands` (one module per family, each with a ``COMMANDS``
list); this file only collects them.  Why so little here: a command's code is found under its name,
and the exit-status contract below is stated once for all of them.

Exit statuses: 0 = success (``spec``: nothing failed), 1 = a failure the command reports (``spec``
failures, a divergence, a host that failed), 2 = bad input (missing file, bad argument, unknown export,
malformed/invalid module, a run that tested nothing, a module or snapshot beyond the resource limits,
the host out of memory: one line on stderr, never a traceback), 3 = the input needs a feature wcr does
not support, 4 = ``run``/``restore`` stopped by a limit the user set (``--fuel``/``--timeout``; one line
on stderr names the limit, the JSON on stdout has ``"stopped"``).  A bug in wcr is one line too (exit 1), with the traceback
only under ``WCR_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from typing import List, Optional, Sequence, Tuple

from suite import commands
from suite.commands import EXIT_UNSUPPORTED, EXIT_USAGE, Command, UnsupportedInput, UsageError
from suite.commands._limits import add_store_limit_flags, apply_store_limits
from vm.errors import ResourceLimit

__all__ = ["all_commands", "build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors in one line with exit code 2 (its default prints usage too)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"wcr: {message}\n")


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("wcr")
    except Exception:
        return "0+unknown"


def all_commands() -> List[Command]:
    """Every ``suite.commands.*`` module's ``COMMANDS`` rows, in module-name order."""
    rows: List[Command] = []
    for mod in sorted(m.name for m in pkgutil.iter_modules(commands.__path__)):
        if not mod.startswith("_"):
            rows.extend(importlib.import_module(f"suite.commands.{mod}").COMMANDS)
    return rows


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="wcr", description="WebAssembly checkpoint/restore conformance suite")
    parser.add_argument("--version", action="version", version=f"wcr {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, help_, add, run in all_commands():
        p = sub.add_parser(name, help=help_, description=help_)
        add(p)
        add_store_limit_flags(p)
        p.set_defaults(_run=run)
    return parser


def printable(message: str) -> str:
    """One line that a terminal shows as it is: control characters from modules, snapshots, reports
    or file names are escaped (``\\n``, ``\\x1b``), never interpreted."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


def _error(message: str) -> None:
    print(f"wcr: {printable(message)}", file=sys.stderr)


def _split_program_args(argv: Sequence[str]) -> Tuple[List[str], Optional[List[str]]]:
    """``wcr … -- ARGS``: (wcr's own arguments, the program's arguments after the first ``--`` or None).
    Why here: argparse cannot give a command both its positionals and everything after ``--``."""
    argv = list(argv)
    if "--" not in argv:
        return argv, None
    i = argv.index("--")
    return argv[:i], argv[i + 1:]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    own, program_args = _split_program_args(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(own)
    if program_args is not None:
        if not getattr(args, "takes_program_args", False):
            parser.error("arguments after -- are a WASI program's (e.g. wcr run PROGRAM.wasm --wasi -- ARGS)")
        args.program_args = program_args
    if getattr(args, "_run", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        with apply_store_limits(args):
            return int(args._run(args))
    except (UsageError, ResourceLimit) as e:
        _error(str(e))
        return EXIT_USAGE
    except UnsupportedInput as e:
        _error(str(e))
        return EXIT_UNSUPPORTED
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except MemoryError:  # the host ran out: a limit set too high for this machine, never a traceback
        _error("out of memory (this machine cannot provide what the limits allow: lower --max-memory-pages "
               "or --max-table-elements)")
        return EXIT_USAGE
    except OSError as e:  # an output path that cannot be written, a vanished input...
        _error(f"{e.strerror or e}: {e.filename}" if e.filename else str(e))
        return EXIT_USAGE
    except Exception as e:  # a bug in wcr: one line, the traceback only on request
        if os.environ.get("WCR_DEBUG"):
            raise
        _error(f"internal error: {type(e).__name__}: {e} (set WCR_DEBUG=1 for the traceback)")
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
