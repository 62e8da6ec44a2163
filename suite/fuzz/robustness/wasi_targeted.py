"""Targeted edits of a checkpoint's WASI state (section 13): each breaks exactly one of the consistency
rules 25–37 of docs/snapshot-format.md (number in the docstring), so restore must refuse it with a
``SnapshotError`` naming the field.  Same shape as :data:`.targeted.TARGETED` (which includes these):
``(state, layout, rng) -> str | None``, None when the state has no WASI state (or not the part the edit
needs).  ``exit-without-wasi`` applies to every state: it makes a thread that ended by ``proc_exit``.
"""

from __future__ import annotations

import random
from typing import Dict, List, Optional

from vm.snapshot.model import TRAPPED, State, WasiFd, WasiInode, WasiSnapshot

from .edits import Edit, Layout

__all__ = ["WASI_TARGETED"]


def _ws(state: State) -> Optional[WasiSnapshot]:
    return state.wasi


def _fds(state: State, kinds: tuple) -> List[WasiFd]:
    ws = state.wasi
    return [] if ws is None else [f for f in ws.fds if f.kind in kinds]


def _dirs(state: State) -> List[WasiInode]:
    ws = state.wasi
    return [] if ws is None else [i for i in ws.inodes if i.kind == "dir"]


def _arg_nul(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    """Rule 25: an argument with a NUL byte."""
    ws = _ws(state)
    if ws is None:
        return None
    ws.args.append(b"a\0b")
    return f"wasi.args[{len(ws.args) - 1}] := 'a\\0b'"


def _env_no_eq(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    """Rule 25: an environment entry that is not KEY=VALUE."""
    ws = _ws(state)
    if ws is None:
        return None
    ws.env.append(b"NOEQUALS")
    return "wasi.env += 'NOEQUALS'"


def _fd_duplicate(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    """Rule 26: two entries of the fd table with one number."""
    ws = _ws(state)
    if ws is None or not ws.fds:
        return None
    f = rng.choice(ws.fds)
    ws.fds.append(WasiFd(f.fd, "stdout"))
    return f"wasi.fds += duplicate of fd {f.fd}"


def _stream_ino(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    """Rule 26: a standard stream with an inode."""
    fds = _fds(state, ("stdin", "stdout", "stderr"))
    if not fds:
        return None
    f = rng.choice(fds)
    f.ino = 1
    return f"wasi fd {f.fd} ({f.kind}).ino := 1"


def _fd_inode(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    """Rule 27: a file or directory fd on an inode that is not one of its kind (or none)."""
    fds = _fds(state, ("dir", "file"))
    if not fds:
        return None
    f = rng.choice(fds)
    ws = state.wasi
    assert ws is not None
    other = [i.ino for i in ws.inodes if i.kind != f.kind]
    f.ino = rng.choice(other) if other and rng.random() < 0.5 else ws.next_ino + 5
    return f"wasi fd {f.fd} ({f.kind}).ino := {f.ino}"


def _preopen(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    """Rule 28: a preopen name that is not the root of the fd's directory."""
    fds = _fds(state, ("dir", "file"))
    if not fds:
        return None
    f = rng.choice(fds)
    f.preopen = "/not-a-root"
    return f"wasi fd {f.fd}.preopen := '/not-a-root'"


def _stdin_offset(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    """Rule 29: stdin read past its end."""
    fds = _fds(state, ("stdin",))
    ws = state.wasi
    if not fds or ws is None:
        return None
    fds[0].offset = len(ws.stdin) + 1 + rng.randrange(100)
    return f"wasi stdin offset := {fds[0].offset} of {len(ws.stdin)}"


def _inode_beyond_next(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    """Rule 30: an inode number not below next_ino."""
    ws = _ws(state)
    if ws is None or not ws.inodes:
        return None
    ws.next_ino = max(i.ino for i in ws.inodes)
    return f"wasi.next_ino := {ws.next_ino}"


def _entry_name(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    """Rule 31: a directory entry whose name holds '/' (or is '..')."""
    dirs = [d for d in _dirs(state) if d.entries]
    if not dirs:
        return None
    d = rng.choice(dirs)
    j = rng.randrange(len(d.entries))
    name = rng.choice(["a/b", "..", "x\0y"])
    d.entries[j] = (name, d.entries[j][1])
    return f"wasi inode {d.ino} entry {j} := {name!r}"


def _entry_missing(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    """Rule 31: a directory entry naming no inode of the state."""
    dirs = _dirs(state)
    ws = state.wasi
    if not dirs or ws is None:
        return None
    d = rng.choice(dirs)
    d.entries.append(("dangling", ws.next_ino + 7))
    return f"wasi inode {d.ino} += entry to missing inode {ws.next_ino + 7}"


def _root_not_dir(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    """Rule 32: a preopen root that is not a directory."""
    ws = _ws(state)
    files = [] if ws is None else [i.ino for i in ws.inodes if i.kind != "dir"]
    if ws is None or not ws.roots or not files:
        return None
    k = rng.randrange(len(ws.roots))
    ws.roots[k] = (ws.roots[k][0], rng.choice(files))
    return f"wasi.roots[{k}] := inode {ws.roots[k][1]}"


def _dir_parent(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    """Rule 33: a directory whose parent is not the directory naming it."""
    ws = _ws(state)
    if ws is None:
        return None
    named = {c for d in ws.inodes for _, c in d.entries}
    dirs = [d for d in _dirs(state) if d.ino in named]
    if not dirs:
        return None
    d = rng.choice(dirs)
    d.parent = ws.next_ino + 3
    return f"wasi inode {d.ino}.parent := {d.parent}"


def _dir_cycle(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    """Rule 33: two directories naming each other, reachable from no root."""
    ws = _ws(state)
    if ws is None:
        return None
    a, b = ws.next_ino, ws.next_ino + 1
    ws.inodes += [WasiInode(a, "dir", entries=[("b", b)], parent=b), WasiInode(b, "dir", entries=[("a", a)], parent=a)]
    ws.next_ino += 2
    return f"wasi inodes += cycle {a} <-> {b}"


def _orphan(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    """Rule 33: a file in no directory and open by no fd."""
    ws = _ws(state)
    if ws is None:
        return None
    ws.inodes.append(WasiInode(ws.next_ino, "file", b"lost"))
    ws.next_ino += 1
    return f"wasi inodes += orphan {ws.next_ino - 1}"


def _memory(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    """Rule 35: the WASI functions bound to a memory address the state does not have."""
    ws = _ws(state)
    if ws is None:
        return None
    ws.memory = state.counts.get("memory", 0) + rng.randrange(3)
    return f"wasi.memory := {ws.memory}"


def _exit_code(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    """Rule 36: an exit code although the thread did not end with proc_exit."""
    ws = _ws(state)
    ts = state.thread
    if ws is None or ws.exit_code is not None or (ts is not None and ts.trap == "exit"):
        return None
    ws.exit_code = rng.randrange(256)
    return f"wasi.exit_code := {ws.exit_code}"


def _exit_without_wasi(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    """Rule 36: a thread ended by proc_exit with no WASI state (or no exit code)."""
    ts = state.thread
    if ts is None:
        return None
    ts.status, ts.trap, ts.frames, ts.results, ts.exception = TRAPPED, "exit", [], [], None
    if state.wasi is not None:
        state.wasi.exit_code = None
    return "thread := trapped 'exit' without an exit code"


def _seed(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    """Rule 37: a random seed outside i64."""
    ws = _ws(state)
    if ws is None:
        return None
    ws.seed = 1 << 63
    return "wasi.seed := 2**63"


#: rule name → an edit that breaks exactly that WASI rule
WASI_TARGETED: Dict[str, Edit] = {
    "wasi-arg-nul": _arg_nul,
    "wasi-env-no-equals": _env_no_eq,
    "wasi-fd-duplicate": _fd_duplicate,
    "wasi-stream-ino": _stream_ino,
    "wasi-fd-inode": _fd_inode,
    "wasi-preopen-not-root": _preopen,
    "wasi-stdin-offset": _stdin_offset,
    "wasi-inode-beyond-next": _inode_beyond_next,
    "wasi-entry-name": _entry_name,
    "wasi-entry-missing": _entry_missing,
    "wasi-root-not-dir": _root_not_dir,
    "wasi-dir-parent": _dir_parent,
    "wasi-dir-cycle": _dir_cycle,
    "wasi-orphan": _orphan,
    "wasi-memory": _memory,
    "wasi-exit-code": _exit_code,
    "exit-without-wasi": _exit_without_wasi,
    "wasi-seed": _seed,
}
