"""The in-memory filesystem of a WASI program: inodes (files, directories, symlinks), sandboxed path
resolution, loading a host directory and writing it back, and the canonical files digest.

Why in memory: the files are program state that a checkpoint must carry and a restore on another
machine must recreate; keeping them as plain data makes that exact and keeps the host's real files out
of reach (no path a program passes can name anything outside the tree: ``..`` above a preopen, an
absolute path or a symlink that leads out fails with ``ENOTCAPABLE``/``EPERM`` as the spec says).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Tuple

FILE, DIR, SYMLINK = "file", "dir", "symlink"


@dataclass
class Inode:
    """A file (``data``), directory (``entries``: name → inode number; ``parent``: the directory it is
    in, itself for a preopen root) or symlink (``target``), with its timestamps in ns."""

    kind: str
    data: bytearray = field(default_factory=bytearray)
    entries: Dict[str, int] = field(default_factory=dict)
    target: str = ""
    parent: int = -1
    atim: int = 0
    mtim: int = 0
    ctim: int = 0


class MemFS:
    """Inodes by number (``inodes``), ``next_ino`` for the next one, ``roots``: guest path → inode of
    each preopened directory.  Every byte stored is charged against ``limits.max_fs_bytes``."""

    def __init__(self, limits: Any = None):
        self.limits = limits
        self.inodes: Dict[int, Inode] = {}
        self.next_ino = 1
        self.roots: Dict[str, int] = {}

    def digest(self) -> str:
        """sha256 hex of the tree under every root by path (kind, contents, symlink target; not inode
        numbers or times): what every runtime's files are compared by."""
        raise NotImplementedError  # helper wasi

    def listing(self) -> List[Tuple[str, str, bytes]]:
        """(guest path, kind, contents or link target) of every entry under every root, sorted."""
        raise NotImplementedError  # helper wasi
