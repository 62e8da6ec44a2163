"""WASI preview 1: every function and its error cases, side by side with wasmtime's WASI.

Each test builds a WASI command (:class:`suite.tests._wasi.Prog`) that calls functions and prints the
errno (and results) of each call, runs it on our VM and under wasmtime on copies of the same sandbox,
and asserts the same stdout, exit code and files digest.  Where wcr deliberately differs (wasmtime traps
on invalid enum values; limits), test_wasi.py has the unit tests.
"""

from __future__ import annotations

import os

import pytest

from suite.tests._wasi import RDIR, RW, Prog, fd_slot, ours, theirs

O_CREAT, O_DIRECTORY, O_EXCL, O_TRUNC = 1, 2, 4, 8
RO = "(i64.const 0x1fffffbd)"  # every right but FD_WRITE (what wasi-libc asks for O_RDONLY)


@pytest.fixture
def sandbox(tmp_path):
    """a.txt, sub/b.txt, sub/deep/, empty/, and symlinks: ok → a.txt, subl → sub, out → ../.., abs →
    /etc, loop1 ↔ loop2, dangling → nothing."""
    root = tmp_path / "sb"
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "a.txt").write_bytes(b"hello world\n")
    (root / "sub" / "b.txt").write_bytes(b"bee")
    for name, target in (("ok", "a.txt"), ("subl", "sub"), ("out", "../.."), ("abs", "/etc"),
                         ("loop1", "loop2"), ("loop2", "loop1"), ("dangling", "nothing")):
        os.symlink(target, root / name)
    return str(root)


def same(p: Prog, sandbox, args=(), env=()) -> bytes:
    """Run on both; assert the same stdout, stderr, exit code and files; our stdout."""
    wasm = p.wasm()
    mine = ours(wasm, list(args), env, sandbox)[0]
    assert mine == theirs(wasm, list(args), env, sandbox)
    return mine[0]


def opened(p: Prog, path: str, oflags: int = 0, rights: str = RW, fdflags: int = 0, dirfd: int = 3) -> Prog:
    """Print the errno of opening ``path``; the fd (99 when it failed) is ``(call $fd)``."""
    p.wat("(i32.store (i32.const 12) (i32.const 99))")
    return p.errno(f"(call $open (i32.const {dirfd}) {p.s(path)} (i32.const {oflags}) {rights} (i32.const {fdflags}))")


PATHS = ["a.txt", "../x", "sub/../a.txt", "sub/../../x", "/etc/passwd", "out/x", "out", "abs", "abs/passwd",
         "loop1", "ok", "subl/b.txt", "dangling", "nonexist", "", "a.txt/", "a.txt/x", "sub/", ".", "..",
         "sub/nonexist/x", "sub/deep/../../a.txt", "subl/../a.txt", "./././a.txt", "sub//b.txt"]


def test_path_resolution_and_sandbox_escapes(sandbox):
    p = Prog()
    for path in PATHS:
        for follow in (1, 0):
            p.errno(f"(call $path_open (i32.const 3) (i32.const {follow}) {p.s(path)} (i32.const 0) {RO} {RO} "
                    f"(i32.const 0) (i32.const 12))")
            p.errno(f"(call $path_filestat_get (i32.const 3) (i32.const {follow}) {p.s(path)} (i32.const 128))")
        p.errno(f"(call $path_readlink (i32.const 3) {p.s(path)} (i32.const 128) (i32.const 64) (i32.const 200))")
    out = same(p, sandbox)
    assert out.count(b"63\n") > 10  # EPERM for the escapes, as wasmtime


def test_create_remove_in_escaping_places(sandbox):
    p = Prog()
    for path in ["../d", "/d", "out/d", "abs/d", "sub/../../d", "subl/d", "nd/", "a.txt", "sub", "new/x"]:
        p.errno(f"(call $path_create_directory (i32.const 3) {p.s(path)})")
    for path in ["../a.txt", "/a.txt", "out/x", "dangling", "ok", "sub", "a.txt/", "nonexist", "empty"]:
        p.errno(f"(call $path_unlink_file (i32.const 3) {p.s(path)})")
    for path in ["../x", "/x", "out", "sub", "a.txt", "subl", "empty", "nonexist", "nd"]:
        p.errno(f"(call $path_remove_directory (i32.const 3) {p.s(path)})")
    same(p, sandbox)


@pytest.mark.parametrize("oflags,rights,path", [
    (O_CREAT | O_EXCL, RW, "a.txt"), (O_CREAT | O_EXCL, RW, "new.txt"), (O_CREAT, RW, "sub/new.txt"),
    (O_DIRECTORY, RO, "a.txt"), (O_DIRECTORY, RDIR, "sub"), (0, RW, "sub"), (0, RO, "sub"), (O_TRUNC, RW, "a.txt"),
    (O_CREAT, RW, "newd/"), (O_CREAT, RW, "sub/deep"), (O_CREAT | O_EXCL, RW, "ok"), (O_CREAT, RW, "dangling"),
    (O_CREAT | O_TRUNC, RW, "ok"), (0, RW, "nonexist"), (O_CREAT, RW, "nodir/x"), (O_DIRECTORY, RDIR, "subl"),
    (O_DIRECTORY | O_CREAT, RDIR, "x"), (0, RO, "."), (O_DIRECTORY, RDIR, "."),
])
def test_path_open_flags(sandbox, oflags, rights, path):
    p = Prog()
    opened(p, path, oflags, rights)
    p.errno("(call $fd_filestat_get (call $fd) (i32.const 128))")
    p.num("(i32.load8_u (i32.const 144))")  # filetype
    p.num("(i32.mul (i32.load (i32.const 160)) (i32.eq (i32.load8_u (i32.const 144)) (i32.const 4)))")  # file size
    same(p, sandbox)


def _iov(p: Prog, data: bytes, at: int = 128) -> str:
    """An iovec at ``at`` naming ``data``: ``(i32.const at) (i32.const 1)``."""
    ptr_len = p.s(data).split()
    p.wat(f"(i32.store (i32.const {at}) {ptr_len[0]} {ptr_len[1]}) (i32.store (i32.const {at + 4}) {ptr_len[2]} {ptr_len[3]})")
    return f"(i32.const {at}) (i32.const 1)"


def _read_iov(p: Prog, n: int, buf: int = 512, at: int = 136) -> str:
    p.wat(f"(i32.store (i32.const {at}) (i32.const {buf})) (i32.store (i32.const {at + 4}) (i32.const {n}))")
    return f"(i32.const {at}) (i32.const 1)"


def test_read_write_seek_tell(sandbox):
    p = Prog()
    opened(p, "a.txt", 0, RW).save_fd(0)
    f = fd_slot(0)
    p.errno(f"(call $fd_read {f} {_read_iov(p, 5)} (i32.const 200))").num("(i32.load (i32.const 200))")
    p.wat("(call $print (i32.const 512) (i32.const 5))")
    p.errno(f"(call $fd_tell {f} (i32.const 200))").num("(i32.load (i32.const 200))")
    p.errno(f"(call $fd_write {f} {_iov(p, b'-WRITE-')} (i32.const 200))").num("(i32.load (i32.const 200))")
    for off, whence in ((0, 0), (-3, 2), (2, 1), (-100, 1), (100, 0), (-1, 0)):
        p.errno(f"(call $fd_seek {f} (i64.const {off}) (i32.const {whence}) (i32.const 200))")
        p.num("(i32.load (i32.const 200))")
    p.errno(f"(call $fd_write {f} {_iov(p, b'Z')} (i32.const 200))")  # at 100: a gap of zeros
    p.errno(f"(call $fd_filestat_get {f} (i32.const 128))").num("(i32.load (i32.const 160))")
    p.errno(f"(call $fd_pread {f} {_read_iov(p, 20)} (i64.const 3) (i32.const 200))").num("(i32.load (i32.const 200))")
    p.wat("(call $print (i32.const 512) (i32.const 20))")
    p.errno(f"(call $fd_pwrite {f} {_iov(p, b'PW')} (i64.const 1) (i32.const 200))").num("(i32.load (i32.const 200))")
    p.errno(f"(call $fd_pread {f} {_read_iov(p, 4)} (i64.const 1000) (i32.const 200))").num("(i32.load (i32.const 200))")
    p.errno(f"(call $fd_tell {f} (i32.const 200))").num("(i32.load (i32.const 200))")
    for bad in ("1", "3", "99"):  # a stream, a directory, no fd
        p.errno(f"(call $fd_seek (i32.const {bad}) (i64.const 0) (i32.const 0) (i32.const 200))")
        p.errno(f"(call $fd_tell (i32.const {bad}) (i32.const 200))")
        p.errno(f"(call $fd_read (i32.const {bad}) {_read_iov(p, 4)} (i32.const 200))")
        p.errno(f"(call $fd_pread (i32.const {bad}) {_read_iov(p, 4)} (i64.const 0) (i32.const 200))")
        p.errno(f"(call $fd_pwrite (i32.const {bad}) {_iov(p, b'x')} (i64.const 0) (i32.const 200))")
    p.errno(f"(call $fd_write (i32.const 99) {_iov(p, b'x')} (i32.const 200))")
    p.errno(f"(call $fd_write (i32.const 3) {_iov(p, b'x')} (i32.const 200))")
    same(p, sandbox)


def test_read_only_and_append(sandbox):
    p = Prog()
    opened(p, "a.txt", 0, RO).save_fd(0)
    p.errno(f"(call $fd_write {fd_slot(0)} {_iov(p, b'no')} (i32.const 200))")
    opened(p, "sub/b.txt", 0, RW, 1).save_fd(1)  # APPEND
    p.errno(f"(call $fd_write {fd_slot(1)} {_iov(p, b'-appended')} (i32.const 200))")
    p.errno(f"(call $fd_tell {fd_slot(1)} (i32.const 200))").num("(i32.load (i32.const 200))")
    p.errno(f"(call $fd_seek {fd_slot(1)} (i64.const 0) (i32.const 0) (i32.const 200))")
    p.errno(f"(call $fd_write {fd_slot(1)} {_iov(p, b'!')} (i32.const 200))")
    p.errno(f"(call $fd_fdstat_get {fd_slot(1)} (i32.const 128))").num("(i32.load8_u (i32.const 128))")
    p.num("(i32.load16_u (i32.const 130))")
    p.errno(f"(call $fd_fdstat_set_flags {fd_slot(1)} (i32.const 0))")
    p.errno(f"(call $fd_fdstat_get {fd_slot(1)} (i32.const 128))").num("(i32.load16_u (i32.const 130))")
    p.errno(f"(call $fd_seek {fd_slot(1)} (i64.const 0) (i32.const 0) (i32.const 200))")
    p.errno(f"(call $fd_write {fd_slot(1)} {_iov(p, b'B')} (i32.const 200))")
    same(p, sandbox)


def test_sizes_and_truncation(sandbox):
    p = Prog()
    opened(p, "a.txt", 0, RW).save_fd(0)
    f = fd_slot(0)
    for size in (5, 0, 300, 7):
        p.errno(f"(call $fd_filestat_set_size {f} (i64.const {size}))")
        p.errno(f"(call $fd_filestat_get {f} (i32.const 128))").num("(i32.load (i32.const 160))")
    p.errno(f"(call $fd_filestat_set_size {f} (i64.const -1))")
    p.errno("(call $fd_filestat_set_size (i32.const 3) (i64.const 1))")
    p.errno("(call $fd_filestat_set_size (i32.const 1) (i64.const 1))")
    opened(p, "sub/b.txt", O_TRUNC, RW)
    same(p, sandbox)


def test_fd_table(sandbox):
    p = Prog()
    opened(p, "a.txt").save_fd(0)
    opened(p, "sub/b.txt").save_fd(1)
    p.num(fd_slot(0)).num(fd_slot(1))
    p.errno(f"(call $fd_close {fd_slot(0)})").errno(f"(call $fd_close {fd_slot(0)})")
    opened(p, "sub/b.txt").num("(call $fd)")  # the lowest free number again
    p.errno(f"(call $fd_renumber {fd_slot(1)} (i32.const 77))")
    p.errno(f"(call $fd_renumber {fd_slot(1)} {fd_slot(0)})")
    p.errno(f"(call $fd_read {fd_slot(0)} {_read_iov(p, 3)} (i32.const 200))")
    p.wat("(call $print (i32.const 512) (i32.const 3))")
    p.errno(f"(call $fd_read {fd_slot(1)} {_read_iov(p, 3)} (i32.const 200))")
    p.errno("(call $fd_renumber (i32.const 99) (i32.const 1))")
    for fd in (0, 1, 2, 3, 99):
        p.errno(f"(call $fd_prestat_get (i32.const {fd}) (i32.const 128))")
    p.num("(i32.load8_u (i32.const 128))").num("(i32.load (i32.const 132))")
    p.errno("(call $fd_prestat_dir_name (i32.const 3) (i32.const 512) (i32.const 64))")
    p.wat("(call $print (i32.const 512) (i32.const 8))")
    p.errno(f"(call $fd_prestat_get {fd_slot(0)} (i32.const 128))")
    for fd in ("(i32.const 0)", "(i32.const 1)", "(i32.const 3)", fd_slot(0), "(i32.const 99)"):
        p.errno(f"(call $fd_sync {fd})").errno(f"(call $fd_datasync {fd})")
        p.errno(f"(call $fd_fdstat_get {fd} (i32.const 128))").num("(i32.load8_u (i32.const 128))")
        p.errno(f"(call $fd_advise {fd} (i64.const 0) (i64.const 10) (i32.const 1))")
    p.errno(f"(call $fd_close {fd_slot(0)})").errno("(call $fd_close (i32.const 3))")
    opened(p, "a.txt")
    same(p, sandbox)


def test_directories_and_rename(sandbox):
    p = Prog()
    for path in ("d1", "d1/d2", "d1/d2/d3", "d1"):
        p.errno(f"(call $path_create_directory (i32.const 3) {p.s(path)})")
    p.errno(f"(call $path_remove_directory (i32.const 3) {p.s('d1')})")
    p.errno(f"(call $path_remove_directory (i32.const 3) {p.s('d1/d2/d3')})")
    renames = [("a.txt", "b.txt"), ("b.txt", "sub/b.txt"), ("nonexist", "x"), ("sub", "d1/d2/d3"),
               ("d1", "d1/d2/inner"), ("empty", "d1"), ("d1", "empty2"), ("sub/deep", "deep2"),
               ("sub/b.txt", "empty2"), ("empty2", "sub/b.txt"), ("ok", "ok2"), ("../x", "y"), ("sub/b.txt", "../y"),
               ("deep2", "/y"), ("sub/b.txt", "sub/b.txt"), ("sub/b.txt", "c.txt/")]
    for a, b in renames:
        p.errno(f"(call $path_rename (i32.const 3) {p.s(a)} (i32.const 3) {p.s(b)})")
    same(p, sandbox)


def test_readdir(sandbox):
    p = Prog()
    opened(p, "sub", O_DIRECTORY, RDIR).save_fd(0)
    p.errno(f"(call $fd_readdir {fd_slot(0)} (i32.const 512) (i32.const 400) (i64.const 0) (i32.const 200))")
    p.num("(i32.load (i32.const 200))")
    p.errno(f"(call $fd_readdir {fd_slot(0)} (i32.const 512) (i32.const 10) (i64.const 0) (i32.const 200))")
    p.num("(i32.load (i32.const 200))")
    p.errno(f"(call $fd_readdir {fd_slot(0)} (i32.const 512) (i32.const 400) (i64.const 4) (i32.const 200))")
    p.num("(i32.load (i32.const 200))")
    p.errno("(call $fd_readdir (i32.const 1) (i32.const 512) (i32.const 400) (i64.const 0) (i32.const 200))")
    opened(p, "a.txt")
    p.errno("(call $fd_readdir (call $fd) (i32.const 512) (i32.const 400) (i64.const 0) (i32.const 200))")
    opened(p, "empty", O_DIRECTORY, RDIR)
    p.errno("(call $fd_readdir (call $fd) (i32.const 512) (i32.const 400) (i64.const 0) (i32.const 200))")
    p.num("(i32.load (i32.const 200))")
    p.wat("(call $print (i32.const 532) (i32.const 1))")  # the first name: "."
    same(p, sandbox)


def test_symlinks_and_links(sandbox):
    p = Prog()
    for target, link in (("a.txt", "l1"), ("sub/b.txt", "sub/l2"), ("../../x", "l3"), ("/etc", "l4"),
                         ("x", "a.txt"), ("a.txt", "l5/"), ("a.txt", "../l6"), ("nothing", "l7")):
        p.errno(f"(call $path_symlink {p.s(target)} (i32.const 3) {p.s(link)})")
    p.errno(f"(call $path_readlink (i32.const 3) {p.s('l1')} (i32.const 512) (i32.const 64) (i32.const 200))")
    p.num("(i32.load (i32.const 200))").wat("(call $print (i32.const 512) (i32.load (i32.const 200)))")
    p.errno(f"(call $path_readlink (i32.const 3) {p.s('l1')} (i32.const 512) (i32.const 2) (i32.const 200))")
    p.num("(i32.load (i32.const 200))")
    opened(p, "l1")
    p.errno(f"(call $fd_read (call $fd) {_read_iov(p, 5)} (i32.const 200))")
    p.wat("(call $print (i32.const 512) (i32.const 5))")
    for old, new, follow in (("a.txt", "hard", 0), ("sub", "hard2", 0), ("ok", "hard3", 1), ("ok", "hard4", 0),
                             ("a.txt", "sub/b.txt", 0), ("nonexist", "h5", 0), ("a.txt", "../h6", 0),
                             ("out", "h7", 1)):
        p.errno(f"(call $path_link (i32.const 3) (i32.const {follow}) {p.s(old)} (i32.const 3) {p.s(new)})")
    p.errno(f"(call $path_filestat_get (i32.const 3) (i32.const 0) {p.s('hard')} (i32.const 128))")
    p.num("(i32.load (i32.const 152))")  # nlink
    p.num("(i32.load8_u (i32.const 144))")
    p.errno(f"(call $path_filestat_get (i32.const 3) (i32.const 0) {p.s('hard4')} (i32.const 128))")
    p.num("(i32.load8_u (i32.const 144))")
    same(p, sandbox)


def test_args_and_environ(sandbox):
    p = Prog()
    p.errno("(call $args_sizes_get (i32.const 128) (i32.const 132))").num("(i32.load (i32.const 128))")
    p.num("(i32.load (i32.const 132))")
    p.errno("(call $args_get (i32.const 256) (i32.const 512))")
    p.wat("(call $print (i32.const 512) (i32.load (i32.const 132)))")
    p.errno("(call $environ_sizes_get (i32.const 128) (i32.const 132))").num("(i32.load (i32.const 128))")
    p.num("(i32.load (i32.const 132))")
    p.errno("(call $environ_get (i32.const 256) (i32.const 512))")
    p.wat("(call $print (i32.const 512) (i32.load (i32.const 132)))")
    p.num("(i32.sub (i32.load (i32.const 260)) (i32.load (i32.const 256)))")
    out = same(p, sandbox, ["one", "two words", "ünï"], [("A", "1"), ("EMPTY", ""), ("B", "x=y")])
    assert b"two words" in out and b"B=x=y" in out


def test_clocks_random_poll_and_the_rest(sandbox):
    p = Prog()
    for clock in (0, 1, 2, 3):
        p.errno(f"(call $clock_time_get (i32.const {clock}) (i64.const 1) (i32.const 128))")
        p.errno(f"(call $clock_res_get (i32.const {clock}) (i32.const 128))")
    p.errno("(call $random_get (i32.const 128) (i32.const 100))")
    p.errno("(call $random_get (i32.const 128) (i32.const 0))")
    p.errno("(call $sched_yield)")
    # one relative clock subscription (monotonic, 1 ms), userdata 42
    p.wat("(i64.store (i32.const 256) (i64.const 42)) (i32.store8 (i32.const 264) (i32.const 0))"
          "(i32.store (i32.const 272) (i32.const 1)) (i64.store (i32.const 280) (i64.const 1000000))"
          "(i64.store (i32.const 288) (i64.const 0)) (i32.store16 (i32.const 296) (i32.const 0))")
    p.errno("(call $poll_oneoff (i32.const 256) (i32.const 512) (i32.const 1) (i32.const 200))")
    p.num("(i32.load (i32.const 200))").num("(i32.load (i32.const 512))").num("(i32.load16_u (i32.const 520))")
    p.num("(i32.load8_u (i32.const 522))")
    # an fd subscription (read, stdin) next to a long clock: the fd is ready, the clock is not
    p.wat("(i64.store (i32.const 304) (i64.const 7)) (i32.store8 (i32.const 312) (i32.const 1))"
          "(i32.store (i32.const 320) (i32.const 0)) (i64.store (i32.const 280) (i64.const 1000000000000))")
    p.errno("(call $poll_oneoff (i32.const 256) (i32.const 512) (i32.const 2) (i32.const 200))")
    p.num("(i32.load (i32.const 200))").num("(i32.load (i32.const 512))").num("(i32.load16_u (i32.const 520))")
    p.errno("(call $poll_oneoff (i32.const 256) (i32.const 512) (i32.const 0) (i32.const 200))")
    same(p, sandbox)


def test_timestamps_set(sandbox):
    p = Prog()
    opened(p, "a.txt").save_fd(0)
    p.errno(f"(call $fd_filestat_set_times {fd_slot(0)} (i64.const 5000000000) (i64.const 7000000000) (i32.const 5))")
    p.errno(f"(call $fd_filestat_get {fd_slot(0)} (i32.const 128))")
    p.num("(i32.wrap_i64 (i64.div_u (i64.load (i32.const 168)) (i64.const 1000000000)))")
    p.num("(i32.wrap_i64 (i64.div_u (i64.load (i32.const 176)) (i64.const 1000000000)))")
    p.errno(f"(call $path_filestat_set_times (i32.const 3) (i32.const 1) {p.s('sub/b.txt')} (i64.const 0) "
            f"(i64.const 9000000000) (i32.const 4))")
    p.errno(f"(call $path_filestat_get (i32.const 3) (i32.const 1) {p.s('sub/b.txt')} (i32.const 128))")
    p.num("(i32.wrap_i64 (i64.div_u (i64.load (i32.const 176)) (i64.const 1000000000)))")
    p.errno(f"(call $fd_filestat_set_times {fd_slot(0)} (i64.const 0) (i64.const 0) (i32.const 3))")
    p.errno(f"(call $path_filestat_set_times (i32.const 3) (i32.const 1) {p.s('nonexist')} (i64.const 0) "
            f"(i64.const 0) (i32.const 0))")
    same(p, sandbox)


def test_unsupported_functions_and_streams(sandbox):
    p = Prog()
    opened(p, "f", O_CREAT).save_fd(0)
    f = fd_slot(0)
    for call in (f"(call $fd_allocate {f} (i64.const 0) (i64.const 100))",
                 "(call $fd_allocate (i32.const 1) (i64.const 0) (i64.const 100))",
                 f"(call $fd_fdstat_set_rights {f} (i64.const 0) (i64.const 0))",
                 "(call $fd_fdstat_set_rights (i32.const 99) (i64.const 0) (i64.const 0))",
                 "(call $fd_fdstat_set_flags (i32.const 1) (i32.const 4))",
                 "(call $fd_fdstat_set_flags (i32.const 3) (i32.const 1))",
                 f"(call $fd_fdstat_set_flags {f} (i32.const 2))",
                 f"(call $fd_fdstat_set_flags {f} (i32.const 5))",
                 "(call $proc_raise (i32.const 6))",
                 "(call $sock_accept (i32.const 3) (i32.const 0) (i32.const 200))",
                 "(call $sock_accept (i32.const 99) (i32.const 0) (i32.const 200))",
                 "(call $sock_recv (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 200) (i32.const 204))",
                 "(call $sock_send (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 200))",
                 "(call $sock_shutdown (i32.const 3) (i32.const 1))",
                 "(call $fd_filestat_get (i32.const 1) (i32.const 128))"):
        p.errno(call)
    p.num("(i32.load8_u (i32.const 144))")
    p.errno(f"(call $fd_fdstat_get {f} (i32.const 128))").num("(i32.load16_u (i32.const 130))")
    p.errno("(call $fd_fdstat_get (i32.const 1) (i32.const 128))").num("(i32.load (i32.const 136))")
    p.errno("(call $fd_filestat_get (i32.const 3) (i32.const 128))").num("(i32.load (i32.const 152))")  # nlink
    p.errno(f"(call $fd_read (i32.const 0) {_read_iov(p, 10)} (i32.const 200))").num("(i32.load (i32.const 200))")
    p.wat("(call $print (i32.const 512) (i32.load (i32.const 200)))")
    p.errno("(call $fd_renumber (i32.const 3) (i32.const 2))")
    p.errno("(call $fd_prestat_get (i32.const 2) (i32.const 128))")
    p.errno(f"(call $fd_renumber (i32.const 0) {f})")
    p.errno("(call $fd_prestat_get (i32.const 3) (i32.const 128))")
    wasm = p.wasm()
    mine = ours(wasm, dir=sandbox, stdin=b"from stdin")[0]
    assert mine == theirs(wasm, dir=sandbox, stdin=b"from stdin")
    assert b"from stdin" in mine[0]


@pytest.mark.parametrize("call", [
    "(call $fd_write (i32.const 1) (i32.const 65532) (i32.const 1) (i32.const 200))",  # iovec array out
    "(call $fd_write (i32.const 1) (i32.const 128) (i32.const 1) (i32.const 65534))",  # result out
    "(call $args_sizes_get (i32.const 65535) (i32.const 0))",
    "(call $clock_time_get (i32.const 0) (i64.const 0) (i32.const 65533))",
    "(call $random_get (i32.const 65000) (i32.const 1000))",
    "(call $fd_prestat_dir_name (i32.const 3) (i32.const 65530) (i32.const 9))",
    "(call $path_open (i32.const 3) (i32.const 0) (i32.const 65530) (i32.const 10) (i32.const 0) "
    "(i64.const 0) (i64.const 0) (i32.const 0) (i32.const 12))",
])
def test_a_pointer_outside_memory_traps_like_wasmtime(sandbox, call):
    p = Prog()
    p.wat("(i32.store (i32.const 128) (i32.const 65000)) (i32.store (i32.const 132) (i32.const 1000))")
    p.errno(call)
    wasm = p.wasm()
    mine, _, out = ours(wasm, dir=sandbox)
    assert out.trap == "out of bounds memory access"
    assert mine == theirs(wasm, dir=sandbox)  # code -1: a trap on both
