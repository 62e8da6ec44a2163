"""Deliberate checkpoint/restore bugs, for measuring the fuzzer's power (``wcr selftest``).

Each fault is a realistic C/R mistake.  They are *off* unless named in :data:`ACTIVE` (set from the
environment variable ``WCR_FAULTS`` (comma-separated) at import, so subprocess hosts see the same faults,
or assigned directly by the self-test).  The hooks in :mod:`vm.snapshot.capture` and :mod:`vm.snapshot.restore` are guarded by a
single ``if faults.ACTIVE:`` so a normal run pays one attribute test per checkpoint/restore, nothing per
instruction.

Checkpoint-side faults corrupt the captured :class:`~vm.snapshot.model.State` (after capture, so the
final-state digest of an uninterrupted run is unaffected); restore-side faults corrupt the rebuilt run.
Standard library only (the VM's rule).
"""

from __future__ import annotations

import os
from typing import Any, Dict, FrozenSet

#: fault name → what goes wrong
FAULTS: Dict[str, str] = {
    "pc_off_by_one": "restore puts the top frame's pc one instruction too far",
    "stack_slot_dropped": "checkpoint drops the top operand-stack slot of the top frame",
    "type_widened": "checkpoint writes an i32 operand/local as i64",
    "label_height_wrong": "checkpoint records the innermost label's operand height one too high",
    "f32_nan_quieted": "checkpoint quiets signalling f32 NaN payloads (as a host float conversion would)",
    "dropped_flag_lost": "checkpoint forgets which data/elem segments were dropped",
    "table_not_saved": "checkpoint does not save table contents (all elements null)",
    "counter_not_restored": "restore starts the instruction counter at 0",
}


def _from_env() -> FrozenSet[str]:
    names = frozenset(x.strip() for x in os.environ.get("WCR_FAULTS", "").split(",") if x.strip())
    return names & frozenset(FAULTS)


#: the faults in effect (empty in every normal run)
ACTIVE: FrozenSet[str] = _from_env()


def set_active(names: Any) -> None:
    """Activate exactly ``names`` in this process (and, through ``WCR_FAULTS``, in children started
    afterwards).  Unknown names raise ``ValueError``."""
    global ACTIVE
    names = frozenset(names)
    unknown = names - frozenset(FAULTS)
    if unknown:
        raise ValueError(f"unknown fault(s): {', '.join(sorted(unknown))} (known: {', '.join(FAULTS)})")
    ACTIVE = names
    if names:
        os.environ["WCR_FAULTS"] = ",".join(sorted(names))
    else:
        os.environ.pop("WCR_FAULTS", None)


def _quiet_f32(v: Any) -> Any:
    tag, x = v
    if tag == "f32" and (x & 0x7F800000) == 0x7F800000 and (x & 0x7FFFFF) and not (x & 0x400000):
        return ("f32", x | 0x400000)
    return v


def after_checkpoint(state: Any) -> None:
    """Corrupt a freshly captured state in place according to :data:`ACTIVE`."""
    ts = state.thread
    top = ts.frames[-1] if ts is not None and ts.frames else None
    if "stack_slot_dropped" in ACTIVE and top is not None and top.stack:
        top.stack.pop()
    if "type_widened" in ACTIVE and top is not None:
        for seq in (top.stack, top.locals):
            for i, (tag, x) in enumerate(seq):
                if tag == "i32":
                    seq[i] = ("i64", x)
                    break
            else:
                continue
            break
    if "label_height_wrong" in ACTIVE and top is not None and top.labels:
        top.labels[-1].height += 1
    if "f32_nan_quieted" in ACTIVE:
        state.globals[:] = [_quiet_f32(v) for v in state.globals]
        if ts is not None:
            ts.args[:] = [_quiet_f32(v) for v in ts.args]
            ts.results[:] = [_quiet_f32(v) for v in ts.results]
            for fr in ts.frames:
                fr.locals[:] = [_quiet_f32(v) for v in fr.locals]
                fr.stack[:] = [_quiet_f32(v) for v in fr.stack]
    if "dropped_flag_lost" in ACTIVE:
        for ist in state.instances:
            ist.data_dropped = [False] * len(ist.data_dropped)
            ist.elem_dropped = [False] * len(ist.elem_dropped)
    if "table_not_saved" in ACTIVE:
        state.tables[:] = [[("ref.null", None)] * len(t) for t in state.tables]


def after_restore(run: Any) -> None:
    """Corrupt a freshly restored run in place according to :data:`ACTIVE`."""
    th = run.thread
    if "counter_not_restored" in ACTIVE:
        th.count = 0
    if "pc_off_by_one" in ACTIVE and th.frames:
        fr = th.frames[-1]
        if fr.pc + 1 < len(fr.func.func.body):
            fr.pc += 1
