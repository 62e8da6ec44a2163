"""Checkpoints restored on native targets through the restorer interface
(``runners.native.restorer.target_restorer(name).check_many``) and the native comparison rules
(``runners.oracle``).

Every available target runs: generated programs (nested blocks/loops/ifs, multi-value, calls, br_table,
traps after resume), a checkpoint inside a 20-deep recursion inside a loop, and a wrong reference must
come out as a mismatch.  A target is skipped only when its toolchain is absent, with the reason.
"""

from __future__ import annotations

import random
from typing import List

import pytest

wasmtime = pytest.importorskip("wasmtime")
from hypothesis import HealthCheck, given, settings  # noqa: E402

from generators.modules import Size, cases  # noqa: E402
from runners import oracle  # noqa: E402
from runners.native import NativeOutcome, Target  # noqa: E402
from runners.native.restorer import TargetRestorer, target_restorer  # noqa: E402
from runners.restore import (  # noqa: E402
    INCONCLUSIVE,
    MATCH,
    MISMATCH,
    NONCONFORMANT,
    NOT_APPLICABLE,
    NOT_CONVERTIBLE,
)
from runners.session import items_for as checkpoint_items  # noqa: E402

TARGETS = ["wasmtime", "v8", "wasm3", "wabt", "wasm2c", "wamr"]

RECURSION_IN_LOOP = """(module
 (import "spectest" "print_i32" (func $p (param i32)))
 (memory 1) (global $g (mut i32) (i32.const 0))
 (func $rec (param i32) (result i32)
   (if (result i32) (i32.eqz (local.get 0)) (then (global.get $g))
     (else (i32.add (local.get 0) (call $rec (i32.sub (local.get 0) (i32.const 1)))))))
 (func (export "main") (result i32) (local i32 i32)
   (loop $l
     (global.set $g (i32.add (global.get $g) (i32.const 1)))
     (local.set 1 (i32.add (local.get 1) (call $rec (i32.const 20))))
     (i32.store (i32.mul (local.get 0) (i32.const 4)) (local.get 1))
     (call $p (local.get 1))
     (local.set 0 (i32.add (local.get 0) (i32.const 1)))
     (br_if $l (i32.lt_u (local.get 0) (i32.const 3))))
   (local.get 1)))"""


def restorer_or_skip(name: str) -> TargetRestorer:
    r = target_restorer(name)
    ok, why = r.available()
    if not ok:
        pytest.skip(f"{name} unavailable: {why}")
    return r


# ---------------------------------------------------------------------------------------------- oracle
def test_nan_rule_values() -> None:
    qnan, qnan_neg, snan = ("f32", 0x7FC00000), ("f32", 0xFFC00000), ("f32", 0x7FA00000)
    assert oracle.values_agree(qnan, qnan_neg)  # arithmetic NaN: any sign/payload of a quiet NaN
    assert not oracle.values_agree(snan, ("f32", 0x7FE00000))  # a signalling NaN must survive exactly
    assert oracle.values_agree(snan, ("f32", 0x7FE00000), nan_exact=False)  # unless floats went via the host
    assert not oracle.values_agree(qnan, ("f32", 0x3F800000), nan_exact=False)  # a number is not a NaN
    assert not oracle.values_agree(("f64", 0), ("f64", 1 << 63))  # -0.0 is not 0.0
    assert oracle.values_agree(("f64", 0x7FF8000000000001), ("f64", 0xFFF8000000000000))
    assert not oracle.values_agree(("i32", 1), ("f32", 1))
    assert oracle.values_agree(("ref.func", 3), ("ref", None))
    assert not oracle.values_agree(("ref.null", None), ("ref", None))


def test_nan_rule_memory_words() -> None:
    e = bytes(4) + (0x7FC00000).to_bytes(4, "little")
    assert oracle.compare_memory("m", e, bytes(4) + (0xFFC00000).to_bytes(4, "little")) is None
    assert oracle.compare_memory("m", e, bytes(4) + (0x7F800000).to_bytes(4, "little")) is not None  # inf
    assert oracle.compare_memory("m", bytes(8), bytes(7) + b"\1") is not None


def test_trap_by_kind_and_candidates() -> None:
    assert oracle.compare_trap("undefined element", "indirect call type mismatch",
                               {"undefined element", "uninitialized element", "indirect call type mismatch"}) is None
    assert oracle.compare_trap("uninitialized element 0", "uninitialized element") is None  # regression
    assert oracle.compare_trap("uninitialized element 0", "undefined element") is not None
    assert oracle.compare_trap("unreachable", "integer overflow") is not None
    assert oracle.compare_trap(None, "unreachable") is not None
    assert oracle.compare_trap("unreachable", None) is not None


def test_compare_native_verdicts() -> None:
    ref = {"results": ["i32:7"], "trap": None, "host_log": [["print_i32", ["i32:1"]], ["print_i32", ["i32:2"]]]}
    ok = NativeOutcome("x", results=[("i32", 7)], host_log=[("print_i32", (("i32", 2),))])
    assert oracle.compare_native(ref, [("print_i32", [("i32", 1)])], ok) == ("match", [])
    bad = NativeOutcome("x", results=[("i32", 8)], host_log=[("print_i32", (("i32", 2),))])
    verdict, diffs = oracle.compare_native(ref, [("print_i32", [("i32", 1)])], bad)
    assert verdict == "mismatch" and "results" in diffs[0]
    verdict, _ = oracle.compare_native(ref, [], ok)  # the prefix of the log is missing
    assert verdict == "mismatch"
    inc = NativeOutcome("x", inconclusive="timeout")
    assert oracle.compare_native(ref, [], inc)[0] == "inconclusive"


# ------------------------------------------------------------------------------------------ restorer
@pytest.fixture(scope="module")
def deep_items() -> List:
    """Checkpoints of the recursion-in-a-loop program, among them ones 20 calls deep (21 frames)."""
    items = checkpoint_items(bytes(wasmtime.wat2wasm(RECURSION_IN_LOOP)), "main")
    deep = [it for it in items if it.state.thread.status == "running" and len(it.state.thread.frames) >= 21]
    assert deep, "the program never reached 20-deep recursion"
    rnd = random.Random(4)
    picked = rnd.sample(deep, 4) + [items[0], items[len(items) // 2], items[-1]]
    assert max(len(it.state.thread.frames) for it in picked) == 22
    return picked


@pytest.mark.parametrize("name", TARGETS)
def test_checkpoint_in_deep_recursion_in_loop_resumes_on_every_target(name: str, deep_items: List) -> None:
    r = restorer_or_skip(name)
    res = r.check_many(deep_items)
    assert [x.status for x in res] == [MATCH] * len(deep_items), [(x.status, x.detail) for x in res]


@pytest.mark.parametrize("name", ["wasmtime", "v8"])
def test_wrong_reference_is_a_mismatch(name: str, deep_items: List) -> None:
    """The oracle can fail: a reference that differs in the result, a print or memory is reported."""
    import copy

    r = restorer_or_skip(name)
    it = deep_items[0]
    wrong_result = copy.copy(it)
    wrong_result.reference = dict(it.reference, results=["i32:637"])
    wrong_log = copy.copy(it)
    wrong_log.reference = dict(it.reference, host_log=it.reference["host_log"][:-1])
    wrong_mem = copy.copy(it)
    fs = copy.deepcopy(it.final_state)
    fs.memories[0] = b"\1" + fs.memories[0][1:]
    wrong_mem.final_state = fs
    for c in (wrong_result, wrong_log, wrong_mem):
        c.origin = None  # the comparison, not the blame: a from-scratch run would disagree too
    res = r.check_many([wrong_result, wrong_log, wrong_mem])
    assert [x.status for x in res] == [MISMATCH] * 3, [(x.status, x.detail) for x in res]
    assert "results" in res[0].detail and "host_log" in res[1].detail and "memory 0" in res[2].detail


class _LyingTarget(Target):
    """A target whose runtime adds one to every i32 result (what a miscompiling runtime would do)."""

    name = "liar"
    features = frozenset({"mvp", "mutable-globals", "multi-value", "bulk-memory", "reference-types"})

    def _available(self):
        return True, ""

    def run_many(self, jobs, timeout=20.0):
        from runners.native.wasmtime import WasmtimeTarget

        outs = WasmtimeTarget().run_many(jobs, timeout)
        for o in outs:
            o.results = [(t, (x + 1) & 0xFFFFFFFF) if t == "i32" else (t, x) for t, x in o.results]
        return outs


def test_a_lying_target_is_caught(deep_items: List) -> None:
    import copy

    items = [copy.copy(it) for it in deep_items[:2]]
    for it in items:
        it.origin = None  # no baseline: the lie is a plain mismatch
    res = TargetRestorer(_LyingTarget()).check_many(items)
    assert [x.status for x in res] == [MISMATCH] * 2


class _LiesOnceTarget(_LyingTarget):
    """Lies in its first batch only: resumed mid-execution it is wrong, run from the start it is right."""

    name = "liar-once"

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def run_many(self, jobs, timeout=20.0):
        self.calls += 1
        if self.calls == 1:
            return super().run_many(jobs, timeout)
        from runners.native.wasmtime import WasmtimeTarget

        return WasmtimeTarget().run_many(jobs, timeout)


def test_original_run_baseline_tells_target_nonconformance_from_cr_divergence(deep_items: List) -> None:
    """With the original invocation as baseline (the target runs the original module from the start,
    nothing converted), a target that is wrong on the whole invocation is reported as non-conformant
    (a finding about the target, with its own uninterrupted-run difference), while one that is right
    from the start but wrong after a mid-execution restore stays a C/R mismatch.  (More in
    test_blame.py.)"""
    assert all(it.origin is not None for it in deep_items[:2])
    res = TargetRestorer(_LyingTarget()).check_many(deep_items[:2])
    assert [x.status for x in res] == [NONCONFORMANT] * 2, [(x.status, x.detail) for x in res]
    assert all("uninterrupted run of the original module" in x.detail and x.extra["baseline"] for x in res)
    res = TargetRestorer(_LiesOnceTarget()).check_many(deep_items[:2])
    assert [x.status for x in res] == [MISMATCH] * 2, [(x.status, x.detail) for x in res]


def test_statuses_not_convertible_and_not_applicable() -> None:
    """A trapped checkpoint resumes as its trap, but one whose kind has no certain trigger in the module
    is not convertible (reason given); a module needing bulk memory is not applicable on wasm3
    (features), and runs elsewhere."""
    wat = """(module (memory 1) (func (export "main") (result i32)
               (memory.fill (i32.const 0) (i32.const 7) (i32.const 3)) (i32.load8_u (i32.const 2))))"""
    wasm = bytes(wasmtime.wat2wasm(wat))
    items = checkpoint_items(wasm, "main", ks=[1])
    r3 = target_restorer("wasm3")
    res = r3.check_many(items)
    if r3.available()[0]:
        assert res[0].status == NOT_APPLICABLE and "bulk-memory" in res[0].extra["features"]
    else:  # e.g. PyPy, where pywasm3 is not installed: still not applicable, saying why
        assert res[0].status == NOT_APPLICABLE and res[0].extra["unavailable"]
    assert target_restorer("wasmtime").check_many(items)[0].status == MATCH
    trap = checkpoint_items(bytes(wasmtime.wat2wasm('(module (func (export "main") unreachable))')), "main", ks=[1])
    assert target_restorer("wasmtime").check_many(trap)[0].status == MATCH
    # out of bounds memory access in a module without memory: no certain way to raise it
    oob = checkpoint_items(bytes(wasmtime.wat2wasm('(module (func (export "main") unreachable))')), "main", ks=[1])
    oob[0].state.thread.trap = "out of bounds memory access"
    res = target_restorer("wasmtime").check_many(oob)
    assert res[0].status == NOT_CONVERTIBLE and res[0].extra["reason"] == "trapped"


def test_other_instances_of_the_store_are_ignored() -> None:
    """A spec script's store holds every module instantiated so far: only the thread's instance (and
    its spectest imports) matters for conversion."""
    from vm.api import Store, load_module
    from vm.runtime.spectest import spectest_exports
    from vm.snapshot import checkpoint, finish, run_to
    from vm.snapshot.resume import make_resume_module

    a = bytes(wasmtime.wat2wasm('(module (memory 1) (func (export "f") (result i32) (i32.const 1)))'))
    b = bytes(wasmtime.wat2wasm("""(module (import "spectest" "print_i32" (func $p (param i32)))
        (func (export "main") (result i32) (call $p (i32.const 5)) (i32.const 9)))"""))
    s = Store()
    sp = spectest_exports(s)
    la, lb = load_module(a), load_module(b)
    s.instantiate(la.module, la.info, [], la.sha256)
    ib = s.instantiate(lb.module, lb.info, [sp["print_i32"]], lb.sha256)
    run = run_to(s, ib.exports["main"], [], 1)
    state = checkpoint(s, run)
    assert len(state.instances) == 2
    rm = make_resume_module(state, {la.sha256: a, lb.sha256: b})
    assert rm.manifest.results == ("i32",)
    finish(s, run)


# ------------------------------------------------------------------------------------ generated programs
@pytest.mark.parametrize("name", TARGETS)
def test_generated_programs_restore_on_target(name: str) -> None:
    r = restorer_or_skip(name)
    n_examples = 3 if name == "wasm2c" else 8
    seen = {"match": 0}

    @settings(max_examples=n_examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=cases(size=Size(max_funcs=3, max_budget=25, max_fuel=12)))
    def prop(case) -> None:
        items = checkpoint_items(case.wasm, case.export, case.args, ks=None)
        rnd = random.Random(len(items))
        pick = sorted(rnd.sample(range(len(items)), min(4, len(items))))
        chosen = [items[i] for i in pick]
        res = r.check_many(chosen)
        for it, x in zip(chosen, res):
            assert x.status in (MATCH, NOT_APPLICABLE, NOT_CONVERTIBLE, INCONCLUSIVE), (it.label, x.status, x.detail)
            if x.status == NOT_CONVERTIBLE:
                assert x.extra["reason"] == "trapped", x.detail
            seen["match"] += x.status == MATCH

    prop()
    if name != "wasm3":  # wasm3 lacks bulk memory/reference types: most generated modules do not apply
        assert seen["match"] > 0


MUT_GLOBAL = """(module
 (import "spectest" "print_i32" (func $p (param i32)))
 (import "spectest" "global_mut_i32" (global $m (mut i32)))
 (func $bump (param i32) (global.set $m (i32.add (i32.mul (global.get $m) (i32.const 3)) (local.get 0))))
 (func (export "main") (result i32) (local i32)
   (loop $l
     (local.set 0 (i32.add (local.get 0) (i32.const 1)))
     (call $bump (local.get 0))
     (call $p (global.get $m))
     (br_if $l (i32.lt_u (local.get 0) (i32.const 5))))
   (i32.const 7)))"""


@pytest.mark.parametrize("name", TARGETS)
def test_imported_mutable_global_resumes_on_every_target(name: str) -> None:
    """spectest.global_mut_i32 (the wcr extension): the program writes it and never exports it, so only
    the resume module's prologue carries its value and only the read-back sees its final value (179)."""
    r = restorer_or_skip(name)
    items = checkpoint_items(bytes(wasmtime.wat2wasm(MUT_GLOBAL)), "main")
    res = r.check_many(items)
    assert [x.status for x in res] == [MATCH] * len(items), [(x.status, x.detail) for x in res]
    # a final imported global that differs from the reference is caught (the value is compared at all)
    import copy

    bad = copy.copy(items[len(items) // 2])
    fs = copy.deepcopy(bad.final_state)
    assert fs.globals[0][1] == 179, fs.globals
    fs.globals[0] = (fs.globals[0][0], 178)
    bad.final_state, bad.origin = fs, None
    res = r.check_many([bad])
    assert res[0].status == MISMATCH and "global 0" in res[0].detail, (res[0].status, res[0].detail)


def test_checkpoint_at_end_reached_by_the_false_edge_of_if() -> None:
    """Regression: the ``end`` of an ``if`` whose arm ends in a branch is 'unreachable' for linear
    validation, yet the false edge lands on it; that checkpoint was refused as inconsistent."""
    wat = """(module (func (export "main") (result i32) (local i32)
               (if (local.get 0) (then (br 0))) (i32.const 5)))"""
    items = checkpoint_items(bytes(wasmtime.wat2wasm(wat)), "main")
    res = target_restorer("wasmtime").check_many(items)
    assert [x.status for x in res] == [MATCH] * len(items), [(x.status, x.detail) for x in res]


def test_identical_resume_modules_in_one_batch() -> None:
    """Regression: two identical checkpoints in one wasm2c batch linked the same object twice (the
    whole batch became inconclusive)."""
    r = restorer_or_skip("wasm2c")
    wat = '(module (func (export "f") (param i32) (result i32) (i32.add (local.get 0) (i32.const 1))))'
    items = checkpoint_items(bytes(wasmtime.wat2wasm(wat)), "f", [4], ks=[1, 1])
    assert [x.status for x in r.check_many(items)] == [MATCH, MATCH]


def test_wasm2c_compile_timeout_is_inconclusive(monkeypatch) -> None:
    """gcc running out of time on a huge resume module (seen on skip-stack-guard-page.wast's deep
    recursion) is a toolchain resource limit: inconclusive, not an error or a divergence."""
    from runners.native.process import Timeout
    from runners.native.wasm2c import Wasm2cTarget
    from vm.snapshot.resume import Manifest

    t = Wasm2cTarget()
    if not t.available()[0]:
        pytest.skip(f"wasm2c unavailable: {t.available()[1]}")

    def slow(self, wasm):
        raise Timeout("gcc did not finish in 180 s")

    monkeypatch.setattr(Wasm2cTarget, "_module_object", slow)
    wasm = bytes(wasmtime.wat2wasm('(module (func (export "resume") (result i32) (i32.const 1)))'))
    (out,) = t.run_many([(wasm, Manifest(results=("i32",)))])
    assert out.inconclusive and "could not compile" in out.inconclusive


# ------------------------------------------------------------------- functions of another instance
_EXPORTER = """(module (global $g (mut i32) (i32.const 0))
 (func $h (param i32) (result i32) (i32.add (local.get 0) (i32.const 10)))
 (func (export "ef0") (result i32) (i32.const 0))
 (func (export "inc") (param i32) (result i32) (call $h (local.get 0)))
 (func (export "stateful") (result i32) (global.get $g)))"""
_IMPORTER = """(module
 (import "spectest" "print_i32" (func $p (param i32)))
 (import "a" "ef0" (func $ef0 (result i32)))
 (import "a" "inc" (func $inc (param i32) (result i32)))
 (type $t (func (result i32)))
 (table 2 funcref) (elem (i32.const 1) $ef0)
 (func (export "main") (result i32) (local i32)
   (local.set 0 (call $inc (call $ef0)))
   (call $p (local.get 0))
   (table.set (i32.const 0) (ref.func $ef0))
   (i32.add (local.get 0) (i32.add (call_indirect (type $t) (i32.const 0))
                                   (call_indirect (type $t) (i32.const 1))))))"""


def _two_module_items(importer: str) -> List:
    """Check items at every k of ``main`` in a store where the importer's functions come from another
    Wasm instance (registered as ``a``)."""
    from runners.restore import CheckItem
    from vm.api import Store, load_module
    from vm.runtime.spectest import spectest_exports
    from vm.snapshot import checkpoint, finish, run_to
    from vm.snapshot.codec import encode
    from vm.snapshot.resume import instance_final_state

    a, b = bytes(wasmtime.wat2wasm(_EXPORTER)), bytes(wasmtime.wat2wasm(importer))
    la, lb = load_module(a), load_module(b)

    def fresh():
        s = Store()
        sp = spectest_exports(s)
        ia = s.instantiate(la.module, la.info, [], la.sha256)
        prov = {"spectest": sp, "a": ia.exports}
        return s, s.instantiate(lb.module, lb.info, [prov[i.module][i.name] for i in lb.module.imports], lb.sha256)

    s, ib = fresh()
    run = run_to(s, ib.exports["main"], [], None)
    ref = finish(s, run).to_dict()
    final = instance_final_state(ib)
    items = []
    for k in range(ref["instructions"] + 1):
        s, ib = fresh()
        state = checkpoint(s, run_to(s, ib.exports["main"], [], k))
        items.append(CheckItem(encode(state), state, {la.sha256: a, lb.sha256: b}, ref, final, f"main@{k}", k))
    return items


@pytest.mark.parametrize("name", ["wasmtime", "v8"])
def test_functions_of_another_instance_are_folded_on_target(name: str) -> None:
    r = restorer_or_skip(name)
    items = _two_module_items(_IMPORTER)
    assert items[0].reference["results"] == ["i32:10"], items[0].reference
    res = r.check_many(items)
    assert [x.status for x in res] == [MATCH] * len(items), [(x.status, x.detail) for x in res if x.status != MATCH]
    bad = dict(items[3].reference, results=["i32:11"])
    from runners.restore import CheckItem

    it = items[3]
    wrong = r.check_many([CheckItem(it.snapshot, it.state, it.modules, bad, it.final_state, it.label, it.k)])
    assert wrong[0].status == MISMATCH


def test_imported_stateful_function_of_another_instance_is_not_convertible() -> None:
    items = _two_module_items(_IMPORTER.replace('(import "a" "inc" (func $inc (param i32) (result i32)))',
                                                '(import "a" "inc" (func $inc (param i32) (result i32)))\n'
                                                ' (import "a" "stateful" (func $st (result i32)))')
                              .replace("(call $p (local.get 0))", "(call $p (i32.add (local.get 0) (call $st)))"))
    res = target_restorer("wasmtime").check_many(items[:5])
    assert {x.status for x in res} == {NOT_CONVERTIBLE}
    assert {x.extra["reason"] for x in res} == {"multiple instances"}
