"""Property: any sequence of file operations ends the same on our WASI as on wasmtime's.

Hypothesis draws operations (open with every flag combination, read, write, seek, pread/pwrite,
truncate, close, mkdir, rmdir, unlink, rename, symlink, stat) on a few names that collide on purpose
(files, directories, a symlink, nested paths); one WASI command performs them and prints each errno and
what it read.  Our VM and wasmtime must print the same and leave the same files (and our count of the
bytes charged against ``max_fs_bytes`` must be exact).
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from suite.tests._wasi import RW, Prog, fd_slot, ours, theirs

NAMES = ["a", "b", "d", "d/a", "d/e", "d/e/a", "l", "../a", "d/../b", "d/", "a/", "."]
RO = "(i64.const 0x1fffffbd)"
SLOTS = 4

path = st.sampled_from(NAMES)
slot = st.integers(0, SLOTS - 1)
ops = st.one_of(
    st.tuples(st.just("open"), path, st.sampled_from([0, 1, 5, 9, 2]), st.booleans(), st.sampled_from([0, 1]), slot),
    st.tuples(st.just("write"), slot, st.binary(min_size=0, max_size=12)),
    st.tuples(st.just("read"), slot, st.integers(0, 16)),
    st.tuples(st.just("seek"), slot, st.integers(-8, 24), st.integers(0, 2)),
    st.tuples(st.just("pread"), slot, st.integers(0, 8), st.integers(0, 20)),
    st.tuples(st.just("pwrite"), slot, st.binary(min_size=1, max_size=6), st.integers(0, 20)),
    st.tuples(st.just("truncate"), slot, st.integers(0, 30)),
    st.tuples(st.just("close"), slot),
    st.tuples(st.just("mkdir"), path),
    st.tuples(st.just("rmdir"), path),
    st.tuples(st.just("unlink"), path),
    st.tuples(st.just("rename"), path, path),
    st.tuples(st.just("symlink"), st.sampled_from(["a", "d", "nothing", "d/e"]), path),
    st.tuples(st.just("stat"), path, st.booleans()),
)


def _iov(p: Prog, ptr: str, n: int) -> str:
    p.wat(f"(i32.store (i32.const 128) {ptr}) (i32.store (i32.const 132) (i32.const {n}))")
    return "(i32.const 128) (i32.const 1)"


def _emit(p: Prog, op: tuple) -> None:
    kind, *a = op
    if kind == "open":
        name, oflags, write, fdflags, k = a
        p.wat("(i32.store (i32.const 12) (i32.const 99))")
        rights = RW if write else RO
        p.errno(f"(call $open (i32.const 3) {p.s(name)} (i32.const {oflags}) {rights} (i32.const {fdflags}))")
        p.save_fd(k)
    elif kind in ("write", "pwrite"):
        data = a[1]
        iov = _iov(p, p.ptr(data) if data else "(i32.const 0)", len(data))
        at = f" (i64.const {a[2]})" if kind == "pwrite" else ""
        p.errno(f"(call $fd_{kind} {fd_slot(a[0])} {iov}{at} (i32.const 200))").num("(i32.load (i32.const 200))")
    elif kind in ("read", "pread"):
        iov = _iov(p, "(i32.const 512)", a[1])
        at = f" (i64.const {a[2]})" if kind == "pread" else ""
        p.wat("(i32.store (i32.const 200) (i32.const 0))")
        p.errno(f"(call $fd_{kind} {fd_slot(a[0])} {iov}{at} (i32.const 200))")
        p.wat("(call $print (i32.const 512) (i32.load (i32.const 200)))")
    elif kind == "seek":
        p.errno(f"(call $fd_seek {fd_slot(a[0])} (i64.const {a[1]}) (i32.const {a[2]}) (i32.const 200))")
    elif kind == "truncate":
        p.errno(f"(call $fd_filestat_set_size {fd_slot(a[0])} (i64.const {a[1]}))")
    elif kind == "close":
        p.errno(f"(call $fd_close {fd_slot(a[0])})")
        p.wat(f"(i32.store (i32.const {48 + 4 * a[0]}) (i32.const 99))")
    elif kind in ("mkdir", "rmdir", "unlink"):
        fn = {"mkdir": "path_create_directory", "rmdir": "path_remove_directory", "unlink": "path_unlink_file"}[kind]
        p.errno(f"(call ${fn} (i32.const 3) {p.s(a[0])})")
    elif kind == "rename":
        p.errno(f"(call $path_rename (i32.const 3) {p.s(a[0])} (i32.const 3) {p.s(a[1])})")
    elif kind == "symlink":
        p.errno(f"(call $path_symlink {p.s(a[0])} (i32.const 3) {p.s(a[1])})")
    else:
        p.errno(f"(call $path_filestat_get (i32.const 3) (i32.const {int(a[1])}) {p.s(a[0])} (i32.const 256))")
        p.num("(i32.load8_u (i32.const 272))")
        p.num("(i32.mul (i32.load (i32.const 288)) (i32.eq (i32.load8_u (i32.const 272)) (i32.const 4)))")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ops, min_size=1, max_size=25))
def test_file_operations_end_like_wasmtime(tmp_path_factory, seq):
    p = Prog()
    for k in range(SLOTS):
        p.wat(f"(i32.store (i32.const {48 + 4 * k}) (i32.const 99))")
    for op in seq:
        _emit(p, op)
    wasm = p.wasm()
    sandbox = tmp_path_factory.mktemp("sb")
    (sandbox / "b").write_bytes(b"0123456789")
    mine, state, _ = ours(wasm, dir=str(sandbox))
    assert mine == theirs(wasm, dir=str(sandbox))
    charged = state.fs.used  # the running count of bytes charged to max_fs_bytes is exact
    state.fs.recount()
    assert state.fs.used == charged
