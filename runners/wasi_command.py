"""A WASI command (``_start``) run to its end on our VM and on wasmtime, described the same way
(:class:`CommandResult`: exit code, stdout, stderr, trap, files digest, instructions, seconds), so
``wcr workloads`` compares the two field by field.

Ours: a store with :class:`vm.runtime.wasi.WasiState` (virtual clock, seeded random stream) whose
preopen is loaded from the host directory; ``_start`` runs through :mod:`vm.snapshot`'s
``start``/``finish``, the path a checkpointed run takes.  wasmtime: wasmtime-py's own WASI, a second,
independent preview 1, on a *copy* of the sandbox (the caller's directory is never written), stdout and
stderr to files (wasmtime-py's WASI writes to paths, not Python objects), the exit code from
``proc_exit`` (``ExitTrap.code``).  Both return 0 when ``_start`` returns, and both digest the files
with :meth:`vm.runtime.wasi.MemFS.digest` (wasmtime's copy loaded after the run).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple

from vm.api import Store, instantiate
from vm.errors import PROC_EXIT, Trap
from vm.runtime.wasi import MemFS, WasiConfig, WasiState
from vm.snapshot import SnapshotError, advance, checkpoint, decode, encode, finish, restore, start

from .native.engines import wasmtime_engine


@dataclass
class CommandResult:
    """What a WASI command left: ``trap`` is a wasmtime trap message (None: exited normally)."""

    exit_code: Optional[int]
    stdout: bytes
    stderr: bytes
    trap: Optional[str]
    files: str
    seconds: float
    instructions: Optional[int] = None  # ours only (wasmtime counts none)


def dir_digest(host: Path, guest: str) -> str:
    """The files digest of a host directory preopened as ``guest``."""
    fs = MemFS()
    fs.load_dir(str(host), guest)
    return fs.digest()


def wasi_store(argv: Sequence[str], dirs: Sequence[Tuple[str, Path]]) -> Store:
    """A store whose WASI state runs ``argv`` with the host directories loaded as preopens."""
    store = Store()
    store.wasi = WasiState.start(WasiConfig(args=list(argv), dirs=[(g, str(h)) for g, h in dirs]))
    return store


def run_ours(wasm: bytes, argv: Sequence[str], dirs: Sequence[Tuple[str, Path]] = ()) -> CommandResult:
    """``_start`` of ``wasm`` on our VM to its end (errors loading or linking the module propagate)."""
    store = wasi_store(argv, dirs)
    t0 = time.perf_counter()
    trap: Optional[str] = None
    try:
        inst = instantiate(store, wasm)
    except Trap as exc:  # a start function's trap, proc_exit included
        trap = exc.message
        count = 0
    else:
        outcome = finish(store, start(store, inst.exports["_start"], []), digest=False)
        trap, count = outcome.trap, outcome.instructions
    seconds = time.perf_counter() - t0
    return result_of(store.wasi, trap, seconds, count)


def result_of(wasi: WasiState, trap: Optional[str], seconds: float, instructions: Optional[int]) -> CommandResult:
    """Our run's end as a :class:`CommandResult` (``proc_exit`` is a trap of kind exit, not a trap here)."""
    code = wasi.exit_code
    if trap == PROC_EXIT:
        trap = None
    elif trap is None and code is None:
        code = 0
    return CommandResult(code if trap is None else None, bytes(wasi.stdout), bytes(wasi.stderr), trap,
                         wasi.fs.digest(), seconds, instructions)


def run_wasmtime(wasm: bytes, argv: Sequence[str], dirs: Sequence[Tuple[str, Path]] = ()) -> CommandResult:
    """``_start`` of ``wasm`` on wasmtime with ``argv`` (``argv[0]`` included) and a copy of each
    (guest path, host directory) preopened; the files digest is of the first preopen's copy."""
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
        copies = [(guest, Path(shutil.copytree(host, Path(tmp, f"dir{n}"), symlinks=True)))
                  for n, (guest, host) in enumerate(dirs)]
        for guest, host in copies:
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
        files = dir_digest(copies[0][1], copies[0][0]) if copies else MemFS().digest()
        return CommandResult(code, out.read_bytes(), err.read_bytes(), trap, files, seconds)


@dataclass
class CheckpointFigures:
    """A checkpoint of a WASI command at instruction ``k``, encoded, decoded and restored here, then
    run to its end: the snapshot's size, the time of each step, and the resumed run's end."""

    k: int
    snapshot_bytes: int
    checkpoint_seconds: float
    restore_seconds: float
    resumed: CommandResult


def checkpoint_at(wasm: bytes, argv: Sequence[str], dirs: Sequence[Tuple[str, Path]], k: int) -> CheckpointFigures:
    """Run ``_start`` to ``k`` instructions, checkpoint (:func:`vm.snapshot.checkpoint` + ``encode``),
    restore from the bytes alone (``decode`` + :func:`vm.snapshot.restore`) and finish the restored run.
    ``SnapshotError`` propagates (a state the codec or the restorer refuses)."""
    store = wasi_store(argv, dirs)
    inst = instantiate(store, wasm)
    run = advance(store, start(store, inst.exports["_start"], []), k)
    t0 = time.perf_counter()
    blob = encode(checkpoint(store, run))
    t1 = time.perf_counter()
    store2, run2 = restore(decode(blob), {inst.sha256: wasm})
    t2 = time.perf_counter()
    if run2 is None or store2.wasi is None:
        raise SnapshotError("the restored snapshot has no running WASI program")
    outcome = finish(store2, run2, digest=False)
    resumed = result_of(store2.wasi, outcome.trap, time.perf_counter() - t2, outcome.instructions)
    return CheckpointFigures(k, len(blob), t1 - t0, t2 - t1, resumed)
