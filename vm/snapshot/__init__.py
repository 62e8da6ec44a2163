"""Checkpoint/restore of wcr executions: the canonical state model, its codec and the C/R API.

::

    run = run_to(store, func, args, k)          # stop before retired instruction k (or at the end)
    state = checkpoint(store, run)              # State (vm.snapshot.model)
    data = encode(state); state = decode(data)  # versioned, checksummed container (docs/snapshot-format.md)
    store2, run2 = restore(state, {sha256_hex: module_bytes})
    outcome = finish(store2, run2)              # Outcome(results, trap, instructions, host_log, digest)
    state_digest(store)                         # "sha256:..." over the canonical store state
    cr_check(...), cr_check_store(...)          # one-call comparisons for the spec runner / generators
    show(data) -> YAML text                     # `wcr snapshot show`

Only the standard library is used here (the ``python:PATH`` host runs this in bare interpreters).
"""

from __future__ import annotations

from .checkpoint import (
    Outcome,
    Run,
    advance,
    capture_store,
    checkpoint,
    finish,
    function_names,
    restore,
    run_to,
    start,
)
from .codec import decode, encode
from .cr import (
    CrResult,
    compare_outcomes,
    cr_chain,
    cr_check,
    cr_check_store,
    instantiate_bytes,
    restore_bytes,
)
from .digest import digest_of_state, state_digest
from .model import SnapshotError, State
from .view import show, view

__all__ = [
    "Outcome", "Run", "SnapshotError", "State", "CrResult", "advance", "capture_store", "checkpoint",
    "compare_outcomes", "cr_chain", "cr_check", "cr_check_store", "decode", "digest_of_state", "encode", "finish",
    "function_names", "instantiate_bytes", "restore", "restore_bytes", "run_to", "show", "start",
    "state_digest", "view",
]
