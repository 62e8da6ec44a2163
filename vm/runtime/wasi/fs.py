"""The in-memory filesystem of a WASI program: inodes (files, directories, symlinks), sandboxed path
resolution, loading a host directory and writing it back, and the canonical files digest.

Why in memory: the files are program state that a checkpoint must carry and a restore on another
machine must recreate; keeping them as plain data makes that exact and keeps the host's real files out
of reach.  No path a program passes can name anything outside the tree of the directory fd it is
resolved against (every directory fd is a sandbox root, as in wasmtime's cap-std): ``..`` above it, an
absolute path, or a symlink whose target does either fails with ``EPERM``, which is what wasmtime 50
returns for each of these (checked with ``suite/tests/test_wasi_wasmtime.py``); a chain of more than
:data:`~.constants.MAX_SYMLINKS` symlinks fails with ``ELOOP``.

Every byte of every file is charged against ``limits.max_fs_bytes`` (a write beyond it: ``ENOSPC``; a
size beyond it: ``EFBIG``), so no program, host directory or snapshot makes the host allocate more.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from ...errors import ResourceLimit
from .constants import (
    EEXIST,
    EFBIG,
    EILSEQ,
    EINVAL,
    EISDIR,
    ELOOP,
    ENAMETOOLONG,
    ENOENT,
    ENOSPC,
    ENOTDIR,
    ENOTEMPTY,
    EPERM,
    MAX_PATH,
    MAX_SYMLINKS,
    WasiError,
)

FILE, DIR, SYMLINK = "file", "dir", "symlink"
INODE_KINDS = (FILE, DIR, SYMLINK)


@dataclass
class Inode:
    """A file (``data``), directory (``entries``: name → inode number; ``parent``: the directory it is
    in, itself for a preopen root) or symlink (``target``), with its timestamps in ns.  A file's or
    symlink's ``parent`` is the directory it was created in (informative only: a hard-linked file is in
    several)."""

    kind: str
    data: bytearray = field(default_factory=bytearray)
    entries: Dict[str, int] = field(default_factory=dict)
    target: str = ""
    parent: int = -1
    atim: int = 0
    mtim: int = 0
    ctim: int = 0


@dataclass
class Loc:
    """Where a path leads: the directory holding the final entry (``parent``), the entry's ``name``
    (``"."``/``".."`` when the path ends so), and the inode it names (None: no such entry), after
    following a final symlink when asked.  ``must_dir``: the path ended with ``/``."""

    parent: int
    name: str
    ino: Optional[int]
    must_dir: bool


def _err(errno: int) -> WasiError:
    return WasiError(errno)


class MemFS:
    """Inodes by number (``inodes``), ``next_ino`` for the next one, ``roots``: guest path → inode of
    each preopened directory.  Every byte stored is charged against ``limits.max_fs_bytes``.  ``clock``
    gives the timestamps of changes (the WASI state's clock, read without advancing it); it is not
    state.  The bytes in use are counted on first need, so a restore that fills ``inodes`` directly
    needs no bookkeeping (after replacing inodes of a MemFS already in use, call :meth:`recount`)."""

    def __init__(self, limits: Any = None):
        self.limits = limits
        self.inodes: Dict[int, Inode] = {}
        self.next_ino = 1
        self.roots: Dict[str, int] = {}
        self.clock: Callable[[], int] = lambda: 0
        self._used: Optional[int] = None

    # -- accounting --------------------------------------------------------------------------
    @property
    def max_bytes(self) -> int:
        lim = getattr(self.limits, "max_fs_bytes", None)
        return lim if lim is not None else 256 << 20

    @property
    def used(self) -> int:
        """Bytes of all files (and symlink targets) together."""
        if self._used is None:
            self.recount()
        assert self._used is not None
        return self._used

    def recount(self) -> None:
        self._used = sum(len(n.data) + len(n.target) for n in self.inodes.values())

    def resize(self, node: Inode, size: int, errno: int = EFBIG) -> None:
        """Truncate or zero-extend a file to ``size`` bytes, charging the growth (beyond the limit:
        ``errno``, nothing allocated)."""
        old = len(node.data)
        if size > old and self.used + size - old > self.max_bytes:
            raise _err(errno)
        if size > old:
            node.data.extend(bytes(size - old))
        else:
            del node.data[size:]
        self._used = self.used + size - old

    def write(self, node: Inode, offset: int, data: bytes) -> None:
        """Write ``data`` at ``offset`` (zero-filling a gap); beyond the limit: ``ENOSPC``."""
        end = offset + len(data)
        if end > len(node.data):
            self.resize(node, end, ENOSPC)
        node.data[offset:end] = data
        node.mtim = node.ctim = self.clock()

    # -- inodes ------------------------------------------------------------------------------
    def new(self, kind: str, parent: int) -> int:
        ino = self.next_ino
        self.next_ino += 1
        now = self.clock()
        self.inodes[ino] = Inode(kind, parent=parent, atim=now, mtim=now, ctim=now)
        return ino

    def node(self, ino: int) -> Inode:
        return self.inodes[ino]

    def mkroot(self, guest: str) -> int:
        """A new empty directory preopened as ``guest`` (its own parent)."""
        ino = self.new(DIR, -1)
        self.inodes[ino].parent = ino
        self.roots[guest] = ino
        return ino

    def nlink(self, ino: int) -> int:
        """How many directory entries name ``ino``; a directory has 2 + its subdirectories, as on Unix
        (its entry, its ``.``, each child's ``..``)."""
        node = self.inodes[ino]
        if node.kind == DIR:
            return 2 + sum(1 for x in node.entries.values() if self.inodes[x].kind == DIR)
        return sum(1 for d in self.inodes.values() if d.kind == DIR for x in d.entries.values() if x == ino)

    def drop_if_orphan(self, ino: int, in_use: Any = ()) -> None:
        """Forget ``ino`` (and uncharge its bytes) once no entry names it and no fd (``in_use``) holds it."""
        node = self.inodes.get(ino)
        if node is None or ino in in_use or ino in self.roots.values():
            return
        if any(x == ino for d in self.inodes.values() if d.kind == DIR for x in d.entries.values()):
            return
        self._used = self.used - len(node.data) - len(node.target)
        del self.inodes[ino]

    # -- path resolution ---------------------------------------------------------------------
    def locate(self, dir_ino: int, path: bytes, follow: bool) -> Loc:
        """Resolve ``path`` relative to the directory ``dir_ino``, the sandbox root (see the module
        docstring): every component but the last is followed; the last only when ``follow`` (or the
        path ends with ``/``), and then the :class:`Loc` is where the symlink leads (a dangling one:
        the entry it names, which ``O_CREAT`` creates, as wasmtime does)."""
        return self._locate([dir_ino], _decode(path), follow, [MAX_SYMLINKS])

    def _locate(self, stack: List[int], text: str, follow: bool, budget: List[int]) -> Loc:
        if text.startswith("/"):
            raise _err(EPERM)
        must_dir = text.endswith("/")
        parts = text.rstrip("/").split("/")
        stack = self._walk(stack, parts[:-1], budget)
        name = parts[-1]
        if self.inodes[stack[-1]].kind != DIR:
            raise _err(ENOTDIR)
        if name in (".", ".."):
            stack = self._walk(stack, [name], budget)
            return Loc(stack[-1], name, stack[-1], must_dir)
        ino = self.inodes[stack[-1]].entries.get(name)
        if ino is not None and (follow or must_dir) and self.inodes[ino].kind == SYMLINK:
            target = self.inodes[ino].target
            budget[0] -= 1
            if budget[0] < 0:
                raise _err(ELOOP)
            if not target:
                raise _err(ENOENT)
            loc = self._locate(stack, target + ("/" if must_dir else ""), True, budget)
            return loc
        if must_dir and ino is not None and self.inodes[ino].kind != DIR:
            raise _err(ENOTDIR)
        return Loc(stack[-1], name, ino, must_dir)

    def lookup(self, dir_ino: int, path: bytes, follow: bool) -> int:
        """The inode ``path`` names (``ENOENT`` when there is none)."""
        loc = self.locate(dir_ino, path, follow)
        if loc.ino is None:
            raise _err(ENOENT)
        return loc.ino

    def _walk(self, stack: List[int], parts: List[str], budget: List[int]) -> List[int]:
        """``stack`` (sandbox root first) extended by ``parts``, every symlink followed."""
        for c in parts:
            if c in ("", "."):
                continue
            if c == "..":
                if len(stack) == 1:
                    raise _err(EPERM)
                stack = stack[:-1]
                continue
            cur = self.inodes[stack[-1]]
            if cur.kind != DIR:
                raise _err(ENOTDIR)
            ino = cur.entries.get(c)
            if ino is None:
                raise _err(ENOENT)
            node = self.inodes[ino]
            stack = self._follow(stack, node.target, budget) if node.kind == SYMLINK else stack + [ino]
        return stack

    def _follow(self, stack: List[int], target: str, budget: List[int]) -> List[int]:
        budget[0] -= 1
        if budget[0] < 0:
            raise _err(ELOOP)
        if target.startswith("/"):
            raise _err(EPERM)
        if not target:
            raise _err(ENOENT)
        return self._walk(stack, target.split("/"), budget)

    # -- changes -----------------------------------------------------------------------------
    def link_entry(self, parent: int, name: str, ino: int) -> None:
        d = self.inodes[parent]
        d.entries[name] = ino
        d.mtim = d.ctim = self.clock()

    def create(self, loc: Loc, kind: str, target: str = "") -> int:
        """A new ``kind`` inode named by ``loc`` (``EEXIST`` when the name is taken)."""
        if loc.ino is not None or loc.name in (".", "..") or loc.name in self.inodes[loc.parent].entries:
            raise _err(EEXIST)
        if kind == SYMLINK:
            if self.used + len(target) > self.max_bytes:
                raise _err(ENOSPC)
            self._used = self.used + len(target)
        ino = self.new(kind, loc.parent)
        self.inodes[ino].target = target
        self.link_entry(loc.parent, loc.name, ino)
        return ino

    def remove(self, loc: Loc, want_dir: bool) -> int:
        """Remove the entry ``loc`` names (a directory when ``want_dir``, which must be empty), the
        inode stays until :meth:`drop_if_orphan`."""
        if loc.name in (".", ".."):
            raise _err(EINVAL if want_dir else EISDIR)
        ino = self.inodes[loc.parent].entries.get(loc.name)
        if ino is None:
            raise _err(ENOENT)
        node = self.inodes[ino]
        if want_dir:
            if node.kind != DIR:
                raise _err(ENOTDIR)
            if node.entries:
                raise _err(ENOTEMPTY)
        elif node.kind == DIR:
            raise _err(EISDIR)
        elif loc.must_dir:
            raise _err(ENOTDIR)
        del self.inodes[loc.parent].entries[loc.name]
        self.inodes[loc.parent].mtim = self.clock()
        return ino

    def rename(self, src: Loc, dst: Loc) -> Optional[int]:
        """Move the entry ``src`` to ``dst`` (replacing a file, or an empty directory, there): the inode
        it replaced (for :meth:`drop_if_orphan`), or None."""
        if src.name in (".", "..") or dst.name in (".", ".."):
            raise _err(EINVAL if src.name in (".", "..") else EEXIST)
        ino = self.inodes[src.parent].entries.get(src.name)
        if ino is None:
            raise _err(ENOENT)
        node = self.inodes[ino]
        old = self.inodes[dst.parent].entries.get(dst.name)
        if node.kind != DIR and (src.must_dir or dst.must_dir):
            raise _err(ENOTDIR)
        if old == ino:
            return None
        if old is not None:
            onode = self.inodes[old]
            if node.kind == DIR and onode.kind != DIR:
                raise _err(ENOTDIR)
            if node.kind != DIR and onode.kind == DIR:
                raise _err(EISDIR)
            if onode.kind == DIR and onode.entries:
                raise _err(ENOTEMPTY)
        if node.kind == DIR and self._within(dst.parent, ino):
            raise _err(EINVAL)
        del self.inodes[src.parent].entries[src.name]
        self.link_entry(dst.parent, dst.name, ino)
        if node.kind == DIR:
            node.parent = dst.parent
        return old

    def _within(self, ino: int, ancestor: int) -> bool:
        """Is directory ``ino`` ``ancestor`` or inside it?"""
        seen = set()
        while ino not in seen:
            if ino == ancestor:
                return True
            seen.add(ino)
            ino = self.inodes[ino].parent
        return False

    # -- the tree as data --------------------------------------------------------------------
    def walk(self, ino: int, prefix: str) -> List[Tuple[str, str, bytes]]:
        out: List[Tuple[str, str, bytes]] = []
        for name in sorted(self.inodes[ino].entries):
            child = self.inodes[ino].entries[name]
            node = self.inodes[child]
            path = f"{prefix}/{name}"
            if node.kind == DIR:
                out.append((path, DIR, b""))
                out.extend(self.walk(child, path))
            else:
                out.append((path, node.kind, bytes(node.data) if node.kind == FILE else _encode(node.target)))
        return out

    def listing(self) -> List[Tuple[str, str, bytes]]:
        """(guest path, kind, contents or link target) of every entry under every root, sorted."""
        out: List[Tuple[str, str, bytes]] = []
        for guest in sorted(self.roots):
            out.append((guest, DIR, b""))
            out.extend(self.walk(self.roots[guest], guest.rstrip("/") if guest != "/" else ""))
        return sorted(out)

    def digest(self) -> str:
        """sha256 hex of the tree under every root by path (kind, contents, symlink target; not inode
        numbers or times): what every runtime's files are compared by."""
        h = hashlib.sha256()
        for path, kind, body in self.listing():
            p = _encode(path)
            h.update(len(p).to_bytes(4, "little") + p + kind.encode() + len(body).to_bytes(8, "little"))
            h.update(body)
        return h.hexdigest()

    # -- host directories --------------------------------------------------------------------
    def load_dir(self, host_path: str, guest: str) -> int:
        """Preopen a copy of the host directory ``host_path`` as ``guest``: regular files, directories
        and symlinks (as links, never followed); other kinds are skipped.  More bytes than
        ``max_fs_bytes`` allows is a :class:`~vm.errors.ResourceLimit` naming the directory."""
        if not os.path.isdir(host_path):
            raise NotADirectoryError(20, "not a directory (--dir)", host_path)
        root = self.mkroot(guest)
        self._load(host_path, root, host_path)
        return root

    def _load(self, host: str, ino: int, top: str) -> None:
        with os.scandir(host) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            name = e.name
            if e.is_symlink():
                target = os.readlink(e.path)
                self._charge_load(len(target), top)
                child = self.new(SYMLINK, ino)
                self.inodes[child].target = target
            elif e.is_dir():
                child = self.new(DIR, ino)
                self._load(e.path, child, top)
            elif e.is_file():
                self._charge_load(e.stat().st_size, top)
                child = self.new(FILE, ino)
                with open(e.path, "rb") as f:
                    self.inodes[child].data = bytearray(f.read(self.max_bytes + 1))
            else:
                continue
            self.inodes[ino].entries[name] = child
        self.recount()
        if self.used > self.max_bytes:
            self._charge_load(0, top)

    def _charge_load(self, n: int, top: str) -> None:
        self._used = self.used + n
        if self._used > self.max_bytes:
            raise ResourceLimit(f"--dir {top}: the directory holds more than {self.max_bytes} bytes "
                                f"(the WASI filesystem's limit; --max-fs-bytes)")

    def write_back(self, guest: str, host_path: str) -> None:
        """Make the host directory ``host_path`` hold what the root ``guest`` holds (what ``wasmtime
        run`` leaves in a preopened directory): files written, directories and symlinks created, entries
        the program removed removed.  Host symlinks are replaced, never followed."""
        _mirror(self, self.roots[guest], host_path)


def _mirror(fs: MemFS, ino: int, host: str) -> None:
    want = fs.inodes[ino].entries
    for name in sorted(os.listdir(host)):
        if name not in want or not _same_kind(fs.inodes[want[name]].kind, os.path.join(host, name)):
            _remove_host(os.path.join(host, name))
    for name in sorted(want):
        node = fs.inodes[want[name]]
        path = os.path.join(host, name)
        if node.kind == DIR:
            if not os.path.isdir(path):
                os.mkdir(path)
            _mirror(fs, want[name], path)
        elif node.kind == SYMLINK:
            if not os.path.islink(path) or os.readlink(path) != node.target:
                if os.path.lexists(path):
                    os.unlink(path)
                os.symlink(node.target, path)
        else:
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    if f.read(len(node.data) + 1) == node.data:
                        continue
            with open(path, "wb") as f:
                f.write(node.data)


def _same_kind(kind: str, path: str) -> bool:
    if os.path.islink(path):
        return kind == SYMLINK
    return kind == (DIR if os.path.isdir(path) else FILE if os.path.isfile(path) else "")


def _remove_host(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        for name in os.listdir(path):
            _remove_host(os.path.join(path, name))
        os.rmdir(path)
    else:
        os.unlink(path)


def _decode(path: bytes) -> str:
    """A guest path as text (WASI paths are UTF-8: anything else is ``EILSEQ``)."""
    if not path:
        raise _err(ENOENT)
    if len(path) > MAX_PATH:
        raise _err(ENAMETOOLONG)
    if b"\0" in path:
        raise _err(EINVAL)
    try:
        return path.decode("utf-8")
    except UnicodeDecodeError:
        raise _err(EILSEQ) from None


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")
