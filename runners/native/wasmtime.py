"""The ``wasmtime`` target: wasmtime-py, in process (wasmtime is a hard dependency of wcr).

In process is safe here: wasmtime turns stack overflow into a trap and a wall-clock limit is enforced by
epoch interruption (a timer thread bumps the engine's epoch), so a run can neither crash nor hang us.
Floats never cross into Python: the shim/reader adapters of :mod:`.adapter` carry bits as integers, and
the spectest memory/table/globals are defined by the shim (from :mod:`vm.runtime.spectest`), so the host
side here is just two integer prints.
"""

from __future__ import annotations

import threading
from typing import Any, Dict, List, Optional, Tuple, cast

from vm.errors import PROC_EXIT, TRAP_KINDS, UNCAUGHT_EXCEPTION
from vm.snapshot.resume import HOST_MODULE, Manifest

from . import adapter
from .engines import on_release, wasmtime_engine
from .introspect import ModuleInfo
from .process import Unrunnable
from .rewrite import RENAMED, null_probe, rename_import_module
from .sandbox import Sandbox, env_pairs, run_sandboxed, text_args
from .target import NativeOutcome, Target


def _known(*kinds: str) -> Tuple[str, ...]:
    """The kinds of the vocabulary among ``kinds`` (GC/EH kinds exist once their engine work is in)."""
    return tuple(k for k in kinds if k in TRAP_KINDS)


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
    # one code for call_ref of null and for every other null dereference (ref.as_non_null, struct.get,
    # array.get, i31.get, throw_ref ...)
    "NULL_REFERENCE": ("null function reference", _known(
        "null function reference", "null reference", "null structure reference", "null array reference",
        "null i31 reference", "null exception reference")),
    **{code: (kind, ()) for code, kind in (("ARRAY_OUT_OF_BOUNDS", "out of bounds array access"),
                                            ("CAST_FAILURE", "cast failure"),
                                            ("ALLOCATION_TOO_LARGE", "out of memory")) if kind in TRAP_KINDS},
}
#: wasmtime's words for an exception that left ``resume`` (a trap without a code)
UNCAUGHT = "thrown wasm exception"

_SHIMS: Dict[bytes, Any] = {}  # shim binary → compiled module of the epoch engine
on_release(_SHIMS.clear)


def _engine() -> Any:
    return wasmtime_engine("epoch")


def _shim_module(info: ModuleInfo) -> Any:
    import wasmtime as W

    shim = adapter.shim(info)
    if shim not in _SHIMS:
        _SHIMS[shim] = W.Module(_engine(), shim)
    return _SHIMS[shim]


class WasmtimeTarget(Target):
    name = "wasmtime"
    features = frozenset({
        "mvp", "mutable-globals", "sign-ext", "sat-trunc", "multi-value", "bulk-memory", "reference-types",
        "simd", "relaxed-simd", "tail-call", "extended-const", "multi-memory", "memory64",
        "function-references", "gc", "exception-tags", "exceptions", "host-references", "wasi",
    })
    wasi_baseline = True

    def _available(self) -> Tuple[bool, str]:
        import wasmtime  # noqa: F401

        return True, ""

    def version(self) -> str:
        from importlib.metadata import version

        return f"wasmtime-py {version('wasmtime')}"

    def _run(self, wasm: bytes, info: ModuleInfo, man: Manifest, out: NativeOutcome, timeout: float) -> None:
        run_sandboxed(man, out, lambda sb: self._run_in(wasm, info, man, out, timeout, sb))

    def _run_in(self, wasm: bytes, info: ModuleInfo, man: Manifest, out: NativeOutcome, timeout: float,
                sb: Optional[Sandbox]) -> None:
        import wasmtime as W

        engine = _engine()
        store = W.Store(engine)
        if sb is not None:
            store.set_wasi(_wasi_config(sb))
        store.set_epoch_deadline(1)
        events: List[Tuple[int, int]] = []

        def printer(width: int) -> Any:
            def fn(v: int) -> None:
                events.append((width, v))
            return fn

        linker = W.Linker(engine)
        if sb is not None:
            linker.define_wasi()
        i32, i64 = W.ValType.i32(), W.ValType.i64()
        linker.define(store, "spectest", "print_i32", W.Func(store, W.FuncType([i32], []), printer(32)))
        linker.define(store, "spectest", "print_i64", W.Func(store, W.FuncType([i64], []), printer(64)))
        for imp in info.imports:  # host references of the state: any non-null externref stands for one
            if imp.module == HOST_MODULE:
                linker.define(store, HOST_MODULE, imp.name, W.Global(
                    store, W.GlobalType(W.ValType.externref(), False), W.Val.externref(imp.name)))

        timer = threading.Timer(timeout, engine.increment_epoch)
        timer.daemon = True
        timer.start()
        try:
            shim = linker.instantiate(store, _shim_module(info))
            linker.define_instance(store, RENAMED, shim)
            assert info.module is not None
            try:
                inst = linker.instantiate(store, W.Module(engine, rename_import_module(info.module, man=man)))
            except W.Trap as exc:  # start function or segment initialisation trapped
                _set_trap(out, exc)
                return
            linker.define_instance(store, adapter.RESUME_AS, inst)
            reader = linker.instantiate(store, W.Module(engine, adapter.wat(adapter.reader_wat(info, man, dumps=False))))
            # export kinds are known: the reader exports the functions ``run`` and ``dump_globals``, the
            # manifest names memories and tables (wasmtime types an export as the union of all kinds)
            rx = reader.exports(store)
            try:
                r = cast(W.Func, rx["run"])(store)
                ints = [] if r is None else (list(r) if isinstance(r, (list, tuple)) else [r])
                out.results = adapter.decode_int_results(info.resume_results(man), ints)
            except W.ExitTrap as exc:  # proc_exit: the invocation ends like a trap of kind "exit"
                out.set_trap(PROC_EXIT, f"proc_exit({exc.code})")
                out.details["exit_code"] = exc.code
            except W.Trap as exc:
                _set_trap(out, exc)
                if out.inconclusive and out.inconclusive.startswith("timeout"):
                    return
            run_events = list(events)
            del events[:]
            store.set_epoch_deadline(1)
            cast(W.Func, rx["dump_globals"])(store)
            adapter.fill_from_adapter(out, info, man, run_events, list(events))
            ex = inst.exports(store)
            if man.wasi is not None and man.wasi.status_export:
                out.details["wasi_status"] = cast(W.Global, ex[man.wasi.status_export]).value(store)
            for m in man.memories.values():
                mem = cast(W.Memory, ex[m])
                out.memories[m] = bytes(mem.read(store, 0, mem.data_len(store)))
            for t in man.tables.values():
                tab = cast(W.Table, ex[t])
                probe = ex.get(null_probe(t))
                if probe is not None:  # GC/exn/extern elements: wasmtime-py cannot read them (rewrite.py)
                    out.tables[t] = ["null" if cast(W.Func, probe)(store, i) else "ref" for i in range(tab.size(store))]
                else:
                    out.tables[t] = ["null" if _is_null(tab.get(store, i)) else "ref" for i in range(tab.size(store))]
        except W.WasmtimeError as exc:
            raise Unrunnable(str(exc).splitlines()[0]) from exc
        finally:
            timer.cancel()


def _wasi_config(sb: Sandbox) -> Any:
    """wasmtime's WASI for the sandbox: args, env, the preopens in fd order, the standard streams."""
    import wasmtime as W

    cfg = W.WasiConfig()
    cfg.argv = text_args(sb.run)
    cfg.env = env_pairs(sb.run)
    for guest, host in sb.preopens:
        cfg.preopen_dir(host, guest)
    cfg.stdin_file = sb.stdin
    cfg.stdout_file = sb.stdout
    cfg.stderr_file = sb.stderr
    return cfg


def _is_null(v: Any) -> bool:
    """wasmtime-py returns a null table entry as None or as a ``Val`` whose value is None."""
    return v is None or getattr(v, "value", v) is None


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
    elif code is None and UNCAUGHT in str(exc).lower():
        kind, cands = UNCAUGHT_EXCEPTION, ()
    else:
        kind, cands = None, ()
    out.set_trap(kind, f"{name}: {msg}", cands)
