"""Native targets as restorers (:class:`runners.restore.Restorer` with ``kind = "target"``).

A target cannot take our frames, so each checkpoint goes snapshot → resume module
(:func:`vm.snapshot.resume.make_resume_module`) → feature check (:mod:`.features` against the target's
declared features) → validation by our validator and ``wasm-tools validate`` (:mod:`.validate`; an
invalid resume module is *our* error, status ``error`` with the validator's message and the module)
→ the runtime, given the converter's own manifest (batched:
:meth:`runners.native.target.Target.run_many` lets a target keep a process alive or compile a whole
batch into one binary) → the native comparison rules
(:func:`runners.oracle.compare_native`).  Each step that cannot proceed gives its own status, so a
report can tell "the target disagrees" (mismatch) from "we could not ask it" (not-convertible,
not-applicable) from "we are wrong" (error) from "a resource ran out" (inconclusive, with its reason).

Blame (ARCHITECTURE.md, "Comparison rules"): a mismatch is the target's own non-conformance only when
the target, running the *original* module's invocation from the start
(:meth:`runners.native.target.Target.run_original`, nothing of the state converted), also disagrees
with our VM; that needs the item's :class:`runners.restore.Origin`.  Without one, or when the
from-scratch run agrees or says nothing, the mismatch stays a C/R mismatch.

Public API: :func:`target_restorer`, :class:`TargetRestorer`, :func:`outcome_dict`.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from typing import Any, Dict, List, Optional, Sequence, Tuple

from vm.values import format_value, parse_value

from ..oracle import compare_final_state, compare_native, compare_wasi
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
from .validate import check_module, check_modules

#: largest module embedded (base64) in an "invalid resume module" error; larger ones give the sha256 only
MAX_EMBEDDED = 256 * 1024


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
        """Resume module, validation and feature check of one state (no run)."""
        p = self._convert(state, modules)
        return self._checked(p) if p.result is None else p

    def _convert(self, state: Any, modules: Dict[str, bytes]) -> _Prepared:
        from vm.snapshot.resume import NotConvertible, make_resume_module

        try:
            return _Prepared(make_resume_module(state, modules))
        except NotConvertible as e:
            return _Prepared(result=CheckResult(self.name, NOT_CONVERTIBLE, str(e), extra={"reason": e.reason}))

    def _checked(self, p: _Prepared) -> _Prepared:
        """Validation first (an invalid module is our error whatever the target), then features."""
        rm = p.resume
        bad = invalid_module_result(self.name, "resume module", rm.bytes)
        if bad is not None:
            return _Prepared(rm, bad)
        missing = sorted(module_features(rm.module) - set(self.target.features))
        if missing:
            return _Prepared(rm, CheckResult(self.name, NOT_APPLICABLE, "needs " + ", ".join(missing),
                                             extra={"features": missing}))
        return p

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
        preps: List[Optional[_Prepared]] = [None] * len(items)
        for i, it in enumerate(items):
            try:
                state = it.state if it.state is not None else decode(it.snapshot)
            except SnapshotError as e:
                results[i] = CheckResult(self.name, ERROR, f"snapshot error: {e}")
                continue
            preps[i] = self._convert(state, it.modules)
        # every resume module of the batch validated at once (the wasm-tools processes side by side);
        # _checked then finds each verdict in the cache
        check_modules([p.resume.bytes for p in preps if p is not None and p.result is None])
        jobs: List[Tuple[int, Any]] = []
        for i, p in enumerate(preps):
            if p is None:
                continue
            if p.result is None:
                p = self._checked(p)
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
                results[i] = self.judge(it.reference, state.host_log, out, it.final_state, rm.manifest,
                                        "relaxed-simd" in module_features(rm.module), state.wasi)
        self._classify_with_baseline(items, results)
        return [r for r in results if r is not None]

    def _classify_with_baseline(self, items: Sequence[CheckItem], results: List[Optional[CheckResult]]) -> None:
        """For each mismatching item with an :class:`runners.restore.Origin`, run the original
        invocation from the start on the target (each distinct invocation once): if that run disagrees
        with our VM too, the target is non-conformant on this code (status ``target-nonconformant``,
        ``extra["baseline"]`` = the target's own uninterrupted-run difference); otherwise the mismatch
        stands as a C/R divergence (``extra["baseline_verdict"]`` says why)."""
        redo = [i for i, r in enumerate(results) if r is not None and r.status == MISMATCH]
        for i in redo:
            if items[i].origin is None:
                cast_result(results[i]).extra["baseline_verdict"] = "none: no from-scratch baseline for this invocation"
        redo = [i for i in redo if items[i].origin is not None]
        if not redo:
            return
        keys: Dict[Tuple[str, str, str, str], int] = {}
        jobs: List[Tuple[bytes, str, Sequence[Any], Any]] = []
        of_item: Dict[int, int] = {}
        for i in redo:
            o = items[i].origin
            assert o is not None
            key = (hashlib.sha256(o.wasm).hexdigest(), o.export, repr(o.args), repr(o.wasi))
            if key not in keys:
                keys[key] = len(jobs)
                jobs.append((o.wasm, o.export, o.args, o.wasi))
            of_item[i] = keys[key]
        kw = {} if self.timeout is None else {"timeout": self.timeout}
        try:
            outs = self.target.run_original_many(jobs, **kw)
        except Exception as e:  # noqa: BLE001 - no baseline is a C/R mismatch, never a crash
            outs = [None] * len(jobs)
            why = f"{type(e).__name__}: {e}"
        else:
            why = f"{self.name} gives no from-scratch baseline"
        for i in redo:
            r = cast_result(results[i])
            it = items[i]
            o = it.origin
            assert o is not None
            out = outs[of_item[i]]
            if out is None:
                r.extra["baseline_verdict"] = f"none: {why}"
                continue
            verdict, bdiffs = baseline_verdict(it.reference, o.log_start, out, it.final_state)
            if verdict != MISMATCH:
                r.extra["baseline_verdict"] = verdict + (f": {'; '.join(bdiffs)}" if bdiffs else "")
                continue
            r.extra["baseline"] = "; ".join(bdiffs)
            r.extra["baseline_outcome"] = outcome_dict(out)
            results[i] = CheckResult(self.name, NONCONFORMANT,
                                     f"{r.detail} (the target's own uninterrupted run of the original module "
                                     f"differs too: {r.extra['baseline']})", r.outcome, r.extra)

    def judge(self, reference: Dict[str, Any], prefix_log: Any, out: NativeOutcome, final_state: Any,
              manifest: Any, relaxed_simd: bool = False, wasi_prefix: Any = None) -> CheckResult:
        """``relaxed_simd``: the resume module has relaxed SIMD instructions (a difference is then
        inconclusive, :func:`runners.oracle.relaxed_simd_verdict`); ``wasi_prefix``: the snapshot's WASI
        state, whose stdout/stderr come before the target's (:func:`wasi_verdict`)."""
        extra: Dict[str, Any] = {"seconds": round(out.seconds, 4)}
        if getattr(manifest, "wasi", None) is not None:  # memories are WASI's scratch too (wasi_memory)
            mem = wasi_memory(final_state, manifest, out)
            if mem:
                extra["wasi_memory_differences"] = mem
            manifest = dataclasses.replace(manifest, memories={})
        verdict, diffs = compare_native(reference, prefix_log, out, final_state, manifest, relaxed_simd)
        verdict, diffs = wasi_verdict(verdict, diffs, reference, wasi_prefix, out, manifest)
        status = _STATUS[verdict]
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
        **({"wasi": out.wasi} if out.wasi is not None else {}),
        "results": [fmt(v) for v in out.results],
        "trap": out.trap,
        "instructions": None,
        "host_log": [[n, [fmt(v) for v in args]] for n, args in out.host_log],
        "state_digest": None,
        "stopped": out.stopped,
        "readback_sha256": h.hexdigest(),
        "target": target or out.target,
    }
    if out.trap_candidates and len(out.trap_candidates) > 1:
        d["trap_candidates"] = sorted(out.trap_candidates)
    if out.inconclusive:
        d["inconclusive"] = out.inconclusive
    return d


_STATUS = {"match": MATCH, "mismatch": MISMATCH, "inconclusive": INCONCLUSIVE, "error": ERROR,
           "not-applicable": NOT_APPLICABLE}


def wasi_memory(final_state: Any, manifest: Any, out: NativeOutcome) -> List[str]:
    """Differences of the final memories of a WASI program: reported (``extra``), not judged.  WASI
    functions write values into the program's memory that differ between correct runtimes and that the
    program may never read (the rights of ``fd_fdstat_get``, inode and device numbers and timestamps of
    ``fd_filestat_get``), and C code leaves them in dead stack frames; what a WASI program shows the world
    is its results, output, exit code and files, which are judged.  Globals and tables still are."""
    only = dataclasses.replace(manifest, globals={}, tables={})
    return compare_final_state(final_state, only, out)


def wasi_verdict(verdict: str, diffs: List[str], reference: Dict[str, Any], wasi_prefix: Any, out: NativeOutcome,
                 manifest: Any) -> Tuple[str, List[str]]:
    """A WASI program's end on the target (exit code, the snapshot's output followed by the target's,
    files: :func:`runners.oracle.compare_wasi`) joins the verdict of a run that said something.  A
    program that reads a clock or random source (``manifest.wasi.nondeterministic``) cannot be
    compared with our virtual clock and seeded stream: its mismatch is inconclusive."""
    run = getattr(manifest, "wasi", None)
    if verdict not in ("match", "mismatch") or (run is None and "wasi" not in reference):
        return verdict, diffs
    more = compare_wasi(reference.get("wasi"), wasi_prefix, out.wasi)
    if not more:
        return verdict, diffs
    diffs = diffs + more
    if run is not None and run.nondeterministic:
        return "inconclusive", [f"the program reads {', '.join(run.nondeterministic)}: the target's real clock "
                                "and random source are not our virtual ones; differences: " + "; ".join(diffs)]
    return "mismatch", diffs


def cast_result(r: Optional[CheckResult]) -> CheckResult:
    assert r is not None
    return r


def baseline_verdict(reference: Dict[str, Any], log_start: int, out: NativeOutcome,
                     final_state: Any) -> Tuple[str, List[str]]:
    """A from-scratch run of the original invocation against the uninterrupted run of our VM: the
    native rules, with the reference's prints before the invocation as the prefix and the final state
    read back through the manifest the baseline wrapper made (``out.details["manifest"]``).  A WASI
    program's end (exit code, output, files) is compared too, with nothing before it (the run started
    from scratch), its memories reported but not judged, as for a resumed run (:func:`wasi_verdict`)."""
    prefix = [(n, [parse_value(x) for x in args]) for n, args in reference.get("host_log", [])[:log_start]]
    manifest: Any = out.details.get("manifest")
    if getattr(manifest, "wasi", None) is not None:
        manifest = dataclasses.replace(manifest, memories={})
    verdict, diffs = compare_native(reference, prefix, out, final_state, manifest)
    verdict, diffs = wasi_verdict(verdict, diffs, reference, None, out, manifest)
    return _STATUS[verdict], diffs


def invalid_module_result(where: str, what: str, data: bytes) -> Optional[CheckResult]:
    """None when both validators accept ``data`` (a module we made); else our error: status ``error``
    with the validator's message, the module's sha256 and (up to :data:`MAX_EMBEDDED` bytes) the module
    itself in ``extra["invalid_module"]``, so the report carries what to reproduce it with."""
    bad = check_module(data)
    if bad is None:
        return None
    validator, msg = bad
    sha = hashlib.sha256(data).hexdigest()
    info: Dict[str, Any] = {"what": what, "validator": validator, "message": msg, "sha256": sha,
                            "size": len(data)}
    if len(data) <= MAX_EMBEDDED:
        info["wasm_base64"] = base64.b64encode(data).decode("ascii")
    return CheckResult(where, ERROR, f"wcr made an invalid {what} (sha256 {sha}): {validator}: {msg}"[:2000],
                       extra={"invalid_module": info})


def target_restorer(name: str, timeout: Optional[float] = None) -> TargetRestorer:
    """The restorer of the native target ``name``; unknown names raise ``ValueError`` naming the known."""
    try:
        return TargetRestorer(get_target(name), timeout)
    except KeyError as e:
        raise ValueError(str(e.args[0])) from None
