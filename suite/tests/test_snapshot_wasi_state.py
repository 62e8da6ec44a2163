"""WASI state in snapshots without running WASI code: section 13 of the codec (round trip, bounded reads, a
reader that predates it refuses it), the consistency rules 25–37 (vm/snapshot/wasi_check.py), the
restorer's file-byte limit, and ``snapshot show``.

The WASI state here is built by hand (a program's host functions would build the same shapes: the
docstrings of vm/runtime/wasi fix them) next to a small module with a memory, so each rule is shown on
the smallest state that breaks it.  Runs of real WASI programs are in test_snapshot_wasi_programs.py.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Callable, Dict, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from suite.fuzz.robustness.edits import Layout
from suite.fuzz.robustness.wasi_targeted import WASI_TARGETED
from vm.api import Store, instantiate
from vm.runtime.limits import StoreLimits
from vm.runtime.wasi import FdEntry, Inode, WasiState
from vm.snapshot import SnapshotError, checkpoint, codec, decode, encode, restore, run_to, show
from vm.snapshot.model import TRAPPED, State, WasiFd, WasiInode, WasiSnapshot

wasmtime = pytest.importorskip("wasmtime")

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

WAT = """(module (memory (export "memory") 1)
  (func (export "f") (result i32) (i32.store (i32.const 0) (i32.const 5)) (i32.load (i32.const 0))))"""


def _wasi_state() -> WasiState:
    """A WASI state as a program leaves it: streams, a preopened root with a file and a subdirectory
    (holding a symlink), an open file at an offset, some output, stdin partly read."""
    ws = WasiState()
    ws.args, ws.env = [b"prog", b"x"], [b"A=1"]
    ws.fds = {0: FdEntry("stdin", offset=1), 1: FdEntry("stdout"), 2: FdEntry("stderr"),
              3: FdEntry("dir", 1, "/sandbox"), 4: FdEntry("file", 2, None, 1, 2, 3, 4)}
    ws.fs.inodes = {1: Inode("dir", entries={"a.txt": 2, "sub": 3}, parent=1),
                    2: Inode("file", bytearray(b"hello" * 30000), parent=1),
                    3: Inode("dir", entries={"ln": 4}, parent=1), 4: Inode("symlink", target="../a.txt", parent=3)}
    ws.fs.roots, ws.fs.next_ino = {"/sandbox": 1}, 5
    ws.stdout += b"out"
    ws.stdin = b"in"
    return ws


def _base() -> Tuple[State, Dict[str, bytes]]:
    data = bytes(wasmtime.wat2wasm(WAT))
    store = Store()
    inst = instantiate(store, data)
    ws = _wasi_state()
    ws.memory = inst.mems[0]
    store.wasi = ws
    return checkpoint(store, run_to(store, inst.exports["f"], [], 3)), {hashlib.sha256(data).hexdigest(): data}


BASE, MODULES = _base()


def _restore(state: State) -> None:
    """Restore the state as decoded (the rules are on the State; some edits, a file holding directory
    entries, cannot even be encoded)."""
    restore(state, MODULES)


def test_round_trip_and_restore() -> None:
    state = decode(encode(BASE))
    assert state.wasi == BASE.wasi
    store, run = restore(state, MODULES)
    ws = store.wasi
    assert ws.memory is store.instances[0].mems[0]  # re-bound by address
    assert ws.fs.inodes[2].data == bytearray(b"hello" * 30000) and ws.fs.roots == {"/sandbox": 1}
    assert ws.fds[4] == FdEntry("file", 2, None, 1, 2, 3, 4) and ws.fds[0].offset == 1
    assert (bytes(ws.stdout), ws.stdin, ws.args, ws.env) == (b"out", b"in", [b"prog", b"x"], [b"A=1"])


def test_old_reader_refuses_section_13(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader that does not know section 13 must refuse it (required: id < 0x80), never drop the
    program's files and output: simulated by making this reader forget the id."""
    data = encode(BASE)
    monkeypatch.setattr(codec, "SEC_WASI", 0x7F)
    with pytest.raises(SnapshotError, match="unknown required section 13"):
        decode(data)


def test_file_bytes_bounded_by_the_reader_and_the_restorer() -> None:
    with pytest.raises(SnapshotError, match="max-fs-bytes"):
        decode(encode(BASE), StoreLimits(max_fs_bytes=1000))
    with pytest.raises(SnapshotError, match=r"^wasi\.inodes: .*--max-fs-bytes"):
        restore(BASE, MODULES, limits=StoreLimits(max_fs_bytes=1000))


def test_truncated_section_13_is_refused() -> None:
    body = codec.encode_body(BASE)
    start = body.rindex(bytes([codec.SEC_WASI]))  # the last section but names
    for cut in range(start + 1, len(body), 997):
        with pytest.raises(SnapshotError):
            decode(codec.pack(body[:cut]))


def test_show_lists_files() -> None:
    text = show(encode(BASE))
    for want in ('path: "/sandbox/a.txt"', "size: 150000", 'preopen: "/sandbox"', "stdout_bytes: 3",
                 'target: "../a.txt"', 'args: ["prog", "x"]'):
        assert want in text


# -- codec round trip of arbitrary WasiSnapshot values (consistent or not: the codec is structure only)
_u64 = st.integers(0, 2 ** 64 - 1)
_name = st.text(min_size=0, max_size=8)
_fd = st.builds(WasiFd, st.integers(0, 2 ** 32), st.sampled_from(["stdin", "stdout", "stderr", "dir", "file"]),
                st.integers(-1, 2 ** 40), st.none() | _name, _u64, _u64, st.integers(0, 2 ** 16), _u64)
_inode = st.one_of(
    st.builds(WasiInode, _u64, st.just("file"), data=st.binary(max_size=300), parent=st.integers(-1, 99),
              atim=_u64, mtim=_u64, ctim=_u64),
    st.builds(WasiInode, _u64, st.just("dir"), entries=st.lists(st.tuples(_name, _u64), max_size=4),
              parent=st.integers(-1, 99)),
    st.builds(WasiInode, _u64, st.just("symlink"), target=_name, parent=st.integers(-1, 99)))
_snap = st.builds(WasiSnapshot, st.lists(st.binary(max_size=10), max_size=3), st.lists(st.binary(max_size=10), max_size=3),
                  st.lists(_fd, max_size=5), st.lists(_inode, max_size=5), st.lists(st.tuples(_name, _u64), max_size=3),
                  _u64, st.binary(max_size=100), st.binary(max_size=50), st.binary(max_size=50), _u64, st.booleans(),
                  st.integers(-(2 ** 63), 2 ** 63 - 1), _u64, st.none() | st.integers(0, 2 ** 32 - 1),
                  st.none() | st.integers(0, 2 ** 32 - 1))


@SETTINGS
@given(_snap)
def test_codec_round_trip(ws: WasiSnapshot) -> None:
    state = copy.copy(BASE)
    state.wasi = ws
    assert decode(encode(state)).wasi == ws
    assert decode(encode(state, compress=False)).wasi == ws


# -- consistency rules 25-37: each edit makes a state no run reaches; restore names the field -----
def _ino(k: int) -> Callable[[WasiSnapshot], WasiInode]:
    return lambda w: w.inodes[k]


def _set(obj: Callable[[WasiSnapshot], object], **kw: object) -> Callable[[WasiSnapshot], None]:
    def edit(w: WasiSnapshot) -> None:
        for k, v in kw.items():
            setattr(obj(w), k, v)
    return edit


def _trapped_exit(state: State) -> None:
    th = state.thread
    assert th is not None
    th.status, th.trap, th.frames = TRAPPED, "exit", []


EDITS = [
    ("wasi.args[1]", lambda w: w.args.__setitem__(1, b"a\0b")),
    ("wasi.env[0]", lambda w: w.env.__setitem__(0, b"NOEQUALS")),
    ("wasi.fds[4]", lambda w: setattr(w.fds[4], "fd", 3)),
    ("wasi.fds[1].ino", _set(lambda w: w.fds[1], ino=2)),
    ("wasi.fds[4].ino", _set(lambda w: w.fds[4], ino=1)),
    ("wasi.fds[4].ino", _set(lambda w: w.fds[4], ino=77)),
    ("wasi.fds[3].ino", _set(lambda w: w.fds[3], ino=-1)),
    ("wasi.fds[3].preopen", _set(lambda w: w.fds[3], preopen="/elsewhere")),
    ("wasi.fds[4].preopen", _set(lambda w: w.fds[4], preopen="/sandbox")),
    ("wasi.fds[0].offset", _set(lambda w: w.fds[0], offset=3)),
    ("wasi.fds[4].offset", _set(lambda w: w.fds[4], offset=2 ** 63)),
    ("wasi.fds[2].kind", _set(lambda w: w.fds[2], kind="socket")),
    ("wasi.inodes[1]", _set(_ino(1), ino=1)),
    ("wasi.inodes[3]", lambda w: setattr(w, "next_ino", 4)),
    ("wasi.inodes[1]", _set(_ino(1), entries=[("x", 3)])),
    ("wasi.inodes[3].target", _set(_ino(3), target="a\0b")),
    ("wasi.inodes[0].entries[0]", lambda w: w.inodes[0].entries.__setitem__(0, ("a/b", 2))),
    ("wasi.inodes[0].entries[1]", lambda w: w.inodes[0].entries.__setitem__(1, ("a.txt", 3))),
    ("wasi.inodes[0].entries[0]", lambda w: w.inodes[0].entries.__setitem__(0, ("..", 2))),
    ("wasi.inodes[0].entries[0]", lambda w: w.inodes[0].entries.__setitem__(0, ("a.txt", 99))),
    ("wasi.inodes[2].entries[1]", lambda w: w.inodes[2].entries.append(("root", 1))),
    ("wasi.inodes[2].entries[1]", lambda w: w.inodes[2].entries.append(("again", 3))),
    ("wasi.inodes[2].parent", _set(_ino(2), parent=3)),
    ("wasi.inodes[4]", lambda w: (w.inodes.extend([WasiInode(5, "dir", entries=[("b", 6)], parent=6),
                                                   WasiInode(6, "dir", entries=[("a", 5)], parent=5)]),
                                  setattr(w, "next_ino", 7))),
    ("wasi.inodes[4]", lambda w: (w.inodes.append(WasiInode(5, "file", b"lost")), setattr(w, "next_ino", 6))),
    ("wasi.roots[0]", lambda w: setattr(w, "roots", [("/sandbox", 2)])),
    ("wasi.roots[0]", _set(_ino(0), parent=3)),
    ("wasi.roots[1]", lambda w: w.roots.append(("/sandbox", 1))),
    ("wasi.roots[0]", lambda w: setattr(w, "roots", [("", 1)])),
    ("wasi.memory", lambda w: setattr(w, "memory", 1)),
    ("wasi.exit_code", lambda w: setattr(w, "exit_code", 0)),
    ("wasi.seed", lambda w: setattr(w, "seed", 2 ** 63)),
]


@pytest.mark.parametrize("field,edit", EDITS, ids=[f"{i}:{f}" for i, (f, _) in enumerate(EDITS)])
def test_rule_refused(field: str, edit: Callable[[WasiSnapshot], None]) -> None:
    state = copy.deepcopy(BASE)
    assert state.wasi is not None
    edit(state.wasi)
    with pytest.raises(SnapshotError) as e:
        _restore(state)
    assert e.value.message.startswith(field + ":"), e.value.message


def test_exit_needs_an_exit_code_and_wasi_state() -> None:
    state = copy.deepcopy(BASE)
    _trapped_exit(state)
    with pytest.raises(SnapshotError, match=r"^wasi\.exit_code:"):
        _restore(state)
    assert state.wasi is not None
    state.wasi.exit_code = 3
    _restore(state)  # consistent: the program exited with 3
    state.wasi = None
    with pytest.raises(SnapshotError, match=r"^thread\.trap:"):
        _restore(state)


def test_unlinked_open_file_and_hard_links_are_consistent() -> None:
    """An unlinked file still open through its fd, and a file with two names, are states a run reaches."""
    state = copy.deepcopy(BASE)
    w = state.wasi
    assert w is not None
    w.inodes[0].entries = [("sub", 3)]  # a.txt unlinked; fd 4 still reads it
    _restore(state)
    w.inodes[0].entries = [("a.txt", 2), ("b.txt", 2), ("sub", 3)]
    _restore(state)


@pytest.mark.parametrize("rule", sorted(WASI_TARGETED))
def test_robustness_targeted_wasi_edits(rule: str) -> None:
    """Every WASI edit of the robustness fuzzer applies to a WASI checkpoint and is refused (the fuzzer's
    bases are mostly not WASI programs: this shows each rule enforced)."""
    import random

    for seed in range(3):
        state = copy.deepcopy(BASE)
        what = WASI_TARGETED[rule](state, Layout(state, MODULES), random.Random(seed))
        assert what is not None, rule
        with pytest.raises(SnapshotError):
            _restore(state)
        with pytest.raises(SnapshotError):  # and through the codec, as the fuzzer sends it
            restore(decode(encode(state)), MODULES)
