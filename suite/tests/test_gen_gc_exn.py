"""GC and exception handling in the campaign's generators and counters: our strategy's ``gc`` and
``exceptions`` features make modules that wasm-tools and our validator accept and that reach every shape
they promise; smith's flags; the coverage kinds ``heap.*`` and ``ctl.handler`` on hand-built states; the
``wcr fuzz --gc --exceptions`` wiring."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from typing import Set

import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis.errors import NoSuchExample

from generators.modules import ALL_FEATURES, DEFAULT_FEATURES, cases
from generators.smith import SmithConfig, feature_config, simd_config, wasm_tools_exe
from vm.binary import decode_module, encode_module
from vm.snapshot.coverage import live_kinds
from vm.snapshot.model import FrameState, HeapObject, Label, State, ThreadState
from vm.valid import validate_module

FAST = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
GCX = DEFAULT_FEATURES | {"gc", "exceptions"}


def _wasm_tools_valid(wasm: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.wasm")
        with open(path, "wb") as fh:
            fh.write(wasm)
        p = subprocess.run([wasm_tools_exe(), "validate", "--features", "all", path], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def test_gc_and_exceptions_are_switches_off_by_default():
    assert {"gc", "exceptions"} <= ALL_FEATURES
    assert not {"gc", "exceptions"} & DEFAULT_FEATURES


@pytest.mark.parametrize("feats", [DEFAULT_FEATURES | {"gc"}, DEFAULT_FEATURES | {"exceptions"}, GCX,
                                   GCX - {"traps"}, GCX | {"simd"}],
                         ids=["gc", "exceptions", "both", "both-no-traps", "both-simd"])
def test_generated_modules_validate_everywhere(feats):
    @FAST
    @given(cases(feats))
    def check(case):
        _wasm_tools_valid(case.wasm)
        validate_module(decode_module(case.wasm))
        assert decode_module(case.wasm) == case.module and encode_module(case.module) == case.wasm

    check()


#: what the two parts promise to generate (generators/gc.py, generators/exn.py docstrings)
PROMISED = {
    "struct.new", "struct.new_default", "struct.get", "struct.set", "array.new", "array.new_default",
    "array.new_fixed", "array.get", "array.set", "array.len", "array.fill", "array.copy", "ref.i31",
    "ref.test", "ref.cast", "br_on_cast", "br_on_cast_fail", "ref.eq", "ref.is_null", "br_on_null",
    "throw", "throw_ref", "try_table", "table.set", "table.get", "select",
}


def test_every_promised_shape_is_reachable():
    """Every shape shows up within a bounded search (``find`` stops as soon as all have been seen, so
    the test does not depend on which examples a particular Hypothesis seed draws first)."""
    seen: Set[str] = set()
    want = PROMISED | {f"catch:{k}" for k in ("catch", "catch_ref", "catch_all", "catch_all_ref")} | {
        "packed:struct", "packed:array", "packed:i31", "tag payload", "heap global"}

    def note(case) -> bool:
        m = case.module
        for f in m.funcs:
            for ins in f.body:
                seen.add(ins.op)
                if ins.op == "try_table":
                    seen.update(f"catch:{c.kind}" for c in ins.imm[1])
                if ins.op in ("struct.get_s", "struct.get_u", "array.get_s", "array.get_u", "i31.get_s", "i31.get_u"):
                    seen.add("packed:" + ins.op.split(".")[0])
        if any(m.func_type(t.typeidx).params for t in m.tags):
            seen.add("tag payload")
        if any(g.init[-2].op.startswith(("struct.new", "array.new", "ref.i31")) for g in m.globals):
            seen.add("heap global")
        return want <= seen

    try:
        find(cases(GCX), note, settings=settings(FAST, max_examples=3000, phases=[Phase.generate]))
    except NoSuchExample:
        pass
    assert want <= seen, sorted(want - seen)


def test_the_recursive_and_subtyped_types_are_in_the_module():
    @settings(FAST, max_examples=3)
    @given(cases(DEFAULT_FEATURES | {"gc"}))
    def check(case):
        m = case.module
        assert 2 in m.rec_sizes  # the {$node, $nodes} group
        assert any(not st.final for st in m.types) and any(st.supers for st in m.types)

    check()


def test_without_the_switches_no_gc_or_exception_instruction():
    @settings(FAST, max_examples=30)
    @given(cases())
    def check(case):
        ops = {i.op for f in case.module.funcs for i in f.body}
        assert not {o for o in ops if o.startswith(("struct.", "array.", "ref.i31", "throw", "try"))}
        assert not case.module.tags

    check()


def test_smith_feature_config_turns_on_what_is_asked_only():
    def flag(a, name):
        return a[a.index(f"--{name}") + 1]

    base = SmithConfig(fuel=32)
    a = feature_config(base, gc=True, exceptions=True).argv()
    assert flag(a, "gc-enabled") == flag(a, "exceptions-enabled") == "true"
    assert flag(a, "simd-enabled") == "false" and flag(a, "min-funcs") == "1"
    b = feature_config(base).argv()
    assert flag(b, "gc-enabled") == flag(b, "exceptions-enabled") == "false" and "--min-funcs" not in b
    assert simd_config(base).argv() == feature_config(base, simd=True).argv()


# -- coverage kinds on hand-built states --------------------------------------------------------------------
def _state(heap, globals_=(), frames=()) -> State:
    th = ThreadState("running", 5, 0, frames=list(frames))
    return State({}, [], {}, [], [], [], [], list(globals_), [], th, heap=list(heap))


def _frame(labels=(), locals_=(), caught=()) -> FrameState:
    return FrameState(0, 0, list(locals_), [], list(labels), list(caught))


def test_heap_kinds_by_kind_sharing_and_cycles():
    assert not any(k.startswith("heap.") for k in live_kinds(_state([]), {}))
    s = HeapObject("struct", [("i32", 1)], (0, 0))
    a = HeapObject("array", [("ref.struct", 0)], (0, 1))
    ks = live_kinds(_state([s, a], globals_=[("ref.array", 1)]), {})
    assert {"heap.objects", "heap.struct", "heap.array"} <= ks
    assert not {"heap.exn", "heap.shared", "heap.cycle"} & ks
    # the struct held by the array and by a local: shared
    ks = live_kinds(_state([s, a], globals_=[("ref.array", 1)], frames=[_frame(locals_=[("ref.struct", 0)])]), {})
    assert "heap.shared" in ks and "heap.cycle" not in ks
    # a node whose next field is itself: a cycle (and shared: the global and the field)
    node = HeapObject("struct", [("i32", 7), ("ref.struct", 0)], (0, 2))
    ks = live_kinds(_state([node], globals_=[("ref.struct", 0)]), {})
    assert {"heap.cycle", "heap.shared"} <= ks
    # an exception object held through extern.convert_any's wrapper
    exn = HeapObject("exn", [("i32", 3)], tag=0)
    ks = live_kinds(_state([exn], globals_=[("ref.extern", ("ref.exn", 0))]), {})
    assert "heap.exn" in ks and "heap.shared" not in ks


def test_a_long_list_is_no_recursion_problem():
    n = 5000
    heap = [HeapObject("struct", [("i32", i), ("ref.struct", i + 1) if i + 1 < n else ("ref.null", None)], (0, 2))
            for i in range(n)]
    ks = live_kinds(_state(heap, globals_=[("ref.struct", 0)]), {})
    assert "heap.cycle" not in ks and "heap.shared" not in ks


@pytest.mark.parametrize("kind", ["try_table", "try", "catch", "catch_all"])
def test_handler_shape_from_labels(kind):
    lab = Label(kind, 3, 0, 0, 0)
    assert "ctl.handler" in live_kinds(_state([], frames=[_frame(labels=[lab])]), {})
    assert "ctl.handler" not in live_kinds(_state([], frames=[_frame(labels=[Label("block", 3, 0, 0, 0)])]), {})


def test_handler_shape_and_exn_from_a_caught_exception():
    exn = HeapObject("exn", [], tag=0)
    ks = live_kinds(_state([exn], frames=[_frame(caught=[(4, ("ref.exn", 0))])]), {})
    assert {"ctl.handler", "heap.exn", "heap.objects"} <= ks


# -- the command line ------------------------------------------------------------------------------------------
def test_fuzz_help_names_the_switches():
    p = subprocess.run([sys.executable, "-m", "suite", "fuzz", "--help"], capture_output=True, text=True,
                       env={**os.environ})
    assert p.returncode == 0 and "--gc" in p.stdout and "--exceptions" in p.stdout


def test_config_features_and_old_meta():
    from suite.fuzz.config import Config

    assert Config().features() == ()
    assert Config(simd=True, gc=True, exceptions=True).features() == ("simd", "gc", "exceptions")
    old = {k: v for k, v in Config().__dict__.items() if k not in ("gc", "exceptions")}
    assert Config(**old).features() == ()  # a meta.json written before the switches resumes


# -- wasmtime's trap codes for GC and exceptions (found by the first wcr fuzz --gc runs) ----------------------
@pytest.mark.parametrize("body, kind", [
    ("(struct.get $s 0 (ref.null $s))", "null structure reference"),
    ("(array.len (ref.null $a))", "null array reference"),
    ("(i31.get_s (ref.null i31))", "null i31 reference"),
    ("(array.get $a (array.new_default $a (i32.const 1)) (i32.const 5))", "out of bounds array access"),
    ("(struct.get $s 0 (ref.cast (ref $s) (ref.i31 (i32.const 1))))", "cast failure"),
])
def test_gc_traps_compare_with_wasmtime(body, kind):
    import wasmtime

    from runners.conformance import run_vm, run_wasmtime
    from runners.oracle import compare_conformance

    wasm = wasmtime.wat2wasm(f"""(module (type $s (struct (field i32))) (type $a (array (mut i32)))
      (func (export "run") (result i32) {body}))""")
    ours, theirs = run_vm(wasm, "run", []), run_wasmtime(wasm, "run", [])
    assert ours.trap == kind and theirs.trap_candidates and kind in theirs.trap_candidates
    assert not compare_conformance(ours, theirs)


def test_an_escaping_exception_is_an_uncaught_exception_on_wasmtime():
    import wasmtime

    from runners.conformance import run_wasmtime

    wasm = wasmtime.wat2wasm('(module (tag $t (param i32)) (func (export "run") (throw $t (i32.const 1))))')
    out = run_wasmtime(wasm, "run", [])
    assert out.trap == "uncaught exception" and not out.inconclusive


# -- a short campaign (needs the engine's GC/EH and the snapshot's heap section) ---------------------------
def _missing_gc_eh_work() -> str:
    """Why this tree cannot run GC/EH trials end to end yet ('' when it can): the engine, snapshot and
    resume work of issue 12 lands on other branches first."""
    import wasmtime

    from runners.session import fresh_instance
    from vm.errors import Unsupported
    from vm.snapshot import SnapshotError, advance, checkpoint, start

    wasm = wasmtime.wat2wasm("""(module (type $s (struct (field i32))) (tag $t)
      (global $g (mut exnref) (ref.null exn)) (global $o (mut (ref null $s)) (ref.null $s))
      (func (export "run") (global.set $o (struct.new $s (i32.const 1)))
        (global.set $g (block (result exnref) (try_table (catch_all_ref 0) (throw $t)) (ref.null exn)))))""")
    try:
        store, _inst, func = fresh_instance(wasm, "run")
        run = start(store, func, [])
        advance(store, run, 100)
        heap = checkpoint(store, run).heap
    except (Unsupported, SnapshotError) as e:
        return str(e)
    return "" if len(heap) == 2 else "the snapshot has no heap section"


def test_short_campaign_with_gc_and_exceptions(tmp_path):
    """A few chunks of ``wcr fuzz --gc --exceptions``: no divergence, and checkpoints with live structs,
    arrays and exception objects and inside handlers, restored on the host (their restores on targets
    need the resume modules' heap rebuild: tested with the resume work)."""
    from suite.fuzz.campaign import run_campaign

    missing = _missing_gc_eh_work()
    if missing:
        pytest.skip(f"GC/EH not runnable end to end in this tree yet: {missing}")
    from suite.fuzz.config import Config

    cfg = Config(budget=float("inf"), chunks=4, seed=1, hosts=["inproc"], targets=["wasmtime"],
                 dir=str(tmp_path / "camp"), chunk=8, gc=True, exceptions=True)
    s = run_campaign(cfg)
    assert s["divergences"] == 0 and s["trials"] == 32 and s["gc"] and s["exceptions"]
    cov = s["coverage"]
    for kind in ("heap.objects", "heap.struct", "heap.array", "heap.exn", "ctl.handler"):
        assert cov[kind]["checkpoints"] > 0 and cov[kind]["hosts"] > 0, kind


def test_wasmtime_null_reference_stands_for_every_null_kind():
    from runners.native.wasmtime import TRAP_CODES
    from vm.errors import TRAP_KINDS

    assert set(TRAP_CODES["NULL_REFERENCE"][1]) == {k for k in TRAP_KINDS if k.startswith("null ")}


def test_throw_ref_of_null_compares_with_wasmtime():
    """Found by the first 120 s campaign: a branch to a catch_ref handler's label carried a null exnref
    that the handler rethrew (our 'null exception reference', wasmtime's NULL_REFERENCE)."""
    import wasmtime

    from runners.conformance import run_vm, run_wasmtime
    from runners.oracle import compare_conformance

    wasm = wasmtime.wat2wasm('(module (func (export "run") (throw_ref (ref.null exn))))')
    ours, theirs = run_vm(wasm, "run", []), run_wasmtime(wasm, "run", [])
    assert ours.trap == "null exception reference" and not compare_conformance(ours, theirs)


def test_without_traps_no_gc_read_traps():
    """The README's promise: without the ``traps`` feature, GC programs run to a result (no null, index 0
    of arrays at least one long, no failing cast), and agree with wasmtime."""
    from runners.conformance import run_vm, run_wasmtime
    from runners.oracle import compare_conformance

    @settings(FAST, max_examples=25)
    @given(cases(DEFAULT_FEATURES - {"traps"} | {"gc"}))
    def check(case):
        ours = run_vm(case.wasm, "run_bits", case.bits_args, 500_000)
        assert ours.trap is None
        assert not compare_conformance(ours, run_wasmtime(case.wasm, "run_bits", case.bits_args))

    check()
