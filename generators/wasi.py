"""The WASI part of the module generator (:mod:`generators.modules`, feature ``wasi``): programs that
import ``wasi_snapshot_preview1`` and interleave the generated computation with calls that write,
read, seek and close files and write stdout/stderr, so WASI state (open fds, offsets, output so far,
files) is live at random checkpoints.

Why a part of its own: a checkpoint of a WASI program must carry the fd table, the offsets, the bytes
written so far and the changed files, and only programs that hold such state at checkpoints test that
(a restore that reopens a file at offset 0, or forgets a file created before the checkpoint, passes every
other program).

The program runs with :data:`WASI_CONFIG`: one empty in-memory directory preopened as ``/sandbox``
(fd 3), no args beyond the program name, a fixed random seed and the virtual clock.  Its shapes:

* the module imports the functions of :data:`IMPORTS` (after the ``spectest`` prints), and
  ``clock_time_get``/``random_get`` only when a module-level draw enables them (a program that imports a
  clock or random source is judged more loosely on native targets, whose clock and random bytes are
  real, not our virtual ones), and exports its memory 0 as ``memory`` as well as ``mem`` (WASI binds the
  ``memory`` export);
* a scratch area at :data:`SCRATCH` (in page 0) holds iovecs, paths and the words the host functions
  write back; every call builds what it needs there right before it, with constant stores, so code
  drawn between calls may overwrite it freely;
* ``fd_write``/``fd_pwrite`` of *computed* bytes (a drawn i64 expression stored into the scratch area,
  or any range of the memory the program computed) to stdout, stderr and files in the sandbox;
  ``fd_read``/``fd_pread`` into memory that the computation then loads; ``fd_seek``/``fd_tell``;
  ``path_open`` (create, truncate, exclusive, append, directories) of a small pool of names, so opens
  collide with earlier ones and with ``path_create_directory``/``path_unlink_file``; ``fd_close``,
  ``fd_renumber``, ``fd_filestat_get``; ``clock_time_get`` and ``random_get``; ``proc_exit`` as a rare
  statement and sometimes at the end of ``run``;
* the fd of the file opened last lives in the exported global ``wasi_fd`` (random code never writes it;
  99, never open, until a ``path_open`` succeeds); ``run`` usually opens a file first (and sometimes
  writes to it or to stdout at once), so later code runs with a file open at a moving offset; a
  function's entry sometimes makes a call (entries repeat: calls, recursion);
* **errno results feed back**: a call's errno (and the count, offset or fd it wrote back) is a value of
  the computation (a call is an ``i32`` expression), or rotated into the exported i64 global
  ``wasi_acc``, a local, or the print log, so a wrong errno changes results, globals or memory;
* what another engine legitimately writes differently (clock readings, random bytes, a filestat's
  device, inode and times) is zeroed at once, unread: neither wasmtime's conformance run nor a native
  target can agree on it.  The clock and the random stream themselves are WASI state, so a restore
  that resets either still changes the oracle's state digest (:mod:`vm.snapshot.digest`) and later
  timestamps of files.

No call passes an enum value or flag bit outside the spec (our WASI returns ``EINVAL`` where wasmtime
traps) and seeks stay small (no file grows past a few KiB).  Pointers stay in bounds unless the
``traps`` feature is on (then rarely a pointer past the memory: both engines trap).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from vm.module import Export, Global, Import, ImportDesc, Instr, MemArg
from vm.runtime.wasi import WASI_MODULE
from vm.runtime.wasi.constants import (
    FDFLAG_APPEND,
    FILESTAT_SIZE,
    FT_REGULAR_FILE,
    O_CREAT,
    O_DIRECTORY,
    O_EXCL,
    O_TRUNC,
    R_FD_READ,
    R_FD_SEEK,
    R_FD_TELL,
    R_FD_WRITE,
    RIGHTS,
)
from vm.runtime.wasi.preview1 import SIGNATURES
from vm.types import I32, I64, FuncType, GlobalType

from .stateops import _ints

__all__ = ["IMPORTS", "NONDETERMINISTIC", "SANDBOX", "SCRATCH", "WASI_CONFIG", "WASI_MODULE", "WasiOps"]

#: the guest path of the preopened in-memory directory (fd 3)
SANDBOX = "/sandbox"
#: how every generated WASI program is started (JSON-able: it travels in cases, logs and bug reports;
#: :func:`runners.trial.wasi_config` turns it into a :class:`vm.runtime.wasi.WasiConfig`)
WASI_CONFIG: Dict[str, Any] = {"args": ["case.wasm"], "dirs": [[SANDBOX, None]], "seed": 1}

#: the imported functions (signatures: :data:`vm.runtime.wasi.preview1.SIGNATURES`)
IMPORTS: Tuple[str, ...] = (
    "fd_write", "fd_read", "fd_pwrite", "fd_pread", "fd_seek", "fd_tell", "fd_close", "fd_filestat_get",
    "fd_renumber", "path_open", "path_unlink_file", "path_create_directory", "proc_exit",
)
#: imported only when a module-level draw (chances 1 in 4 each) enables them
NONDETERMINISTIC = ("clock_time_get", "random_get")

#: the scratch area (page 0; every generated memory has at least one page)
SCRATCH = 0xF000
_IOV = SCRATCH  # up to 3 iovecs (8 bytes each)
_RES = SCRATCH + 0x20  # the word a call writes back (count, offset, fd)
_PATH = SCRATCH + 0x40  # a path (at most 8 bytes)
_DATA = SCRATCH + 0x60  # computed bytes to write (3 x 8)
_READ = SCRATCH + 0x80  # what fd_read/fd_pread fill (up to 32 bytes)
_STAT = SCRATCH + 0xC0  # a filestat (64 bytes)
_ENTROPY = SCRATCH + 0x100  # clock readings, random bytes (16 bytes)
#: the fd ``wasi_fd`` holds before a path_open succeeds (never open)
NO_FD = 99
#: preopened directory
DIR_FD = 3
#: names drawn for path operations, the common ones first (shrinking settles on "a"); the last few are
#: refused by every runtime in the same way (escapes: EPERM, a file used as a directory: ENOTDIR)
PATHS = (b"a", b"b.txt", b"d", b"d/e", b"a/x", b".", b"../a", b"/a")
#: rights: those of a regular file (what every runtime's preopen passes on: more is ENOTCAPABLE on node's
#: WASI and allowed by wasmtime's, so asking for more would test that difference, not C/R), a read-only
#: and a write-only set
_RIGHTS = sum(RIGHTS[n] for n in (
    "FD_DATASYNC", "FD_READ", "FD_SEEK", "FD_FDSTAT_SET_FLAGS", "FD_SYNC", "FD_TELL", "FD_WRITE", "FD_ADVISE",
    "FD_ALLOCATE", "FD_FILESTAT_GET", "FD_FILESTAT_SET_SIZE", "FD_FILESTAT_SET_TIMES", "POLL_FD_READWRITE"))
_R_READ = R_FD_READ | R_FD_SEEK | R_FD_TELL | RIGHTS["FD_FILESTAT_GET"]
_R_WRITE = R_FD_WRITE | R_FD_SEEK | R_FD_TELL | RIGHTS["FD_FILESTAT_GET"]


class WasiOps:
    """Mixed into the generator (:class:`generators.modules._Gen`), whose drawing, emitting and value
    methods it uses."""

    draw: Any
    pick: Any
    flag: Any
    choice: Any
    emit: Any
    value: Any
    values: Any
    ctx: Any
    f: Any
    code: List[Instr]
    imports: List[Import]
    func_types: List[int]
    type_index: Any
    globals: List[Global]
    print_funcs: Dict[Any, int]
    gbase: int
    mem_pages: int
    wasi_funcs: Dict[str, int]
    wasi_fd_global: int = -1
    wasi_acc_global: int = -1
    renumber_to: int = 4

    # -- module skeleton ------------------------------------------------------------------------------
    def wasi_imports(self) -> None:
        """Import every function of :data:`IMPORTS` and the enabled ones of :data:`NONDETERMINISTIC`
        (function indices after the prints)."""
        self.wasi_funcs = {}
        for name in IMPORTS + tuple(n for n in NONDETERMINISTIC if self.choice(4) == 3):
            params, results = SIGNATURES[name]
            ti = self.type_index(FuncType(params, results))
            self.wasi_funcs[name] = len(self.imports)
            self.imports.append(Import(WASI_MODULE, name, ImportDesc("func", ti)))
            self.func_types.append(ti)

    def wasi_globals(self) -> List[Export]:
        """``wasi_fd`` (i32) and ``wasi_acc`` (i64), both exported; returns the exports (call after every
        imported global is known: indices count them)."""
        base = self.gbase + len(self.globals)
        self.wasi_fd_global, self.wasi_acc_global = base, base + 1
        self.globals.append(Global(GlobalType(I32, True), [Instr("i32.const", NO_FD), Instr("end")]))
        self.globals.append(Global(GlobalType(I64, True), [Instr("i64.const", 0), Instr("end")]))
        return [Export("wasi_fd", "global", base), Export("wasi_acc", "global", base + 1)]

    def wasi_reserved_globals(self) -> Tuple[int, ...]:
        """Globals random code never writes (``global.set``)."""
        return tuple(g for g in (self.wasi_fd_global, self.wasi_acc_global) if g >= 0)

    # -- small emitters ---------------------------------------------------------------------------------
    def _store_const(self, addr: int, v: int, op: str = "i32.store") -> None:
        t = op.split(".")[0]
        self.code += [Instr("i32.const", addr), Instr(f"{t}.const", v), Instr(op, MemArg(0, 0))]

    def _load(self, addr: int, op: str = "i32.load") -> None:
        self.code += [Instr("i32.const", addr), Instr(op, MemArg(0, 0))]

    def _call(self, name: str) -> None:
        self.code.append(Instr("call", self.wasi_funcs[name]))

    def _tmp(self) -> int:
        return int(self.ctx.scratch_local(I32))

    def _fd(self, kinds: Tuple[str, ...] = ("file", "out", "dir")) -> None:
        """Push an fd: the file opened last (``wasi_fd``), stdout/stderr, the sandbox, or rarely a
        computed one (0..7: mostly not open, EBADF)."""
        k = self.choice(10)
        if k == 9:
            self.value(I32)
            self.code += [Instr("i32.const", 7), Instr("i32.and")]
        elif 4 <= k < 7 and "out" in kinds:
            self.code.append(Instr("i32.const", 1 + self.choice(2)))
        elif 7 <= k < 9 and "dir" in kinds:
            self.code.append(Instr("i32.const", DIR_FD))
        else:
            self.code.append(Instr("global.get", self.wasi_fd_global))

    def _small_i64(self, lo: int, hi: int) -> None:
        """A small i64 (seek offsets, pwrite/pread positions): a constant, or a computed value masked."""
        if self.flag():
            self.code.append(Instr("i64.const", self.draw(_ints(lo, hi)) & ((1 << 64) - 1)))
        else:
            self.value(I64)
            self.code += [Instr("i64.const", 63), Instr("i64.and")]

    def _ptr(self, addr: int) -> None:
        """A pointer argument: ``addr``, or (traps feature, rarely) one past any memory (both engines
        trap: every use writes or reads at least one byte there)."""
        if "traps" in self.f and self.choice(24) == 23:
            self.code.append(Instr("i32.const", 0xFFFFFFF0))
        else:
            self.code.append(Instr("i32.const", addr))

    def _iovecs(self, write: bool) -> int:
        """Build the iovec at :data:`_IOV`; for a write, the bytes are a computed value stored first, or a
        range of memory the program computed.  Returns how many (one: wasmtime transfers only the first
        non-empty iovec of a call, node's WASI all of them, and both are allowed, so a program that
        does not loop on short transfers like libc does would test that difference, not C/R)."""
        n = 1
        spans: List[Tuple[int, int]] = []
        for i in range(n):
            if not write:
                spans.append((_READ + 8 * i, self.draw(_ints(0, 12))))
            elif self.choice(3) < 2:
                self.code.append(Instr("i32.const", _DATA + 8 * i))
                self.value(I64)
                self.code.append(Instr("i64.store", MemArg(0, 0)))
                spans.append((_DATA + 8 * i, self.draw(_ints(0, 8))))
            else:
                spans.append((self.draw(_ints(0, 0x200)), self.draw(_ints(0, 24))))
        for i, (buf, length) in enumerate(spans):
            self._store_const(_IOV + 8 * i, buf)
            self._store_const(_IOV + 8 * i + 4, length)
        return n

    def _path(self) -> None:
        """Push (ptr, len) of a pooled name written to :data:`_PATH`."""
        p = PATHS[self.draw(_ints(0, 4))] if self.choice(6) else self.pick(PATHS)
        self._store_const(_PATH, int.from_bytes(p.ljust(8, b"\0"), "little"), "i64.store")
        self.code += [Instr("i32.const", _PATH), Instr("i32.const", len(p))]

    def _feed(self, word: Optional[str]) -> None:
        """After a call whose errno is in the scratch local: rotate the word it wrote back (``i32``/
        ``i64`` load of :data:`_RES`) into ``wasi_acc``."""
        if word is None:
            return
        acc = self.wasi_acc_global
        self.code += [Instr("global.get", acc), Instr("i64.const", 13), Instr("i64.rotl")]
        self._load(_RES, "i64.load" if word == "i64" else "i32.load")
        if word == "i32":
            self.code.append(Instr("i64.extend_i32_u"))
        self.code += [Instr("i64.xor"), Instr("global.set", acc)]

    def _zero(self, addr: int, words: int) -> None:
        """Zero ``words`` i64 words at ``addr`` (what engines legitimately disagree on)."""
        for i in range(words):
            self._store_const(addr + 8 * i, 0, "i64.store")

    # -- the calls ------------------------------------------------------------------------------------------
    def wasi_call(self) -> None:
        """One call, its errno left in the scratch local (what it wrote back already consumed)."""
        ops = ["fd_write", "fd_write", "path_open", "fd_read", "fd_seek", "fd_tell", "fd_pwrite", "fd_pread",
               "fd_close", "fd_filestat_get", "path_unlink_file", "path_create_directory", "fd_renumber"]
        op = self.pick(ops + [n for n in NONDETERMINISTIC if n in self.wasi_funcs])
        getattr(self, "_w_" + op)()
        self.code.append(Instr("local.set", self._tmp()))
        after = getattr(self, "_after_" + op, None)
        if after is not None:
            after()

    def _w_fd_write(self, fd: Optional[Instr] = None) -> None:
        if fd is None:
            self._fd()
        else:
            self.code.append(fd)
        n = self._iovecs(True)
        self._ptr(_IOV)
        self.code += [Instr("i32.const", n), Instr("i32.const", _RES)]
        self._call("fd_write")

    def _after_fd_write(self) -> None:
        self._feed("i32")

    def _w_fd_pwrite(self) -> None:
        self._fd(("file", "dir"))
        n = self._iovecs(True)
        self.code += [Instr("i32.const", _IOV), Instr("i32.const", n)]
        self._small_i64(0, 48)
        self.code.append(Instr("i32.const", _RES))
        self._call("fd_pwrite")

    _after_fd_pwrite = _after_fd_write

    def _w_fd_read(self) -> None:
        if self.choice(6) == 5:
            self.code.append(Instr("i32.const", 0))  # stdin (empty)
        else:
            self._fd(("file", "dir"))
        n = self._iovecs(False)
        self._ptr(_IOV)
        self.code += [Instr("i32.const", n), Instr("i32.const", _RES)]
        self._call("fd_read")

    def _after_fd_read(self) -> None:
        self._feed("i32")
        acc = self.wasi_acc_global  # what was read flows into the computation
        self.code += [Instr("global.get", acc)]
        self._load(_READ + 8 * self.choice(2), "i64.load")
        self.code += [Instr("i64.add"), Instr("global.set", acc)]

    def _w_fd_pread(self) -> None:
        self._fd(("file",))
        n = self._iovecs(False)
        self.code += [Instr("i32.const", _IOV), Instr("i32.const", n)]
        self._small_i64(0, 32)
        self.code.append(Instr("i32.const", _RES))
        self._call("fd_pread")

    _after_fd_pread = _after_fd_read

    def _w_fd_seek(self) -> None:
        self._fd(("file", "out"))
        self._small_i64(-16, 40)
        self.code += [Instr("i32.const", self.choice(3)), Instr("i32.const", _RES)]
        self._call("fd_seek")

    def _after_fd_seek(self) -> None:
        self._feed("i64")

    def _w_fd_tell(self) -> None:
        self._fd(("file",))
        self.code.append(Instr("i32.const", _RES))
        self._call("fd_tell")

    _after_fd_tell = _after_fd_seek

    def _w_fd_close(self) -> None:
        self._fd(("file",))
        self._call("fd_close")

    def _w_fd_renumber(self) -> None:
        """``wasi_fd`` onto 4..6; on success ``wasi_fd`` follows it."""
        self.renumber_to = 4 + self.choice(3)
        self.code += [Instr("global.get", self.wasi_fd_global), Instr("i32.const", self.renumber_to)]
        self._call("fd_renumber")

    def _w_fd_filestat_get(self) -> None:
        self._fd(("file", "dir"))
        self._ptr(_STAT)
        self._call("fd_filestat_get")

    def _after_fd_filestat_get(self) -> None:
        """The filetype always, the size only of a regular file (a directory's size is the host
        filesystem's business); the rest (device, inode, times: the host's) is zeroed."""
        acc = self.wasi_acc_global
        self.code += [Instr("global.get", acc)]
        self._load(_STAT + 16, "i64.load8_u")
        self.code += [Instr("i64.xor")]
        self._load(_STAT + 32, "i64.load")
        self.code.append(Instr("i64.const", 0))
        self._load(_STAT + 16, "i32.load8_u")
        self.code += [Instr("i32.const", FT_REGULAR_FILE), Instr("i32.eq"), Instr("select"), Instr("i64.xor"),
                      Instr("global.set", acc)]
        self._zero(_STAT, FILESTAT_SIZE // 8)

    def _w_path_open(self) -> None:
        self.code.append(Instr("i32.const", DIR_FD) if self.choice(6) else Instr("global.get", self.wasi_fd_global))
        self.code.append(Instr("i32.const", self.choice(2)))  # lookupflags: symlink_follow or not
        self._path()
        oflags = (O_CREAT, O_CREAT, 0, O_CREAT | O_TRUNC, O_CREAT | O_EXCL, O_DIRECTORY)[self.choice(6)]
        rights = (_RIGHTS, _RIGHTS, _R_READ, _R_WRITE)[self.choice(4)]
        self.code += [Instr("i32.const", oflags), Instr("i64.const", rights), Instr("i64.const", _RIGHTS),
                      Instr("i32.const", FDFLAG_APPEND if self.choice(4) == 3 else 0), Instr("i32.const", _RES)]
        self._call("path_open")

    def _after_path_open(self) -> None:
        """On success the new fd becomes ``wasi_fd`` (and is rotated into ``wasi_acc``)."""
        self.code += [Instr("local.get", self._tmp()), Instr("i32.eqz"), Instr("if", None)]
        self._load(_RES)
        self.code.append(Instr("global.set", self.wasi_fd_global))
        self.code.append(Instr("end"))
        self._feed("i32")

    def _after_fd_renumber(self) -> None:
        self.code += [Instr("local.get", self._tmp()), Instr("i32.eqz"), Instr("if", None),
                      Instr("i32.const", self.renumber_to), Instr("global.set", self.wasi_fd_global), Instr("end")]

    def _w_path_unlink_file(self) -> None:
        self.code.append(Instr("i32.const", DIR_FD))
        self._path()
        self._call("path_unlink_file")

    def _w_path_create_directory(self) -> None:
        self.code.append(Instr("i32.const", DIR_FD))
        self._path()
        self._call("path_create_directory")

    def _w_clock_time_get(self) -> None:
        self.code += [Instr("i32.const", self.choice(2)), Instr("i64.const", 1 + self.choice(1000))]
        self._ptr(_ENTROPY)
        self._call("clock_time_get")

    def _after_clock_time_get(self) -> None:
        self._zero(_ENTROPY, 1)

    def _w_random_get(self) -> None:
        self.code += [Instr("i32.const", _ENTROPY), Instr("i32.const", self.draw(_ints(0, 16)))]
        self._call("random_get")

    def _after_random_get(self) -> None:
        self._zero(_ENTROPY, 2)

    # -- where the calls go -------------------------------------------------------------------------------
    def wasi_value(self) -> None:
        """An i32 expression: a call's errno (``value``'s ``wasi`` alternative)."""
        self.wasi_call()
        self.code.append(Instr("local.get", self._tmp()))
        if self.ctx is not None:
            self.ctx.budget -= 4

    def wasi_stmt(self) -> None:
        """A call whose errno goes into ``wasi_acc``, a local or the print log; rarely ``proc_exit``
        (``stmt``'s ``wasi`` alternative)."""
        if self.choice(40) == 39:
            self.wasi_exit()
            return
        self.wasi_call()
        self.code.append(Instr("local.get", self._tmp()))
        writable = [i for i, t in enumerate(self.ctx.local_types) if t == I32 and i not in self.ctx.reserved]
        k = self.choice(6)
        if k == 4 and writable:
            self.code.append(Instr("local.set", self.pick(writable)))
        elif k == 5 and I32 in self.print_funcs:
            self.code.append(Instr("call", self.print_funcs[I32]))
        else:
            acc = self.wasi_acc_global
            self.code += [Instr("i64.extend_i32_u"), Instr("global.get", acc), Instr("i64.const", 7),
                          Instr("i64.rotl"), Instr("i64.xor"), Instr("global.set", acc)]
        if self.ctx is not None:
            self.ctx.budget -= 4

    def wasi_exit(self) -> None:
        """``proc_exit`` of a computed code (masked to 0..63: wasmtime refuses codes from 126 on)."""
        self.value(I32)
        self.code += [Instr("i32.const", 63), Instr("i32.and")]
        self._call("proc_exit")

    def wasi_prologue(self) -> None:
        """In ``run``, usually: open (create) ``a`` or ``b.txt`` first, so a file stays open across the
        run, and sometimes write computed bytes to it or to stdout at once (an offset past 0, output
        before later checkpoints)."""
        if not self.choice(4):
            return
        self.code += [Instr("i32.const", DIR_FD), Instr("i32.const", 0)]
        p = PATHS[self.choice(2)]
        self._store_const(_PATH, int.from_bytes(p.ljust(8, b"\0"), "little"), "i64.store")
        self.code += [Instr("i32.const", _PATH), Instr("i32.const", len(p)),
                      Instr("i32.const", O_CREAT | (O_TRUNC if self.flag() else 0)), Instr("i64.const", _RIGHTS),
                      Instr("i64.const", _RIGHTS), Instr("i32.const", FDFLAG_APPEND if self.choice(4) == 3 else 0),
                      Instr("i32.const", _RES)]
        self._call("path_open")
        self.code.append(Instr("local.set", self._tmp()))
        self._after_path_open()
        for i in range(1 + self.choice(2)):  # the file or stdout, then stdout
            fd = Instr("i32.const", 1) if i or self.flag() else Instr("global.get", self.wasi_fd_global)
            self._w_fd_write(fd)
            self.code.append(Instr("local.set", self._tmp()))
            self._after_fd_write()

    def wasi_entry(self) -> None:
        """At a function's entry, sometimes a call (entries run again and again: calls, recursion)."""
        if self.choice(3) == 2:
            self.wasi_stmt()

    def wasi_epilogue(self) -> None:
        """At the end of ``run``: sometimes ``proc_exit``."""
        if self.choice(3) == 2:
            self.wasi_exit()
