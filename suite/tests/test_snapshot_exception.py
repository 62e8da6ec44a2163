"""The exception that escaped an invocation is part of the run's end state (issue 12): a checkpoint of a
run ended by ``uncaught exception`` holds it (``thread.exception``, consistency rule 24 of
docs/snapshot-format.md), restore gives it back, and the oracle's digest walks it, so a restore that
changes its tag or payload is a mismatch, not a match on the trap kind alone."""

from __future__ import annotations

import copy
import hashlib
from typing import Any, Dict, Tuple

import pytest

wasmtime = pytest.importorskip("wasmtime")
from vm.api import Store, instantiate  # noqa: E402
from vm.snapshot import SnapshotError, checkpoint, decode, encode, finish, restore, run_to  # noqa: E402

THROWER = """
(module
  (type $node (struct (field $v (mut i32))))
  (tag $e (param i32 (ref null $node)))
  (func (export "throw") (param i32)
    (local.get 0) (struct.new $node (i32.add (local.get 0) (i32.const 1))) (throw $e)))
"""


def _thrower() -> Tuple[Store, Any, Dict[str, bytes]]:
    data = bytes(wasmtime.wat2wasm(THROWER))
    store = Store()
    inst = instantiate(store, data)
    return store, inst, {hashlib.sha256(data).hexdigest(): data}


def test_an_escaped_exception_is_state_and_the_oracle_compares_it() -> None:
    """Found in review: a run ended by an uncaught exception kept only the trap kind, so a restore that
    changed the exception's payload (or its tag) compared equal.  The exception is now the thread's
    ``exception`` (``("ref.exn", id)``) and a root of the final-state digest."""
    store, inst, mods = _thrower()
    run = finish_run = run_to(store, inst.exports["throw"], [5], None)
    assert run.trap == "uncaught exception" and run.exn is not None
    reference = finish(store, finish_run)
    state = checkpoint(store, run)
    assert state.thread is not None and state.thread.exception is not None
    exn_id = state.thread.exception[1]
    assert state.heap[exn_id].kind == "exn" and state.heap[exn_id].fields[0] == ("i32", 5)
    store2, run2 = restore(decode(encode(state)), mods)
    assert run2 is not None and run2.exn is not None
    assert finish(store2, run2).to_dict() == reference.to_dict()
    # the same state with another payload restores (it is consistent) but the oracle sees it
    other = copy.deepcopy(state)
    other.heap[exn_id].fields[0] = ("i32", 6)
    store3, run3 = restore(decode(encode(other)), mods)
    assert run3 is not None
    assert finish(store3, run3).state_digest != reference.state_digest
    # and so does a payload object with another field
    other = copy.deepcopy(state)
    node = other.heap[exn_id].fields[1][1]
    other.heap[node].fields[0] = ("i32", 99)
    store4, run4 = restore(decode(encode(other)), mods)
    assert run4 is not None and finish(store4, run4).state_digest != reference.state_digest


def test_runs_that_throw_other_payloads_differ_in_the_digest() -> None:
    outs = []
    for arg in (5, 6):
        store, inst, _ = _thrower()
        outs.append(finish(store, run_to(store, inst.exports["throw"], [arg], 1)))
    assert outs[0].trap == outs[1].trap == "uncaught exception"
    assert outs[0].state_digest != outs[1].state_digest


def test_an_escaped_exception_only_with_its_trap_kind() -> None:
    store, inst, mods = _thrower()
    state = checkpoint(store, run_to(store, inst.exports["throw"], [5], None))
    assert state.thread is not None
    bad = copy.deepcopy(state)
    assert bad.thread is not None
    bad.thread.trap = "unreachable"
    with pytest.raises(SnapshotError, match=r"^thread\.exception: a thread trapped with 'unreachable'"):
        restore(bad, mods)
    bad = copy.deepcopy(state)
    assert bad.thread is not None
    bad.thread.exception = ("ref.struct", next(i for i, o in enumerate(bad.heap) if o.kind == "struct"))
    with pytest.raises(SnapshotError, match=r"^thread\.exception"):
        restore(bad, mods)
    running = checkpoint(store, run_to(store, inst.exports["throw"], [5], 1))
    assert running.thread is not None
    running.thread.exception = state.thread.exception
    running.heap = state.heap
    with pytest.raises(SnapshotError, match=r"^thread\.exception: a running thread"):
        restore(running, mods)
