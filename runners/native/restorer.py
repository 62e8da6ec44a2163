"""Native targets as restorers (:class:`runners.restore.Restorer` with ``kind = "target"``).

A target cannot take our frames, so each checkpoint goes snapshot → resume module
(:func:`vm.snapshot.resume.make_resume_module`) → feature check (:mod:`.features` against the target's
declared features) → the runtime, given the converter's own manifest (batched:
:meth:`runners.native.target.Target.run_many` lets a target keep a process alive or compile a whole
batch into one binary) → the native comparison rules
(:func:`runners.oracle.compare_native`).  Each step that cannot proceed gives its own status, so a
report can tell "the target disagrees" (mismatch) from "we could not ask it" (not-convertible,
not-applicable, inconclusive).

Public API: :func:`target_restorer`, :func:`run_on_target`, :class:`TargetUnavailable`,
:class:`TargetRestorer`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Dict, List, Optional, Sequence, Tuple

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


class TargetUnavailable(ValueError):
    """The target's toolchain is missing (the message says what and how to install it)."""


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
        base_items = [CheckItem(items[i].baseline, None, items[i].modules, items[i].reference,
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
    """A native outcome in the JSON shape ``wcr restore`` prints for hosts (``instructions`` is null:
    native runtimes do not count; ``state_digest`` covers the memories/globals/tables read back)."""
    def fmt(v: Any) -> str:
        return "ref" if v[0] == "ref" else format_value(v)

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
        "state_digest": h.hexdigest(),
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


def run_on_target(snapshot: bytes, modules: Dict[str, bytes], name: str) -> Dict[str, Any]:
    """``wcr restore --target NAME``: convert, run, and return the outcome dict (see :func:`outcome_dict`;
    plus ``not_convertible``/``not_applicable`` instead of a run when those apply).  Raises
    :class:`vm.snapshot.model.SnapshotError` for a bad snapshot, :class:`TargetUnavailable` when the
    toolchain is missing, ``ValueError`` for an unknown target."""
    from vm.snapshot.codec import decode

    r = target_restorer(name)
    ok, why = r.available()
    if not ok:
        raise TargetUnavailable(f"target {name} is not available: {why}")
    state = decode(snapshot)
    p = r.prepare(state, modules)
    base: Dict[str, Any] = {"results": [], "trap": None, "instructions": None, "state_digest": None,
                            "target": name}
    if p.result is not None:
        if p.result.status == NOT_CONVERTIBLE:
            base["not_convertible"] = p.result.extra["reason"]
            base["detail"] = p.result.detail
        else:
            base["not_applicable"] = p.result.extra.get("features", [])
        return base
    out = r.target.run_many([(p.resume.bytes, p.resume.manifest)])[0]
    d = outcome_dict(out, name)
    # the full host log: the snapshot's part (before the checkpoint) + what the resume module printed
    d["host_log"] = [[n, [format_value(v) for v in a]] for n, a in state.host_log] + d["host_log"]
    return d


def checkpoint_items(wasm: bytes, entry: str, args: Sequence[Any] = (), ks: Optional[Sequence[int]] = None,
                     label: str = "", max_call_depth: Optional[int] = None) -> List[CheckItem]:
    """Check items for checkpoints of ``entry(*args)`` of ``wasm`` (spectest imports) at each k in
    ``ks`` (default: every instruction boundary, and the finished run): the uninterrupted run gives the
    reference and the final state.  For tests, benchmarks and the fuzzer; the spec runner builds its
    own items from its store."""
    from vm.api import Store, load_module
    from vm.runtime.spectest import spectest_exports
    from vm.snapshot import checkpoint, finish, run_to
    from vm.snapshot.codec import encode
    from vm.snapshot.resume import instance_final_state

    lm = load_module(wasm)

    def fresh() -> Tuple[Any, Any]:
        s = Store() if max_call_depth is None else Store(max_call_depth=max_call_depth)
        sp = spectest_exports(s)
        imports = [sp[i.name] for i in lm.module.imports]
        return s, s.instantiate(lm.module, lm.info, imports, lm.sha256)

    s, inst = fresh()
    run = run_to(s, inst.exports[entry], list(args), None)
    ref = finish(s, run).to_dict()
    final = instance_final_state(inst)
    total = ref["instructions"]
    items = []
    for k in (range(total + 1) if ks is None else ks):
        s, inst = fresh()
        run = run_to(s, inst.exports[entry], list(args), min(k, total))
        state = checkpoint(s, run)
        items.append(CheckItem(encode(state), state, {lm.sha256: bytes(wasm)}, ref, final,
                               f"{label or entry}@{k}", k))
    return items
