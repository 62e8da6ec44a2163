"""Native targets as restorers (:class:`runners.restore.Restorer` with ``kind = "target"``).

A target cannot take our frames, so each checkpoint goes snapshot → resume module
(:func:`vm.snapshot.resume.make_resume_module`) → feature check (:mod:`.features` against the target's
declared features) → the runtime, given the converter's own manifest (batched:
:meth:`runners.native.target.Target.run_many` lets a target keep a process alive or compile a whole
batch into one binary) → the native comparison rules
(:func:`runners.oracle.compare_native`).  Each step that cannot proceed gives its own status, so a
report can tell "the target disagrees" (mismatch) from "we could not ask it" (not-convertible,
not-applicable, inconclusive).

Public API: :func:`target_restorer`, :class:`TargetRestorer`, :func:`outcome_dict`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Dict, List, Optional, Sequence, Tuple, cast

from vm.values import format_value

from ..oracle import compare_native
from ..restore import (
    ERROR,
    INCONCLUSIVE,
    MATCH,
    MISMATCH,
    NONCONFORMANT,
    NOT_APPLICABLE,
    NOT_CONVERTIBLE,
    CheckItem,
    CheckResult,
    Restorer,
)
from .features import module_features
from .registry import get_target
from .target import NativeOutcome, Target


class _Prepared:
    __slots__ = ("resume", "result")

    def __init__(self, resume: Any = None, result: Optional[CheckResult] = None):
        self.resume = resume
        self.result = result


class TargetRestorer(Restorer):
    """Restores on one native target; see the module docstring for the statuses."""

    kind = "target"

    def __init__(self, target: Target, timeout: Optional[float] = None):
        self.target = target
        self.name = target.name
        self.timeout = timeout

    def available(self) -> Tuple[bool, str]:
        return self.target.available()

    def prepare(self, state: Any, modules: Dict[str, bytes]) -> _Prepared:
        """Resume module and feature check of one state (no run)."""
        from vm.snapshot.resume import NotConvertible, make_resume_module

        try:
            rm = make_resume_module(state, modules)
        except NotConvertible as e:
            return _Prepared(result=CheckResult(self.name, NOT_CONVERTIBLE, str(e), extra={"reason": e.reason}))
        missing = sorted(module_features(rm.module) - set(self.target.features))
        if missing:
            return _Prepared(rm, CheckResult(self.name, NOT_APPLICABLE, "needs " + ", ".join(missing),
                                             extra={"features": missing}))
        return _Prepared(rm)

    def check(self, item: CheckItem) -> CheckResult:
        return self.check_many([item])[0]

    def check_many(self, items: Sequence[CheckItem]) -> List[CheckResult]:
        from vm.snapshot.codec import decode
        from vm.snapshot.model import SnapshotError

        ok, why = self.available()
        if not ok:
            return [CheckResult(self.name, NOT_APPLICABLE, f"target unavailable: {why}",
                                extra={"unavailable": why}) for _ in items]
        results: List[Optional[CheckResult]] = [None] * len(items)
        jobs: List[Tuple[int, Any]] = []
        for i, it in enumerate(items):
            try:
                state = it.state if it.state is not None else decode(it.snapshot)
            except SnapshotError as e:
                results[i] = CheckResult(self.name, ERROR, f"snapshot error: {e}")
                continue
            p = self.prepare(state, it.modules)
            if p.result is not None:
                results[i] = p.result
            else:
                jobs.append((i, p.resume))
        if jobs:
            kw = {} if self.timeout is None else {"timeout": self.timeout}
            outs: Sequence[Optional[NativeOutcome]]
            try:
                outs = self.target.run_many([(rm.bytes, rm.manifest) for _, rm in jobs], **kw)
            except Exception as e:  # a target bug must be a finding, not a crash of the whole run
                outs = [None] * len(jobs)
                err = f"{type(e).__name__}: {e}"
            for (i, rm), out in zip(jobs, outs):
                it = items[i]
                state = it.state if it.state is not None else decode(it.snapshot)
                if out is None:
                    results[i] = CheckResult(self.name, ERROR, err)
                    continue
                results[i] = self.judge(it.reference, state.host_log, out, it.final_state, rm.manifest)
        self._classify_with_baseline(items, results)
        return [r for r in results if r is not None]

    def _classify_with_baseline(self, items: Sequence[CheckItem], results: List[Optional[CheckResult]]) -> None:
        """Re-run each mismatching item from its k=0 snapshot: if the target diverges from the
        reference there too, the divergence is the target's own (the status says so, with both
        differences); if the k=0 run matches, the mismatch stands as a C/R divergence."""
        redo = [i for i, r in enumerate(results)
                if r is not None and r.status == MISMATCH and items[i].baseline is not None]
        if not redo:
            return
        base_items = [CheckItem(cast(bytes, items[i].baseline), None, items[i].modules, items[i].reference,
                                items[i].final_state, items[i].label + " k=0 baseline", 0) for i in redo]
        for i, b in zip(redo, self.check_many(base_items)):
            r = results[i]
            assert r is not None
            if b.status == MISMATCH:
                r.extra["baseline"] = b.detail
                results[i] = CheckResult(self.name, NONCONFORMANT,
                                         f"{r.detail} (the target diverges without C/R too: {b.detail})",
                                         r.outcome, r.extra)

    def judge(self, reference: Dict[str, Any], prefix_log: Any, out: NativeOutcome, final_state: Any,
              manifest: Any) -> CheckResult:
        verdict, diffs = compare_native(reference, prefix_log, out, final_state, manifest)
        status = {"match": MATCH, "mismatch": MISMATCH, "inconclusive": INCONCLUSIVE}[verdict]
        extra: Dict[str, Any] = {"seconds": round(out.seconds, 4)}
        if out.trap_candidates and len(out.trap_candidates) > 1:
            extra["trap_candidates"] = sorted(out.trap_candidates)
        return CheckResult(self.name, status, "; ".join(diffs), outcome_dict(out), extra)


def outcome_dict(out: NativeOutcome, target: Optional[str] = None) -> Dict[str, Any]:
    """A native outcome in the one outcome shape.  ``instructions`` and ``state_digest`` are null: a
    native runtime neither counts instructions nor sees our canonical store; ``readback_sha256`` hashes
    the memories, globals and tables it read back (for telling two native runs apart, not for comparing
    with our digest)."""
    fmt = format_value
    h = hashlib.sha256()
    for k in sorted(out.memories):
        h.update(f"M{k}:{len(out.memories[k])}:".encode() + hashlib.sha256(out.memories[k]).digest())
    h.update(json.dumps({k: fmt(v) for k, v in sorted(out.globals.items())}, sort_keys=True).encode())
    h.update(json.dumps(out.tables, sort_keys=True).encode())
    d: Dict[str, Any] = {
        "results": [fmt(v) for v in out.results],
        "trap": out.trap,
        "instructions": None,
        "host_log": [[n, [fmt(v) for v in args]] for n, args in out.host_log],
        "state_digest": None,
        "readback_sha256": h.hexdigest(),
        "target": target or out.target,
    }
    if out.trap_candidates and len(out.trap_candidates) > 1:
        d["trap_candidates"] = sorted(out.trap_candidates)
    if out.inconclusive:
        d["inconclusive"] = out.inconclusive
    return d


def target_restorer(name: str, timeout: Optional[float] = None) -> TargetRestorer:
    """The restorer of the native target ``name``; unknown names raise ``ValueError`` naming the known."""
    try:
        return TargetRestorer(get_target(name), timeout)
    except KeyError as e:
        raise ValueError(str(e.args[0])) from None
