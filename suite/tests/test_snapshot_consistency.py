"""Consistency of a snapshot with its modules (vm/snapshot/consistency.py, docs/snapshot-format.md,
"Consistency rules").

A checksum only catches accidents: each example here takes a real checkpoint, edits the decoded state
the way a crafted file would, re-encodes it (the codec recomputes the checksum) and checks that restore
refuses it with a SnapshotError whose message starts with the field's path.  The counterpart: states
the VM reaches (tail calls, a half-instantiated instance, traps with details, checkpoints of generated
modules at random k) restore without a consistency error.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Callable, Dict, Tuple

import pytest

wasmtime = pytest.importorskip("wasmtime")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from generators.modules import Size, cases  # noqa: E402
from suite.cli import main  # noqa: E402
from vm.api import Store, instantiate  # noqa: E402
from vm.errors import Trap  # noqa: E402
from vm.runtime import ExternRef  # noqa: E402
from vm.snapshot import SnapshotError, advance, checkpoint, decode, encode, finish, restore, run_to, start  # noqa: E402
from vm.snapshot.consistency import results_fit  # noqa: E402
from vm.snapshot.model import State  # noqa: E402

MOD = """(module
  (import "spectest" "print_i32" (func $print (param i32)))
  (import "spectest" "global_i32" (global $hg i32))
  (type $ii (func (param i32) (result i32)))
  (memory 1)
  (table 4 funcref)
  (global $k i32 (i32.const 42))
  (global $k2 i32 (i32.add (global.get $hg) (i32.const 1)))
  (global $m (mut i32) (i32.const 0))
  (global $fr funcref (ref.func $wide))
  (data (i32.const 0) "hi")
  (data "passive")
  (elem (i32.const 0) $wide $narrow)
  (elem declare func $inner)
  (elem funcref (ref.func $inner))
  (func $wide (export "wide") (param i64) (result i64) (i64.mul (local.get 0) (i64.const 0x100000001)))
  (func $narrow (export "narrow") (param i32) (result i32) (local f64)
    (call $print (local.get 0))
    (global.set $m (local.get 0))
    (i32.add (call $inner (local.get 0)) (i32.const 1)))
  (func $inner (param i32) (result i32) (i32.mul (local.get 0) (i32.const 3)))
  (func $tail (export "tail") (param i32) (result i32)
    (return_call $t3 (local.get 0) (i32.const 2) (i32.const 3)))
  (func $t3 (param i32 i32 i32) (result i32)
    (i32.mul (i32.add (i32.add (local.get 0) (local.get 1)) (local.get 2)) (local.get 0)))
  (func $outer (export "outer") (param i32) (result i32) (i32.add (i32.const 100) (call $tail (local.get 0))))
  (func $div (export "div") (param i32) (result i32) (i32.div_u (i32.const 1) (local.get 0)))
  (func $undef (export "undef") (result i32) (call_indirect (type $ii) (i32.const 1) (i32.const 9)))
)"""

# function indices of MOD (= positions in instance 0's function index space)
WIDE, NARROW, INNER, TAIL, T3, OUTER = 1, 2, 3, 4, 5, 6
# global indices
HG, K, K2, M, FR = 0, 1, 2, 3, 4


def wasm(wat: str) -> Tuple[bytes, Dict[str, bytes]]:
    data = bytes(wasmtime.wat2wasm(wat))
    return data, {hashlib.sha256(data).hexdigest(): data}


@pytest.fixture(scope="module")
def mod() -> Tuple[bytes, Dict[str, bytes]]:
    return wasm(MOD)


def _at(data: bytes, func: str, args: list, until: Callable = lambda run: True) -> State:
    """A checkpoint of ``func(args)`` at the first k where ``until(run)`` holds."""
    store = Store()
    run = start(store, instantiate(store, data).exports[func], args)
    while run.status == "running" and not until(run):
        advance(store, run, run.count + 1)
    return checkpoint(store, run)


def _frames_of(*indices: int) -> Callable:
    return lambda run: [fr.func.index for fr in run.thread.frames] == list(indices)


def _refused(state: State, mods: Dict[str, bytes], field: str) -> str:
    """Restore of the re-encoded (re-checksummed) state fails, naming ``field`` first."""
    with pytest.raises(SnapshotError) as e:
        restore(decode(encode(state)), mods)
    msg = e.value.message
    assert msg.startswith(field), msg
    assert "\n" not in msg
    return msg


def _restores(state: State, mods: Dict[str, bytes]) -> None:
    restore(decode(encode(state)), mods)


def _func(state: State, index: int) -> int:
    return state.instances[0].funcs[index]


def _glob(state: State, index: int) -> int:
    return state.instances[0].globals[index]


# -- rule 12: the bottom frame and tail calls ---------------------------------------------------------
def test_frame_of_another_function_under_the_entry_is_refused(mod):
    """Issue 10: a result typed i32 that held 64 bits — wide's frame slipped under narrow's entry."""
    data, mods = mod
    state = _at(data, "wide", [0x1_0000_0001], _frames_of(WIDE))
    state.thread.entry = _func(state, NARROW)
    state.thread.args = [("i32", 5)]
    _refused(state, mods, "thread.frames[0].func")


def test_tail_calls_replace_frames_and_restore(mod):
    data, mods = mod
    ref_store = Store()
    ref = finish(ref_store, start(ref_store, instantiate(ref_store, data).exports["outer"], [4])).to_dict()
    # the bottom frame is t3, not the entry `tail`: return_call replaced it
    alone = _at(data, "tail", [4], _frames_of(T3))
    _restores(alone, mods)
    # outer waits in `call $tail` while t3 runs above it: the call took tail's 1 argument, not t3's 3
    state = _at(data, "outer", [4], _frames_of(OUTER, T3))
    store, run = restore(decode(encode(state)), mods)
    assert finish(store, run).to_dict() == ref
    wrong = copy.deepcopy(state)
    wrong.thread.frames[1].func = _func(state, INNER)  # same type as tail, but tail never reaches it
    _refused(wrong, mods, "thread.frames[1].func")
    alone.thread.frames[0].func = _func(state, INNER)
    _refused(alone, mods, "thread.frames[0].func")


def test_results_fit_compares_result_types(mod):
    data, _ = mod
    store = Store()
    inst = instantiate(store, data)
    assert results_fit(inst.funcs[NARROW], ["i32"], inst.canon)
    assert not results_fit(inst.funcs[WIDE], ["i32"], inst.canon)
    assert not results_fit(inst.funcs[NARROW], [], inst.canon)


# -- rules 1-4: status, trap, results -----------------------------------------------------------------
def test_running_thread_with_trap_or_results_is_refused(mod):
    data, mods = mod
    state = _at(data, "narrow", [5], lambda run: run.count == 3)
    _restores(state, mods)
    bad = copy.deepcopy(state)
    bad.thread.trap = "unreachable"
    _refused(bad, mods, "thread.trap")
    bad = copy.deepcopy(state)
    bad.thread.results = [("i32", 7)]
    _refused(bad, mods, "thread.results")


def test_finished_thread_shape_and_result_types(mod):
    data, mods = mod
    done = _at(data, "narrow", [5], lambda run: False)
    assert done.thread.status == "done"
    _restores(done, mods)
    running = _at(data, "narrow", [5], lambda run: run.count == 3)
    bad = copy.deepcopy(done)
    bad.thread.frames = running.thread.frames
    _refused(bad, mods, "thread.frames")
    bad = copy.deepcopy(done)
    bad.thread.results = [("i64", 1 << 40)]
    _refused(bad, mods, "thread.results[0]: i64 where i32")
    bad = copy.deepcopy(done)
    bad.thread.results = []
    _refused(bad, mods, "thread.results")
    bad = copy.deepcopy(done)
    bad.thread.trap = "unreachable"
    _refused(bad, mods, "thread.trap")


def test_trap_kind_is_one_of_the_closed_vocabulary(mod):
    data, mods = mod
    state = _at(data, "div", [0], lambda run: False)
    assert state.thread.status == "trapped" and state.thread.trap == "integer divide by zero"
    _restores(state, mods)
    for text in ("integer divide by zero\nresults: i32:7", "the answer is 42", "integer divide by zero 3",
                 "undefined element 3\n", "undefined element x", "undefined element 03", "undefined element \u0663", ""):
        bad = copy.deepcopy(state)
        bad.thread.trap = text
        msg = _refused(bad, mods, "thread.trap")
        assert repr(text) in msg
    bad = copy.deepcopy(state)
    bad.thread.results = [("i32", 1)]
    _refused(bad, mods, "thread.results")


def test_an_element_trap_keeps_its_index(mod):
    """The VM says "undefined element 9" (the reference interpreter's wording): the one detail the
    vocabulary allows, and the snapshot restores to the same outcome, bit for bit."""
    data, mods = mod
    store = Store()
    run = run_to(store, instantiate(store, data).exports["undef"], [], None)
    assert run.trap == "undefined element 9"
    state = checkpoint(store, run)
    assert state.thread.trap == "undefined element 9"
    store2, run2 = restore(decode(encode(state)), mods)
    assert run2.trap == "undefined element 9"


# -- rule 4 and 6: entry, arguments, value types ------------------------------------------------------
def test_entry_arguments_and_value_types(mod):
    data, mods = mod
    state = _at(data, "narrow", [5], lambda run: run.count == 3)
    cases_ = [
        (lambda s: setattr(s.thread, "args", [("f64", 0)]), "thread.args[0]: f64 where i32"),
        (lambda s: setattr(s.thread, "args", []), "thread.args: 0 values"),
        (lambda s: setattr(s.thread, "entry", 999), "thread.entry"),
        (lambda s: s.thread.frames[0].locals.__setitem__(1, ("i32", 0)), "thread.frames[0].locals[1]: "),
        (lambda s: s.globals.__setitem__(_glob(s, M), ("i64", 1)), f"globals[{_glob(state, M)}]: i64 where i32"),
        (lambda s: s.tables[0].__setitem__(1, ("i32", 1)), "tables[0][1]: i32 where"),
        (lambda s: s.tables[0].__setitem__(2, ("ref.extern", 1)), "tables[0][2]: host reference"),
        (lambda s: s.tables[0].__setitem__(3, ("ref.func", 999)), "tables[0][3]: function address 999"),
    ]
    for edit, field in cases_:
        bad = copy.deepcopy(state)
        edit(bad)
        _refused(bad, mods, field)


def test_operand_stack_types(mod):
    data, mods = mod
    state = _at(data, "wide", [3], lambda run: len(run.thread.frames[0].stack) == 1)
    state.thread.frames[0].stack[0] = ("i32", 3)
    _refused(state, mods, "thread.frames[0].stack[0]: ")


def test_host_log_entries_follow_the_print_declarations(mod):
    data, mods = mod
    state = _at(data, "narrow", [5], lambda run: run.count == 8)
    assert state.host_log == [("print_i32", [("i32", 5)])]
    _restores(state, mods)
    for log, field in [([("print_i32\nx", [("i32", 5)])], "host_log[0]: 'print_i32\\nx'"),
                       ([("print_i32", [("i64", 5)])], "host_log[0].args[0]: i64 where i32"),
                       ([("print_i32", [])], "host_log[0].args: 0 arguments")]:
        bad = copy.deepcopy(state)
        bad.host_log = log
        _refused(bad, mods, field)


# -- rule 5: the retired-instruction count ------------------------------------------------------------
def test_count_bounds_the_frames(mod):
    data, mods = mod
    first = _at(data, "narrow", [5])
    assert first.thread.count == 0
    _restores(first, mods)
    bad = copy.deepcopy(first)
    bad.thread.frames[0].locals[0] = ("i32", 6)  # not the argument
    _refused(bad, mods, "thread.frames[0].locals")
    bad = copy.deepcopy(first)
    bad.thread.frames[0].locals[1] = ("f64", 1)  # not the default
    _refused(bad, mods, "thread.frames[0].locals")
    deep = _at(data, "outer", [4], _frames_of(OUTER, T3))
    deep.thread.count = 0
    _refused(deep, mods, "thread.frames: 2 frames after 0 instructions")


# -- rule 7: immutable globals ------------------------------------------------------------------------
def test_immutable_globals_keep_their_initial_value(mod):
    data, mods = mod
    state = _at(data, "narrow", [5], lambda run: run.count == 3)
    assert state.globals[_glob(state, K2)] == ("i32", 667)  # extended const over the host's 666
    ok = copy.deepcopy(state)
    ok.globals[_glob(state, M)] = ("i32", 12345)  # mutable: anything of its type
    _restores(ok, mods)
    for g, v in [(K, ("i32", 43)), (K2, ("i32", 666)), (HG, ("i32", 1)), (FR, ("ref.func", _func(state, NARROW))),
                 (FR, ("ref.null", None))]:
        bad = copy.deepcopy(state)
        a = _glob(state, g)
        bad.globals[a] = v
        msg = _refused(bad, mods, f"globals[{a}]: immutable")
        assert ("spectest.global_i32" in msg) == (g == HG)


# -- rule 9: dropped flags ----------------------------------------------------------------------------
def test_active_and_declarative_segments_are_dropped(mod):
    data, mods = mod
    state = _at(data, "narrow", [5], lambda run: run.count == 3)
    ist = state.instances[0]
    assert ist.elem_dropped == [True, True, False] and ist.data_dropped == [True, False]
    for flags, i in (("elem_dropped", 2), ("data_dropped", 1)):  # passive: either
        ok = copy.deepcopy(state)
        getattr(ok.instances[0], flags)[i] = True
        _restores(ok, mods)
    for flags, i in (("elem_dropped", 0), ("elem_dropped", 1), ("data_dropped", 0)):
        bad = copy.deepcopy(state)
        getattr(bad.instances[0], flags)[i] = False
        _refused(bad, mods, f"instances[0].{flags}[{i}]: ")


A = """(module
  (type $t (func (result i32)))
  (table (export "tab") 2 funcref)
  (func (export "get") (param i32) (result i32) (call_indirect (type $t) (local.get 0))))"""
B = """(module
  (import "A" "tab" (table 2 funcref))
  (memory 1)
  (func $g (result i32) (i32.const 9))
  (elem (i32.const 1) $g)
  (data (i32.const 0) "x")
  (data (i32.const 65535) "yz"))"""


def test_an_instance_whose_instantiation_trapped_restores():
    """Instantiation stops at the first segment that does not fit and the instance stays in the store
    (its function is reachable through the shared table): its later segments are not dropped."""
    a, mods = wasm(A)
    b, mods_b = wasm(B)
    mods.update(mods_b)
    store = Store()
    inst = instantiate(store, a, name="A")
    with pytest.raises(Trap):
        instantiate(store, b)
    run = run_to(store, inst.exports["get"], [1], 2)
    state = checkpoint(store, run)
    assert state.instances[1].elem_dropped == [True] and state.instances[1].data_dropped == [True, False]
    store2, run2 = restore(decode(encode(state)), mods)
    assert finish(store2, run2).results == [("i32", 9)]
    bad = copy.deepcopy(state)
    bad.instances[1].elem_dropped = [False]  # fits its table: instantiation dropped it
    _refused(bad, mods, "instances[1].elem_dropped[0]")
    bad = copy.deepcopy(state)
    bad.instances[1].data_dropped = [False, False]  # the first data segment fits the memory
    _refused(bad, mods, "instances[1].data_dropped[0]")


# -- through the CLI ----------------------------------------------------------------------------------
def test_cli_restore_of_an_inconsistent_snapshot(mod, tmp_path: Path, capsys: pytest.CaptureFixture):
    data, _ = mod
    m = tmp_path / "m.wasm"
    m.write_bytes(data)
    state = _at(data, "div", [0], lambda run: False)
    state.thread.trap = "integer divide by zero\nresults: i32:7"
    snap = tmp_path / "bad.snap"
    snap.write_bytes(encode(state))
    code = main(["restore", str(snap), "--module", str(m)])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1 and "thread.trap" in err, err
    assert "Traceback" not in err


# -- the property: what the VM reaches restores --------------------------------------------------------
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cases(size=Size(max_funcs=3, max_budget=30, max_fuel=12)), st.data())
def test_checkpoints_of_generated_modules_are_consistent(case, d):
    store = Store()
    ref = finish(store, start(store, instantiate(store, case.wasm).exports[case.export], case.args))
    k = d.draw(st.integers(0, ref.instructions))
    store = Store()
    run = run_to(store, instantiate(store, case.wasm).exports[case.export], case.args, k)
    mods = {hashlib.sha256(case.wasm).hexdigest(): case.wasm}
    store2, run2 = restore(decode(encode(checkpoint(store, run))), mods)
    assert run2 is not None and finish(store2, run2).to_dict()["state_digest"] == ref.to_dict()["state_digest"]


def test_an_unset_non_nullable_local_restores_but_a_null_parameter_does_not():
    """A declared ``(ref extern)`` local holds no value until its first ``local.set`` (local_init.wast):
    `tox -e spec` in C/R mode refused 4 such checkpoints ("null where (ref extern) is expected").  A
    null in a non-nullable *parameter* is still refused."""
    data, mods = wasm("""(module
      (func (export "f") (param externref) (result externref) (local (ref extern))
        (local.set 1 (ref.as_non_null (local.get 0))) (local.get 1))
      (func (export "g") (param (ref extern)) (result (ref extern)) (local.get 0)))""")
    st = _at(data, "f", [ExternRef(7)])  # k = 0: the local is unset
    assert st.thread.frames[0].locals[1] == ("ref.null", None)
    store, run = restore(decode(encode(st)), mods)
    assert finish(store, run).results == [("ref.extern", 7)]
    st = _at(data, "g", [ExternRef(7)])
    st.thread.frames[0].locals[0] = ("ref.null", None)
    st.thread.args[0] = ("ref.null", None)
    _refused(st, mods, "thread.args[0]")
