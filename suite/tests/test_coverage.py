"""vm.snapshot.coverage on hand-written programs: each state kind and control shape is reported exactly
where the snapshot carries it (and not before), and the campaign's JSON summary has the coverage
section with every kind."""

from __future__ import annotations

import hashlib
from typing import Dict, FrozenSet, List

import wasmtime

from runners.session import fresh_instance
from vm.snapshot import advance, checkpoint, start
from vm.snapshot.coverage import CONTROL_SHAPES, KINDS, STATE_KINDS, live_kinds


def kinds_by_k(wat: str, args: List[int] = (), export: str = "run") -> Dict[int, FrozenSet[str]]:  # type: ignore[assignment]
    """Live kinds at every k of one run, k = total included."""
    wasm = wasmtime.wat2wasm(wat)
    mods = {hashlib.sha256(wasm).hexdigest(): wasm}
    store, _inst, func = fresh_instance(wasm, export)
    run = start(store, func, list(args))
    out: Dict[int, FrozenSet[str]] = {}
    k = 0
    while True:
        advance(store, run, k)
        out[k] = live_kinds(checkpoint(store, run), mods)
        if run.status != "running":
            return out
        k += 1


def first(kinds: Dict[int, FrozenSet[str]], kind: str) -> int:
    return min((k for k, v in kinds.items() if kind in v), default=-1)


def test_names_are_documented_and_distinct():
    assert len(KINDS) == len(set(KINDS)) == len(STATE_KINDS) + len(CONTROL_SHAPES)
    assert all(k.startswith("ctl.") for k in CONTROL_SHAPES) and not any(k.startswith("ctl.") for k in STATE_KINDS)


def test_globals_internal_and_exported_only_once_changed():
    ks = kinds_by_k("""(module
      (global $in (mut i32) (i32.const 5)) (global $ex (export "ex") (mut i64) (i64.const 1))
      (global $same (mut i32) (i32.const 0))
      (func (export "run")
        (global.set $same (i32.const 0))
        (global.set $in (i32.const 6))
        (global.set $ex (i64.const 2))))""")
    assert first(ks, "global.internal") == 4  # after the second global.set (two instructions each)
    assert first(ks, "global.exported") == 6
    assert ks[0] == {"ctl.entry"} and "ctl.done" in ks[max(ks)]


def test_imported_mutable_global_only_once_changed():
    ks = kinds_by_k("""(module
      (import "spectest" "global_mut_i32" (global $m (mut i32)))
      (global $in (mut i32) (i32.const 5))
      (func (export "run")
        (global.set $m (i32.const 0))
        (global.set $m (i32.const 9))
        (global.set $in (i32.const 5))))""")
    assert first(ks, "global.imported") == 4  # writing the initial value 0 back changes nothing
    assert "global.internal" not in ks[max(ks)] and "global.exported" not in ks[max(ks)]


def test_imported_memory_and_table_written():
    ks = kinds_by_k("""(module
      (import "spectest" "memory" (memory 1 2)) (import "spectest" "table" (table 10 20 funcref))
      (func $f) (elem declare func $f)
      (func (export "run")
        (i32.store (i32.const 8) (i32.const 7))
        (table.set 0 (i32.const 3) (ref.func $f))))""")
    assert first(ks, "memory.imported") == 3
    assert first(ks, "table.imported") == 6
    assert "memory.written" not in ks[max(ks)] and "table.written" not in ks[max(ks)]


def test_table_writes_over_segment_slots_and_grow():
    ks = kinds_by_k("""(module
      (table 2 4 funcref) (func $f) (func $g) (elem (i32.const 0) $f $g)
      (func (export "run")
        (table.set (i32.const 0) (ref.func $f))
        (table.set (i32.const 1) (ref.func $f))
        (drop (table.grow (ref.null func) (i32.const 1)))))""")
    assert first(ks, "table.written") == 6  # writing the same function back changes nothing
    assert first(ks, "table.grown") == 9


def test_passive_segments_live_then_dropped():
    ks = kinds_by_k("""(module
      (memory 1) (table 1 funcref) (func $f)
      (data (i32.const 0) "active") (data "passive")
      (elem func $f)
      (func (export "run")
        (memory.init 1 (i32.const 100) (i32.const 0) (i32.const 3))
        (data.drop 1)
        (elem.drop 0)))""")
    assert "data.passive" in ks[0] and "elem.passive" in ks[0] and "memory.written" not in ks[0]
    assert first(ks, "memory.written") == 4
    assert first(ks, "data.dropped") == 5 and "data.passive" not in ks[5]
    assert first(ks, "elem.dropped") == 6


def test_second_memory_and_table():
    ks = kinds_by_k("""(module
      (memory 1) (memory $b 1) (table 1 funcref) (table $t 2 funcref) (func $f) (elem declare func $f)
      (func (export "run")
        (i32.store $b (i32.const 0) (i32.const 1))
        (table.set $t (i32.const 1) (ref.func $f))))""")
    assert first(ks, "memory.multi") == 3
    assert first(ks, "table.multi") == 6


def test_multi_value_label_and_results_deep_frames():
    ks = kinds_by_k("""(module
      (func $two (result i32 i32) (i32.const 1) (i32.const 2))
      (func $rec (param i32)
        (if (local.get 0) (then (call $rec (i32.sub (local.get 0) (i32.const 1))))))
      (func (export "run") (result i32)
        (call $rec (i32.const 9))
        (call $two)
        (block (param i32 i32) (result i32) (i32.add))))""")
    assert first(ks, "frames.deep") > 0
    assert any("multi_value.results" in v and "ctl.call" in v for v in ks.values())
    assert first(ks, "multi_value.label") > 0
    assert "frames.deep" not in ks[max(ks)]


def test_v128_value():
    # our VM has no SIMD yet: put a v128 into a captured frame the way a SIMD checkpoint would hold it
    wasm = wasmtime.wat2wasm("""(module (func (export "run") (local i64) nop))""")
    store, _inst, func = fresh_instance(wasm, "run")
    run = start(store, func, [])
    state = checkpoint(store, run)
    mods = {hashlib.sha256(wasm).hexdigest(): wasm}
    assert "value.v128" not in live_kinds(state, mods)
    state.thread.frames[-1].stack.append(("v128", 1 << 100))
    assert "value.v128" in live_kinds(state, mods)


def test_br_table_default_leaving_a_loop_only_in_its_last_iteration():
    ks = kinds_by_k("""(module
      (func (export "run") (local $c i32)
        (local.set $c (i32.const 2))
        (block $exit
          (loop $l
            (local.set $c (i32.sub (local.get $c) (i32.const 1)))
            nop
            (br_table $l $exit (i32.eqz (local.get $c)))))))""")
    hits = sorted(k for k, v in ks.items() if "ctl.br_table_exit" in v)
    # k: 0-1 c=2, 2 block, 3 loop, 4-7 c=1, 8 nop, 9-11 br_table (continue), 12 loop, 13-16 c=0, 17 nop ...
    assert hits and all(k > 12 for k in hits), hits
    assert all("ctl.loop" in ks[k] for k in hits)


def test_if_without_else_reached_by_the_false_edge():
    ks = kinds_by_k("""(module
      (func (export "run") (param i32)
        (if (local.get 0) (then (br 0)))
        nop))""", [0])
    assert first(ks, "ctl.if_false_end") == 2  # local.get, if, then the end
    taken = kinds_by_k("""(module
      (func (export "run") (param i32)
        (if (local.get 0) (then (br 0)))
        nop))""", [1])
    assert first(taken, "ctl.if_false_end") == -1


def test_trapped_and_host_log():
    ks = kinds_by_k("""(module
      (import "spectest" "print_i32" (func $p (param i32)))
      (func (export "run") (call $p (i32.const 1)) unreachable))""")
    last = ks[max(ks)]
    assert "ctl.trapped" in last and "host.log" in last


def test_campaign_summary_has_the_coverage_section(tmp_path):
    import io

    from suite.fuzz.campaign import format_coverage, run_campaign
    from suite.fuzz.config import Config

    out = io.StringIO()
    s = run_campaign(Config(budget=3, seed=3, hosts=["inproc"], targets=[], dir=str(tmp_path / "c"), chunk=4), out=out)
    cov = s["coverage"]
    assert set(KINDS) <= set(cov)
    assert all(set(row) == {"trials", "checkpoints", "hosts", "targets"} for row in cov.values())
    assert sum(row["checkpoints"] for row in cov.values()) > 0
    assert cov["ctl.entry"]["checkpoints"] + cov["ctl.done"]["checkpoints"] + cov["ctl.trapped"]["checkpoints"] > 0 \
        or s["checkpoints"] > 0
    assert "coverage" in out.getvalue() and format_coverage(cov).splitlines()[0] in out.getvalue()


def test_unknown_modules_are_skipped():
    # a state naming a module we were not given claims nothing about its globals, tables or pcs
    wasm = wasmtime.wat2wasm("""(module (global (mut i32) (i32.const 0))
      (func (export "run") (global.set 0 (i32.const 1))))""")
    store, _inst, func = fresh_instance(wasm, "run")
    run = advance(store, start(store, func, []))
    assert live_kinds(checkpoint(store, run), {}) == {"ctl.done"}


def test_else_arm():
    ks = kinds_by_k("""(module (func (export "run") (param i32) (if (local.get 0) (then nop) (else nop nop))))""", [0])
    assert first(ks, "ctl.else") == 2 and "ctl.if" not in ks[2]


def test_steering_waits_boosts_few_and_forgets_covered_kinds():
    from suite.fuzz.coverage import MAX_BOOST, WARMUP_TRIALS, Steering

    s = Steering([], has_targets=True)
    s.new_chunk(0)
    assert s.boost == frozenset()  # nothing known yet
    for _ in range(WARMUP_TRIALS):
        s.on_hosts({"frames.deep": {"checkpoints": 1, "hosts": 1}})
    s.new_chunk(1)
    assert 0 < len(s.boost) <= MAX_BOOST
    s.new_chunk(2)
    assert s.boost and s.boost != frozenset() and "frames.deep" in s.uncovered()  # hosts only: not covered
    s.targets.add("frames.deep")
    assert "frames.deep" not in s.uncovered()
    resumed = Steering([{"t": "trial", "coverage": {"ctl.loop": {"checkpoints": 1, "hosts": 2}}},
                        {"t": "targets", "coverage": {"ctl.loop": {"v8": 1}}}], has_targets=True)
    assert "ctl.loop" not in resumed.uncovered() and resumed.trials == 1
