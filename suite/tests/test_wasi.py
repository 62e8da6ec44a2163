"""WASI preview 1 on our VM: programs compared with wasmtime's WASI, and the state it keeps."""

from __future__ import annotations

import base64

import pytest

from suite.tests._wasi import RW, module, ours, theirs
from vm.api import Store, instantiate
from vm.errors import LinkError

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
