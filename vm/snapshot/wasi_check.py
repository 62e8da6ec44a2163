"""Consistency rules 25–37 (docs/snapshot-format.md, "Consistency rules"): a stranger's WASI state.

::

    check_wasi(state)     # raises SnapshotError naming the field; called by check_state

The codec checks only structure (kinds, lengths, the reader's byte limit).  A crafted section 13 can
still describe a state no run reaches: an fd on a missing inode, a directory that contains itself, a
preopen that is not a root, a stdin offset past its end, an exit code of a program that did not exit.
The host functions trust their state (they index inodes and slice stdin by offset), so restore refuses
every such state before it builds anything.  Each message starts with the field's path (``wasi.fds[k]``:
the k-th entry of the fd table as stored, ``wasi.inodes[i]``: the i-th inode as stored).
"""

from __future__ import annotations

from typing import Dict, List

from ..errors import PROC_EXIT
from ..runtime.wasi.fs import DIR, FILE, SYMLINK
from ..runtime.wasi.state import FD_KINDS, STDIN
from .model import TRAPPED, SnapshotError, State, WasiInode, WasiSnapshot

__all__ = ["MAX_OFFSET", "check_wasi"]

_U64 = 1 << 64
#: the largest file offset (WASI's filesize is u64, but fd_seek's offset is an i64)
MAX_OFFSET = (1 << 63) - 1
_STREAMS = ("stdin", "stdout", "stderr")


def _fail(field: str, msg: str) -> SnapshotError:
    return SnapshotError(f"{field}: {msg}")


def check_wasi(state: State) -> None:
    """Rules 25–37 for ``state.wasi`` (and rule 36's other half: a thread that ended with ``exit``
    has WASI state with an exit code)."""
    ts = state.thread
    exited = ts is not None and ts.status == TRAPPED and ts.trap == PROC_EXIT
    ws = state.wasi
    if ws is None:
        if exited:
            raise _fail("thread.trap", f"{PROC_EXIT!r}: a thread ended by proc_exit needs WASI state (section 13)")
        return
    _strings(ws)
    by_ino = _inodes(ws)
    roots = _roots(ws, by_ino)
    _fds(ws, by_ino, roots)
    _tree(ws, by_ino, roots)
    _memory_and_exit(ws, state, exited)


def _strings(ws: WasiSnapshot) -> None:
    """Rule 25: args and env are C strings (no NUL); an env entry is ``KEY=VALUE``."""
    for field, vec in (("args", ws.args), ("env", ws.env)):
        for i, b in enumerate(vec):
            if b"\0" in b:
                raise _fail(f"wasi.{field}[{i}]", "contains a NUL byte")
            if field == "env" and b"=" not in b:
                raise _fail(f"wasi.env[{i}]", "is not KEY=VALUE")


def _inodes(ws: WasiSnapshot) -> Dict[int, WasiInode]:
    """Rule 30 (numbers unique, below ``next_ino``; only a file has data, only a directory entries, only
    a symlink a target; timestamps u64), rule 31 (entry names), rule 34 (symlink targets), rule 37 (the
    clock, the random counter, the seed)."""
    out: Dict[int, WasiInode] = {}
    for k, i in enumerate(ws.inodes):
        at = f"wasi.inodes[{k}]"
        if i.ino in out:
            raise _fail(at, f"inode {i.ino} appears twice")
        if not 1 <= i.ino < ws.next_ino:
            raise _fail(at, f"inode number {i.ino} outside 1..next_ino-1 ({ws.next_ino - 1})")
        if i.kind not in (FILE, DIR, SYMLINK):
            raise _fail(f"{at}.kind", f"unknown kind {i.kind!r}")
        if (i.data and i.kind != FILE) or (i.entries and i.kind != DIR) or (i.target and i.kind != SYMLINK):
            raise _fail(at, f"a {i.kind} holds another kind's contents")
        if i.kind == SYMLINK and "\0" in i.target:
            raise _fail(f"{at}.target", "contains a NUL character")
        if not all(0 <= t < _U64 for t in (i.atim, i.mtim, i.ctim)):
            raise _fail(at, "timestamp outside u64")
        names = set()
        for j, (name, _) in enumerate(i.entries):
            if name in ("", ".", "..") or "/" in name or "\0" in name:
                raise _fail(f"{at}.entries[{j}]", f"bad name {name!r} (empty, '.', '..', or with '/' or NUL)")
            if name in names:
                raise _fail(f"{at}.entries[{j}]", f"name {name!r} appears twice")
            names.add(name)
        out[i.ino] = i
    for field in ("clock_ns", "random_counter"):
        if not 0 <= getattr(ws, field) < _U64:
            raise _fail(f"wasi.{field}", "outside u64")
    if not -(1 << 63) <= ws.seed < 1 << 63:
        raise _fail("wasi.seed", "outside i64")
    return out


def _roots(ws: WasiSnapshot, by_ino: Dict[int, WasiInode]) -> Dict[str, int]:
    """Rule 32: each preopen root is a directory, its own parent, named once, with a guest path."""
    roots: Dict[str, int] = {}
    for k, (path, ino) in enumerate(ws.roots):
        at = f"wasi.roots[{k}]"
        if not path or "\0" in path:
            raise _fail(at, f"bad guest path {path!r}")
        if path in roots:
            raise _fail(at, f"guest path {path!r} appears twice")
        node = by_ino.get(ino)
        if node is None or node.kind != DIR:
            raise _fail(at, f"inode {ino} is not a directory of the state")
        if node.parent != ino:
            raise _fail(at, f"root directory {ino} is not its own parent ({node.parent})")
        roots[path] = ino
    return roots


def _fds(ws: WasiSnapshot, by_ino: Dict[int, WasiInode], roots: Dict[str, int]) -> None:
    """Rules 26–29: fd numbers unique; streams have no inode; a dir/file fd names an inode of its kind;
    only a directory fd is a preopen and names the root of its inode; offsets, flags and rights bounded
    (stdin's offset within stdin)."""
    seen = set()
    for k, f in enumerate(ws.fds):
        at = f"wasi.fds[{k}]"
        if f.fd in seen:
            raise _fail(at, f"fd {f.fd} appears twice")
        seen.add(f.fd)
        if f.kind not in FD_KINDS:
            raise _fail(f"{at}.kind", f"unknown kind {f.kind!r}")
        if f.kind in _STREAMS:
            if f.ino != -1:
                raise _fail(f"{at}.ino", f"a {f.kind} stream has no inode (-1), not {f.ino}")
        elif by_ino.get(f.ino) is None or by_ino[f.ino].kind != f.kind:
            raise _fail(f"{at}.ino", f"a {f.kind} fd refers to inode {f.ino}, which is not a {f.kind} of the state")
        if f.preopen is not None and (f.kind != DIR or roots.get(f.preopen) != f.ino):
            raise _fail(f"{at}.preopen", f"{f.preopen!r} is not the preopened root of this fd's directory")
        if not 0 <= f.offset <= MAX_OFFSET or (f.kind == STDIN and f.offset > len(ws.stdin)):
            raise _fail(f"{at}.offset", f"offset {f.offset} out of range"
                        + (f" (stdin holds {len(ws.stdin)} bytes)" if f.kind == STDIN else ""))
        if not (0 <= f.rights_base < _U64 and 0 <= f.rights_inheriting < _U64 and 0 <= f.flags < 1 << 16):
            raise _fail(at, "rights or flags out of range")


def _tree(ws: WasiSnapshot, by_ino: Dict[int, WasiInode], roots: Dict[str, int]) -> None:
    """Rules 31 and 33: directory entries name existing inodes other than a root; a directory is named
    by exactly one entry and its parent is that directory (a file or symlink may have several names,
    hard links, and its parent is informative only); every named inode is reachable from a root (so the
    directories form a tree: no cycles); an inode no directory names is open (an unlinked file still
    used through its fd) or a root."""
    named: Dict[int, int] = {}  # directory inode -> the directory naming it
    linked = set()
    root_inos = set(roots.values())
    for k, i in enumerate(ws.inodes):
        for j, (name, child) in enumerate(i.entries):
            at = f"wasi.inodes[{k}].entries[{j}]"
            if child not in by_ino or child in root_inos:
                raise _fail(at, f"{name!r} refers to inode {child}, which is not a non-root inode of the state")
            if by_ino[child].kind == DIR and child in named:
                raise _fail(at, f"directory {child} is named by two directory entries")
            named[child] = i.ino
            linked.add(child)
    open_inos = {f.ino for f in ws.fds}
    reached = _reachable(root_inos, by_ino)
    for k, i in enumerate(ws.inodes):
        at = f"wasi.inodes[{k}]"
        if i.ino in root_inos:
            continue
        if i.ino not in linked:
            if i.ino not in open_inos:
                raise _fail(at, f"inode {i.ino} is in no directory and not open")
        elif i.kind == DIR and i.parent != named[i.ino]:
            raise _fail(f"{at}.parent", f"directory {i.ino} is in directory {named[i.ino]}, its parent says {i.parent}")
        elif i.ino not in reached:
            raise _fail(at, f"inode {i.ino} is not reachable from a preopened root (a directory cycle)")


def _reachable(roots: set, by_ino: Dict[int, WasiInode]) -> set:
    seen = set(roots)
    todo: List[int] = list(roots)
    while todo:
        for _, child in by_ino[todo.pop()].entries:
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def _memory_and_exit(ws: WasiSnapshot, state: State, exited: bool) -> None:
    """Rules 35 and 36: the bound memory is a memory address of the state; an exit code exactly when
    the thread ended with ``exit``, and it is a u32."""
    if ws.memory is not None and not 0 <= ws.memory < state.counts.get("memory", 0):
        raise _fail("wasi.memory", f"address {ws.memory} is not a memory address of the state")
    if exited and ws.exit_code is None:
        raise _fail("wasi.exit_code", "the thread ended with proc_exit but the WASI state has no exit code")
    if ws.exit_code is not None and not exited:
        raise _fail("wasi.exit_code", "an exit code, but the thread did not end with proc_exit "
                    f"(status trapped, trap {PROC_EXIT!r})")
    if ws.exit_code is not None and not 0 <= ws.exit_code < 1 << 32:
        raise _fail("wasi.exit_code", f"{ws.exit_code} is not a u32")
