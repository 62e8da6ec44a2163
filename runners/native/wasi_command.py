"""A WASI command run to its end on wasmtime (wasmtime-py's own WASI), the reference that ``wcr
workloads`` compares our VM with.

Why wasmtime's WASI and not ours: the point is a second, independent implementation of preview 1.  The
program gets a *copy* of the sandbox (the caller's directory is never written), stdout and stderr go to
files (wasmtime-py's WASI writes to paths, not to Python objects), and the exit code is ``proc_exit``'s
(``ExitTrap.code``), 0 when ``_start`` returns.  The caller digests the copy afterwards, so the files
are compared the same way as our VM's.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple

from .engines import wasmtime_engine


@dataclass
class CommandResult:
    """What a WASI command left: ``trap`` is a wasmtime trap message (None: exited normally)."""

    exit_code: Optional[int]
    stdout: bytes
    stderr: bytes
    trap: Optional[str]
    seconds: float


def run_wasmtime(wasm: bytes, argv: Sequence[str], dirs: Sequence[Tuple[str, Path]] = ()) -> CommandResult:
    """Run ``wasm``'s ``_start`` with ``argv`` (``argv[0]`` included) and each (guest path, host
    directory) preopened, the directories as they are (the caller passes copies)."""
    import wasmtime

    engine = wasmtime_engine()
    store = wasmtime.Store(engine)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    with tempfile.TemporaryDirectory(prefix="wcr-wasi-") as tmp:
        cfg = wasmtime.WasiConfig()
        cfg.argv = list(argv)
        out, err = Path(tmp, "stdout"), Path(tmp, "stderr")
        cfg.stdout_file = str(out)
        cfg.stderr_file = str(err)
        for guest, host in dirs:
            cfg.preopen_dir(str(host), guest)
        store.set_wasi(cfg)
        module = wasmtime.Module(engine, wasm)
        t0 = time.perf_counter()
        code: Optional[int] = 0
        trap: Optional[str] = None
        try:
            instance = linker.instantiate(store, module)
            instance.exports(store)["_start"](store)
        except wasmtime.ExitTrap as exc:
            code = exc.code
        except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
            code, trap = None, str(exc).splitlines()[0]
        seconds = time.perf_counter() - t0
        return CommandResult(code, out.read_bytes(), err.read_bytes(), trap, seconds)


def copy_sandbox(src: Optional[Path], dest: Path) -> Path:
    """``dest`` as a copy of ``src`` (an empty directory when ``src`` is None); symlinks are copied as
    links, never followed."""
    if src is None:
        dest.mkdir(parents=True, exist_ok=True)
    else:
        shutil.copytree(src, dest, symlinks=True)
    return dest
