"""The ``wasmtime`` target: wasmtime-py, in process (wasmtime is a hard dependency of wcr).

In process is safe here: wasmtime turns stack overflow into a trap and a wall-clock limit is enforced by
epoch interruption (a timer thread bumps the engine's epoch), so a run can neither crash nor hang us.
Floats never cross into Python: the shim/reader adapters of :mod:`._common` carry bits as integers.
"""

from __future__ import annotations

import struct
import threading
from typing import Any, Dict, List, Optional, Tuple

from . import SPECTEST_GLOBALS, NativeOutcome, ResumeManifest, Target
from . import _common as C

#: wasmtime trap code name → (primary spec kind, all spec kinds it may stand for)
TRAP_CODES: Dict[str, Tuple[str, Tuple[str, ...]]] = {
    "UNREACHABLE": ("unreachable", ()),
    "INTEGER_DIVISION_BY_ZERO": ("integer divide by zero", ()),
    "INTEGER_OVERFLOW": ("integer overflow", ()),
    "BAD_CONVERSION_TO_INTEGER": ("invalid conversion to integer", ()),
    "MEMORY_OUT_OF_BOUNDS": ("out of bounds memory access", ()),
    # call_indirect with an index past the table end is the spec's "undefined element"; wasmtime
    # reports it with the same code as table.get/set/copy out of bounds.
    "TABLE_OUT_OF_BOUNDS": ("out of bounds table access", ("out of bounds table access", "undefined element")),
    "INDIRECT_CALL_TO_NULL": ("uninitialized element", ()),
    "BAD_SIGNATURE": ("indirect call type mismatch", ()),
    "STACK_OVERFLOW": ("call stack exhausted", ()),
    "NULL_REFERENCE": ("null function reference", ()),
}

_ENGINE: Any = None


def _engine() -> Any:
    global _ENGINE
    if _ENGINE is None:
        import wasmtime

        cfg = wasmtime.Config()
        cfg.epoch_interruption = True
        _ENGINE = wasmtime.Engine(cfg)
    return _ENGINE


class WasmtimeTarget(Target):
    name = "wasmtime"
    features = frozenset({
        "mvp", "mutable-globals", "sign-ext", "sat-trunc", "multi-value", "bulk-memory", "reference-types",
        "simd", "relaxed-simd", "tail-call", "extended-const", "multi-memory", "memory64",
        "function-references", "gc", "exceptions",
    })

    def _available(self) -> Tuple[bool, str]:
        import wasmtime  # noqa: F401

        return True, ""

    def version(self) -> str:
        from importlib.metadata import version

        return f"wasmtime-py {version('wasmtime')}"

    def _run(self, wasm: bytes, info: C.ModuleInfo, man: ResumeManifest, out: NativeOutcome, timeout: float) -> None:
        import wasmtime as W

        engine = _engine()
        store = W.Store(engine)
        store.set_epoch_deadline(1)
        events: List[Tuple[int, int]] = []

        def printer(width: int) -> Any:
            def fn(v: int) -> None:
                events.append((width, v))
            return fn

        linker = W.Linker(engine)
        i32, i64, f32, f64 = W.ValType.i32(), W.ValType.i64(), W.ValType.f32(), W.ValType.f64()
        linker.define(store, "spectest", "print_i32", W.Func(store, W.FuncType([i32], []), printer(32)))
        linker.define(store, "spectest", "print_i64", W.Func(store, W.FuncType([i64], []), printer(64)))
        linker.define(store, "spectest", "memory", W.Memory(store, W.MemoryType(W.Limits(1, 2))))
        linker.define(store, "spectest", "table",
                      W.Table(store, W.TableType(W.ValType.funcref(), W.Limits(10, 20)), None))
        for name, (t, bits) in SPECTEST_GLOBALS.items():
            vt = {"i32": i32, "i64": i64, "f32": f32, "f64": f64}[t]
            linker.define(store, "spectest", name, W.Global(store, W.GlobalType(vt, False), _val(W, t, bits)))

        timer = threading.Timer(timeout, engine.increment_epoch)
        timer.daemon = True
        timer.start()
        try:
            shim = linker.instantiate(store, _shim_module())
            linker.define_instance(store, C.RENAMED, shim)
            try:
                inst = linker.instantiate(store, W.Module(engine, C.rename_import_module(wasm)))
            except W.Trap as exc:  # start function or segment initialisation trapped
                _set_trap(out, exc)
                return
            linker.define_instance(store, C.RESUME_AS, inst)
            reader = linker.instantiate(store, W.Module(engine, C.wat(C.reader_wat(info, man, dumps=False))))
            rx = reader.exports(store)
            try:
                r = rx["run"](store)
                ints = [] if r is None else (list(r) if isinstance(r, (list, tuple)) else [r])
                out.results = C.decode_int_results(info.resume_results(man), ints)
            except W.Trap as exc:
                _set_trap(out, exc)
                if out.inconclusive and out.inconclusive.startswith("timeout"):
                    return
            run_events = list(events)
            del events[:]
            store.set_epoch_deadline(1)
            rx["dump_globals"](store)
            C.fill_from_adapter(out, info, man, run_events, list(events))
            ex = inst.exports(store)
            for m in man.memories:
                mem = ex[m]
                out.memories[m] = bytes(mem.read(store, 0, mem.data_len(store)))
            for t in man.tables:
                tab = ex[t]
                out.tables[t] = ["null" if _is_null(tab.get(store, i)) else "ref" for i in range(tab.size(store))]
        except W.WasmtimeError as exc:
            raise C.Unrunnable(str(exc).splitlines()[0]) from exc
        finally:
            timer.cancel()


def _is_null(v: Any) -> bool:
    """wasmtime-py returns a null table entry as None or as a ``Val`` whose value is None."""
    return v is None or getattr(v, "value", v) is None


_SHIM: Any = None


def _shim_module() -> Any:
    global _SHIM
    if _SHIM is None:
        import wasmtime as W

        _SHIM = W.Module(_engine(), C.wat(C.shim_wat("spectest")))
    return _SHIM


def _val(W: Any, t: str, bits: int) -> Any:
    """A wasmtime value from wcr bits (the spectest globals are not NaNs, so a Python float is exact)."""
    if t == "f32":
        return W.Val.f32(struct.unpack("<f", bits.to_bytes(4, "little"))[0])
    if t == "f64":
        return W.Val.f64(struct.unpack("<d", bits.to_bytes(8, "little"))[0])
    return {"i32": W.Val.i32, "i64": W.Val.i64}[t](bits)


def _set_trap(out: NativeOutcome, exc: Any) -> None:
    code = getattr(exc, "trap_code", None)
    name = getattr(code, "name", None)
    msg = str(exc).splitlines()[0] if str(exc) else repr(exc)
    if name == "INTERRUPT":
        out.inconclusive = "timeout (epoch interruption)"
        out.trap_message = msg
        return
    kind: Optional[str]
    if name in TRAP_CODES:
        kind, cands = TRAP_CODES[name]
    else:
        kind, cands = None, ()
    out.set_trap(kind, f"{name}: {msg}", cands)
