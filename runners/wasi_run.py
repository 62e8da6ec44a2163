"""A WASI command (``_start``) run from the start: on our VM, and on wasmtime as the independent reference.

::

    vm_start(wasm, config) -> (store, run)          # instantiated with WASI state, stopped at k = 0
    vm_run(wasm, config) -> outcome dict            # the uninterrupted run on our VM (with "wasi")
    wasmtime_run(wasm, config) -> WasiRun           # wasmtime's WASI, each host directory a fresh copy
    program_status(outcome) -> int | str            # exit code (0 when _start returned) or "trap: KIND"

Why wasmtime sees copies: a program writes its preopened directories, and the runs compared must not
see each other's writes (nor change the user's directory).  Our VM never writes a host directory here:
it loads each one into its in-memory filesystem (:class:`vm.runtime.wasi.MemFS`), and so the files of
wasmtime's copy are loaded the same way afterwards and digested by the one canonical ``MemFS.digest``.

WASI outcomes are the shape of ``Outcome.wasi`` (:meth:`vm.runtime.wasi.WasiState.summary`):
``{"exit_code", "stdout", "stderr" (base64), "files"}``; ``exit_code`` is None when ``_start`` returned
without ``proc_exit``, on both sides.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple, Union

from vm.api import Store, instantiate, load_module
from vm.errors import PROC_EXIT
from vm.runtime import FuncInst
from vm.runtime.limits import StoreLimits, current
from vm.runtime.wasi import WasiConfig, WasiState
from vm.snapshot import finish, start

__all__ = ["WasiRun", "program_status", "vm_run", "vm_start", "wasmtime_run"]

ENTRY = "_start"


def vm_start(wasm: bytes, config: WasiConfig, limits: Optional[StoreLimits] = None) -> Tuple[Store, Any]:
    """A fresh store with WASI state for ``config``, the program instantiated (its WASI imports bound to
    that state), and its ``_start`` stopped before the first instruction.  ``KeyError`` when the module
    has no ``_start`` function export."""
    lim = limits if limits is not None else current()
    store = Store(limits=lim)
    store.wasi = WasiState.start(config, lim)
    inst = instantiate(store, load_module(wasm))
    func = inst.exports.get(ENTRY)
    if not isinstance(func, FuncInst):
        raise KeyError(ENTRY)
    return store, start(store, func, [])


def vm_run(wasm: bytes, config: WasiConfig, limits: Optional[StoreLimits] = None) -> Dict[str, Any]:
    """The uninterrupted run on our VM: its outcome dict (``Outcome.to_dict``, ``wasi`` included)."""
    store, run = vm_start(wasm, config, limits)
    return finish(store, run).to_dict()


def program_status(outcome: Dict[str, Any]) -> Union[int, str]:
    """What a shell would see: the ``proc_exit`` code, 0 when ``_start`` returned, ``"trap: KIND"``."""
    trap = outcome.get("trap")
    wasi = outcome.get("wasi") or {}
    if trap == PROC_EXIT or (trap is None and wasi.get("exit_code") is not None):
        return int(wasi.get("exit_code") or 0)
    return 0 if trap is None else f"trap: {trap}"


@dataclass
class WasiRun:
    """wasmtime's run: the outcome in our shape (``trap`` is ``"trap"`` for any trap but proc_exit:
    its kinds are not compared here) and the raw message when it trapped."""

    outcome: Dict[str, Any]
    message: str = ""


def wasmtime_run(wasm: bytes, config: WasiConfig, limits: Optional[StoreLimits] = None) -> WasiRun:
    """Run ``_start`` under wasmtime's WASI with ``config`` (argv, env, stdin, each ``dirs`` entry a
    fresh copy of its host directory, or an empty one), then digest the copies' files."""
    import wasmtime

    from runners.conformance import wasmtime_wasi_config, wasmtime_wasi_summary
    from runners.native.engines import wasmtime_engine

    with tempfile.TemporaryDirectory(prefix="wcr-wasi-") as tmp:
        cfg = wasmtime_wasi_config(config, tmp)
        engine = wasmtime_engine()
        store = wasmtime.Store(engine)
        store.set_wasi(cfg)
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        exit_code: Optional[int] = None
        trap: Optional[str] = None
        message = ""
        try:
            inst = linker.instantiate(store, wasmtime.Module(engine, wasm))
            entry: Any = inst.exports(store)[ENTRY]  # Any: mypy with and without wasmtime installed
            entry(store)
        except wasmtime.ExitTrap as e:
            exit_code, trap = e.code, PROC_EXIT
        except (wasmtime.Trap, wasmtime.WasmtimeError) as e:  # a trap, or a module wasmtime refuses
            trap, message = "trap", (str(e).splitlines() or ["trap"])[0]
        wasi = wasmtime_wasi_summary(config, tmp, {"exit_code": exit_code}, limits)
    return WasiRun({"trap": trap, "wasi": wasi}, message)
