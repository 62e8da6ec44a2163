"""The state of a WASI program: configuration, fd table, output so far, clock, random stream, files.

A store that runs a WASI program has one :class:`WasiState` (``store.wasi``); the host functions of
:mod:`.preview1` read and change only it and the memory it is bound to.  Nothing here refers to Python
execution state, so :mod:`vm.snapshot` can copy every field into a snapshot and back.

Determinism: by default the clocks are *virtual* (``clock_ns`` starts at :data:`CLOCK_START_NS` and
advances by :data:`CLOCK_TICK_NS` at every clock read and by the timeout of every ``poll_oneoff`` clock
subscription), and ``random_get`` is a counter-mode SHA-256 stream of ``seed``: two runs of the same
program give the same bytes, so a restored run can be compared bit for bit with an uninterrupted one.
``WasiConfig(real_clock=True)`` reads the host's clocks instead (``wcr run --real-clock``).
"""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from .constants import (
    EBADF,
    EMFILE,
    RIGHTS_ALL,
    RIGHTS_DIR,
    RIGHTS_FILE,
    RIGHTS_STDIN,
    RIGHTS_STDOUT,
    WasiError,
)
from .fs import DIR as DIR_INODE
from .fs import MemFS

WASI_MODULE = "wasi_snapshot_preview1"

#: the virtual clock's start (2021-01-01T00:00:00Z in ns) and its advance per clock read
CLOCK_START_NS = 1_609_459_200_000_000_000
CLOCK_TICK_NS = 1_000_000

#: fd kinds
STDIN, STDOUT, STDERR, DIR, FILE = "stdin", "stdout", "stderr", "dir", "file"
FD_KINDS = (STDIN, STDOUT, STDERR, DIR, FILE)
#: the most fds a program may hold open at once (beyond: ``EMFILE``)
MAX_FDS = 1024


@dataclass
class WasiConfig:
    """What a program is started with.  ``dirs``: preopened directories as (guest path, host directory
    or None for an empty in-memory one), fds 3, 4, … in this order; a host directory is loaded into the
    in-memory filesystem at start (bounded by ``StoreLimits.max_fs_bytes``) and written back only when
    the caller asks (``wcr run`` does, like ``wasmtime run``)."""

    args: List[str] = field(default_factory=list)
    env: List[Tuple[str, str]] = field(default_factory=list)
    dirs: List[Tuple[str, Optional[str]]] = field(default_factory=list)
    stdin: bytes = b""
    real_clock: bool = False
    seed: int = 0


@dataclass
class FdEntry:
    """One open file descriptor.  ``ino``: the inode it refers to (``dir``/``file``; -1 for the standard
    streams); ``preopen``: the guest path of a preopened directory (``fd_prestat_get``), else None;
    ``offset``: the file position (``stdin``: bytes of :attr:`WasiState.stdin` consumed)."""

    kind: str
    ino: int = -1
    preopen: Optional[str] = None
    rights_base: int = 0
    rights_inheriting: int = 0
    flags: int = 0
    offset: int = 0


class WasiState:
    """The WASI state of one store (see the module docstring).  ``memory`` is the memory the host
    functions read and write: the ``memory`` export of the instance that imports WASI, bound by
    :meth:`bind` after instantiation (a snapshot records its address).  ``echo``, when set, is called
    with (fd, bytes) for every write to stdout/stderr (``wcr run`` streams the guest's output); it is
    not state."""

    def __init__(self, config: Optional[WasiConfig] = None, limits: Any = None):
        self.config = config if config is not None else WasiConfig()
        self.args: List[bytes] = []
        self.env: List[bytes] = []
        self.fs = MemFS(limits)
        self.fds: Dict[int, FdEntry] = {}
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.stdin = b""
        self.clock_ns = CLOCK_START_NS
        self.real_clock = False
        self.seed = 0
        self.random_counter = 0  # SHA-256 blocks of the random stream used so far
        self.exit_code: Optional[int] = None
        self.memory: Any = None
        self.echo: Optional[Callable[[int, bytes], None]] = None
        self.fs.clock = self.fs_time

    def bind(self, instance: Any) -> None:
        """Use the ``memory`` export of ``instance`` (the program that imports WASI).  A program without
        one links, but every function that touches memory then traps (``out of bounds memory access``)."""
        mem = instance.exports.get("memory")
        self.memory = mem if getattr(mem, "kind", None) == "memory" else None

    def summary(self) -> Dict[str, Any]:
        """What the oracle compares of a WASI program's end (``Outcome.wasi``): ``{"exit_code": int or
        None, "stdout": base64, "stderr": base64, "files": fs.digest()}``."""
        return {"exit_code": self.exit_code,
                "stdout": base64.b64encode(bytes(self.stdout)).decode("ascii"),
                "stderr": base64.b64encode(bytes(self.stderr)).decode("ascii"),
                "files": self.fs.digest()}

    @classmethod
    def start(cls, config: WasiConfig, limits: Any = None) -> WasiState:
        """A fresh state for ``config``: args, env, fds 0–2 and the preopens, host dirs loaded."""
        st = cls(config, limits)
        st.args = [a.encode("utf-8", "surrogateescape") for a in config.args]
        st.env = [f"{k}={v}".encode("utf-8", "surrogateescape") for k, v in config.env]
        st.stdin = bytes(config.stdin)
        st.real_clock = config.real_clock
        st.seed = config.seed
        st.fds[0] = FdEntry(STDIN, rights_base=RIGHTS_STDIN, rights_inheriting=RIGHTS_STDIN)
        st.fds[1] = FdEntry(STDOUT, rights_base=RIGHTS_STDOUT, rights_inheriting=RIGHTS_STDOUT)
        st.fds[2] = FdEntry(STDERR, rights_base=RIGHTS_STDOUT, rights_inheriting=RIGHTS_STDOUT)
        for n, (guest, host) in enumerate(config.dirs):
            ino = st.fs.load_dir(host, guest) if host is not None else st.fs.mkroot(guest)
            st.fds[3 + n] = FdEntry(DIR, ino, guest, RIGHTS_DIR, RIGHTS_FILE | RIGHTS_DIR)
        return st

    # -- the clock, the random stream -------------------------------------------------------------
    def now(self) -> int:
        """The time a program reads (virtual: advances by :data:`CLOCK_TICK_NS` per read)."""
        if self.real_clock:
            return time.time_ns()
        t = self.clock_ns
        self.clock_ns += CLOCK_TICK_NS
        return t

    def fs_time(self) -> int:
        """The timestamp of a file change (the clock as it stands; it does not advance)."""
        return time.time_ns() if self.real_clock else self.clock_ns

    def random_bytes(self, n: int) -> bytes:
        """The next ``n`` bytes of the seeded stream: SHA-256(seed ‖ block number) per 32 bytes; a call
        starts a fresh block (so the stream position is just the block count, ``random_counter``)."""
        out = bytearray()
        while len(out) < n:
            block = self.seed.to_bytes(8, "little", signed=True) + self.random_counter.to_bytes(8, "little")
            out += hashlib.sha256(block).digest()
            self.random_counter += 1
        return bytes(out[:n])

    # -- the fd table ---------------------------------------------------------------------------
    def fd(self, fd: int) -> FdEntry:
        e = self.fds.get(fd)
        if e is None:
            raise WasiError(EBADF)
        return e

    def new_fd(self, entry: FdEntry) -> int:
        """The lowest free fd number, now holding ``entry`` (``EMFILE`` beyond :data:`MAX_FDS`)."""
        n = 0
        while n in self.fds:
            n += 1
        if n >= MAX_FDS:
            raise WasiError(EMFILE)
        self.fds[n] = entry
        return n

    def open_inodes(self) -> set:
        return {e.ino for e in self.fds.values() if e.ino >= 0}

    def output(self, fd: int, data: bytes) -> None:
        """Append to stdout/stderr (and echo it)."""
        (self.stdout if fd == 1 else self.stderr).extend(data)
        if self.echo is not None:
            self.echo(fd, data)

    def write_back(self) -> None:
        """Write every preopen that came from a host directory back to it (``wcr run --dir``)."""
        for guest, host in self.config.dirs:
            if host is not None and guest in self.fs.roots:
                self.fs.write_back(guest, host)


__all__ = ["CLOCK_START_NS", "CLOCK_TICK_NS", "DIR_INODE", "FD_KINDS", "MAX_FDS", "RIGHTS_ALL", "WASI_MODULE",
           "FdEntry", "WasiConfig", "WasiState"]
