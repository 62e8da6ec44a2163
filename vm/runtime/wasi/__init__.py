"""WASI preview 1 (``wasi_snapshot_preview1``): the host module real programs import.

Everything a WASI program can observe or change is explicit state of :class:`WasiState` (args, env, the
fd table with offsets and rights, the bytes written to stdout/stderr so far, the virtual clock, the
seeded random stream, and the files, which live in an in-memory filesystem, :class:`MemFS`), so a
checkpoint carries it (``State.wasi``) and a restore on another host recreates it.

* :mod:`.constants` errno values, rights, file types and flags with the spec's numbers;
* :mod:`.fs` the in-memory filesystem (inodes, sandboxed path resolution, loading a host directory and
  writing it back, the canonical files digest every runtime's files are compared by; ``host_digest`` of
  a host directory);
* :mod:`.state` the configuration and the state;
* :mod:`.preview1` the host functions (``wasi_exports(store)``: the host-module factory; the fd and path
  functions in :mod:`.fdops` and :mod:`.pathops`, memory access in :mod:`.guest`).
"""

from .fs import Inode, MemFS, host_digest
from .state import WASI_MODULE, FdEntry, WasiConfig, WasiState

__all__ = ["WASI_MODULE", "FdEntry", "Inode", "MemFS", "WasiConfig", "WasiState", "host_digest"]
