"""The ``path_*`` functions of WASI preview 1: open, create and remove directories, unlink, rename,
links and symlinks, stat and times, each resolved by :meth:`.fs.MemFS.locate` relative to a directory
fd, the sandbox root (see :mod:`.fs` for the escape rules: ``EPERM`` like wasmtime 50).
"""

from __future__ import annotations

from typing import Any, Callable, Dict

from .constants import (
    EBADF,
    EEXIST,
    EINVAL,
    EISDIR,
    ELOOP,
    ENOENT,
    ENOTDIR,
    EPERM,
    ESUCCESS,
    FDFLAG_APPEND,
    FDFLAGS_ALL,
    LOOKUP_SYMLINK_FOLLOW,
    O_ALL,
    O_CREAT,
    O_DIRECTORY,
    O_EXCL,
    O_TRUNC,
    R_FD_WRITE,
    RIGHTS_DIR,
    RIGHTS_FILE,
    WasiError,
)
from .fdops import filestat, set_times
from .fs import DIR as DIR_INODE
from .fs import FILE as FILE_INODE
from .fs import SYMLINK, Loc
from .guest import Guest
from .state import DIR, FILE, FdEntry, WasiState

__all__ = ["FUNCTIONS"]


def _dir(st: WasiState, fd: int) -> int:
    """The inode of directory fd ``fd`` (a file fd: ``ENOTDIR``; a stream or none: ``EBADF``)."""
    e = st.fd(fd)
    if e.kind == FILE:
        raise WasiError(ENOTDIR)
    if e.kind != DIR:
        raise WasiError(EBADF)
    return e.ino


def _path(st: WasiState, ptr: int, n: int) -> bytes:
    return Guest(st.memory).read(ptr, n)


def _locate(st: WasiState, fd: int, ptr: int, n: int, follow: bool) -> Loc:
    dir_ino = _dir(st, fd)
    return st.fs.locate(dir_ino, _path(st, ptr, n), follow)


def path_open(st: WasiState, fd: int, dirflags: int, ptr: int, n: int, oflags: int, base: int,
              inheriting: int, fdflags: int, fd_ptr: int) -> int:
    if oflags & ~O_ALL or fdflags & ~FDFLAGS_ALL or dirflags & ~LOOKUP_SYMLINK_FOLLOW:
        raise WasiError(EINVAL)
    if oflags & O_DIRECTORY and oflags & (O_CREAT | O_TRUNC):
        raise WasiError(EINVAL)
    g = Guest(st.memory)
    g.check(fd_ptr, 4)
    loc = _locate(st, fd, ptr, n, bool(dirflags & LOOKUP_SYMLINK_FOLLOW))
    ino = loc.ino
    if ino is None:
        if not oflags & O_CREAT:
            raise WasiError(ENOENT)
        if loc.must_dir:
            raise WasiError(EISDIR)
        ino = st.fs.create(loc, FILE_INODE)
    else:
        if oflags & O_CREAT and oflags & O_EXCL:
            raise WasiError(EEXIST)
        ino = _existing(st, ino, loc, oflags, dirflags, base)
    node = st.fs.node(ino)
    if node.kind == DIR_INODE:
        entry = FdEntry(DIR, ino, None, base & RIGHTS_DIR, inheriting & (RIGHTS_DIR | RIGHTS_FILE), fdflags)
    else:
        if oflags & O_TRUNC:
            st.fs.resize(node, 0)
            node.mtim = node.ctim = st.fs_time()
        entry = FdEntry(FILE, ino, None, base & RIGHTS_FILE, 0, fdflags)
        if fdflags & FDFLAG_APPEND:
            entry.offset = 0
    g.u32(fd_ptr, st.new_fd(entry))
    return ESUCCESS


def _existing(st: WasiState, ino: int, loc: Loc, oflags: int, dirflags: int, base: int) -> int:
    """Checks for opening an inode that exists: a symlink not followed is ``ELOOP``; a directory
    cannot be created, truncated or opened for writing (``EISDIR``); ``O_DIRECTORY`` wants one."""
    node = st.fs.node(ino)
    if node.kind == SYMLINK:
        raise WasiError(ELOOP)
    if oflags & O_DIRECTORY and node.kind != DIR_INODE:
        raise WasiError(ENOTDIR)
    if node.kind == DIR_INODE and (oflags & (O_CREAT | O_TRUNC) or base & R_FD_WRITE):
        raise WasiError(EISDIR)
    if loc.name in (".", "..") and oflags & O_CREAT:
        raise WasiError(EISDIR)
    del dirflags
    return ino


def path_create_directory(st: WasiState, fd: int, ptr: int, n: int) -> int:
    loc = _locate(st, fd, ptr, n, False)
    if loc.ino is not None or loc.name in st.fs.node(loc.parent).entries:
        raise WasiError(EEXIST)
    st.fs.create(loc, DIR_INODE)
    return ESUCCESS


def path_remove_directory(st: WasiState, fd: int, ptr: int, n: int) -> int:
    loc = _locate(st, fd, ptr, n, False)
    ino = st.fs.remove(loc, True)
    st.fs.drop_if_orphan(ino, st.open_inodes())
    return ESUCCESS


def path_unlink_file(st: WasiState, fd: int, ptr: int, n: int) -> int:
    loc = _locate(st, fd, ptr, n, False)
    ino = st.fs.remove(loc, False)
    st.fs.drop_if_orphan(ino, st.open_inodes())
    return ESUCCESS


def path_rename(st: WasiState, fd: int, old_ptr: int, old_n: int, new_fd: int, new_ptr: int, new_n: int) -> int:
    src = _locate(st, fd, old_ptr, old_n, False)
    dst = _locate(st, new_fd, new_ptr, new_n, False)
    replaced = st.fs.rename(src, dst)
    if replaced is not None:
        st.fs.drop_if_orphan(replaced, st.open_inodes())
    return ESUCCESS


def path_symlink(st: WasiState, old_ptr: int, old_n: int, fd: int, new_ptr: int, new_n: int) -> int:
    target = _path(st, old_ptr, old_n)
    loc = _locate(st, fd, new_ptr, new_n, False)
    try:
        text = target.decode("utf-8")
    except UnicodeDecodeError:
        raise WasiError(EINVAL) from None
    if text.startswith("/"):
        raise WasiError(EPERM)  # a link out of the sandbox is refused when made, as wasmtime does
    if loc.must_dir:
        raise WasiError(ENOENT if loc.ino is None else EEXIST)
    st.fs.create(loc, SYMLINK, text)
    return ESUCCESS


def path_link(st: WasiState, old_fd: int, old_flags: int, old_ptr: int, old_n: int, new_fd: int,
              new_ptr: int, new_n: int) -> int:
    if old_flags & LOOKUP_SYMLINK_FOLLOW:
        raise WasiError(EINVAL)  # wasmtime links the entry itself only
    src = _locate(st, old_fd, old_ptr, old_n, False)
    dst = _locate(st, new_fd, new_ptr, new_n, False)
    ino = src.ino if src.ino is not None else st.fs.node(src.parent).entries.get(src.name)
    if ino is None:
        raise WasiError(ENOENT)
    if st.fs.node(ino).kind == DIR_INODE:
        raise WasiError(EPERM)
    if dst.ino is not None or dst.name in st.fs.node(dst.parent).entries or dst.name in (".", ".."):
        raise WasiError(EEXIST)
    st.fs.link_entry(dst.parent, dst.name, ino)
    return ESUCCESS


def path_readlink(st: WasiState, fd: int, ptr: int, n: int, buf: int, length: int, used_ptr: int) -> int:
    loc = _locate(st, fd, ptr, n, False)
    if loc.ino is None:
        raise WasiError(ENOENT)
    node = st.fs.node(loc.ino)
    if node.kind != SYMLINK or loc.must_dir:
        raise WasiError(EINVAL)
    if node.target.startswith("/"):
        raise WasiError(EPERM)  # wasmtime does not reveal a target outside the sandbox
    raw = node.target.encode("utf-8", "surrogateescape")[:length]
    g = Guest(st.memory)
    g.write(buf, raw)
    g.u32(used_ptr, len(raw))
    return ESUCCESS


def path_filestat_get(st: WasiState, fd: int, flags: int, ptr: int, n: int, buf: int) -> int:
    ino = st.fs.lookup(_dir(st, fd), _path(st, ptr, n), bool(flags & LOOKUP_SYMLINK_FOLLOW))
    Guest(st.memory).write(buf, filestat(st, ino))
    return ESUCCESS


def path_filestat_set_times(st: WasiState, fd: int, flags: int, ptr: int, n: int, atim: int, mtim: int,
                            fst: int) -> int:
    ino = st.fs.lookup(_dir(st, fd), _path(st, ptr, n), bool(flags & LOOKUP_SYMLINK_FOLLOW))
    set_times(st, st.fs.node(ino), atim, mtim, fst)
    return ESUCCESS


FUNCTIONS: Dict[str, Callable[..., Any]] = {
    "path_open": path_open, "path_create_directory": path_create_directory,
    "path_remove_directory": path_remove_directory, "path_unlink_file": path_unlink_file,
    "path_rename": path_rename, "path_symlink": path_symlink, "path_link": path_link,
    "path_readlink": path_readlink, "path_filestat_get": path_filestat_get,
    "path_filestat_set_times": path_filestat_set_times,
}
