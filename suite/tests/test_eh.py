"""Exception handling in the reference engine (vm/exec/eh.py + the run loop's unwinding): handlers across
frames and instances, exnref identity, legacy try/catch/delegate/rethrow, uncaught exceptions, and the
counting rule of docs/execution-model.md (a Python model of it checks random call chains)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import List, Optional, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vm.api import Store, instantiate
from vm.errors import Trap, WasmException
from vm.runtime.heap import ExnInst
from vm.runtime.limits import StoreLimits
from vm.snapshot.run import advance, start


def wat(text: str, tmp: Path) -> bytes:
    """Assemble with WABT's wat2wasm: it reads both the legacy ``try`` syntax and ``try_table``."""
    from spec_tests.convert import wabt_tool

    exe = wabt_tool("wat2wasm")
    if exe is None:
        pytest.skip("WABT wat2wasm not available")
    src, out = tmp / "m.wat", tmp / "m.wasm"
    src.write_text(text)
    # WABT's defaults include exceptions (legacy and try_table); --enable-all would turn on its compact
    # import encoding, which is not WebAssembly 3.0
    proc = subprocess.run([exe, str(src), "-o", str(out)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return out.read_bytes()


def load(text: str, tmp: Path, store: Optional[Store] = None, name: Optional[str] = None):
    store = store or Store()
    return store, instantiate(store, wat(text, tmp), name=name)


def call(store: Store, inst, name: str, *args) -> Tuple[list, int]:
    res = store.invoke(inst.exports[name], list(args))
    return res, store.instructions


ACROSS = """
(module
  (tag $e (export "e") (param i32))
  (func $c (param i32) (result i32) (throw $e (i32.add (local.get 0) (i32.const 1))))
  (func $b (param i32) (result i32) (i32.mul (call $c (local.get 0)) (i32.const 100)))
  (func (export "a") (param i32) (result i32)
    (block $h (result i32)
      (try_table (result i32) (catch $e $h)
        (call $b (local.get 0)))
      (return))
    (i32.const 1000)
    (i32.add)))
"""


def test_catch_two_frames_up_counts_as_documented(tmp_path):
    store, inst = load(ACROSS, tmp_path)
    res, n = call(store, inst, "a", 41)
    assert res == [1042]
    # a: block, try_table, local.get, call (4) | b: local.get, call (2) | c: local.get, i32.const,
    # i32.add, throw (4; the throw counts once) | handler transfer like `br $h` (nothing) | a: i32.const,
    # i32.add, end (3)
    assert n == 4 + 2 + 4 + 3


def test_stepping_through_a_throw_gives_the_same_run(tmp_path):
    """Stopping before every instruction (the budget ends at the throw, at the handler...) changes
    nothing: the unwinding happens inside one instruction, so every k is a point between two."""
    store, inst = load(ACROSS, tmp_path)
    f = inst.exports["a"]
    run = start(store, f, [41])
    k = 0
    while run.status == "running":
        k += 1
        advance(store, run, k)
        assert run.count == k or run.status != "running"
    assert run.thread.results == [1042] and run.count == 13


def test_catch_ref_and_throw_ref_keep_the_identity(tmp_path):
    store, inst = load("""
    (module
      (tag $e (param i32))
      (func (export "f") (result exnref exnref)
        (local $x exnref)
        (block $h1 (result i32 exnref)
          (try_table (catch_ref $e $h1) (throw $e (i32.const 7)))
          (unreachable))
        (local.set $x)
        (drop)
        (block $h2 (result exnref)
          (try_table (catch_all_ref $h2) (throw_ref (local.get $x)))
          (unreachable))
        (local.get $x)))
    """, tmp_path)
    (a, b), _ = call(store, inst, "f")
    assert isinstance(a, ExnInst) and a is b
    assert a.payload == [7] and a.tag is inst.tags[0]


def test_nested_try_tables_pick_the_innermost_matching_clause(tmp_path):
    store, inst = load("""
    (module
      (tag $e0) (tag $e1)
      (func (export "f") (param i32) (result i32)
        (block $outer
          (block $inner
            (try_table (catch $e1 $inner)
              (try_table (catch $e0 $outer)
                (if (local.get 0) (then (throw $e1)) (else (throw $e0)))))
            (return (i32.const 0)))
          (return (i32.const 1)))
        (i32.const 2)))
    """, tmp_path)
    assert call(store, inst, "f", 0)[0] == [2]  # e0: the inner try_table's clause, label $outer
    assert call(store, inst, "f", 1)[0] == [1]  # e1: skips the inner one


LEGACY = """
(module
  (tag $e0 (param i32)) (tag $e1 (param i32))
  (func $throw0 (param i32) (throw $e0 (local.get 0)))
  (func (export "delegate-outer") (result i32)
    (try (result i32)
      (do
        (try (result i32)
          (do
            (try (result i32)
              (do (call $throw0 (i32.const 5)) (i32.const 0))
              (delegate 1)))
          (catch $e0 (i32.const 100) (i32.add))))
      (catch $e0 (i32.const 200) (i32.add))))
  (func (export "delegate-func") (result i32)
    (try (result i32)
      (do (try (result i32) (do (call $throw0 (i32.const 5)) (i32.const 0)) (delegate 1)))
      (catch_all (i32.const 9))))
  (func (export "rethrow-nested") (result i32)
    (try (result i32)
      (do
        (try (result i32)
          (do (throw $e0 (i32.const 1)))
          (catch $e0
            (drop)
            (try (result i32)
              (do (throw $e1 (i32.const 2)))
              (catch $e1 (drop) (rethrow 1))))))
      (catch $e0 (i32.const 10) (i32.add))
      (catch $e1 (i32.const 20) (i32.add))))
  (func (export "rethrow-escapes")
    (try (do (throw $e0 (i32.const 4))) (catch_all (rethrow 0))))
  (func (export "catch-count") (result i32)
    (try (result i32) (do (i32.const 3)) (catch_all (i32.const 4)))))
"""


def test_delegate_to_an_outer_try_skips_the_blocks_between(tmp_path):
    store, inst = load(LEGACY, tmp_path)
    assert call(store, inst, "delegate-outer")[0] == [205]


def test_delegate_to_the_function_label_leaves_the_frame(tmp_path):
    store, inst = load(LEGACY, tmp_path)
    with pytest.raises(WasmException) as ei:
        call(store, inst, "delegate-func")
    assert ei.value.exn.payload == [5] and ei.value.message == "uncaught exception"


def test_rethrow_from_a_nested_catch_rethrows_the_outer_catch(tmp_path):
    store, inst = load(LEGACY, tmp_path)
    assert call(store, inst, "rethrow-nested")[0] == [11]  # e0 with payload 1, not e1


def test_an_escaping_rethrow_is_the_caught_exception(tmp_path):
    store, inst = load(LEGACY, tmp_path)
    with pytest.raises(WasmException) as ei:
        call(store, inst, "rethrow-escapes")
    assert type(ei.value) is WasmException and ei.value.payload == [4] and ei.value.tag is inst.tags[0]


def test_reaching_catch_all_from_the_try_body_counts_it_like_else(tmp_path):
    store, inst = load(LEGACY, tmp_path)
    # try, i32.const, catch_all (counts, continues after the try's end), end(func)
    assert call(store, inst, "catch-count") == ([3], 4)


def test_exception_through_call_indirect_into_another_instance(tmp_path):
    store = Store()
    _, a = load("""
    (module
      (tag $e (export "e") (param i64))
      (table (export "t") 1 funcref)
      (elem (i32.const 0) $thrower)
      (func $thrower (param i64) (throw $e (local.get 0))))
    """, tmp_path, store, name="A")
    _, b = load("""
    (module
      (import "A" "e" (tag $e (param i64)))
      (import "A" "t" (table 1 funcref))
      (type $t (func (param i64)))
      (func (export "f") (result i64)
        (block $h (result i64)
          (try_table (catch $e $h) (call_indirect (type $t) (i64.const 77) (i32.const 0)))
          (i64.const 0)
          (return))))
    """, tmp_path, store)
    assert call(store, b, "f")[0] == [77]
    assert b.tags[0] is a.tags[0]


def test_two_tags_of_one_type_are_different_exceptions(tmp_path):
    store, inst = load("""
    (module
      (tag $a) (tag $b)
      (func (export "f") (result i32)
        (block $h (try_table (catch $a $h) (throw $b)) (return (i32.const 0)))
        (i32.const 1)))
    """, tmp_path)
    with pytest.raises(WasmException) as ei:
        call(store, inst, "f")
    assert ei.value.exn.tag is inst.tags[1]


def test_uncaught_exception_leaves_the_thread_like_a_trap(tmp_path):
    store2, inst2 = load("""
    (module
      (tag $e (param i32))
      (func $g (param i32) (throw $e (local.get 0)))
      (func (export "f") (param i32) (call $g (local.get 0))))
    """, tmp_path)
    run = advance(store2, start(store2, inst2.exports["f"], [3]), None)
    assert run.trap == "uncaught exception" and run.status == "trapped"
    th = run.thread
    # f: local.get, call | g: local.get, throw; no frame popped, the top pc is the throw
    assert th.count == 4 and store2.instructions == 4
    assert len(th.frames) == 2 and th.frames[-1].func.func.body[th.frames[-1].pc].op == "throw"
    with pytest.raises(WasmException) as ei:
        call(store2, inst2, "f", 3)
    assert ei.value.payload == [3]


def test_throw_ref_of_null_traps(tmp_path):
    store, inst = load('(module (func (export "f") (throw_ref (ref.null exn))))', tmp_path)
    with pytest.raises(Trap, match="^null exception reference$"):
        call(store, inst, "f")


def test_traps_are_not_caught(tmp_path):
    store, inst = load("""
    (module (func (export "f") (block $h (try_table (catch_all $h) (unreachable)))))
    """, tmp_path)
    with pytest.raises(Trap, match="unreachable"):
        call(store, inst, "f")


def test_exception_payloads_are_charged_to_the_heap_quota(tmp_path):
    text = """
    (module
      (tag $e (param i32 i32))
      (func (export "f") (param i32)
        (loop $l
          (block $h (try_table (catch_all $h) (throw $e (i32.const 1) (i32.const 2))))
          (br_if $l (local.tee 0 (i32.sub (local.get 0) (i32.const 1)))))))
    """
    store, inst = load(text, tmp_path, Store(limits=StoreLimits(max_heap_fields=10)))
    call(store, inst, "f", 5)  # 5 exceptions x 2 fields
    with pytest.raises(Trap, match="out of memory"):
        call(store, inst, "f", 1)


def test_an_exception_escaping_the_start_function_fails_instantiation(tmp_path):
    with pytest.raises(WasmException):
        load("(module (tag $e) (func $s (throw $e)) (start $s))", tmp_path)


# ------------------------------------------------------------------------------ model of a call chain
#: modes of a non-last function: what encloses its call to the next function
MODES = ("none", "catch", "catch_all", "legacy", "legacy_all", "delegate", "rethrow", "relay")
#: own instructions retired before its call is executed (the call included)
PRE = {"none": 1, "catch": 3, "catch_all": 3, "legacy": 2, "legacy_all": 2, "delegate": 2, "rethrow": 2,
       "relay": 3}
#: own instructions of a frame whose callee returned normally
NORMAL = {"none": 4, "catch": 7, "catch_all": 7, "legacy": 6, "legacy_all": 6, "delegate": 6, "rethrow": 6,
          "relay": 7}
#: own instructions after a handler of the frame took the exception and the frame then returns
CAUGHT = {"catch": 3, "catch_all": 2, "legacy": 4, "legacy_all": 3}
#: own instructions of a frame that catches and throws the same exception again
RELAY = {"rethrow": 1, "relay": 1}


def _func(i: int, mode: str, tag: int, nxt: str) -> str:
    c = 1000 * (i + 1)
    call = f"(call {nxt})"
    body = {
        "none": f"{call} (i32.const 1) (i32.add)",
        "catch": f"(block $h (result i32) (try_table (result i32) (catch $e{tag} $h) {call}) "
                 f"(i32.const 1) (i32.add) (return)) (i32.const {c}) (i32.add)",
        "catch_all": f"(block $h (try_table (result i32) (catch_all $h) {call}) (i32.const 1) (i32.add) (return)) "
                     f"(i32.const {c})",
        "legacy": f"(try (result i32) (do {call} (i32.const 1) (i32.add)) (catch $e{tag} (i32.const {c}) (i32.add)))",
        "legacy_all": f"(try (result i32) (do {call} (i32.const 1) (i32.add)) (catch_all (i32.const {c})))",
        "delegate": f"(try (result i32) (do {call} (i32.const 1) (i32.add)) (delegate 0))",
        "rethrow": f"(try (result i32) (do {call} (i32.const 1) (i32.add)) (catch_all (rethrow 0)))",
        "relay": f"(block $h (result exnref) (try_table (result i32) (catch_all_ref $h) {call}) "
                 f"(i32.const 1) (i32.add) (return)) (throw_ref)",
    }[mode]
    return f"(func $f{i} (result i32) {body})"


def chain_module(modes: List[Tuple[str, int]], thrown: Optional[int], payload: int) -> str:
    n = len(modes)
    funcs = [_func(i, m, t, f"$f{i + 1}") for i, (m, t) in enumerate(modes)]
    last = f"(i32.const {payload}) (throw $e{thrown})" if thrown is not None else f"(i32.const {payload})"
    funcs.append(f"(func $f{n} (result i32) {last})")
    return ("(module (tag $e0 (param i32)) (tag $e1 (param i32)) (tag $e2 (param i32)) "
            + " ".join(funcs) + ' (export "f0" (func $f0)))')


def chain_model(modes: List[Tuple[str, int]], thrown: Optional[int], payload: int):
    """(result or None when uncaught, retired instructions) by the documented counting rule."""
    n = len(modes)
    if thrown is None:
        return payload + n, 2 + sum(NORMAL[m] for m, _ in modes)
    count = sum(PRE[m] for m, _ in modes) + 2  # every call executed, then `i32.const; throw`
    for i in range(n - 1, -1, -1):
        m, t = modes[i]
        if m in RELAY:
            count += RELAY[m]
        if m in ("catch", "legacy") and t == thrown or m in ("catch_all", "legacy_all"):
            value = (payload if m in ("catch", "legacy") else 0) + 1000 * (i + 1)
            count += CAUGHT[m]
            for j in range(i - 1, -1, -1):
                value += 1
                count += NORMAL[modes[j][0]] - PRE[modes[j][0]]
            return value, count
    return None, count


@settings(max_examples=60, deadline=None)
@given(modes=st.lists(st.tuples(st.sampled_from(MODES), st.integers(0, 2)), min_size=0, max_size=6),
       thrown=st.one_of(st.none(), st.integers(0, 2)), payload=st.integers(0, 999),
       step=st.integers(1, 7))
def test_random_call_chains_match_the_model(tmp_path_factory, modes, thrown, payload, step):
    tmp = tmp_path_factory.mktemp("chain")
    store, inst = load(chain_module(modes, thrown, payload), tmp)
    want, want_count = chain_model(modes, thrown, payload)
    run = start(store, inst.exports["f0"], [])
    k = 0
    while run.status == "running":  # stopped every `step` instructions on the way: same run
        k += step
        advance(store, run, k)
    assert run.count == want_count
    if want is None:
        assert run.trap == "uncaught exception"
    else:
        assert run.trap is None and run.thread.results == [want]


def test_script_semantics_of_exceptions(tmp_path):
    """assert_exception passes only on an escaping exception; an exception is neither a trap nor a result;
    an exception escaping a start function fails the module (and its dependents), as an `invoke` action
    that throws fails."""
    from spec_tests.runner import run_file

    (tmp_path / "x.wast").write_text("""
(module
  (tag $e (param i32))
  (func (export "throw") (throw $e (i32.const 1)))
  (func (export "ok") (result i32) (i32.const 2)))
(assert_exception (invoke "throw"))
(assert_exception (invoke "ok"))
(assert_trap (invoke "throw") "uncaught exception")
(assert_return (invoke "throw"))
(invoke "throw")
(module (tag $e) (func $s (throw $e)) (start $s))
(assert_trap (module (tag $e) (func $s (throw $e)) (start $s)) "uncaught exception")
""", encoding="utf-8")
    r = run_file(tmp_path, "x.wast", None, tmp_path / "cache")
    assert [c.status for c in r.cases] == ["passed", "passed", "failed", "failed", "failed", "failed",
                                           "failed", "failed"]
    assert "instantiation failed: WasmException: uncaught exception" in r.cases[6].message
    assert r.cases[7].message == "expected trap, got an uncaught exception"


def test_an_exception_from_a_host_function_unwinds_from_its_call(tmp_path):
    """A host callee that raises WasmException is caught at its call instruction; after ``return_call``
    of a host function the calling frame is already gone, so its handlers do not apply."""
    from vm.types import FuncType

    store = Store()
    _, tags = load('(module (tag (export "e") (param i32)))', tmp_path, store, name="T")
    tag = tags.exports["e"]

    def host(args):
        raise WasmException(ExnInst(tag, [args[0] + 1]))

    h = store.host_func("h", FuncType(("i32",), ()), host)
    text = """
    (module
      (import "T" "e" (tag $e (param i32)))
      (import "H" "h" (func $h (param i32)))
      (func (export "call") (result i32)
        (block $c (result i32) (try_table (catch $e $c) (call $h (i32.const 4))) (i32.const 0)))
      (func $inner
        (block $d (result i32) (try_table (catch $e $d) (return_call $h (i32.const 5))) (i32.const 0))
        (drop))
      (func (export "tail") (result i32)
        (block $c (result i32) (try_table (catch $e $c) (call $inner)) (i32.const 0))))
    """
    inst = instantiate(store, wat(text, tmp_path), [tag, h])
    # call: block, try_table, i32.const, call (raises) | br $c with the payload | end(func)
    assert call(store, inst, "call") == ([5], 5)
    # $inner's frame is gone when the host raises: its handler $d does not apply, its caller's does
    assert call(store, inst, "tail")[0] == [6]
