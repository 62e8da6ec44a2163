"""Tests of checkpoint/restore (vm.snapshot): state model, codec, restore checks, digest, view.

The central property: for generated straight-line and control-flow programs, stopping at any retired
instruction k, snapshotting (encode → decode) and resuming in a fresh store gives exactly the
uninterrupted run's results or trap kind, host log, final-state digest and instruction count; so do
chains of migrations.  Corrupt, truncated, foreign-version, crafted and wrong-module snapshots raise
SnapshotError and nothing else.
"""

from __future__ import annotations

import hashlib
import random
from typing import Dict, List, Tuple

import pytest

wasmtime = pytest.importorskip("wasmtime")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from vm.api import Store, instantiate  # noqa: E402
from vm.snapshot import (  # noqa: E402
    Outcome,
    Run,
    SnapshotError,
    advance,
    checkpoint,
    codec,  # noqa: E402
    decode,
    encode,
    finish,
    outcome_of,
    restore,
    run_to,
    show,
    start,
    state_digest,
)

SETTINGS = settings(max_examples=15, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def wasm(wat: str) -> Tuple[bytes, Dict[str, bytes]]:
    data = bytes(wasmtime.wat2wasm(wat))
    return data, {hashlib.sha256(data).hexdigest(): data}


# ------------------------------------------------------------------------------------------------
# Program generator (WAT text): typed expressions over locals, memory, a global, calls, prints,
# blocks, ifs, bounded loops, recursion and trapping divisions.
# ------------------------------------------------------------------------------------------------

F32_CONSTS = ["0x1p+0", "-0x0p+0", "nan:0x200001", "-nan:0x7fffff", "inf", "0x1.8p-126"]
F64_CONSTS = ["0x1p+0", "-0x1.5p+3", "nan:0x4000000000001", "-inf", "0x1p-1074"]


@st.composite
def expr(draw, t: str, depth: int = 0) -> str:
    leaf = depth >= 3 or draw(st.booleans())
    if t == "i32":
        if leaf:
            return draw(st.sampled_from([
                f"(i32.const {draw(st.integers(-5, 70000))})", "(local.get $a)", "(local.get $b)",
                "(global.get $g)", "(local.get $p)"]))
        k = draw(st.integers(0, 8))
        if k == 0:
            op = draw(st.sampled_from(["add", "sub", "mul", "xor", "and", "or", "shl", "rotl", "div_u",
                                       "rem_s", "lt_u", "ge_s"]))
            return f"(i32.{op} {draw(expr('i32', depth + 1))} {draw(expr('i32', depth + 1))})"
        if k == 1:
            op = draw(st.sampled_from(["clz", "popcnt", "eqz"]))
            return f"(i32.{op} {draw(expr('i32', depth + 1))})"
        if k == 2:
            return f"(i32.wrap_i64 {draw(expr('i64', depth + 1))})"
        if k == 3:
            return f"(i32.load (i32.and {draw(expr('i32', depth + 1))} (i32.const 0x1fffc)))"
        if k == 4:
            return f"(call $rec (i32.and {draw(expr('i32', depth + 1))} (i32.const 7)))"
        if k == 5:
            return f"(i32.reinterpret_f32 {draw(expr('f32', depth + 1))})"
        if k == 6:
            return (f"(select {draw(expr('i32', depth + 1))} {draw(expr('i32', depth + 1))} "
                    f"{draw(expr('i32', depth + 1))})")
        if k == 7:
            return f"(f64.lt {draw(expr('f64', depth + 1))} {draw(expr('f64', depth + 1))})"
        return f"(i32.load8_s (i32.and {draw(expr('i32', depth + 1))} (i32.const 0x1ffff)))"
    if t == "i64":
        if leaf:
            return draw(st.sampled_from([f"(i64.const {draw(st.integers(-(2**63), 2**63 - 1))})",
                                         "(local.get $c)"]))
        k = draw(st.integers(0, 2))
        if k == 0:
            op = draw(st.sampled_from(["add", "mul", "xor", "rotr", "div_s", "shr_u"]))
            return f"(i64.{op} {draw(expr('i64', depth + 1))} {draw(expr('i64', depth + 1))})"
        if k == 1:
            return f"(i64.extend_i32_{draw(st.sampled_from('su'))} {draw(expr('i32', depth + 1))})"
        return f"(i64.reinterpret_f64 {draw(expr('f64', depth + 1))})"
    if t == "f32":
        if leaf:
            return draw(st.sampled_from([f"(f32.const {draw(st.sampled_from(F32_CONSTS))})",
                                         "(local.get $x)"]))
        k = draw(st.integers(0, 2))
        if k == 0:
            op = draw(st.sampled_from(["add", "mul", "div", "min", "copysign"]))
            return f"(f32.{op} {draw(expr('f32', depth + 1))} {draw(expr('f32', depth + 1))})"
        if k == 1:
            return f"(f32.demote_f64 {draw(expr('f64', depth + 1))})"
        return f"(f32.{draw(st.sampled_from(['neg', 'sqrt', 'nearest']))} {draw(expr('f32', depth + 1))})"
    if leaf:
        return draw(st.sampled_from([f"(f64.const {draw(st.sampled_from(F64_CONSTS))})", "(local.get $y)"]))
    k = draw(st.integers(0, 2))
    if k == 0:
        op = draw(st.sampled_from(["add", "sub", "div", "max"]))
        return f"(f64.{op} {draw(expr('f64', depth + 1))} {draw(expr('f64', depth + 1))})"
    if k == 1:
        return f"(f64.promote_f32 {draw(expr('f32', depth + 1))})"
    return f"(f64.convert_i32_s {draw(expr('i32', depth + 1))})"


LOCAL_OF = {"i32": "$a", "i64": "$c", "f32": "$x", "f64": "$y"}


@st.composite
def stmt(draw, depth: int, control: bool) -> str:
    kinds = ["set", "set", "set", "store", "global", "print", "trap?"]
    if control and depth < 2:
        kinds += ["if", "block", "loop"]
    k = draw(st.sampled_from(kinds))
    if k == "set":
        t = draw(st.sampled_from(["i32", "i32", "i64", "f32", "f64"]))
        name = LOCAL_OF[t] if t != "i32" else draw(st.sampled_from(["$a", "$b"]))
        return f"(local.set {name} {draw(expr(t))})"
    if k == "store":
        t = draw(st.sampled_from(["i32", "i64", "f32", "f64"]))
        return f"({t}.store (i32.and {draw(expr('i32'))} (i32.const 0x1fff8)) {draw(expr(t))})"
    if k == "global":
        return f"(global.set $g {draw(expr('i32'))})"
    if k == "print":
        return f"(call $print {draw(expr('i32'))})"
    if k == "trap?":  # traps when the low bits are zero: some runs end in a trap
        return f"(drop (i32.rem_u (local.get $a) (i32.and {draw(expr('i32'))} (i32.const 3))))"
    body = " ".join(draw(st.lists(stmt(depth + 1, control), min_size=1, max_size=3)))
    if k == "if":
        other = " ".join(draw(st.lists(stmt(depth + 1, control), max_size=2)))
        return f"(if {draw(expr('i32'))} (then {body}) (else {other}))"
    if k == "block":
        return f"(block $B{depth} {body} (br_if $B{depth} {draw(expr('i32'))}) {body})"
    n = draw(st.integers(1, 4))
    return (f"(local.set $i{depth} (i32.const {n})) (loop $L{depth} {body} "
            f"(br_if $L{depth} (local.tee $i{depth} (i32.sub (local.get $i{depth}) (i32.const 1)))))")


def program(stmts: List[str]) -> str:
    return f"""(module
  (import "spectest" "print_i32" (func $print (param i32)))
  (memory 2)
  (global $g (mut i32) (i32.const 7))
  (table 2 funcref)
  (elem (i32.const 0) $rec)
  (func $rec (param $n i32) (result i32)
    (if (result i32) (i32.eqz (local.get $n)) (then (global.get $g))
      (else (i32.add (local.get $n)
        (call_indirect (param i32) (result i32) (i32.sub (local.get $n) (i32.const 1)) (i32.const 0))))))
  (func (export "run") (param $p i32) (result i32 i64 f32 f64)
    (local $a i32) (local $b i32) (local $c i64) (local $x f32) (local $y f64)
    (local $i0 i32) (local $i1 i32) (local $i2 i32)
    {' '.join(stmts)}
    (local.get $a) (local.get $c) (local.get $x) (local.get $y)))"""


def check_every_k(data: bytes, mods: Dict[str, bytes], arg: int, max_checks: int = 40) -> int:
    """Uninterrupted vs stop-at-k + encode/decode/restore/finish; every k when few, else a sample."""
    ref_store = Store()
    inst = instantiate(ref_store, data)
    ref = finish(ref_store, start(ref_store, inst.exports["run"], [arg])).to_dict()
    total = ref["instructions"]
    ks = list(range(total + 1))
    if len(ks) > max_checks:
        rng = random.Random(total)
        ks = sorted({0, 1, total - 1, total, *rng.sample(ks, max_checks - 4)})
    for k in ks:
        store = Store()
        inst = instantiate(store, data)
        run = run_to(store, inst.exports["run"], [arg], k)
        assert run.count == k or run.status != "running"
        snap = encode(checkpoint(store, run))
        store2, run2 = restore(decode(snap), mods)
        got = finish(store2, run2).to_dict()
        assert got == ref, f"k={k}"
    return total


@SETTINGS
@given(st.lists(stmt(0, False), min_size=2, max_size=8), st.integers(0, 2**32 - 1))
def test_straight_line_every_k(stmts, arg):
    data, mods = wasm(program(stmts))
    check_every_k(data, mods, arg)


@SETTINGS
@given(st.lists(stmt(0, True), min_size=2, max_size=5), st.integers(0, 2**32 - 1))
def test_control_flow_every_k(stmts, arg):
    data, mods = wasm(program(stmts))
    check_every_k(data, mods, arg)


@SETTINGS
@given(st.lists(stmt(0, True), min_size=1, max_size=4), st.integers(0, 40), st.data())
def test_chains(stmts, arg, d):
    data, mods = wasm(program(stmts))
    ref_store = Store()
    ref = finish(ref_store, start(ref_store, instantiate(ref_store, data).exports["run"], [arg]))
    ks = sorted(d.draw(st.lists(st.integers(0, ref.instructions), max_size=4)))
    store = Store()
    run = start(store, instantiate(store, data).exports["run"], [arg])
    assert _chain(store, run, ks, mods).to_dict() == ref.to_dict()


def _chain(store: Store, run: Run, ks: list, mods: dict) -> Outcome:
    """Migrate at every k of ``ks`` (increasing): checkpoint → encode → decode → restore → continue."""
    for k in ks:
        advance(store, run, k)
        store, run = restore(decode(encode(checkpoint(store, run))), mods)
    return finish(store, run)


# ------------------------------------------------------------------------------------------------
# Hand-made cases
# ------------------------------------------------------------------------------------------------

FIB = """(module
  (import "spectest" "print_i32" (func $p (param i32)))
  (memory (export "mem") 1)
  (global $g (mut i32) (i32.const 0))
  (table 4 funcref)
  (elem (i32.const 0) $fib)
  (func $fib (export "fib") (param i32) (result i32)
    (call $p (local.get 0))
    (global.set $g (i32.add (global.get $g) (i32.const 1)))
    (i32.store (i32.mul (local.get 0) (i32.const 4)) (global.get $g))
    (if (result i32) (i32.lt_u (local.get 0) (i32.const 2))
      (then (local.get 0))
      (else (i32.add (call $fib (i32.sub (local.get 0) (i32.const 1)))
        (call_indirect (param i32) (result i32) (i32.sub (local.get 0) (i32.const 2)) (i32.const 0))))))
  (func (export "deep") (param i32) (result i32)
    (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 0))
      (else (i32.add (i32.const 1) (call 2 (i32.sub (local.get 0) (i32.const 1)))))))
  (func (export "trap") (param i32) (result i32)
    (i32.div_u (i32.const 10) (i32.sub (local.get 0) (i32.const 3))))
)"""


@pytest.fixture(scope="module")
def fib():
    return wasm(FIB)


def _mid(data: bytes, func: str, args: list, k: int):
    store = Store()
    inst = instantiate(store, data)
    return store, run_to(store, inst.exports[func], args, k)


def test_checkpoint_in_one_store_finishes_in_another(fib):
    data, mods = fib
    ref_store = Store()
    reference = finish(ref_store, start(ref_store, instantiate(ref_store, data).exports["fib"], [5])).to_dict()
    assert reference["results"] == ["i32:5"]
    assert reference["host_log"][:2] == [["print_i32", ["i32:5"]], ["print_i32", ["i32:4"]]]
    store, run = _mid(data, "fib", [5], reference["instructions"] // 3)
    store2, run2 = restore(decode(encode(checkpoint(store, run))), mods)
    assert run2 is not None
    assert finish(store2, run2).to_dict() == reference


def test_deep_recursion_500_frames(fib):
    data, mods = fib
    ref_store = Store()
    ref = finish(ref_store, start(ref_store, instantiate(ref_store, data).exports["deep"], [500]))
    store, run = _mid(data, "deep", [500], 0)
    while len(run.thread.frames) < 501:
        advance(store, run, run.count + 1)
    state = checkpoint(store, run)
    blob = encode(state)
    assert decode(blob) == state
    store2, run2 = restore(decode(blob), mods)
    assert finish(store2, run2).to_dict() == ref.to_dict()


def test_trap_at_every_boundary(fib):
    data, mods = fib
    ref_store = Store()
    ref = finish(ref_store, start(ref_store, instantiate(ref_store, data).exports["trap"], [3]))
    assert ref.trap == "integer divide by zero"
    for k in range(ref.instructions + 2):
        store, run = _mid(data, "trap", [3], k)
        if k >= ref.instructions:
            assert run.status == "trapped"
        store2, run2 = restore(decode(encode(checkpoint(store, run))), mods)
        assert finish(store2, run2).to_dict() == ref.to_dict()


def test_nan_bits_and_large_memory_round_trip():
    data, mods = wasm("""(module
      (memory 40)
      (global $f (mut f32) (f32.const nan:0x200001))
      (global $d (mut f64) (f64.const -nan:0x4000000000001))
      (func (export "go") (result f32 f64)
        (i64.store (i32.const 0x10000) (i64.const -1))
        (i32.store (i32.const 0x27fffc) (i32.const 0x7fa00001))
        (f32.store (i32.const 0x100) (global.get $f))
        (global.get $f) (global.get $d)))""")
    store, run = _mid(data, "go", [], 1000)
    assert run.status == "done"
    state = checkpoint(store, run)
    assert state.thread.results == [("f32", 0x7FA00001), ("f64", 0xFFF4000000000001)]
    assert state.globals == [("f32", 0x7FA00001), ("f64", 0xFFF4000000000001)]
    assert sorted(state.mems[0].nonzero) == [0, 1, 39]
    blob = encode(state)
    assert len(blob) < 4096
    back = decode(blob)
    assert back == state
    store2, _ = restore(back, mods)
    assert bytes(store2.instances[0].mems[0].data) == bytes(store.instances[0].mems[0].data)
    assert state_digest(store2) == state_digest(store)


def test_acceptance_size_one_page_ten_frames(fib):
    data, mods = fib
    store = Store()
    inst = instantiate(store, data)
    run = start(store, inst.exports["deep"], [20])
    while len(run.thread.frames) < 10:
        advance(store, run, run.count + 1)
    blob = encode(checkpoint(store, run))
    assert len(run.thread.frames) == 10
    assert len(blob) < 4096, len(blob)


def test_shared_objects_names_and_spectest_host_objects():
    a, _ = wasm("""(module
      (import "spectest" "memory" (memory 1 2))
      (import "spectest" "global_i32" (global i32))
      (memory $own (export "m") 1)
      (table (export "t") 3 funcref)
      (global (export "g") (mut i64) (i64.const 5))
      (func (export "f") (result i32) (i32.const 9))
      (elem (i32.const 1) 0))""")
    b, _ = wasm("""(module
      (import "A" "m" (memory 1))
      (import "A" "t" (table 3 funcref))
      (import "A" "g" (global (mut i64)))
      (import "A" "f" (func $f (result i32)))
      (import "spectest" "memory" (memory 1 2))
      (func (export "go") (result i32)
        (i32.store8 (i32.const 7) (i32.const 0xAB))
        (i32.store (i32.const 9) (call $f))
        (global.set 0 (i64.const -1))
        (table.set 0 (i32.const 2) (table.get 0 (i32.const 1)))
        (i32.load8_u (i32.const 7))))""")
    mods = {hashlib.sha256(x).hexdigest(): x for x in (a, b)}
    store = Store()
    ia = instantiate(store, a, name="A")
    ib = instantiate(store, b, name="B")
    run = run_to(store, ib.exports["go"], [], 7)
    store2, run2 = restore(decode(encode(checkpoint(store, run))), mods)
    ra, rb = store2.instances
    assert (ra.name, rb.name) == ("A", "B")
    assert rb.mems[0] is ra.mems[1] and rb.tables[0] is ra.tables[0]
    assert rb.globals[0] is ra.globals[1] and rb.funcs[0] is ra.funcs[0]
    assert rb.mems[1] is ra.mems[0]  # the same spectest memory object
    out = finish(store2, run2)
    ref = finish(store, run)
    assert out.to_dict() == ref.to_dict()
    assert ra.globals[1].value == (1 << 64) - 1 and ra.tables[0].elements[2] is ra.funcs[0]
    assert ia.mems[1].data[7] == 0xAB


def test_digest_is_canonical(fib):
    data, _ = fib
    s1, s2 = Store(), Store()
    instantiate(s1, data)
    instantiate(s2, data)
    assert state_digest(s1) == state_digest(s2)
    s2.instances[0].mems[0].data[5] = 1
    assert state_digest(s1) != state_digest(s2)
    s1.instances[0].mems[0].data[5] = 1
    s1.host_log.append(("print_i32", (1,)))
    assert state_digest(s1) != state_digest(s2)


def test_show_yaml(fib):
    yaml = pytest.importorskip("yaml")
    data, _ = fib
    store, run = _mid(data, "fib", [6], 200)
    text = show(encode(checkpoint(store, run)))
    doc = yaml.safe_load(text)
    assert doc["thread"]["status"] == "running" and doc["thread"]["instructions"] == 200
    assert doc["thread"]["frames"][0]["function"] == "fib"
    assert doc["memories"][0]["pages"] == 1


# ------------------------------------------------------------------------------------------------
# Bad snapshots: only SnapshotError, ever
# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def good(fib):
    data, mods = fib
    store, run = _mid(data, "fib", [6], 150)
    return encode(checkpoint(store, run)), mods


@pytest.fixture(scope="module")
def good_small(fib):
    """A snapshot without memory contents (so that crafted flips land in the structure): 13 frames."""
    data, mods = fib
    store, run = _mid(data, "deep", [30], 100)
    return encode(checkpoint(store, run)), mods


def _only_snapshot_error(blob: bytes, mods) -> None:
    try:
        store, run = restore(decode(blob), mods)
    except SnapshotError:
        return
    if run is not None:
        advance(store, run, run.count + 20000)  # a crafted state may legally run long: bound it


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.binary(max_size=300))
def test_random_bytes(blob):
    with pytest.raises(SnapshotError):
        decode(blob)
    with pytest.raises(SnapshotError):
        decode(codec.MAGIC + blob)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.data())
def test_bit_flips_and_truncation(good, d):
    blob, mods = good
    i = d.draw(st.integers(0, len(blob) * 8 - 1))
    flipped = bytearray(blob)
    flipped[i // 8] ^= 1 << (i % 8)
    with pytest.raises(SnapshotError):
        decode(bytes(flipped))
    n = d.draw(st.integers(0, len(blob) - 1))
    with pytest.raises(SnapshotError):
        decode(blob[:n])


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_crafted_bodies(good_small, d):
    """Bit flips *inside* a correctly re-checksummed body reach the semantic checks of restore."""
    blob, mods = good_small
    body = bytearray(codec.unpack(blob))
    for _ in range(d.draw(st.integers(1, 3))):
        i = d.draw(st.integers(0, len(body) * 8 - 1))
        body[i // 8] ^= 1 << (i % 8)
    _only_snapshot_error(codec.pack(bytes(body)), mods)


def test_foreign_version_wrong_module_and_labels(good, fib):
    blob, mods = good
    body = codec.unpack(blob)
    with pytest.raises(SnapshotError, match="version"):
        decode(codec.pack(body, version=codec.VERSION + 1))
    other, other_mods = wasm("(module (func (export \"fib\") (param i32) (result i32) (local.get 0)))")
    with pytest.raises(SnapshotError, match="refusing to restore onto another module"):
        restore(decode(blob), other_mods)
    sha = next(iter(mods))
    with pytest.raises(SnapshotError, match="another sha256"):
        restore(decode(blob), {sha: other})
    state = decode(blob)
    state.thread.frames[-1].labels[-1].height += 1
    with pytest.raises(SnapshotError, match="label stack"):
        restore(decode(encode(state)), mods)
    state = decode(blob)
    state.thread.frames[-1].pc += 1
    with pytest.raises(SnapshotError):
        restore(state, mods)
    state = decode(blob)
    state.thread.frames[-1].stack.append(("i32", 1))
    with pytest.raises(SnapshotError, match="operand stack height"):
        restore(state, mods)


def test_unknown_optional_section_is_skipped_required_refused(good):
    blob, _ = good
    body = codec.unpack(blob)
    assert decode(codec.pack(body + bytes([0x90, 2, 1, 2]))) == decode(blob)
    with pytest.raises(SnapshotError, match="unknown required section"):
        decode(codec.pack(body + bytes([0x40, 0])))


def test_outcome_of_a_live_store_matches_a_restored_finish(fib):
    """The spec runner's C/R mode: snapshot before the invocation, invoke on the live store, describe
    it with ``outcome_of``; a replay from the snapshot to k, restored and finished, must agree."""
    data, mods = fib
    live, plain = Store(), Store()
    f_live = instantiate(live, data, name="M").exports["fib"]
    f_plain = instantiate(plain, data, name="M").exports["fib"]
    for n in (4, 6):
        pre = encode(checkpoint(live, start(live, f_live, [n])))
        results = live.invoke(f_live, [n])
        reference = outcome_of(live, f_live.type.results, results, None, live.instructions).to_dict()
        assert reference["results"] == [f"i32:{plain.invoke(f_plain, [n])[0]}"]
        assert state_digest(live) == state_digest(plain)
        assert reference["instructions"] == plain.instructions
        scratch, run = restore(decode(pre), mods)
        assert run is not None
        advance(scratch, run, reference["instructions"] // 2)
        store2, run2 = restore(decode(encode(checkpoint(scratch, run))), mods)
        assert run2 is not None
        assert finish(store2, run2).to_dict() == reference


def test_outcome_of_a_trap_has_no_results(fib):
    data, _ = fib
    store = Store()
    f = instantiate(store, data).exports["trap"]
    ref = finish(store, start(store, f, [3]))
    got = outcome_of(store, f.type.results, [7], ref.trap, ref.instructions)
    assert got.to_dict() == ref.to_dict() and got.results == [] and got.trap == "integer divide by zero"


@pytest.mark.parametrize("wat,arg", [
    # a false `if` without `else` jumps to its `end`, which the validator marks unreachable when the
    # then-arm cannot fall through
    ("""(module (func (export "run") (param i32) (result i32)
        (i32.const 5) (local.get 0) (if (param i32) (result i32) (then (return (i32.const 9))))
        (i32.const 1) (i32.add)))""", 0),
    # a tail call replaces the bottom frame
    ("""(module
        (func $g (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))
        (func (export "run") (param i32) (result i32) (return_call $g (i32.mul (local.get 0) (i32.const 2)))))""",
     3),
])
def test_regressions_every_k(wat, arg):
    data, mods = wasm(wat)
    check_every_k(data, mods, arg)
