"""Run a generated case on the wcr VM and on wasmtime and compare what a host can observe.

Used by the generator tests as a real differential test, and meant as the building block of the
checkpoint-fuzzing campaign: :func:`run_vm` is the uninterrupted reference run (it also reports the
instruction count ``N`` that :mod:`generators.schedules` needs), :func:`run_wasmtime` the independent
oracle, :func:`compare` the verdict.

Observations (:class:`Outcome`): results or trap kind, the ``spectest`` print log, the exported
globals and the bytes of the exported memory, all as integers/bit patterns.  Floats are compared bit
for bit, except where the value is a NaN whose bits an engine may legally choose (results and print
arguments of non-deterministic cases, and any f32 NaN that crossed wasmtime-py, which quiets payloads):
there only NaN-ness is compared.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from vm.api import Store, load_module
from vm.errors import Trap
from vm.module import Module
from vm.runtime.spectest import spectest_exports
from vm.types import F32, F64, I32, I64, FuncType, ValType

__all__ = ["Outcome", "run_vm", "run_wasmtime", "compare", "TRAP_CODES", "BudgetExceeded"]

#: wasmtime trap codes → the spec's message prefixes (ours).
TRAP_CODES: Dict[str, Tuple[str, ...]] = {
    "INTEGER_DIVISION_BY_ZERO": ("integer divide by zero",),
    "INTEGER_OVERFLOW": ("integer overflow",),
    "BAD_CONVERSION_TO_INTEGER": ("invalid conversion to integer",),
    "MEMORY_OUT_OF_BOUNDS": ("out of bounds memory access",),
    "TABLE_OUT_OF_BOUNDS": ("undefined element", "out of bounds table access"),
    "INDIRECT_CALL_TO_NULL": ("uninitialized element",),
    "BAD_SIGNATURE": ("indirect call type mismatch",),
    "UNREACHABLE": ("unreachable",),
    "STACK_OVERFLOW": ("call stack exhausted",),
    "NULL_REFERENCE": ("null",),
}


class BudgetExceeded(Exception):
    """The VM did not finish within the instruction budget (a generator bug: programs must terminate)."""


@dataclass
class Outcome:
    results: Optional[List[Any]]  # None when trapped
    trap: Optional[str]  # our message, or the wasmtime trap code
    log: List[Tuple[str, Tuple[Any, ...]]] = field(default_factory=list)
    globals: Dict[str, Tuple[ValType, Any]] = field(default_factory=dict)
    memory: Optional[bytes] = None
    instructions: Optional[int] = None  # VM only: retired instructions
    result_types: Tuple[ValType, ...] = ()


def _export_types(m: Module, name: str) -> FuncType:
    for ex in m.exports:
        if ex.name == name and ex.kind == "func":
            return m.func_type(m.func_typeidxs()[ex.index])
    raise KeyError(name)


def _print_types() -> Dict[str, Tuple[ValType, ...]]:
    return {"print": (), "print_i32": (I32,), "print_i64": (I64,), "print_f32": (F32,), "print_f64": (F64,),
            "print_i32_f32": (I32, F32), "print_f64_f64": (F64, F64)}


def run_vm(wasm: bytes, export: str, args: Sequence[Any], max_instructions: int = 2_000_000,
           store: Optional[Store] = None) -> Outcome:
    """Instantiate and call ``export`` on a fresh wcr store (imports: ``spectest``).  Only
    :class:`vm.errors.Trap` is caught (as the outcome); any other exception propagates."""
    store = store or Store()
    lm = load_module(wasm)
    host = spectest_exports(store)
    imports = []
    for imp in lm.module.imports:
        if imp.module != "spectest" or imp.name not in host:
            raise ValueError(f"unsupported import {imp.module}.{imp.name}")
        imports.append(host[imp.name])
    ft = _export_types(lm.module, export)
    out = Outcome(None, None, result_types=tuple(ft.results))
    inst = None
    th = None
    try:
        inst = store.instantiate(lm.module, lm.info, imports, lm.sha256)
        th = store.machine.start(inst.exports[export], list(args))
        if not th.done:
            store.machine.run(th, stop_at=max_instructions)
        out.instructions = th.count
        if not th.done:
            raise BudgetExceeded(f"{export} did not finish within {max_instructions} instructions")
        out.results = list(th.results or [])
    except Trap as e:
        out.trap = e.kind
        out.instructions = th.count if th is not None else None
    out.log = [(n, tuple(a)) for n, a in store.host_log]
    if inst is not None:
        for ex in lm.module.exports:
            if ex.kind == "global":
                g = inst.exports[ex.name]
                out.globals[ex.name] = (g.type.type, g.value)
            elif ex.kind == "memory" and out.memory is None:
                out.memory = bytes(inst.exports[ex.name].data)
    return out


# -- wasmtime -------------------------------------------------------------------------------------------
_ENGINE = None


def _engine():
    global _ENGINE
    if _ENGINE is None:
        import wasmtime

        cfg = wasmtime.Config()
        cfg.consume_fuel = True
        _ENGINE = wasmtime.Engine(cfg)
    return _ENGINE


def _to_signed(v: int, bits: int) -> int:
    return v - (1 << bits) if v >= 1 << (bits - 1) else v


def _wt_val(t: ValType, v: Any):
    import wasmtime

    if t == I32:
        return wasmtime.Val.i32(_to_signed(v, 32))
    if t == I64:
        return wasmtime.Val.i64(_to_signed(v, 64))
    if t == F32:
        return wasmtime.Val.f32(struct.unpack("<f", struct.pack("<I", v))[0])
    if t == F64:
        return wasmtime.Val.f64(struct.unpack("<d", struct.pack("<Q", v))[0])
    return None  # null reference


def _from_py(t: ValType, v: Any) -> Any:
    if t == I32:
        return v & 0xFFFFFFFF
    if t == I64:
        return v & 0xFFFFFFFFFFFFFFFF
    if t == F32:
        return struct.unpack("<I", struct.pack("<f", v))[0]
    if t == F64:
        return struct.unpack("<Q", struct.pack("<d", v))[0]
    value = getattr(v, "value", v)  # wasmtime may hand back a Val wrapper for reference types
    return value


def _wt_type(t: ValType):
    import wasmtime

    return {I32: wasmtime.ValType.i32(), I64: wasmtime.ValType.i64(), F32: wasmtime.ValType.f32(),
            F64: wasmtime.ValType.f64()}[t]


def run_wasmtime(wasm: bytes, export: str, args: Sequence[Any], fuel: int = 50_000_000) -> Outcome:
    """The same run on wasmtime (fresh store; ``spectest`` prints are logged like the VM does)."""
    import wasmtime

    from vm.binary import decode_module

    m = decode_module(wasm)
    engine = _engine()
    store = wasmtime.Store(engine)
    store.set_fuel(fuel)
    module = wasmtime.Module(engine, wasm)
    log: List[Tuple[str, Tuple[Any, ...]]] = []
    ptypes = _print_types()
    imports = []
    for imp in m.imports:
        if imp.module != "spectest" or imp.name not in ptypes or imp.desc.kind != "func":
            raise ValueError(f"unsupported import {imp.module}.{imp.name}")
        params = ptypes[imp.name]

        def cb(*a, _n=imp.name, _p=params):
            log.append((_n, tuple(_from_py(t, x) for t, x in zip(_p, a))))

        imports.append(wasmtime.Func(store, wasmtime.FuncType([_wt_type(t) for t in params], []), cb))
    ft = _export_types(m, export)
    out = Outcome(None, None, result_types=tuple(ft.results))
    inst = None
    try:
        inst = wasmtime.Instance(store, module, imports)
        fn = inst.exports(store)[export]
        res = fn(store, *[_wt_val(t, v) for t, v in zip(ft.params, args)])
        if len(ft.results) == 0:
            res = []
        elif len(ft.results) == 1:
            res = [res]
        out.results = [_from_py(t, v) for t, v in zip(ft.results, res)]
    except wasmtime.Trap as e:
        code = e.trap_code
        out.trap = code.name if code is not None else str(e).splitlines()[0]
    out.log = log
    if inst is not None:
        exps = inst.exports(store)
        for ex in m.exports:
            if ex.kind == "global":
                gt = m.global_types()[ex.index]
                out.globals[ex.name] = (gt.type, _from_py(gt.type, exps[ex.name].value(store)))
            elif ex.kind == "memory" and out.memory is None:
                mem = exps[ex.name]
                out.memory = bytes(mem.read(store, 0, mem.data_len(store)))
    return out


# -- comparison -----------------------------------------------------------------------------------------
def _is_nan(t: ValType, v: int) -> bool:
    if t == F32:
        return (v & 0x7F800000) == 0x7F800000 and (v & 0x7FFFFF) != 0
    if t == F64:
        return (v & 0x7FF0000000000000) == 0x7FF0000000000000 and (v & 0xFFFFFFFFFFFFF) != 0
    return False


def _same(t: ValType, a: Any, b: Any, exact_nan: bool) -> bool:
    if not isinstance(t, str):  # references: only null-ness is comparable across engines
        return (a is None) == (b is None)
    if t in (F32, F64) and _is_nan(t, a) and _is_nan(t, b):
        # wasmtime-py quiets f32 NaN payloads at the boundary: only NaN-ness survives there
        return a == b if (exact_nan and t == F64) else True
    return a == b


def _fmt(v: Any) -> str:
    return f"{v:#x}" if isinstance(v, int) else repr(v)


def trap_matches(ours: str, code: str) -> bool:
    return any(ours.startswith(p) for p in TRAP_CODES.get(code, (code,)))


def compare(vm: Outcome, wt: Outcome, deterministic: bool = True) -> Optional[str]:
    """``None`` when the outcomes agree, else a one-line description of the first difference."""
    if (vm.trap is None) != (wt.trap is None):
        return f"vm: {vm.trap or vm.results} / wasmtime: {wt.trap or wt.results}"
    if vm.trap is not None:
        if not trap_matches(vm.trap, wt.trap):
            return f"trap kind: vm {vm.trap!r} / wasmtime {wt.trap}"
    else:
        for i, t in enumerate(vm.result_types):
            if not _same(t, vm.results[i], wt.results[i], deterministic):
                return f"result {i} ({t}): vm {_fmt(vm.results[i])} / wasmtime {_fmt(wt.results[i])}"
    if len(vm.log) != len(wt.log):
        return f"host log length: vm {len(vm.log)} / wasmtime {len(wt.log)}"
    pt = _print_types()
    for i, ((n1, a1), (n2, a2)) in enumerate(zip(vm.log, wt.log)):
        if n1 != n2 or len(a1) != len(a2) or not all(
                _same(t, x, y, deterministic) for t, x, y in zip(pt.get(n1, ()), a1, a2)):
            return f"host log entry {i}: vm {n1}{a1} / wasmtime {n2}{a2}"
    for name, (t, v) in vm.globals.items():
        if name in wt.globals and not _same(t, v, wt.globals[name][1], deterministic):
            return f"global {name} ({t}): vm {_fmt(v)} / wasmtime {_fmt(wt.globals[name][1])}"
    if vm.memory is not None and wt.memory is not None and vm.memory != wt.memory:
        if len(vm.memory) != len(wt.memory):
            return f"memory size: vm {len(vm.memory)} / wasmtime {len(wt.memory)}"
        i = next(i for i in range(len(vm.memory)) if vm.memory[i] != wt.memory[i])
        return f"memory byte {i:#x}: vm {vm.memory[i]:#x} / wasmtime {wt.memory[i]:#x}"
    return None
