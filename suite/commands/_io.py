"""Reading the commands' input files and writing their output files, with the one-line errors of the
CLI contract (:class:`suite.commands.UsageError`): every command that takes a module, a snapshot or an
output path says "no such file" / "cannot read" / "cannot write" the same way."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Dict, Sequence, Union

from suite.commands import UsageError


def read_input(path: str, what: str = "file") -> bytes:
    """The bytes of ``path``; a missing or unreadable file is bad input naming ``what`` it should be."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{path}: no such {what}")
    try:
        return p.read_bytes()
    except OSError as e:
        raise UsageError(f"{path}: cannot read: {e.strerror}") from None


def read_modules(paths: Sequence[str]) -> Dict[str, bytes]:
    """``--module`` files keyed by sha256 hex: the form a snapshot names its modules in."""
    modules: Dict[str, bytes] = {}
    for path in paths:
        data = read_input(path, "module file")
        modules[hashlib.sha256(data).hexdigest()] = data
    return modules


def write_output(path: str, data: Union[bytes, str]) -> None:
    """Write an output file (text as UTF-8); a path that cannot be written is bad input."""
    try:
        if isinstance(data, str):
            Path(path).write_text(data, encoding="utf-8")
        else:
            Path(path).write_bytes(data)
    except OSError as e:
        raise UsageError(f"{path}: cannot write: {e.strerror}") from None
