"""Reports of a spec-test run: JUnit XML (via ``junit-xml``) and the JSON summary automation reads.

JSON summary shape (stable; automation depends on it)::

    {"totals": {"passed": N, "failed": N, "skipped": N},
     "files": {"i32.wast": {"passed": N, "failed": N, "skipped": N}, ...},
     "skipped_features": {"simd": N, ...},
     "failure_components": {"runtime": N, "validator": N, ...},   (a triage guess, see component_of)
     "failures": [{"file", "line", "command", "name", "message", "expected", "actual", ...}, ...],
     "failures_total": N, "elapsed_s": X, "asserts_per_s": X, "instructions": N,
     "stopped": {"timeout": N, "fuel exhausted": N},   (failed commands a --timeout/--fuel limit stopped;
                                                       such a failure also carries "stopped": kind)
     "cr": {...}}    (only with ``--cr``; see :func:`cr_summary`)

File keys are paths relative to the testsuite directory (``custom/branch_hint.wast``).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from spec_tests.results import FAILED, SKIPPED, FileResult

MAX_FAILURES_IN_JSON = 200


def counts(r: FileResult) -> Dict[str, int]:
    return {"passed": r.passed, "failed": r.failed, "skipped": r.skipped}


def totals(results: Sequence[FileResult]) -> Dict[str, int]:
    t = {"passed": 0, "failed": 0, "skipped": 0}
    for r in results:
        for k, v in counts(r).items():
            t[k] += v
    return t


def skipped_features(results: Sequence[FileResult]) -> Dict[str, int]:
    c: Counter = Counter()
    for r in results:
        for case in r.cases:
            if case.status == SKIPPED:
                c[case.feature or "unknown"] += 1
    return dict(c.most_common())


def component_of(case: Any) -> str:
    """A best guess at which part of wcr a failure points to (for triage, not for pass/fail).

    An unexpected exception is charged to the package of its innermost ``vm``/``spec_tests`` frame;
    otherwise the command kind decides (malformed → decoder, invalid → validator, results and traps
    → runtime, conversion/worker problems → runner).
    """
    if getattr(case, "stopped", ""):  # a limit, not a component, ended it
        return "limit"
    tb = case.traceback or ""
    if tb:
        frames = [ln for ln in tb.splitlines() if ln.strip().startswith("File ")]
        for ln in reversed(frames):
            for needle, comp in (("vm/binary", "decoder"), ("vm/valid", "validator"),
                                 ("vm/exec/numerics", "numerics"), ("vm/exec", "runtime"),
                                 ("vm/runtime", "runtime"), ("spec_tests", "runner"), ("reports", "runner")):
                if needle in ln:
                    return comp
        return "runner"
    cmd, msg = case.command, case.message
    if cmd in ("convert", "worker"):
        return "runner"
    if cmd.startswith("assert_malformed"):
        return "decoder"
    if cmd.startswith("assert_invalid"):
        return "decoder" if "got malformed" in msg else "validator"
    if msg.startswith("malformed") or "got malformed" in msg or "unusable: malformed" in msg:
        return "decoder"
    if msg.startswith("invalid") or "unusable: invalid" in msg or (
            "module rejected before" in msg and "InvalidModule" in msg):
        return "validator"
    if "module rejected before" in msg:
        return "decoder"
    return "runtime"


def failures(results: Sequence[FileResult], limit: Optional[int] = None) -> List[Dict[str, Any]]:
    out = []
    for r in results:
        for case in r.cases:
            if case.status == FAILED:
                d = case.to_dict()
                d["component"] = component_of(case)
                out.append(d)
                if limit is not None and len(out) >= limit:
                    return out
    return out


def failure_components(results: Sequence[FileResult]) -> Dict[str, int]:
    c: Counter = Counter(component_of(case) for r in results for case in r.cases if case.status == FAILED)
    return dict(c.most_common())


def summary(results: Sequence[FileResult], elapsed: float, max_failures: int = MAX_FAILURES_IN_JSON) -> Dict[str, Any]:
    t = totals(results)
    n = sum(t.values())
    return {
        "totals": t,
        "files": {r.file: counts(r) for r in results},
        "skipped_features": skipped_features(results),
        "failure_components": failure_components(results),
        "failures": failures(results, max_failures),
        "failures_total": t["failed"],
        "elapsed_s": round(elapsed, 3),
        "asserts_per_s": round(n / elapsed, 1) if elapsed > 0 else None,
        "instructions": sum(r.instructions for r in results),
        "stopped": dict(Counter(c.stopped for r in results for c in r.cases if c.stopped)),
    } | ({"cr": cr_summary(results)} if any(r.cr is not None for r in results) else {})


def cr_summary(results: Sequence[FileResult]) -> Dict[str, Any]:
    """The ``"cr"`` section: ``invocations`` (invokes that executed an instruction and were
    checkpointed), ``checkpoints``, ``restores`` (checkpoints x restorers), ``mismatches`` (results
    with status mismatch or error, any restorer), ``hosts`` (restores per host), ``targets`` (per
    native target: restores and every status count, plus ``not_convertible_reasons``)."""
    from runners.session import merge_counts

    out: Dict[str, Any] = {"invocations": 0, "checkpoints": 0, "restores": 0, "mismatches": 0,
                           "hosts": {}, "targets": {}}
    for r in results:
        if r.cr is not None:
            merge_counts(out, r.cr)
    return out


def write_json(path: Path, results: Sequence[FileResult], elapsed: float) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)  # `--json out/spec.json` on a fresh clone
    Path(path).write_text(json.dumps(summary(results, elapsed), indent=1) + "\n", encoding="utf-8")


def junit_suites(results: Sequence[FileResult]) -> list:
    from junit_xml import TestCase, TestSuite

    suites = []
    for r in results:
        cases = []
        for c in r.cases:
            tc = TestCase(c.name, classname=r.file.replace("/", ".").rsplit(".wast", 1)[0],
                          elapsed_sec=c.elapsed, file=r.file, line=c.line)
            if c.status == FAILED:
                detail = f"expected: {c.expected}\nactual: {c.actual}"
                if c.traceback:
                    detail += "\n" + c.traceback
                tc.add_failure_info(message=c.message, output=detail, failure_type=c.command)
            elif c.status == SKIPPED:
                tc.add_skipped_info(message=f"unsupported feature: {c.feature}")
            cases.append(tc)
        suites.append(TestSuite(r.file, cases, file=r.file))
    return suites


def write_junit(path: Path, results: Sequence[FileResult]) -> None:
    from junit_xml import to_xml_report_string

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(to_xml_report_string(junit_suites(results), encoding="utf-8"), encoding="utf-8")
