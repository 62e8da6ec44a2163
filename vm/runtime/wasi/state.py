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

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from .fs import MemFS

WASI_MODULE = "wasi_snapshot_preview1"

#: the virtual clock's start (2021-01-01T00:00:00Z in ns) and its advance per clock read
CLOCK_START_NS = 1_609_459_200_000_000_000
CLOCK_TICK_NS = 1_000_000

#: fd kinds
STDIN, STDOUT, STDERR, DIR, FILE = "stdin", "stdout", "stderr", "dir", "file"
FD_KINDS = (STDIN, STDOUT, STDERR, DIR, FILE)


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

    def bind(self, instance: Any) -> None:
        """Use the ``memory`` export of ``instance`` (the program that imports WASI)."""
        raise NotImplementedError  # helper wasi

    def summary(self) -> Dict[str, Any]:
        """What the oracle compares of a WASI program's end (``Outcome.wasi``): ``{"exit_code": int or
        None, "stdout": base64, "stderr": base64, "files": fs.digest()}``."""
        raise NotImplementedError  # helper wasi

    @classmethod
    def start(cls, config: WasiConfig, limits: Any = None) -> WasiState:
        """A fresh state for ``config``: args, env, fds 0–2 and the preopens, host dirs loaded."""
        raise NotImplementedError  # helper wasi
