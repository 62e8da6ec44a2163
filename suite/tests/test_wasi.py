"""WASI preview 1 on our VM: programs compared with wasmtime's WASI, and the state it keeps."""

from __future__ import annotations

import base64
import os
import struct

import pytest
import wasmtime

from suite.tests._wasi import RW, Prog, digest_of, module, ours, theirs
from vm.api import Store, instantiate
from vm.errors import PROC_EXIT, LinkError, ResourceLimit, Unsupported
from vm.runtime.limits import StoreLimits
from vm.runtime.wasi import MemFS, WasiConfig, WasiState
from vm.runtime.wasi.constants import ERRNO
from vm.runtime.wasi.preview1 import SIGNATURES, wasi_exports
from vm.runtime.wasi.state import CLOCK_START_NS, CLOCK_TICK_NS
from vm.snapshot import finish, start

HELLO = module('''
(func (export "_start")
  (call $print (i32.const 256) (i32.const 6))
  (call $proc_exit (i32.const 3)))''', [(256, b"hello\n")])

# create a file in the preopen, write, seek back, read it, print what was read and the offsets
FILES = module(f'''
(func (export "_start") (local $fd i32)
  (call $num (call $open (i32.const 3) (i32.const 256) (i32.const 7) (i32.const 1) {RW} (i32.const 0)))
  (local.set $fd (call $fd))
  (i32.store (i32.const 100) (i32.const 300)) (i32.store (i32.const 104) (i32.const 11))
  (call $num (call $fd_write (local.get $fd) (i32.const 100) (i32.const 1) (i32.const 108)))
  (call $num (i32.load (i32.const 108)))
  (call $num (call $fd_seek (local.get $fd) (i64.const 6) (i32.const 0) (i32.const 112)))
  (call $num (i32.load (i32.const 112)))
  (i32.store (i32.const 100) (i32.const 400)) (i32.store (i32.const 104) (i32.const 20))
  (call $num (call $fd_read (local.get $fd) (i32.const 100) (i32.const 1) (i32.const 108)))
  (call $print (i32.const 400) (i32.load (i32.const 108)))
  (call $num (call $fd_tell (local.get $fd) (i32.const 112)))
  (call $num (i32.load (i32.const 112)))
  (call $num (call $fd_close (local.get $fd)))
  (call $num (call $fd_close (local.get $fd))))''', [(256, b"out.txt"), (300, b"hello world")])


def test_hello_exit_code_like_wasmtime():
    res, st, out = ours(HELLO)
    assert res == theirs(HELLO)
    assert res[:3] == (b"hello\n", b"", 3)
    assert out.trap == "exit" and out.wasi["exit_code"] == 3
    assert base64.b64decode(out.wasi["stdout"]) == b"hello\n"


def test_file_write_seek_read_like_wasmtime():
    res, st, out = ours(FILES)
    assert res == theirs(FILES)
    assert res[0].split(b"\n")[:6] == [b"0", b"0", b"11", b"0", b"6", b"0"]
    assert b"world" in res[0]
    assert out.trap is None and out.wasi["exit_code"] is None
    assert st.fs.listing() == [("/sandbox", "dir", b""), ("/sandbox/out.txt", "file", b"hello world")]


def test_wasi_import_without_wasi_state_is_a_link_error():
    with pytest.raises(LinkError, match="--wasi"):
        instantiate(Store(), HELLO)
    store = Store()  # linked by hand (as a restore does), but no state: refused, never a made-up state
    fd_write = wasi_exports(store)["fd_write"]
    with pytest.raises(Unsupported, match="without WASI state"):
        fd_write.host([1, 0, 0, 0])


# -- where wcr deliberately differs from wasmtime, and the limits ---------------------------------------
@pytest.mark.parametrize("call", [
    "(call $fd_seek (call $fd) (i64.const 0) (i32.const 7) (i32.const 200))",  # whence
    "(call $path_open (i32.const 3) (i32.const 0) (i32.const 1024) (i32.const 1) (i32.const 16) "
    "(i64.const 0) (i64.const 0) (i32.const 0) (i32.const 12))",  # oflags
    "(call $path_open (i32.const 3) (i32.const 0) (i32.const 1024) (i32.const 1) (i32.const 0) "
    "(i64.const 0) (i64.const 0) (i32.const 64) (i32.const 12))",  # fdflags
    "(call $clock_time_get (i32.const 9) (i64.const 0) (i32.const 200))",  # clock id
    "(call $fd_advise (call $fd) (i64.const 0) (i64.const 0) (i32.const 9))",
])
def test_invalid_enum_values_and_flags_are_einval(call):
    """wasmtime traps on these (its bindings refuse the value); a WASI errno is what the spec defines."""
    p = Prog()
    p.wat(f"(drop (call $open (i32.const 3) {p.s('x')} (i32.const 1) {RW} (i32.const 0)))")
    p.errno(call)
    res, st, out = ours(p.wasm())
    assert out.trap is None
    assert res[0] == b"28\n"


def _store(config: WasiConfig, limits: StoreLimits = None) -> Store:
    store = Store(limits=limits)
    store.wasi = WasiState.start(config, store.limits)
    return store


def _run(wasm: bytes, store: Store):
    inst = instantiate(store, wasm)
    return finish(store, start(store, inst.exports["_start"], []))


def test_files_beyond_max_fs_bytes_fail_with_enospc_and_efbig():
    p = Prog()
    path = p.s("f")
    p.errno(f"(call $open (i32.const 3) {path} (i32.const 1) {RW} (i32.const 0))")
    p.wat("(i32.store (i32.const 128) (i32.const 2048)) (i32.store (i32.const 132) (i32.const 600))")
    for _ in range(2):  # 600 + 600 bytes: the second write is beyond the 1000 allowed
        p.errno("(call $fd_write (call $fd) (i32.const 128) (i32.const 1) (i32.const 200))")
    p.errno("(call $fd_filestat_set_size (call $fd) (i64.const 1099511627776))")  # 2**40: never allocated
    p.errno("(call $fd_filestat_set_size (call $fd) (i64.const 1000))")
    p.errno("(call $fd_filestat_set_size (call $fd) (i64.const 1001))")
    p.errno("(call $fd_pwrite (call $fd) (i32.const 128) (i32.const 1) (i64.const 999999) (i32.const 200))")
    store = _store(WasiConfig(dirs=[("/", None)]), StoreLimits(max_fs_bytes=1000))
    _run(p.wasm(), store)
    assert store.wasi.stdout.split() == [b"0", b"0", b"51", b"22", b"0", b"22", b"51"]
    assert store.wasi.fs.used == 1000


def test_a_host_directory_beyond_max_fs_bytes_is_refused(tmp_path):
    (tmp_path / "big").write_bytes(b"x" * 2000)
    with pytest.raises(ResourceLimit, match="max-fs-bytes"):
        WasiState.start(WasiConfig(dirs=[("/d", str(tmp_path))]), StoreLimits(max_fs_bytes=1000))


def test_load_dir_and_write_back_mirror_the_tree(tmp_path):
    host = tmp_path / "h"
    (host / "keep" / "deeper").mkdir(parents=True)
    (host / "keep" / "deeper" / "x").write_bytes(b"x")
    (host / "gone").mkdir()
    (host / "gone" / "y").write_bytes(b"y")
    (host / "f").write_bytes(b"old")
    os.symlink("f", host / "link")
    st = WasiState.start(WasiConfig(dirs=[("/d", str(host))]))
    fs = st.fs
    assert ("/d/link", "symlink", b"f") in fs.listing() and ("/d/keep/deeper/x", "file", b"x") in fs.listing()
    before = fs.digest()
    root = fs.roots["/d"]
    fs.remove(fs.locate(root, b"gone/y", False), False)
    fs.remove(fs.locate(root, b"gone", False), True)
    fs.write(fs.node(fs.lookup(root, b"f", False)), 0, b"new!")
    fs.create(fs.locate(root, b"keep/new", False), "file")
    fs.remove(fs.locate(root, b"link", False), False)
    fs.create(fs.locate(root, b"link", False), "dir")  # a symlink replaced by a directory
    assert fs.digest() != before
    st.write_back()
    assert sorted(str(p.relative_to(host)) for p in host.rglob("*")) == [
        "f", "keep", "keep/deeper", "keep/deeper/x", "keep/new", "link"]
    assert (host / "f").read_bytes() == b"new!" and (host / "link").is_dir() and not (host / "link").is_symlink()
    assert digest_of(str(host), "/d") == fs.digest()


def test_digest_ignores_times_and_inode_numbers():
    a, b = MemFS(), MemFS()
    ra, rb = a.mkroot("/"), b.mkroot("/")
    b.new("file", rb)  # an orphan inode: b's numbers are shifted
    for fs, root in ((a, ra), (b, rb)):
        ino = fs.create(fs.locate(root, b"x", False), "file")
        fs.write(fs.node(ino), 0, b"same")
    b.node(b.lookup(rb, b"x", False)).mtim = 12345
    assert a.digest() == b.digest()
    a.write(a.node(a.lookup(ra, b"x", False)), 4, b"!")
    assert a.digest() != b.digest()


CLOCK_AND_RANDOM = Prog()
CLOCK_AND_RANDOM.errno("(call $clock_time_get (i32.const 0) (i64.const 0) (i32.const 128))")
CLOCK_AND_RANDOM.errno("(call $clock_time_get (i32.const 1) (i64.const 0) (i32.const 136))")
CLOCK_AND_RANDOM.errno("(call $random_get (i32.const 144) (i32.const 40))")
CLOCK_AND_RANDOM.wat("(call $print (i32.const 128) (i32.const 56))")


def test_the_virtual_clock_and_the_seeded_random_stream_are_deterministic():
    runs = []
    for seed in (0, 0, 1):
        store = _store(WasiConfig(seed=seed))
        _run(CLOCK_AND_RANDOM.wasm(), store)
        runs.append(store.wasi)
    a, b, c = runs
    assert a.stdout == b.stdout and a.stdout != c.stdout
    t0, t1 = struct.unpack_from("<QQ", bytes(a.stdout), 6)
    assert (t0, t1) == (CLOCK_START_NS, CLOCK_START_NS + CLOCK_TICK_NS)
    assert bytes(a.stdout)[22:62] == a.random_bytes(0) + WasiState.start(WasiConfig()).random_bytes(40)
    assert a.random_counter == 2  # 40 bytes: two SHA-256 blocks
    assert a.summary() == b.summary()


def test_poll_oneoff_advances_the_virtual_clock_by_the_timeout():
    p = Prog()
    p.wat("(i64.store (i32.const 256) (i64.const 1)) (i32.store8 (i32.const 264) (i32.const 0))"
          "(i32.store (i32.const 272) (i32.const 1)) (i64.store (i32.const 280) (i64.const 5000000000))")
    p.errno("(call $poll_oneoff (i32.const 256) (i32.const 512) (i32.const 1) (i32.const 200))")
    store = _store(WasiConfig())
    _run(p.wasm(), store)
    assert store.wasi.clock_ns == CLOCK_START_NS + 5_000_000_000


def test_proc_exit_ends_the_run_with_the_code_as_state():
    p = Prog()
    p.wat("(call $proc_exit (i32.const 200)) (call $print (i32.const 0) (i32.const 1))")
    store = _store(WasiConfig())
    out = _run(p.wasm(), store)
    assert out.trap == PROC_EXIT and store.wasi.exit_code == 200 and not store.wasi.stdout


def test_a_program_without_memory_traps_when_it_passes_a_pointer():
    wasm = wasmtime.wat2wasm('(module (import "wasi_snapshot_preview1" "args_sizes_get" '
                             '(func $a (param i32 i32) (result i32)))'
                             '(func (export "_start") (drop (call $a (i32.const 0) (i32.const 4)))))')
    out = _run(wasm, _store(WasiConfig()))
    assert out.trap == "out of bounds memory access"


def test_every_preview1_function_links_with_its_witx_signature():
    """The table that makes any wasi-libc program link: 46 functions, as in wasi_snapshot_preview1.witx."""
    assert len(SIGNATURES) == 46
    store = _store(WasiConfig())
    exports = wasi_exports(store)
    assert set(exports) == set(SIGNATURES)
    assert tuple(exports["path_open"].type.params) == ("i32",) * 5 + ("i64", "i64", "i32", "i32")
    assert exports["proc_exit"].type.results == ()
    assert instantiate(store, module('(func (export "_start"))'))  # all imported at once


def test_errno_numbers_follow_the_spec():
    assert (ERRNO["2BIG"], ERRNO["BADF"], ERRNO["EXIST"], ERRNO["INVAL"], ERRNO["NOENT"], ERRNO["NOTDIR"],
            ERRNO["PERM"], ERRNO["SPIPE"], ERRNO["XDEV"], ERRNO["NOTCAPABLE"]) == (1, 8, 20, 28, 44, 54, 63, 70, 75, 76)
    assert len(ERRNO) == 77


def test_real_clock_reads_the_host_clock():
    store = _store(WasiConfig(real_clock=True))
    _run(CLOCK_AND_RANDOM.wasm(), store)
    realtime = struct.unpack_from("<Q", bytes(store.wasi.stdout), 6)[0]
    assert realtime > CLOCK_START_NS + 365 * 86400 * 10**9  # after 2022: not the virtual clock
    assert store.wasi.clock_ns == CLOCK_START_NS  # which did not move
