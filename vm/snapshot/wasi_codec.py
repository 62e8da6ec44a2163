"""Section 13 of the snapshot body: the WASI state (docs/snapshot-format.md, "Section 13: WASI").

::

    encode_wasi(snap, w)              # w: the codec's body writer (codec._W)
    decode_wasi(r, limits) -> snap    # r: the codec's section reader (codec._R), bounded

The codec (:mod:`.codec`) owns the container, the primitives and the section list and calls these two;
this file only knows the field order of one section, so it takes the codec's writer and reader as
arguments instead of importing them (no two files import each other).  Section 13 is *required*
(id < 0x80): a reader that predates it refuses the snapshot ("unknown required section") rather than
dropping the program's files and output.

File contents go through the writer's ``raw`` like memory pages: large ones are kept by reference and
the whole body is zlib-compressed piece by piece.  Reading is bounded: every count and length is checked
against the bytes left in the section (``count``/``bytes_``), and the file bytes together against the
reader's ``StoreLimits.max_fs_bytes`` before they are copied.
"""

from __future__ import annotations

from typing import Any, List, Optional

from ..runtime.limits import StoreLimits
from .model import SnapshotError, WasiFd, WasiInode, WasiSnapshot

__all__ = ["FD_KIND_CODES", "INODE_KIND_CODES", "decode_wasi", "encode_wasi"]

#: byte codes of the fd kinds and inode kinds (their order is part of the format)
FD_KIND_CODES = ("stdin", "stdout", "stderr", "dir", "file")
INODE_KIND_CODES = ("file", "dir", "symlink")


def _code(codes: tuple, kind: str, what: str) -> int:
    if kind not in codes:
        raise SnapshotError(f"{what}: unknown kind {kind!r}")
    return codes.index(kind)


def encode_wasi(snap: WasiSnapshot, w: Any) -> None:
    """The payload of section 13, in the order of the format's table."""
    for vec in (snap.args, snap.env):
        w.u(len(vec))
        for b in vec:
            w.bytes_(bytes(b))
    w.u(len(snap.fds))
    for f in snap.fds:
        w.u(f.fd)
        w.byte(_code(FD_KIND_CODES, f.kind, f"wasi.fds[{f.fd}].kind"))
        w.s(f.ino)
        w.opt_str(f.preopen)
        w.u(f.rights_base)
        w.u(f.rights_inheriting)
        w.u(f.flags)
        w.u(f.offset)
    w.u(len(snap.inodes))
    for i in snap.inodes:
        _encode_inode(i, w)
    w.u(len(snap.roots))
    for path, ino in snap.roots:
        w.str_(path)
        w.u(ino)
    w.u(snap.next_ino)
    for out in (snap.stdout, snap.stderr, snap.stdin):
        w.u(len(out))
        w.raw(bytes(out))
    w.u(snap.clock_ns)
    w.byte(1 if snap.real_clock else 0)
    w.s(snap.seed)
    w.u(snap.random_counter)
    _opt_u(w, snap.exit_code)
    _opt_u(w, snap.memory)


def _encode_inode(i: WasiInode, w: Any) -> None:
    w.u(i.ino)
    w.byte(_code(INODE_KIND_CODES, i.kind, f"wasi.inodes[{i.ino}].kind"))
    w.s(i.parent)
    w.u(i.atim)
    w.u(i.mtim)
    w.u(i.ctim)
    if i.kind == "file":
        w.u(len(i.data))
        w.raw(bytes(i.data))
    elif i.kind == "dir":
        w.u(len(i.entries))
        for name, ino in i.entries:
            w.str_(name)
            w.u(ino)
    else:
        w.str_(i.target)


def _opt_u(w: Any, n: Optional[int]) -> None:
    if n is None:
        w.byte(0)
    else:
        w.byte(1)
        w.u(n)


def decode_wasi(r: Any, limits: StoreLimits) -> WasiSnapshot:
    """Section 13 → :class:`WasiSnapshot`.  Structure only (kinds, lengths, the reader's file-byte
    limit); the rules of a consistent WASI state are :mod:`.wasi_check`'s."""
    snap = WasiSnapshot()
    snap.args = [r.bytes_() for _ in range(r.count())]
    snap.env = [r.bytes_() for _ in range(r.count())]
    for _ in range(r.count(8)):
        f = WasiFd(r.u(1 << 32), _kind(r, FD_KIND_CODES, "fd"), r.s(), r.opt_str())
        f.rights_base, f.rights_inheriting, f.flags, f.offset = r.u(), r.u(), r.u(1 << 16), r.u()
        snap.fds.append(f)
    total = 0
    for _ in range(r.count(7)):
        i = _decode_inode(r, limits.max_fs_bytes - total)
        total += len(i.data) + len(i.target)
        snap.inodes.append(i)
    snap.roots = [(r.str_(), r.u()) for _ in range(r.count(2))]
    snap.next_ino = r.u()
    snap.stdout, snap.stderr, snap.stdin = r.bytes_(), r.bytes_(), r.bytes_()
    snap.clock_ns = r.u()
    flag = r.byte()
    if flag > 1:
        raise r.fail("wasi.real_clock: bad flag byte")
    snap.real_clock = flag == 1
    snap.seed = r.s()
    snap.random_counter = r.u()
    snap.exit_code = _read_opt_u(r, "wasi.exit_code", 1 << 32)
    snap.memory = _read_opt_u(r, "wasi.memory", 1 << 32)
    r.done()
    return snap


def _kind(r: Any, codes: tuple, what: str) -> str:
    code = r.byte()
    if code >= len(codes):
        raise r.fail(f"wasi: bad {what} kind {code}")
    return str(codes[code])


def _decode_inode(r: Any, room: int) -> WasiInode:
    """One inode; a file's length is checked against ``room`` (what the reader's max_fs_bytes leaves)
    and against the bytes present before anything is copied."""
    ino = r.u(1 << 64)
    i = WasiInode(ino, _kind(r, INODE_KIND_CODES, "inode"), parent=r.s())
    i.atim, i.mtim, i.ctim = r.u(), r.u(), r.u()
    if i.kind == "file":
        n = r.u()
        if n > room:
            raise r.fail(f"wasi.inodes[{ino}]: the files hold more than this reader's limit of bytes "
                         "(--max-fs-bytes)")
        i.data = bytes(r.raw(n))
    elif i.kind == "dir":
        entries: List[tuple] = []
        for _ in range(r.count(2)):
            entries.append((r.str_(), r.u()))
        i.entries = entries
    else:
        i.target = r.str_()
    return i


def _read_opt_u(r: Any, what: str, limit: int) -> Optional[int]:
    flag = r.byte()
    if flag > 1:
        raise r.fail(f"{what}: bad option flag")
    return r.u(limit) if flag else None
