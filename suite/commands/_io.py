"""Reading the commands' input files and writing their output files, with the one-line errors of the
CLI contract (:class:`suite.commands.UsageError`): every command that takes a module, a snapshot or an
output path says "no such file" / "cannot read" / "cannot write" the same way."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Dict, Sequence, Tuple, Union

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


def read_snapshot(path: str, module_paths: Sequence[str]) -> Tuple[bytes, Any, Dict[str, bytes]]:
    """A snapshot file and the ``--module`` files it needs: ``(bytes, decoded State, {sha256: bytes}
    of exactly its modules)``.  A bad snapshot or a missing module is bad input (restore onto another
    module is refused)."""
    from vm.snapshot import SnapshotError, decode

    blob = read_input(path, "snapshot file")
    modules = read_modules(module_paths)
    try:
        state = decode(blob)
    except SnapshotError as e:
        raise UsageError(f"{path}: bad snapshot: {e}") from None
    missing = [sha for sha in state.modules if sha not in modules]
    if missing:
        raise UsageError(f"{path}: needs module sha256 {missing[0]}, which none of the --module files is "
                         "(restore onto another module is refused)")
    return blob, state, {sha: modules[sha] for sha in state.modules}


def write_output(path: str, data: Union[bytes, str]) -> None:
    """Write an output file (text as UTF-8); a path that cannot be written is bad input."""
    try:
        if isinstance(data, str):
            Path(path).write_text(data, encoding="utf-8")
        else:
            Path(path).write_bytes(data)
    except OSError as e:
        raise UsageError(f"{path}: cannot write: {e.strerror}") from None
