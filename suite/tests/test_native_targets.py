"""Native targets (runners.native): hand-written resume modules run on every available runtime.

One test per target runs every scenario that the target's declared features allow and checks the
outcome against the expected one (so the targets agree with each other); a target is skipped only when
its toolchain is absent, with the reason.  wasm2c compiles each module once (cached by sha256).  The
manifests are the converter's own (:class:`vm.snapshot.resume.Manifest`), built here from the
``wcr:mem:N``/``wcr:global:N``/``wcr:table:N`` export names the converter uses.
"""

from __future__ import annotations

import ast
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

wasmtime = pytest.importorskip("wasmtime")

from runners import native  # noqa: E402
from runners.native import adapter, v8, wabt, wasm2c, wasm3  # noqa: E402
from runners.native import wasmtime as wasmtime_target  # noqa: E402
from runners.native.introspect import ModuleInfo  # noqa: E402
from runners.native.process import Timeout, run_proc  # noqa: E402
from runners.native.rewrite import RENAMED, internalize_spectest, rename_import_module  # noqa: E402
from runners.native.target import classify  # noqa: E402
from vm.binary import decode_module  # noqa: E402
from vm.errors import TRAP_KINDS  # noqa: E402
from vm.runtime.spectest import PRINTS  # noqa: E402
from vm.snapshot.resume import Manifest  # noqa: E402

REPO = Path(__file__).resolve().parents[2]

HEADER = """
  (import "spectest" "print" (func $p))
  (import "spectest" "print_i32" (func $pi (param i32)))
  (import "spectest" "print_i64" (func $pl (param i64)))
  (import "spectest" "print_f32" (func $pf (param f32)))
  (import "spectest" "print_f64" (func $pd (param f64)))
  (import "spectest" "print_i32_f32" (func $pif (param i32 f32)))
  (import "spectest" "print_f64_f64" (func $pdd (param f64 f64)))
  (import "spectest" "memory" (memory 1 2))
  (import "spectest" "global_i32" (global $gi i32))
  (import "spectest" "global_i64" (global $gl i64))
  (import "spectest" "global_f32" (global $gf f32))
  (import "spectest" "global_f64" (global $gd f64))
  (export "wcr:mem:0" (memory 0))
"""

BASIC = f"""(module {HEADER}
  (global $a (export "wcr:global:4") (mut i64) (i64.const -5))
  (global $b (export "wcr:global:5") (mut f32) (f32.const nan:0x200001))
  (global $c (export "wcr:global:6") f64 (f64.const -0.0))
  (data (i32.const 100) "wcr")
  (func (export "resume") (result i32 i64 f32 f64 i32)
    (call $p)
    (call $pi (i32.const -1))
    (call $pl (i64.const -2))
    (call $pf (f32.const nan:0x200001))
    (call $pd (f64.const -nan:0x4000000000001))
    (call $pif (global.get $gi) (global.get $gf))
    (call $pdd (global.get $gd) (f64.convert_i64_s (global.get $gl)))
    (i32.store (i32.const 8) (i32.const 0xdeadbeef))
    (global.set $a (i64.add (global.get $a) (i64.const 1)))
    (global.set $b (f32.const -nan:0x7fffff))
    (i32.const -2) (i64.const -3) (f32.const nan:0x200002) (f64.const -0.0)
    (memory.grow (i32.const 1))
    (i32.store (i32.const 65540) (i32.const 0x01020304))))
"""

F32_666_6 = 0x4426A666
F64_666_6 = 0x4084D4CCCCCCCCCD
M64 = (1 << 64) - 1
M32 = (1 << 32) - 1


def f64_bits(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


BASIC_LOG = [
    ("print", ()),
    ("print_i32", (("i32", M32),)),
    ("print_i64", (("i64", M64 - 1),)),
    ("print_f32", (("f32", 0x7FA00001),)),
    ("print_f64", (("f64", 0xFFF4000000000001),)),
    ("print_i32_f32", (("i32", 666), ("f32", F32_666_6))),
    ("print_f64_f64", (("f64", F64_666_6), ("f64", f64_bits(666.0)))),
]
BASIC_RESULTS = [("i32", M32 - 1), ("i64", M64 - 2), ("f32", 0x7FA00002), ("f64", 1 << 63), ("i32", 1)]
BASIC_GLOBALS = {"wcr:global:4": ("i64", M64 - 3), "wcr:global:5": ("f32", 0xFFFFFFFF),
                 "wcr:global:6": ("f64", 1 << 63)}


def trap_module(body: str, extra: str = "") -> str:
    """A module that writes a marker into memory, prints, then runs ``body`` (which traps)."""
    return f"""(module {HEADER} {extra}
  (type $v (func))
  (type $i (func (result i32)))
  (func $f (type $v))
  (func $deep (param i32) (result i32) (i32.add (call $deep (i32.add (local.get 0) (i32.const 1))) (i32.const 1)))
  (func (export "resume") (result i32)
    (i32.store8 (i32.const 3) (i32.const 0x5a))
    (call $pi (i32.const 42))
    {body}))"""


TABLE = '(table $t 2 funcref) (elem (i32.const 0) $f) (export "wcr:table:0" (table $t))'
# name → (module text, expected trap, features needed)
TRAPS: Dict[str, Tuple[str, str, Tuple[str, ...]]] = {
    "unreachable": (trap_module("unreachable"), "unreachable", ()),
    "div0": (trap_module("(i32.div_u (i32.const 1) (i32.const 0))"), "integer divide by zero", ()),
    "overflow": (trap_module("(i32.div_s (i32.const 0x80000000) (i32.const -1))"), "integer overflow", ()),
    "conversion": (trap_module("(i32.trunc_f32_s (f32.const nan))"), "invalid conversion to integer", ()),
    "oob-memory": (trap_module("(i32.load (i32.const 65534))"), "out of bounds memory access", ()),
    "oob-bulk": (trap_module("(memory.fill (i32.const 65000) (i32.const 1) (i32.const 1000)) (i32.const 0)"),
                 "out of bounds memory access", ("bulk-memory",)),
    "uninitialized": (trap_module("(call_indirect $t (type $v) (i32.const 1)) (i32.const 0)", TABLE),
                      "uninitialized element", ()),
    "undefined": (trap_module("(call_indirect $t (type $v) (i32.const 7)) (i32.const 0)", TABLE),
                  "undefined element", ()),
    "type-mismatch": (trap_module("(call_indirect $t (type $i) (i32.const 0))", TABLE),
                      "indirect call type mismatch", ()),
    "oob-table": (trap_module("(drop (table.get $t (i32.const 9))) (i32.const 0)", TABLE),
                  "out of bounds table access", ("reference-types",)),
    "stack": (trap_module("(call $deep (i32.const 0))"), "call stack exhausted", ()),
}

_WASM: Dict[str, bytes] = {}


def wasm_of(text: str) -> bytes:
    if text not in _WASM:
        _WASM[text] = bytes(wasmtime.wat2wasm(text))
    return _WASM[text]


def manifest_of(wasm: bytes, **override: Any) -> Manifest:
    """The manifest the converter would write for this module: every ``wcr:KIND:N`` export at index N,
    results from ``resume``'s type; ``override`` replaces fields (to build wrong manifests)."""
    mod = decode_module(wasm)
    spaces: Dict[str, Dict[int, str]] = {"mem": {}, "global": {}, "table": {}}
    for e in mod.exports:
        parts = e.name.split(":")
        if len(parts) == 3 and parts[0] == "wcr" and parts[1] in spaces:
            spaces[parts[1]][int(parts[2])] = e.name
    entry = next(e for e in mod.exports if e.name == "resume")
    results = mod.types[mod.funcs[entry.index - len(mod.imported("func"))].typeidx].comp.results
    fields: Dict[str, Any] = {"memories": spaces["mem"], "globals": spaces["global"], "tables": spaces["table"],
                              "results": tuple(results)}
    fields.update(override)
    return Manifest(**fields)


def target_or_skip(name: str) -> native.Target:
    t = native.get_target(name)
    ok, why = t.available()
    if not ok:
        pytest.skip(f"{name}: {why}")
    return t


def check_basic(t: native.Target, out: native.NativeOutcome) -> None:
    assert out.inconclusive is None, out.inconclusive
    assert out.trap is None, out.trap_message

    def norm(v: Tuple[str, Any]) -> Tuple[str, Any]:
        # without exact NaN payloads, only "is a NaN of this sign" can be compared
        if not out.nan_exact and v[0] in ("f32", "f64"):
            exp_mask = 0x7F800000 if v[0] == "f32" else 0x7FF0000000000000
            frac = 0x007FFFFF if v[0] == "f32" else 0x000FFFFFFFFFFFFF
            if v[1] & exp_mask == exp_mask and v[1] & frac:
                return (v[0], "nan")
        return v

    assert [norm(v) for v in out.results] == [norm(v) for v in BASIC_RESULTS]
    assert [(n, tuple(norm(a) for a in args)) for n, args in out.host_log] == \
        [(n, tuple(norm(a) for a in args)) for n, args in BASIC_LOG]
    assert {k: norm(v) for k, v in out.globals.items()} == {k: norm(v) for k, v in BASIC_GLOBALS.items()}
    mem = out.memories["wcr:mem:0"]
    assert len(mem) == 2 * 65536
    assert mem[8:12] == b"\xef\xbe\xad\xde" and mem[100:103] == b"wcr" and mem[65540:65544] == b"\x04\x03\x02\x01"
    assert mem.count(0) == len(mem) - 4 - 3 - 4


def check_trap(t: native.Target, name: str, out: native.NativeOutcome) -> None:
    _, expected, _ = TRAPS[name]
    assert out.trap is not None, f"{t.name}/{name}: no trap ({out.inconclusive}, results {out.results})"
    assert expected in out.trap_candidates, f"{t.name}/{name}: {out.trap_message!r} -> {sorted(out.trap_candidates)}"
    assert out.host_log == [("print_i32", (("i32", 42),))]
    if name == "stack":
        assert out.inconclusive  # resource exhaustion is never a verdict
    else:
        assert out.inconclusive is None, out.inconclusive
    mem = out.memories["wcr:mem:0"]
    assert mem[3] == 0x5A and len(mem) == 65536
    if "wcr:table:0" in out.tables:
        assert out.tables["wcr:table:0"] == ["ref", "null"]


@pytest.mark.parametrize("name", ["wasmtime", "v8", "wasm3", "wabt", "wasm2c"])
def test_target(name: str) -> None:
    t = target_or_skip(name)
    assert t.version()
    out = t.run(wasm_of(BASIC), manifest_of(wasm_of(BASIC)))
    check_basic(t, out)
    skipped: List[str] = []
    for trap, (text, _, feats) in TRAPS.items():
        if not t.supports(("mvp",) + feats):
            skipped.append(trap)
            continue
        check_trap(t, trap, t.run(wasm_of(text), manifest_of(wasm_of(text))))
    if skipped:
        print(f"{name}: not applicable: {skipped}")


def test_manifest_mismatch_is_our_error() -> None:
    """A manifest that does not fit its module is the converter's (our) error, never inconclusive."""
    wasm = wasm_of(BASIC)
    out = native.get_target("wasmtime").run(wasm, manifest_of(wasm, results=("i32",)))
    assert out.error and "results" in out.error and not out.inconclusive
    out = native.get_target("wasmtime").run(wasm, manifest_of(wasm, memories={0: "nope"}))
    assert out.error and "nope" in out.error and not out.inconclusive


INSTANTIATION_TRAP = f'(module {HEADER} (data (i32.const 65535) "ab") (func (export "resume")))'
LOOP = f'(module {HEADER} (func (export "resume") (loop $l (br $l))))'


@pytest.mark.parametrize("name", ["wasmtime", "v8", "wabt"])
def test_instantiation_trap_and_timeout(name: str) -> None:
    t = target_or_skip(name)
    out = t.run(wasm_of(INSTANTIATION_TRAP), manifest_of(wasm_of(INSTANTIATION_TRAP)))
    assert out.trap == "out of bounds memory access", (out.trap_message, out.inconclusive)
    out = t.run(wasm_of(LOOP), manifest_of(wasm_of(LOOP)), timeout=1.0)
    assert out.inconclusive and "timeout" in out.inconclusive and out.seconds < 10


def test_simd_and_refs_results() -> None:
    """v128 and reference results/globals travel as integers through the reader."""
    text = f"""(module {HEADER}
      (global (export "wcr:global:0") (mut v128) (v128.const i64x2 1 -1))
      (global (export "wcr:global:1") funcref (ref.null func))
      (func $f)
      (elem declare func $f)
      (func (export "resume") (result v128 funcref externref)
        (v128.const i32x4 1 2 3 0x7fc00001) (ref.func $f) (ref.null extern)))"""
    expect = [("v128", 1 | 2 << 32 | 3 << 64 | 0x7FC00001 << 96), ("ref", None), ("ref.null", None)]
    for name in ("wasmtime", "v8", "wabt", "wasm2c"):
        t = native.get_target(name)
        if not t.available()[0]:
            continue
        out = t.run(wasm_of(text), manifest_of(wasm_of(text)))
        assert out.inconclusive is None, (name, out.inconclusive)
        assert out.results == expect, name
        assert out.globals == {"wcr:global:0": ("v128", 1 | M64 << 64), "wcr:global:1": ("ref.null", None)}, name


def test_rewrites_keep_module_valid() -> None:
    wasm = wasm_of(BASIC)
    mod = decode_module(wasm)
    engine = wasmtime.Engine()
    for w in (rename_import_module(mod), internalize_spectest(mod)):
        wasmtime.Module.validate(engine, w)
    imports = wasmtime.Module(engine, internalize_spectest(mod)).imports
    assert {i.name for i in imports} == set(PRINTS)
    assert {i.module for i in wasmtime.Module(engine, rename_import_module(mod)).imports} == {RENAMED}


def test_shim_is_generated_from_the_spectest_declaration() -> None:
    """The shim provides exactly the spectest names the module imports, with the declared values."""
    wasm = wasm_of(BASIC)
    engine = wasmtime.Engine()
    shim = wasmtime.Module(engine, adapter.shim(ModuleInfo.from_wasm(wasm)))
    assert {e.name for e in shim.exports} == set(PRINTS) | {"memory", "global_i32", "global_i64", "global_f32",
                                                            "global_f64"}
    assert "table64" in adapter.shim_wat(["table64"]) and "table64" not in adapter.shim_wat(["table"])
    assert adapter._literal("f32", 0x4426A666) == (666.5999755859375).hex()
    assert adapter._literal("f64", 0xFFF4000000000001) == "-nan:0x4000000000001"


def test_describe_lists_every_target() -> None:
    rows = native.describe()
    assert [r["name"] for r in rows] == ["wasmtime", "v8", "wasm3", "wabt", "wasm2c", "wamr"]
    for r in rows:
        assert r["available"] or r["reason"]
        assert "mvp" in r["features"]
    assert "wasmtime" in native.format_describe(rows)


def test_trap_messages_map_to_spec_kinds() -> None:
    cases = [
        (v8.TRAP_MESSAGES, "RuntimeError: divide by zero", "integer divide by zero"),
        (v8.TRAP_MESSAGES, "RuntimeError: float unrepresentable in integer range", "invalid conversion to integer"),
        (v8.TRAP_MESSAGES, "RangeError: Maximum call stack size exceeded", "call stack exhausted"),
        (wasm3.TRAP_MESSAGES, "[trap] unreachable executed", "unreachable"),
        (wabt.TRAP_MESSAGES, "uninitialized table element", "uninitialized element"),
        (v8.TRAP_MESSAGES, "something else entirely", None),
        (wabt.TRAP_MESSAGES, "something else entirely", None),
        (wasm3.TRAP_MESSAGES, "something else entirely", None),
    ]
    for table, msg, kind in cases:
        assert classify(msg, table)[0] == kind, msg
    assert set(classify("null function or function signature mismatch", v8.TRAP_MESSAGES)[1]) == {
        "uninitialized element", "indirect call type mismatch"}


def test_every_adapter_maps_into_the_one_trap_vocabulary() -> None:
    """Each target's own table names only kinds of :data:`vm.errors.TRAP_KINDS`, and recording any
    other kind is refused (an adapter bug must not become a verdict)."""
    tables = [v8.TRAP_MESSAGES, wabt.TRAP_MESSAGES, wasm3.TRAP_MESSAGES]
    used = {k for t in tables for _, kind, cands in t for k in (kind, *cands)}
    for codes in (wasmtime_target.TRAP_CODES, wasm2c.TRAP_CODES):
        used |= {k for kind, cands in codes.values() for k in (kind, *cands)}
    assert used <= set(TRAP_KINDS), sorted(used - set(TRAP_KINDS))
    kind, cands = wasmtime_target.TRAP_CODES["NULL_REFERENCE"]  # (+ the GC/EH null kinds, when known)
    assert (kind, cands[:2]) == ("null function reference", ("null function reference", "null reference"))
    with pytest.raises(ValueError):
        native.NativeOutcome("x").set_trap("segfault", "boom")


def test_native_package_has_no_import_cycles() -> None:
    """No file of runners/native (nor hosts/child/framing) imports a module that imports it back."""
    files = sorted((REPO / "runners" / "native").glob("*.py")) + [REPO / "runners" / n for n in
                                                                   ("hosts.py", "child.py", "framing.py")]

    def module_name(path: Path) -> str:
        rel = path.relative_to(REPO).with_suffix("")
        parts = list(rel.parts)
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    names = {module_name(p): p for p in files}

    def imports(name: str) -> set:
        path = names[name]
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        out = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = package.split(".")
                    pkg = pkg[:len(pkg) - node.level + 1]
                    base = ".".join(pkg + ([base] if base else []))
                for a in node.names:
                    full = f"{base}.{a.name}"
                    out.add(full if full in names else base)
            elif isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
        return {m for m in out if m in names and m != name}

    graph = {n: imports(n) for n in names}
    for start in graph:
        seen, todo = set(), list(graph[start])
        while todo:
            m = todo.pop()
            assert m != start, f"{start} imports itself back through {sorted(seen)}"
            if m not in seen:
                seen.add(m)
                todo.extend(graph[m])


def test_run_proc_timeout_kills_grandchildren() -> None:
    """A timed-out toolchain call must not leave its children running (gcc's cc1 did, at 6 GB)."""
    import subprocess
    import time

    marker = "31.4159"
    with pytest.raises(Timeout):
        run_proc(["sh", "-c", f"sleep {marker} & wait"], timeout=0.5)
    time.sleep(0.2)
    left = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, text=True).stdout
    assert not left.strip(), f"grandchild survived: {left}"


def test_no_wasmtime_finalizer_noise_at_exit() -> None:
    """wasmtime-py objects cached by the targets are released before interpreter shutdown (else
    "Exception ignored in: Managed.__del__ ... TypeError" at exit, seen after `wcr fuzz`)."""
    code = """if True:
        import wasmtime
        from runners.native import get_target
        from vm.snapshot.resume import Manifest
        wasm = bytes(wasmtime.wat2wasm('(module (import "spectest" "print_i32" (func (param i32)))'
                                       ' (func (export "resume") (result i32) (call 0 (i32.const 1)) (i32.const 2)))'))
        t = get_target("wasmtime")
        for _ in range(3):
            out = t.run(wasm, Manifest(results=("i32",)))
            assert out.results == [("i32", 2)], (out.results, out.inconclusive)
    """
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(REPO), timeout=120)
    assert p.returncode == 0, p.stderr
    assert "Exception ignored" not in p.stderr, p.stderr
