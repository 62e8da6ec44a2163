"""WASI state ⇄ snapshot model: a live :class:`vm.runtime.wasi.WasiState` → :class:`WasiSnapshot`, and back.

::

    capture_wasi(ws, memory_addr) -> WasiSnapshot      # checkpoint (capture.py): plain data, copies
    restore_wasi(snap, limits) -> WasiState            # restore (restore.py): before the host objects
    bind_memory(ws, snap, memories)                    # after the instances exist: memory by address

Why a file of its own: capture and restore of the Wasm store walk address tables; the WASI state is a
separate, self-contained value (args, fd table, inodes, output, clock, random stream) whose only link to
the store is the address of the memory its host functions read and write.  Keeping both directions
here makes them one home for the field list (docs/snapshot-format.md, section 13).

Restore builds the state the way the host functions expect it and nothing more: the checks of a
stranger's WASI state (inodes form a tree, fds refer to inodes of the right kind, …) are
:mod:`.wasi_check`'s (consistency rules 25–37), run before this.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

from ..runtime.wasi import FdEntry, Inode, MemFS, WasiConfig, WasiState
from .model import SnapshotError, WasiFd, WasiInode, WasiSnapshot

__all__ = ["bind_memory", "capture_wasi", "fs_bytes", "restore_wasi"]


def capture_wasi(ws: WasiState, memory_addr: Callable[[Any], Optional[int]]) -> WasiSnapshot:
    """Copy every field of ``ws`` (bytes, not views: the run may continue after the checkpoint).
    ``memory_addr`` maps the bound memory object to its address in this capture (None: not in the store)."""
    mem: Optional[int] = None
    if ws.memory is not None:
        mem = memory_addr(ws.memory)
        if mem is None:
            raise SnapshotError("wasi.memory: the WASI functions are bound to a memory outside the store")
    fs = ws.fs
    return WasiSnapshot(
        args=[bytes(a) for a in ws.args], env=[bytes(e) for e in ws.env],
        fds=[WasiFd(n, e.kind, e.ino, e.preopen, e.rights_base, e.rights_inheriting, e.flags, e.offset)
             for n, e in sorted(ws.fds.items())],
        inodes=[WasiInode(n, i.kind, bytes(i.data), sorted(i.entries.items()), i.target, i.parent,
                          i.atim, i.mtim, i.ctim) for n, i in sorted(fs.inodes.items())],
        roots=sorted(fs.roots.items()), next_ino=fs.next_ino,
        stdout=bytes(ws.stdout), stderr=bytes(ws.stderr), stdin=bytes(ws.stdin),
        clock_ns=ws.clock_ns, real_clock=bool(ws.real_clock), seed=ws.seed, random_counter=ws.random_counter,
        exit_code=ws.exit_code, memory=mem)


def fs_bytes(snap: WasiSnapshot) -> int:
    """The bytes a snapshot's filesystem holds (file contents and symlink targets, as ``MemFS`` charges
    them): what ``StoreLimits.max_fs_bytes`` bounds."""
    return sum(len(i.data) + len(i.target) for i in snap.inodes)


def restore_wasi(snap: WasiSnapshot, limits: Any = None) -> WasiState:
    """A new WASI state holding ``snap`` (checked by :func:`.wasi_check.check_wasi` and against the
    restorer's ``limits`` by ``check_limits`` before).  The memory is bound later (:func:`bind_memory`)."""
    config = WasiConfig(stdin=bytes(snap.stdin), real_clock=snap.real_clock, seed=snap.seed)
    ws = WasiState(config, limits)
    ws.args = [bytes(a) for a in snap.args]
    ws.env = [bytes(e) for e in snap.env]
    ws.fds = {f.fd: FdEntry(f.kind, f.ino, f.preopen, f.rights_base, f.rights_inheriting, f.flags, f.offset)
              for f in snap.fds}
    fs: MemFS = ws.fs
    fs.inodes = {i.ino: Inode(i.kind, bytearray(i.data), dict(i.entries), i.target, i.parent,
                              i.atim, i.mtim, i.ctim) for i in snap.inodes}
    fs.roots = dict(snap.roots)
    fs.next_ino = snap.next_ino
    ws.stdout = bytearray(snap.stdout)
    ws.stderr = bytearray(snap.stderr)
    ws.stdin = bytes(snap.stdin)
    ws.clock_ns = snap.clock_ns
    ws.real_clock = snap.real_clock
    ws.seed = snap.seed
    ws.random_counter = snap.random_counter
    ws.exit_code = snap.exit_code
    return ws


def bind_memory(ws: WasiState, snap: WasiSnapshot, memories: Dict[int, Any]) -> None:
    """Bind ``ws`` to the restored memory at the snapshot's address (the one the program's host
    functions used before the checkpoint)."""
    if snap.memory is None:
        return
    mem = memories.get(snap.memory)
    if mem is None:
        raise SnapshotError(f"wasi.memory: address {snap.memory} is not a memory of the state")
    ws.memory = mem
