"""Deliberate checkpoint/restore bugs, for measuring the fuzzer's power (``wcr selftest``).

Each fault is a realistic C/R mistake, planted at one of the places where C/R code can go wrong: the
checkpoint (capture), the codec (decode), the restore, the ``python:PATH`` child host, the resume-module
converter (its store part and its frame part) and the oracle itself.  They are *off* unless named in
:data:`ACTIVE` (set from the environment variable ``WCR_FAULTS`` (comma-separated) at import, so
subprocess hosts see the same faults, or assigned directly by the self-test).  Every hook elsewhere is
one line guarded by ``if faults.ACTIVE:`` at a per-checkpoint / per-restore / per-conversion /
per-comparison point, so a normal run pays one attribute test there and nothing per instruction.

Checkpoint-side faults corrupt the captured :class:`~vm.snapshot.model.State` (after capture, so the
final-state digest of an uninterrupted run is unaffected); decode-side faults corrupt the freshly
decoded state (every host restores from bytes); restore-side faults corrupt the rebuilt run; child
faults live in :mod:`runners.child`; converter faults in :mod:`vm.snapshot.resume`; oracle faults make
:func:`runners.oracle.compare_outcomes` blind to one field (caught by the trial's oracle probe).

:data:`NEEDS` says what a campaign must restore on for a fault to be reachable at all (a Python child,
a native target); ``wcr selftest`` configures each fault's campaign from it.
Standard library only (the VM's rule).
"""

from __future__ import annotations

import os
from typing import Any, Dict, FrozenSet

from ..runtime.memdata import resize

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
    # restore path
    "locals_zeroed": "restore re-initialises the top frame's declared (non-parameter) locals to zero, as a "
                     "function entry would (a count-down loop counter then wraps: a restore that never ends)",
    "memory_grow_lost": "restore sizes each memory by its declared minimum, losing pages grown before the "
                        "checkpoint",
    # codec
    "codec_i64_truncated": "the decoder reads i64 values as 32-bit varints (high half lost)",
    "codec_page_tail_lost": "the decoder drops the last non-zero byte of every memory page (run length off by one)",
    "codec_host_log_dropped": "the decoder drops the last host-log entry (entry count off by one)",
    # hosts (python:PATH child)
    "child_step_one_late": "the Python child's step checkpoints one instruction after the requested k",
    "child_counts_from_restore": "the Python child reports instructions counted from the restore, not in total",
    # converter, store part
    "resume_data_off_by_one": "resume modules place each memory data segment one byte too far",
    "resume_global_not_set": "resume modules initialise defined globals from the module, not the snapshot",
    # converter, frame part
    "resume_last_local_unset": "resume modules set every snapshot local but the last one (loop bound off by one)",
    "resume_loop_branch_exits": "resume modules remap a branch to the enclosing loop to its exit block "
                                "(wrong branch remap: the loop is left instead of continued)",
    "resume_pending_call_dropped": "resume modules drop the pending call of a non-top frame (the callee's "
                                   "rest never runs)",
    # the oracle
    "oracle_ignores_host_log": "the host comparison ignores the host log",
    "oracle_ignores_digest": "the host comparison ignores the final-state digest",
}

#: what a campaign must restore on to reach a fault: "python" (a python:PATH host), "target" (a native
#: target); faults not listed here are reached with the in-process host alone
NEEDS: Dict[str, str] = {
    "child_step_one_late": "python",
    "child_counts_from_restore": "python",
    "resume_data_off_by_one": "target",
    "resume_global_not_set": "target",
    "resume_last_local_unset": "target",
    "resume_loop_branch_exits": "target",
    "resume_pending_call_dropped": "target",
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


def after_decode(state: Any) -> None:
    """Corrupt a freshly decoded state in place (the codec faults)."""
    if "codec_i64_truncated" in ACTIVE:
        def cut(seq: Any) -> None:
            seq[:] = [("i64", v[1] & 0xFFFFFFFF) if v[0] == "i64" else v for v in seq]

        cut(state.globals)
        ts = state.thread
        if ts is not None:
            cut(ts.args)
            cut(ts.results)
            for fr in ts.frames:
                cut(fr.locals)
                cut(fr.stack)
    if "codec_page_tail_lost" in ACTIVE:
        for ms in state.mems:
            for p, chunk in list(ms.nonzero.items()):
                last = len(chunk.rstrip(b"\0")) - 1
                if last >= 0:
                    ms.nonzero[p] = chunk[:last] + b"\0" + chunk[last + 1:]
    if "codec_host_log_dropped" in ACTIVE and state.host_log:
        state.host_log.pop()


def after_restore(run: Any) -> None:
    """Corrupt a freshly restored run in place according to :data:`ACTIVE`."""
    th = run.thread
    if "locals_zeroed" in ACTIVE and th.frames:
        fr = th.frames[-1]
        nparams = len(fr.func.type.params)
        fr.locals[nparams:] = [x if not isinstance(x, int) else 0 for x in fr.locals[nparams:]]
    if "memory_grow_lost" in ACTIVE:
        inst = getattr(run.entry, "module", None)
        for mem in getattr(inst, "mems", ()):
            keep = mem.type.limits.min * 65536
            if len(mem.data) > keep:
                mem.data = resize(mem.data, keep)
    if "counter_not_restored" in ACTIVE:
        th.count = 0
    if "pc_off_by_one" in ACTIVE and th.frames:
        fr = th.frames[-1]
        if fr.pc + 1 < len(fr.func.func.body):
            fr.pc += 1


# -- the python:PATH child (runners/child.py) --------------------------------------------------------------
def child_step_k(k: int) -> int:
    """The k a child's ``step`` actually stops at."""
    return k + 1 if "child_step_one_late" in ACTIVE else k


def child_outcome(outcome: Dict[str, Any], restored_at: int) -> Dict[str, Any]:
    """The outcome dict a child replies with."""
    if "child_counts_from_restore" in ACTIVE:
        outcome = dict(outcome, instructions=outcome["instructions"] - restored_at)
    return outcome


# -- the resume-module converter (vm/snapshot/resume) ------------------------------------------------------
def resume_data_offset(off: int) -> int:
    """Where the converter places a memory data segment of offset ``off``."""
    return off + 1 if "resume_data_off_by_one" in ACTIVE else off


def resume_global_init(snapshot_expr: Any, module_expr: Any) -> Any:
    """The initialiser the converter gives a defined global."""
    return module_expr if "resume_global_not_set" in ACTIVE else snapshot_expr


def resume_locals(values: Any) -> Any:
    """The ``(index, (type, value))`` pairs of locals the converter sets."""
    values = list(values)
    if "resume_last_local_unset" in ACTIVE:
        return values[:-1]
    return values


def resume_loop_label(cont: int) -> int:
    """The new label index a branch to an enclosing loop targets (``cont`` - 1 is its ``$exit`` block)."""
    return cont - 1 if "resume_loop_branch_exits" in ACTIVE else cont


def resume_pending_call() -> bool:
    """Whether the converter emits a non-top frame's pending call."""
    return "resume_pending_call_dropped" not in ACTIVE


# -- the oracle (runners/oracle.py) ------------------------------------------------------------------------
def oracle_fields(fields: Any) -> Any:
    """The outcome fields the host comparison looks at."""
    skip = set()
    if "oracle_ignores_host_log" in ACTIVE:
        skip.add("host_log")
    if "oracle_ignores_digest" in ACTIVE:
        skip.add("state_digest")
    return tuple(f for f in fields if f not in skip)
