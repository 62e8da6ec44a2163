"""The real programs wcr runs (``wcr workloads``): C sources written for this suite plus a driver for the
SQLite amalgamation, and the one table that says how each is built and run.

Why C programs next to the generators: generated modules never have the shapes a C compiler emits
(a libc, ``printf`` formatting floats, ``malloc``, deep recursion, a WASI fd table with moving offsets, a
database engine's B-tree code), and the use case behind wcr is migrating exactly such programs.  Every
workload prints only deterministic output (no clock, no ``random_get`` in what it prints), so any two
runtimes must agree byte for byte on stdout, exit code and the files left in the sandbox.

This package holds data only (sources and the table); building (:mod:`spec_tests.cbuild`, the pinned
SQLite download :mod:`spec_tests.sqlite_src`) and running (``suite/commands/workloads.py``) live above.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Tuple

SOURCE_DIR = Path(__file__).resolve().parent

#: the guest path of the sandbox directory every workload may use (preopened from a fresh host copy)
GUEST_DIR = "/data"

#: flags every workload is compiled with (wasm32-wasi, wasi-libc from ziglang, optimised, stripped)
BASE_FLAGS: Tuple[str, ...] = ("-target", "wasm32-wasi", "-O2", "-s")

#: the extra flags the SQLite amalgamation needs under WASI (no threads, no mmap/WAL, libc emulations)
SQLITE_FLAGS: Tuple[str, ...] = (
    "-DSQLITE_THREADSAFE=0", "-DSQLITE_OMIT_LOAD_EXTENSION", "-DSQLITE_OMIT_WAL",
    "-D_WASI_EMULATED_MMAN", "-D_WASI_EMULATED_SIGNAL", "-D_WASI_EMULATED_PROCESS_CLOCKS",
    "-lwasi-emulated-mman", "-lwasi-emulated-signal", "-lwasi-emulated-process-clocks",
)


@dataclass(frozen=True)
class Workload:
    """One program: its C sources (files of this package), the arguments it runs with (``argv[1:]``),
    the extra compiler flags, and whether it needs the SQLite amalgamation (downloaded, see
    :mod:`spec_tests.sqlite_src`).  ``about`` says what it exercises."""

    name: str
    sources: Tuple[str, ...]
    args: Tuple[str, ...]
    about: str
    flags: Tuple[str, ...] = ()
    sqlite: bool = False

    def source_paths(self) -> Tuple[Path, ...]:
        return tuple(SOURCE_DIR / s for s in self.sources)


#: sizes chosen so that each run takes seconds, not minutes, on our VM under CPython (pi-leibniz runs
#: the issue's n = 1,000,000 case, ~16.5 M instructions)
WORKLOADS: Dict[str, Workload] = {w.name: w for w in (
    Workload("nbody", ("nbody.c",), ("5000",), "f64 arithmetic, sqrt, printf %.9f"),
    Workload("pi-leibniz", ("pi_leibniz.c",), ("1000000",), "one tight f64 loop, n = 1e6"),
    Workload("kvstore", ("kvstore.c",), (f"{GUEST_DIR}/kv.log",),
             "append-only log file in the sandbox, reopened and replayed"),
    Workload("json-tokenizer", ("json_tok.c",), ("-r", "300"), "byte-wise branching, string scanning"),
    Workload("sort", ("sort.c",), ("20000",), "merge sort (recursion, heap buffers) of a seeded array"),
    Workload("sqlite", ("sqlite_driver.c",), (f"{GUEST_DIR}/test.db", "1000"),
             "SQLite: create, insert 1000 rows in a transaction, index, aggregates, update, delete",
             flags=SQLITE_FLAGS, sqlite=True),
)}
