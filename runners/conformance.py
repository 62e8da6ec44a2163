"""The conformance run: the *unmodified* module's invocation from the start, on our VM and on wasmtime.

Nothing of ours is converted on the way (no snapshot, no resume module), so a disagreement here is about
the VM or the runtime, never about checkpoint/restore; the fuzz trial runs it before any checkpoint, and
its verdict comes from :func:`runners.oracle.compare_conformance`.

Both sides report a :class:`RunOutcome` in the canonical tagged values of :mod:`vm.values`: results,
trap kind (wasmtime's trap codes mapped through the wasmtime adapter's own table into the one trap
vocabulary), the ``spectest`` print log, exported globals and the first exported memory.  Module imports
must all be ``spectest`` prints (what our generators and wasm-smith with ``--export-everything`` produce),
or, for a program run with WASI (``wasi=``: its :class:`vm.runtime.wasi.WasiConfig`),
``wasi_snapshot_preview1`` functions: then wasmtime runs it with its own WASI (wasmtime-py's
``WasiConfig``: the args, a fresh empty host directory for each in-memory preopen, stdout/stderr to files)
and both sides report :attr:`RunOutcome.wasi` (exit code, stdout, stderr, files digest: the shape of
:meth:`vm.runtime.wasi.WasiState.summary`; wasmtime's directory is digested by loading it into a
:class:`vm.runtime.wasi.MemFS`, so both digests come from one function).  Clocks and random bytes differ
between the two by design (our clock is virtual, our random stream seeded): programs compared here must
not let them reach what is compared (:mod:`generators.wasi` keeps them in a private global).
"""

from __future__ import annotations

import base64
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, List, Optional, Sequence, Set, Tuple, cast

from runners.native.engines import wasmtime_engine
from vm.api import Store, load_module
from vm.errors import PROC_EXIT
from vm.runtime.spectest import GLOBALS, MEMORIES, PRINTS, TABLES, spectest_exports
from vm.runtime.wasi import WASI_MODULE, WasiConfig, WasiState
from vm.runtime.wasi.preview1 import wasi_exports
from vm.snapshot import advance, start
from vm.values import Value, from_runtime

__all__ = ["RunOutcome", "BudgetExceeded", "run_vm", "run_wasmtime", "export_type"]


class BudgetExceeded(Exception):
    """The VM did not finish within the instruction budget (programs of our generators must end)."""


@dataclass
class RunOutcome:
    results: Optional[List[Value]]  # None when trapped (or inconclusive)
    trap: Optional[str] = None  # a kind of vm.errors.TRAP_KINDS (ours may carry a detail)
    trap_candidates: FrozenSet[str] = frozenset()  # the kinds a coarse runtime report stands for
    log: List[Tuple[str, List[Value]]] = field(default_factory=list)
    globals: Dict[str, Value] = field(default_factory=dict)
    memory: Optional[bytes] = None
    instructions: Optional[int] = None  # our VM only
    inconclusive: str = ""  # out of fuel, native stack overflow: says nothing about conformance
    raw_trap: str = ""  # the runtime's own report
    wasi: Optional[Dict[str, Any]] = None  # a WASI program's end: exit_code, stdout, stderr (base64), files


def export_type(module: Any, name: str) -> Any:
    """The function type of export ``name`` (``KeyError`` when there is no such function export)."""
    for ex in module.exports:
        if ex.name == name and ex.kind == "func":
            return module.func_type(module.func_typeidxs()[ex.index])
    raise KeyError(name)


def _check_imports(module: Any, wasi: bool = False) -> None:
    """Only the spectest prints, ``spectest.memory``, the 32-bit ``spectest.table`` and the spectest
    globals (what the generators import: a program that writes an imported memory, table or mutable
    global is a state kind of its own); with ``wasi``, WASI functions too."""
    ok: Dict[str, Set[str]] = {"func": set(PRINTS), "memory": set(MEMORIES),
                               "table": {k for k, v in TABLES.items() if not v[2]}, "global": set(GLOBALS)}
    for imp in module.imports:
        if wasi and imp.module == WASI_MODULE and imp.desc.kind == "func":
            continue
        if imp.module != "spectest" or imp.name not in ok.get(imp.desc.kind, set()):
            raise ValueError(f"unsupported import {imp.module}.{imp.name}")


# ------------------------------------------------------------------------------------------ our VM
def run_vm(wasm: bytes, export: str, args: Sequence[Any], max_instructions: int = 2_000_000,
           wasi: Optional[WasiConfig] = None) -> RunOutcome:
    """Instantiate on a fresh store and call ``export`` (runtime-representation ``args``); ``wasi``: the
    WASI start configuration of a WASI program (see the module docstring)."""
    lm = load_module(wasm)
    _check_imports(lm.module, wasi is not None)
    ft = export_type(lm.module, export)
    store = Store()
    host = dict(spectest_exports(store))
    if wasi is not None:
        store.wasi = WasiState.start(wasi, store.limits)
        host.update(wasi_exports(store))
    out = RunOutcome(None)
    inst = None
    from vm.errors import Stopped, Trap, WasmException
    from vm.exec.budget import Budget

    store.budget = Budget(max_instructions)  # a start function that does not end is no conformance finding
    try:
        inst = store.instantiate(lm.module, lm.info, [host[i.name] for i in lm.module.imports], lm.sha256,
                                 store.wasi.bind if store.wasi is not None else None)
    except Stopped:
        raise BudgetExceeded(f"the start function did not finish within {max_instructions} instructions") from None
    except (Trap, WasmException) as e:  # the start function trapped or threw (message = trap kind)
        out.trap = e.message
    if inst is not None:
        run = advance(store, start(store, inst.exports[export], list(args)), max_instructions)
        out.instructions = run.count
        if run.status == "running":
            raise BudgetExceeded(f"{export} did not finish within {max_instructions} instructions")
        if run.trap is not None:
            out.trap = run.trap
        else:
            out.results = [from_runtime(t, x) for t, x in zip(ft.results, run.thread.results or [])]
    out.log = [(n, [from_runtime(t, x) for t, x in zip(PRINTS.get(n, ()), a)]) for n, a in store.host_log]
    if inst is not None:
        for ex in lm.module.exports:
            if ex.kind == "global":
                g = inst.exports[ex.name]
                if g.type.type == "v128":  # not readable through wasmtime-py: see run_wasmtime
                    continue
                out.globals[ex.name] = from_runtime(g.type.type, g.value)
            elif ex.kind == "memory" and out.memory is None:
                out.memory = bytes(inst.exports[ex.name].data)
        _imported_globals(lm.module, lambda name: from_runtime(GLOBALS[name][0], host[name].value), out)
    if store.wasi is not None:
        out.wasi = store.wasi.summary()
    return out


def _imported_globals(module: Any, value: Any, out: RunOutcome) -> None:
    """The final values of the imported *mutable* spectest globals (host state the program may write,
    compared like exported globals), as ``spectest.<name>``."""
    for imp in module.imports:
        if imp.desc.kind == "global" and GLOBALS[imp.name][2]:
            out.globals[f"spectest.{imp.name}"] = value(imp.name)


# ----------------------------------------------------------------------------------------- wasmtime
def _engine() -> Any:
    return wasmtime_engine("fuel")


def _signed(v: int, bits: int) -> int:
    return v - (1 << bits) if v >= 1 << (bits - 1) else v


def _to_wasmtime(t: Any, v: Any) -> Any:
    import wasmtime

    if t == "i32":
        return wasmtime.Val.i32(_signed(v, 32))
    if t == "i64":
        return wasmtime.Val.i64(_signed(v, 64))
    if t == "f32":
        return wasmtime.Val.f32(struct.unpack("<f", struct.pack("<I", v))[0])
    if t == "f64":
        return wasmtime.Val.f64(struct.unpack("<d", struct.pack("<Q", v))[0])
    return None  # a null reference


def _from_wasmtime(t: Any, v: Any) -> Value:
    """wasmtime-py hands back Python ints/floats (f32 NaN payloads already quieted: the oracle knows)."""
    if t in ("i32", "i64"):
        return (t, v & ((1 << (32 if t == "i32" else 64)) - 1))
    if t == "f32":
        return (t, struct.unpack("<I", struct.pack("<f", v))[0])
    if t == "f64":
        return (t, struct.unpack("<Q", struct.pack("<d", v))[0])
    value = getattr(v, "value", v)
    return ("ref.null", None) if value is None else ("ref", None)


def _wasmtime_type(t: Any) -> Any:
    import wasmtime

    return {"i32": wasmtime.ValType.i32(), "i64": wasmtime.ValType.i64(), "f32": wasmtime.ValType.f32(),
            "f64": wasmtime.ValType.f64()}[t]


def run_wasmtime(wasm: bytes, export: str, args: Sequence[Any], fuel: int = 50_000_000,
                  wasi: Optional[WasiConfig] = None) -> RunOutcome:
    """The same invocation on wasmtime (fresh store; ``spectest`` prints logged like ours; ``wasi``: run
    with wasmtime's WASI, see the module docstring)."""
    import wasmtime

    lm = load_module(wasm)
    m = lm.module
    _check_imports(m, wasi is not None)
    ft = export_type(m, export)
    if "v128" in tuple(ft.params) + tuple(ft.results):
        # wasmtime-py aborts the whole process on a v128 value (TOOLS.md): the conformance run of
        # such an export is not made; the C/R checks still carry v128 through resume modules
        return RunOutcome(None, inconclusive=f"wasmtime-py cannot pass v128 values of export {export!r}: "
                          "not compared")
    store = wasmtime.Store(_engine())
    store.set_fuel(fuel)
    module = wasmtime.Module(_engine(), wasm)
    log: List[Tuple[str, List[Value]]] = []
    imports: List[Any] = []  # wasmtime externs of several kinds, in import order
    host_globals: Dict[str, Any] = {}
    for imp in m.imports:
        if imp.module == WASI_MODULE:
            continue  # linked by wasmtime's WASI (below)
        if imp.desc.kind == "global":
            gt, bits, mutable = GLOBALS[imp.name]
            host_globals[imp.name] = wasmtime.Global(store, wasmtime.GlobalType(_wasmtime_type(gt), mutable),
                                                     _to_wasmtime(gt, bits))
            imports.append(host_globals[imp.name])
            continue
        if imp.desc.kind == "memory":
            imports.append(wasmtime.Memory(store, wasmtime.MemoryType(wasmtime.Limits(*MEMORIES[imp.name]))))
            continue
        if imp.desc.kind == "table":
            lo, hi, _ = TABLES[imp.name]
            imports.append(wasmtime.Table(store, wasmtime.TableType(wasmtime.ValType.funcref(),
                                                                     wasmtime.Limits(lo, hi)), None))
            continue
        params = PRINTS[imp.name]

        def cb(*a: Any, _n: str = imp.name, _p: Tuple[str, ...] = params) -> None:
            log.append((_n, [_from_wasmtime(t, x) for t, x in zip(_p, a)]))

        imports.append(wasmtime.Func(store, wasmtime.FuncType([_wasmtime_type(t) for t in params], []), cb))
    out = RunOutcome(None)
    tmp = tempfile.mkdtemp(prefix="wcr-wasi-") if wasi is not None else ""
    try:
        inst = _wasmtime_call(store, module, m, imports, export, args, out, wasi, tmp)
        if inst is not None:
            _wasmtime_final(store, inst, m, host_globals, out)
        if wasi is not None:
            out.wasi = wasmtime_wasi_summary(wasi, tmp, out.wasi)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    out.log = log
    return out


def _wasmtime_call(store: Any, module: Any, m: Any, imports: List[Any], export: str, args: Sequence[Any],
                   out: RunOutcome, wasi: Optional[WasiConfig], tmp: str) -> Any:
    """Instantiate (with WASI: through a linker) and call; the instance, or None when instantiation
    trapped.  A ``proc_exit`` is the trap kind ``exit`` with the code in ``out.wasi``."""
    import wasmtime

    from runners.native.wasmtime import TRAP_CODES, UNCAUGHT

    ft = export_type(m, export)
    inst = None
    try:
        if wasi is not None:
            linker = wasmtime.Linker(_engine())
            linker.define_wasi()
            store.set_wasi(wasmtime_wasi_config(wasi, tmp))
            for imp, ext in zip([i for i in m.imports if i.module != WASI_MODULE], imports):
                linker.define(store, imp.module, imp.name, ext)
            inst = linker.instantiate(store, module)
        else:
            inst = wasmtime.Instance(store, module, imports)
        func = cast(wasmtime.Func, inst.exports(store)[export])  # the invoked export is a function
        res = func(store, *[_to_wasmtime(t, v) for t, v in zip(ft.params, args)])
        res = [] if not ft.results else ([res] if len(ft.results) == 1 else list(res))
        out.results = [_from_wasmtime(t, v) for t, v in zip(ft.results, res)]
    except wasmtime.ExitTrap as e:
        out.trap, out.raw_trap, out.trap_candidates = PROC_EXIT, f"exit {e.code}", frozenset((PROC_EXIT,))
        out.wasi = {"exit_code": e.code}
    except wasmtime.Trap as e:
        code = e.trap_code
        out.raw_trap = code.name if code is not None else (str(e).splitlines() or [repr(e)])[0]
        # an exception that escapes the call is a trap without a code (as in the wasmtime target)
        uncaught = code is None and UNCAUGHT in str(e).lower()
        kind, cands = ("uncaught exception", ()) if uncaught else TRAP_CODES.get(out.raw_trap, (None, ()))
        if kind is None or kind == "call stack exhausted":
            out.inconclusive = f"wasmtime: {out.raw_trap}"  # fuel, native stack: resource limits
        else:
            out.trap = kind
            out.trap_candidates = frozenset(cands) | {kind}
    except wasmtime.WasmtimeError as e:  # a WASI host function's error (e.g. a pointer out of bounds)
        out.raw_trap = (str(e).splitlines() or [repr(e)])[0]
        if "out of bounds" in str(e).lower():
            out.trap, out.trap_candidates = "out of bounds memory access", frozenset(("out of bounds memory access",))
        else:
            out.inconclusive = f"wasmtime: {out.raw_trap}"
    return inst


def wasmtime_wasi_config(wasi: WasiConfig, tmp: str) -> Any:
    """The one translation of our :class:`WasiConfig` into wasmtime-py's (also ``runners.wasi_run``): each preopen a directory under ``tmp`` (empty for an
    in-memory one, a copy of a host one), stdin/stdout/stderr files there."""
    import wasmtime

    cfg = wasmtime.WasiConfig()
    cfg.argv = list(wasi.args)
    cfg.env = [list(kv) for kv in wasi.env]
    for n, (guest, host) in enumerate(wasi.dirs):
        d = os.path.join(tmp, f"dir{n}")
        if host is None:
            os.mkdir(d)
        else:
            shutil.copytree(host, d, symlinks=True)
        cfg.preopen_dir(d, guest)
    with open(os.path.join(tmp, "stdin"), "wb") as f:
        f.write(wasi.stdin)
    cfg.stdin_file = os.path.join(tmp, "stdin")
    cfg.stdout_file = os.path.join(tmp, "stdout")
    cfg.stderr_file = os.path.join(tmp, "stderr")
    return cfg


def wasmtime_wasi_summary(wasi: WasiConfig, tmp: str, got: Optional[Dict[str, Any]], limits: Any = None
                          ) -> Dict[str, Any]:
    """What wasmtime's WASI left under ``tmp`` (:func:`wasmtime_wasi_config`), in the shape of
    :meth:`vm.runtime.wasi.WasiState.summary`; ``limits`` bound the files read back (default: the process's)."""
    from vm.runtime.limits import current
    from vm.runtime.wasi import MemFS

    def read(name: str) -> str:
        path = os.path.join(tmp, name)
        data = open(path, "rb").read() if os.path.exists(path) else b""
        return base64.b64encode(data).decode("ascii")

    fs = MemFS(limits if limits is not None else current())
    for n, (guest, _host) in enumerate(wasi.dirs):
        fs.load_dir(os.path.join(tmp, f"dir{n}"), guest)
    return {"exit_code": (got or {}).get("exit_code"), "stdout": read("stdout"), "stderr": read("stderr"),
            "files": fs.digest()}


def _wasmtime_final(store: Any, inst: Any, m: Any, host_globals: Dict[str, Any], out: RunOutcome) -> None:
    """Exported globals, the first exported memory and the imported mutable globals after the call."""
    import wasmtime

    if inst is not None:
        exps = inst.exports(store)
        gtypes = m.global_types()
        for ex in m.exports:
            if ex.kind == "global":
                t = gtypes[ex.index].type
                if t == "v128":  # wasmtime-py aborts on reading one: left out on both sides (run_vm)
                    continue
                out.globals[ex.name] = _from_wasmtime(t, cast(wasmtime.Global, exps[ex.name]).value(store))
            elif ex.kind == "memory" and out.memory is None:
                mem = cast(wasmtime.Memory, exps[ex.name])
                out.memory = bytes(mem.read(store, 0, mem.data_len(store)))
        _imported_globals(m, lambda name: _from_wasmtime(GLOBALS[name][0], host_globals[name].value(store)), out)
