"""Checkpoint/restore of wcr executions: the canonical state model, its codec and the C/R API.

::

    run = run_to(store, func, args, k)          # stop before retired instruction k (or at the end)
    state = checkpoint(store, run)              # State (vm.snapshot.model)
    data = encode(state); state = decode(data)  # versioned, checksummed container (docs/snapshot-format.md)
    store2, run2 = restore(state, {sha256_hex: module_bytes})
    outcome = finish(store2, run2)              # Outcome(results, trap, instructions, host_log, state_digest, stopped)
    outcome_of(store, types, results, trap, n)  # the Outcome of an invocation the store ran by itself
    state_digest(store)                         # "sha256:..." over the canonical store state
    show(data) -> YAML text                     # `wcr snapshot show`

One concept per file: ``run`` (driving an invocation to k), ``capture`` (store + run → State),
``restore`` (State → store + run), ``outcome``, ``digest``, ``names`` (debug names), ``pcs`` (pc ⇄ byte
offset and the validator's metadata at a pc), ``model``, ``codec``, ``view``, ``consistency`` and
``valuecheck`` (the consistency rules; value typing and the heap rules), ``resume`` (State → a
plain Wasm module for native runtimes).  Only the standard library is used here (the ``python:PATH``
host runs this in bare interpreters).
"""

from __future__ import annotations

from .capture import capture_store, checkpoint
from .codec import decode, encode
from .digest import digest_of_state, state_digest
from .model import SnapshotError, State
from .names import function_names
from .outcome import Outcome, finish, outcome_of
from .restore import restore
from .run import Run, advance, advance_within, run_to, start
from .view import show, view

__all__ = [
    "Outcome", "Run", "SnapshotError", "State", "advance", "advance_within", "capture_store", "checkpoint",
    "decode", "digest_of_state", "encode", "finish", "function_names", "outcome_of",
    "restore", "run_to", "show", "start", "state_digest", "view",
]
