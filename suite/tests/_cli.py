"""Calling the ``wcr`` command line in-process from tests: one helper for every test file."""

from __future__ import annotations

from typing import Any, Tuple

from suite.cli import main


def wcr(capsys: Any, *argv: str) -> Tuple[int, str, str]:
    """``(exit status, stdout, stderr)`` of ``wcr ARGV`` (argparse's own exits included)."""
    try:
        code = main(list(argv))
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err
