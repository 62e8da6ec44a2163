"""Running small WASI programs on our VM and on wasmtime (wasmtime-py's WASI) side by side.

Programs are WAT text with every preview-1 import declared (:func:`module`), so a test body calls
``$fd_write`` etc. by name; :func:`ours` and :func:`theirs` run ``_start`` with the same args, env and
a copy of the same preopened directory, and both give (stdout, stderr, exit code, files digest).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any, List, Optional, Sequence, Tuple

import wasmtime

from vm.api import Store, instantiate
from vm.runtime.wasi import MemFS, WasiConfig, WasiState
from vm.runtime.wasi.preview1 import SIGNATURES
from vm.snapshot import finish, start

#: a run's end: stdout, stderr, exit code (0 when ``_start`` returns), files digest of the preopen
Result = Tuple[bytes, bytes, int, str]


def imports() -> str:
    """WAT import declarations of every preview-1 function, named ``$NAME``."""
    lines = []
    for name, (params, results) in SIGNATURES.items():
        p = f" (param {' '.join(params)})" if params else ""
        r = f" (result {' '.join(results)})" if results else ""
        lines.append(f'(import "wasi_snapshot_preview1" "{name}" (func ${name}{p}{r}))')
    return "\n".join(lines)


#: helper functions every :func:`module` has (memory below 1024 is theirs and the tests' scratch):
#: ``$print(ptr, len)`` to stdout; ``$num(n)`` prints n (unsigned decimal) and a newline;
#: ``$open(dirfd, ptr, len, oflags, rights, fdflags) -> errno`` (the fd at address 12, ``$fd()``;
#: 16-47 are $num's digits, 48-111 hold the fds :meth:`Prog.save_fd` keeps, 128-1023 are a buffer)
PRELUDE = """
(func $print (param $p i32) (param $n i32)
  (i32.store (i32.const 0) (local.get $p)) (i32.store (i32.const 4) (local.get $n))
  (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
(func $num (param $v i32) (local $p i32)
  (local.set $p (i32.const 47))
  (i32.store8 (local.get $p) (i32.const 10))
  (loop $l
    (local.set $p (i32.sub (local.get $p) (i32.const 1)))
    (i32.store8 (local.get $p) (i32.add (i32.const 48) (i32.rem_u (local.get $v) (i32.const 10))))
    (local.set $v (i32.div_u (local.get $v) (i32.const 10)))
    (br_if $l (local.get $v)))
  (call $print (local.get $p) (i32.sub (i32.const 48) (local.get $p))))
(func $open (param $dir i32) (param $p i32) (param $n i32) (param $of i32) (param $r i64) (param $ff i32) (result i32)
  (call $path_open (local.get $dir) (i32.const 1) (local.get $p) (local.get $n) (local.get $of)
    (local.get $r) (local.get $r) (local.get $ff) (i32.const 12)))
(func $fd (result i32) (i32.load (i32.const 12)))
"""
#: rights for a file opened to read and write / a directory (what wasi-libc asks for)
RW = "(i64.const 0x1fffffff)"
RDIR = "(i64.const 0x1fffffbf)"


def module(body: str, data: Sequence[Tuple[int, bytes]] = (), pages: int = 1) -> bytes:
    """A WASI command: every import, one memory, ``data`` segments (offset, bytes), ``body`` (more
    functions; must define ``(func (export "_start") ...)``)."""
    segs = "\n".join(f'(data (i32.const {off}) "{_escape(raw)}")' for off, raw in data)
    return wasmtime.wat2wasm(f'(module {imports()}\n(memory (export "memory") {pages})\n{segs}\n{PRELUDE}\n{body})')


def _escape(raw: bytes) -> str:
    return "".join("\\" + format(b, "02x") for b in raw)


def digest_of(host_dir: Optional[str], guest: str = "/sandbox") -> str:
    """The canonical files digest of a host directory preopened as ``guest`` (:meth:`MemFS.digest`)."""
    fs = MemFS()
    if host_dir is None:
        fs.mkroot(guest)
    else:
        fs.load_dir(host_dir, guest)
    return fs.digest()


def ours(wasm: bytes, args: List[str] = (), env: Sequence[Tuple[str, str]] = (), dir: Optional[str] = None,
         guest: str = "/sandbox", stdin: bytes = b"") -> Tuple[Result, WasiState, Any]:
    """Run ``_start`` on our VM with ``dir`` loaded (not written back): the result, the state, the outcome."""
    store = Store()
    store.wasi = WasiState.start(WasiConfig(["prog", *args], list(env), [(guest, dir)], stdin))
    inst = instantiate(store, wasm)
    out = finish(store, start(store, inst.exports["_start"], []))
    st = store.wasi
    code = st.exit_code if st.exit_code is not None else (0 if out.trap is None else -1)
    return (bytes(st.stdout), bytes(st.stderr), code, st.fs.digest()), st, out


def theirs(wasm: bytes, args: List[str] = (), env: Sequence[Tuple[str, str]] = (), dir: Optional[str] = None,
           guest: str = "/sandbox", stdin: bytes = b"") -> Result:
    """Run ``_start`` under wasmtime's WASI on a copy of ``dir`` (``dir`` itself is left as it was)."""
    work = tempfile.mkdtemp(prefix="wcr-wasi-")
    try:
        sandbox = os.path.join(work, "sb")
        if dir is None:
            os.mkdir(sandbox)
        else:
            shutil.copytree(dir, sandbox, symlinks=True)
        cfg = wasmtime.WasiConfig()
        cfg.argv = ["prog", *args]
        cfg.env = [list(kv) for kv in env]
        cfg.preopen_dir(sandbox, guest)
        for name in ("stdout", "stderr", "stdin"):
            path = os.path.join(work, name)
            with open(path, "wb") as f:
                f.write(stdin if name == "stdin" else b"")
        cfg.stdout_file = os.path.join(work, "stdout")
        cfg.stderr_file = os.path.join(work, "stderr")
        cfg.stdin_file = os.path.join(work, "stdin")
        engine = wasmtime.Engine()
        store = wasmtime.Store(engine)
        store.set_wasi(cfg)
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        inst = linker.instantiate(store, wasmtime.Module(engine, wasm))
        try:
            inst.exports(store)["_start"](store)
            code = 0
        except wasmtime.ExitTrap as e:
            code = e.code
        except (wasmtime.Trap, wasmtime.WasmtimeError):  # a trap, or a host function's (pointer out of bounds)
            code = -1
        with open(os.path.join(work, "stdout"), "rb") as f:
            out = f.read()
        with open(os.path.join(work, "stderr"), "rb") as f:
            err = f.read()
        return out, err, code, digest_of(sandbox, guest)
    finally:
        shutil.rmtree(work, ignore_errors=True)


class Prog:
    """A WASI command built step by step: strings placed in memory from 1024 on, and a ``_start``
    body.  :meth:`errno` prints the errno a call returns, so a run's stdout is the list of outcomes
    that :func:`ours` and :func:`theirs` must agree on."""

    def __init__(self) -> None:
        self.data: List[Tuple[int, bytes]] = []
        self.next = 1024
        self.body: List[str] = []

    def s(self, raw: Any) -> str:
        """``(i32.const ptr) (i32.const len)`` of ``raw`` (str or bytes) placed in memory."""
        b = raw.encode() if isinstance(raw, str) else bytes(raw)
        ptr = self.next
        self.data.append((ptr, b))
        self.next += len(b) + 8 - len(b) % 8
        return f"(i32.const {ptr}) (i32.const {len(b)})"

    def errno(self, call: str) -> Prog:
        self.body.append(f"(call $num {call})")
        return self

    def num(self, expr: str) -> Prog:
        return self.errno(expr)

    def wat(self, text: str) -> Prog:
        self.body.append(text)
        return self

    def save_fd(self, slot: int) -> Prog:
        """Keep the fd the last ``$open`` gave in slot ``slot`` (read it with :func:`fd_slot`)."""
        return self.wat(f"(i32.store (i32.const {48 + 4 * slot}) (call $fd))")

    def wasm(self, pages: int = 1) -> bytes:
        return module('(func (export "_start")\n' + "\n".join(self.body) + ")", self.data, pages)


def fd_slot(slot: int) -> str:
    return f"(i32.load (i32.const {48 + 4 * slot}))"
