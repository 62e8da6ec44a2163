"""The ``fd_*`` functions of WASI preview 1: reading, writing and seeking files and the standard
streams, the fd table (close, renumber), stat and flags, preopens and directory listing.

The errno of each error case is the one wasmtime 50 returns (``suite/tests/test_wasi_wasmtime.py``
checks them side by side): a directory fd or a missing fd where a file is wanted is ``EBADF``, seeking a
stream ``ESPIPE``, a negative offset or size ``EINVAL``.  Rights are not a second permission system
(wasmtime no longer enforces them): only reading an fd that cannot read or writing one that cannot
write fails (``EBADF``; truncating it: ``EINVAL``), as with the host's ``O_WRONLY``/``O_RDONLY``
(which fds can: :func:`.pathops.file_rights`).
"""

from __future__ import annotations

from typing import Any, Callable, Dict

from .constants import (
    ADVICE_MAX,
    DIRENT_SIZE,
    EBADF,
    EINVAL,
    ENAMETOOLONG,
    ENOTSUP,
    ESPIPE,
    ESUCCESS,
    FDFLAG_APPEND,
    FDFLAG_NONBLOCK,
    FILESTAT_SIZE,
    FST_ATIM,
    FST_ATIM_NOW,
    FST_MTIM,
    FST_MTIM_NOW,
    FT_DIRECTORY,
    FT_REGULAR_FILE,
    FT_SYMBOLIC_LINK,
    FT_UNKNOWN,
    PREOPENTYPE_DIR,
    R_FD_READ,
    R_FD_WRITE,
    WHENCE_CUR,
    WHENCE_END,
    WHENCE_SET,
    WasiError,
)
from .fs import DIR as DIR_INODE
from .fs import FILE as FILE_INODE
from .fs import Inode
from .guest import Guest, signed64
from .state import DIR, FILE, STDERR, STDIN, STDOUT, FdEntry, WasiState

__all__ = ["FUNCTIONS", "filestat", "filetype", "poll_ready"]

_FILETYPE = {FILE_INODE: FT_REGULAR_FILE, DIR_INODE: FT_DIRECTORY, "symlink": FT_SYMBOLIC_LINK}


def filetype(node: Inode) -> int:
    return _FILETYPE[node.kind]


def _file(st: WasiState, fd: int) -> FdEntry:
    """The entry of ``fd``, which must be an open regular file (streams: ``ESPIPE``; dirs: ``EBADF``)."""
    e = st.fd(fd)
    if e.kind in (STDIN, STDOUT, STDERR):
        raise WasiError(ESPIPE)
    if e.kind != FILE:
        raise WasiError(EBADF)
    return e


def _node(st: WasiState, e: FdEntry) -> Inode:
    return st.fs.node(e.ino)


# -- reading and writing -----------------------------------------------------------------------------
# One call moves the first non-empty buffer of its iovecs only, as wasmtime does (:meth:`Guest.first`):
# the counts a program sees are wasmtime's, and its libc loops for the rest.
def _readable(st: WasiState, fd: int) -> FdEntry:
    e = st.fd(fd)
    if e.kind in (DIR, STDOUT, STDERR):
        raise WasiError(EBADF)
    return e


def _writable(st: WasiState, fd: int) -> FdEntry:
    e = st.fd(fd)
    if e.kind in (DIR, STDIN):
        raise WasiError(EBADF)
    return e


def _rights(e: FdEntry, right: int) -> None:
    """A file opened without ``right`` (``FD_READ``/``FD_WRITE``): ``EBADF``, like ``O_WRONLY``/``O_RDONLY``."""
    if e.kind == FILE and not e.rights_base & right:
        raise WasiError(EBADF)


def fd_read(st: WasiState, fd: int, iovs: int, n: int, nread_ptr: int) -> int:
    e = _readable(st, fd)
    _rights(e, R_FD_READ)
    g = Guest(st.memory)
    buf, want = g.first(iovs, n)
    g.check(nread_ptr, 4)
    if want:
        source = st.stdin if e.kind == STDIN else _node(st, e).data
        data = bytes(source[e.offset:e.offset + want])
        g.write(buf, data)
        e.offset += len(data)
    else:
        data = b""
    g.u32(nread_ptr, len(data))
    return ESUCCESS


def fd_pread(st: WasiState, fd: int, iovs: int, n: int, offset: int, nread_ptr: int) -> int:
    _readable(st, fd)
    e = _file(st, fd)
    _rights(e, R_FD_READ)
    offset = signed64(offset)
    g = Guest(st.memory)
    buf, want = g.first(iovs, n)
    g.check(nread_ptr, 4)
    data = b""
    if want:
        if offset < 0:
            raise WasiError(EINVAL)
        data = bytes(_node(st, e).data[offset:offset + want])
        g.write(buf, data)
    g.u32(nread_ptr, len(data))
    return ESUCCESS


def fd_write(st: WasiState, fd: int, iovs: int, n: int, nwritten_ptr: int) -> int:
    e = _writable(st, fd)
    _rights(e, R_FD_WRITE)
    g = Guest(st.memory)
    buf, length = g.first(iovs, n)
    g.check(nwritten_ptr, 4)  # before anything is written
    if length:
        data = g.read(buf, length)
        if e.kind == FILE:
            node = _node(st, e)
            if e.flags & FDFLAG_APPEND:
                e.offset = len(node.data)
            st.fs.write(node, e.offset, data)
            e.offset += length
        else:
            st.output(1 if e.kind == STDOUT else 2, data)
    g.u32(nwritten_ptr, length)
    return ESUCCESS


def fd_pwrite(st: WasiState, fd: int, iovs: int, n: int, offset: int, nwritten_ptr: int) -> int:
    _writable(st, fd)
    e = _file(st, fd)
    _rights(e, R_FD_WRITE)
    offset = signed64(offset)
    g = Guest(st.memory)
    buf, length = g.first(iovs, n)
    g.check(nwritten_ptr, 4)
    if length:
        if offset < 0:
            raise WasiError(EINVAL)
        node = _node(st, e)
        if e.flags & FDFLAG_APPEND:  # Linux pwrite(2) of an O_APPEND file appends (wasmtime passes that on)
            offset = len(node.data)
        st.fs.write(node, offset, g.read(buf, length))
    g.u32(nwritten_ptr, length)
    return ESUCCESS


def fd_seek(st: WasiState, fd: int, offset: int, whence: int, ptr: int) -> int:
    e = _file(st, fd)
    delta = signed64(offset)
    if whence == WHENCE_SET:
        new = delta
    elif whence == WHENCE_CUR:
        new = e.offset + delta
    elif whence == WHENCE_END:
        new = len(_node(st, e).data) + delta
    else:
        raise WasiError(EINVAL)
    if new < 0 or new >= 1 << 63:
        raise WasiError(EINVAL)
    g = Guest(st.memory)
    g.check(ptr, 8)
    e.offset = new
    g.u64(ptr, new)
    return ESUCCESS


def fd_tell(st: WasiState, fd: int, ptr: int) -> int:
    e = _file(st, fd)
    Guest(st.memory).u64(ptr, e.offset)
    return ESUCCESS


# -- the fd table -----------------------------------------------------------------------------------
def fd_close(st: WasiState, fd: int) -> int:
    e = st.fd(fd)
    del st.fds[fd]
    if e.ino >= 0:
        st.fs.drop_if_orphan(e.ino, st.open_inodes())
    return ESUCCESS


def fd_renumber(st: WasiState, fd: int, to: int) -> int:
    e = st.fd(fd)
    old = st.fd(to)
    if fd == to:
        return ESUCCESS
    st.fds[to] = e
    del st.fds[fd]
    if old.ino >= 0:
        st.fs.drop_if_orphan(old.ino, st.open_inodes())
    return ESUCCESS


def fd_sync(st: WasiState, fd: int) -> int:
    if st.fd(fd).kind != FILE:  # wasmtime syncs files only
        raise WasiError(EBADF)
    return ESUCCESS


def fd_advise(st: WasiState, fd: int, offset: int, length: int, advice: int) -> int:
    if st.fd(fd).kind != FILE:
        raise WasiError(EBADF)
    if advice > ADVICE_MAX or signed64(offset) < 0 or signed64(length) < 0:
        raise WasiError(EINVAL)
    return ESUCCESS


def fd_allocate(st: WasiState, fd: int, offset: int, length: int) -> int:  # noqa: ARG001 - witx
    """Not supported (wasmtime: ``ENOTSUP`` for a file, ``EBADF`` for anything else)."""
    if st.fd(fd).kind != FILE:
        raise WasiError(EBADF)
    raise WasiError(ENOTSUP)


# -- stat and flags ---------------------------------------------------------------------------------
def fd_fdstat_get(st: WasiState, fd: int, ptr: int) -> int:
    e = st.fd(fd)
    ft = FT_UNKNOWN if e.ino < 0 else filetype(_node(st, e))  # wasmtime's streams are of no type
    buf = bytearray(24)
    buf[0] = ft
    buf[2:4] = e.flags.to_bytes(2, "little")
    buf[8:16] = e.rights_base.to_bytes(8, "little")
    buf[16:24] = e.rights_inheriting.to_bytes(8, "little")
    Guest(st.memory).write(ptr, bytes(buf))
    return ESUCCESS


def fd_fdstat_set_flags(st: WasiState, fd: int, flags: int) -> int:
    """A file's ``APPEND``/``NONBLOCK`` (others: ``EINVAL``; a stream or directory: ``EBADF``, as wasmtime)."""
    e = st.fd(fd)
    if e.kind != FILE:
        raise WasiError(EBADF)
    if flags & ~(FDFLAG_APPEND | FDFLAG_NONBLOCK):
        raise WasiError(EINVAL)
    e.flags = flags
    return ESUCCESS


def fd_fdstat_set_rights(st: WasiState, fd: int, base: int, inheriting: int) -> int:  # noqa: ARG001 - witx
    """Not supported (wasmtime: ``ENOTSUP``): rights are not a permission system here (module docstring)."""
    st.fd(fd)
    raise WasiError(ENOTSUP)


def filestat(st: WasiState, ino: int) -> bytes:
    """The 64-byte ``filestat`` of an inode (device 0, the inode number, links, size, times)."""
    node = st.fs.node(ino)
    size = len(node.data) if node.kind == FILE_INODE else len(node.target.encode()) if node.kind == "symlink" else 0
    fields = (0, ino, filetype(node), st.fs.nlink(ino), size, node.atim, node.mtim, node.ctim)
    return b"".join(v.to_bytes(8, "little") for v in fields)


def fd_filestat_get(st: WasiState, fd: int, ptr: int) -> int:
    e = st.fd(fd)
    if e.ino < 0:
        buf = bytearray(FILESTAT_SIZE)
        buf[16] = FT_UNKNOWN
        Guest(st.memory).write(ptr, bytes(buf))
    else:
        Guest(st.memory).write(ptr, filestat(st, e.ino))
    return ESUCCESS


def fd_filestat_set_size(st: WasiState, fd: int, size: int) -> int:
    e = st.fd(fd)
    if e.kind != FILE:
        raise WasiError(EBADF)
    if signed64(size) < 0 or not e.rights_base & R_FD_WRITE:
        raise WasiError(EINVAL)  # a read-only file too (wasmtime)
    node = _node(st, e)
    st.fs.resize(node, size)
    node.mtim = node.ctim = st.fs_time()
    return ESUCCESS


def set_times(st: WasiState, node: Inode, atim: int, mtim: int, flags: int) -> None:
    """``fstflags`` applied to an inode (``*_NOW`` with the explicit flag too: ``EINVAL``)."""
    if flags & ~15 or (flags & FST_ATIM and flags & FST_ATIM_NOW) or (flags & FST_MTIM and flags & FST_MTIM_NOW):
        raise WasiError(EINVAL)
    now = st.fs_time()
    if flags & (FST_ATIM | FST_ATIM_NOW):
        node.atim = atim if flags & FST_ATIM else now
    if flags & (FST_MTIM | FST_MTIM_NOW):
        node.mtim = mtim if flags & FST_MTIM else now
    node.ctim = now


def fd_filestat_set_times(st: WasiState, fd: int, atim: int, mtim: int, flags: int) -> int:
    e = st.fd(fd)
    if e.ino < 0:
        raise WasiError(EBADF)
    set_times(st, _node(st, e), atim, mtim, flags)
    return ESUCCESS


# -- preopens, directories --------------------------------------------------------------------------
def fd_prestat_get(st: WasiState, fd: int, ptr: int) -> int:
    e = st.fd(fd)
    if e.preopen is None:
        raise WasiError(EBADF)
    g = Guest(st.memory)
    g.u32(ptr, PREOPENTYPE_DIR)
    g.u32(ptr + 4, len(e.preopen.encode()))
    return ESUCCESS


def fd_prestat_dir_name(st: WasiState, fd: int, path: int, length: int) -> int:
    e = st.fd(fd)
    if e.preopen is None:
        raise WasiError(EBADF)
    name = e.preopen.encode()
    if length < len(name):
        raise WasiError(ENAMETOOLONG)
    Guest(st.memory).write(path, name)
    return ESUCCESS


def fd_readdir(st: WasiState, fd: int, buf: int, length: int, cookie: int, used_ptr: int) -> int:
    """Entries ``.``, ``..``, then the names in sorted order (wasmtime lists ``.`` and ``..`` first
    too; the rest comes in the host's order there); ``cookie`` is the index of the first entry to
    list, each ``d_next`` the index after it.  Entries are cut at ``length`` (a full buffer tells the
    program to ask again)."""
    e = st.fd(fd)
    if e.kind != DIR:
        raise WasiError(EBADF)
    node = _node(st, e)
    names = [(".", e.ino), ("..", node.parent)] + sorted(node.entries.items())
    out = bytearray()
    for i in range(cookie, len(names)):
        if len(out) >= length:
            break
        name, ino = names[i]
        raw = name.encode("utf-8", "surrogateescape")
        child = st.fs.inodes.get(ino)
        ft = filetype(child) if child is not None else FT_DIRECTORY
        out += ((i + 1).to_bytes(8, "little") + ino.to_bytes(8, "little") + len(raw).to_bytes(4, "little")
                + bytes((ft, 0, 0, 0)) + raw)
    out = out[:length]
    g = Guest(st.memory)
    g.write(buf, bytes(out))
    g.u32(used_ptr, len(out))
    assert DIRENT_SIZE == 24
    return ESUCCESS


def poll_ready(st: WasiState, fd: int, tag: int) -> int:  # noqa: ARG001 - read and write alike
    """The errno of an fd subscription: every open fd is ready at once."""
    return ESUCCESS if fd in st.fds else EBADF


FUNCTIONS: Dict[str, Callable[..., Any]] = {
    "fd_read": fd_read, "fd_pread": fd_pread, "fd_write": fd_write, "fd_pwrite": fd_pwrite,
    "fd_seek": fd_seek, "fd_tell": fd_tell, "fd_close": fd_close, "fd_renumber": fd_renumber,
    "fd_sync": fd_sync, "fd_datasync": fd_sync, "fd_advise": fd_advise, "fd_allocate": fd_allocate,
    "fd_fdstat_get": fd_fdstat_get, "fd_fdstat_set_flags": fd_fdstat_set_flags,
    "fd_fdstat_set_rights": fd_fdstat_set_rights, "fd_filestat_get": fd_filestat_get,
    "fd_filestat_set_size": fd_filestat_set_size, "fd_filestat_set_times": fd_filestat_set_times,
    "fd_prestat_get": fd_prestat_get, "fd_prestat_dir_name": fd_prestat_dir_name, "fd_readdir": fd_readdir,
}
