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

While it runs, ``wcr spec`` streams every finished file to a **state file** (:class:`SpecState`), so a
killed run keeps what finished and ``wcr spec --resume`` runs only the rest, then writes these reports
over all files.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from spec_tests.results import FAILED, SKIPPED, FileResult, from_state

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


# -- the state file of a run: streamed, resumable -------------------------------------------------------------
#: the state file's first line: ``{"t": STATE_KIND, "version": STATE_VERSION, "options": {...}}``
STATE_KIND, STATE_VERSION = "wcr-spec-state", 1


class StateError(Exception):
    """A state file that cannot be resumed (unreadable, another run's, other options); one line."""


class SpecState:
    """The JSON-lines state file of a ``wcr spec`` run::

        {"t": "wcr-spec-state", "version": 1, "options": {...}}    what the run is (testsuite, files, C/R ...)
        {"t": "session", "n": 0}                                      each start (``--resume`` adds one)
        {"t": "file", "session": 0, "at": 1.25, "result": {...}}     each finished file, as it finishes

    Why one ``os.write`` per line on an ``O_APPEND`` descriptor: a kill leaves whole lines plus at most
    one torn last line, which the reader skips (that file simply runs again).  The options line is
    written to a temporary file renamed into place, so a state file always starts with it.  ``at`` is
    the seconds since the session started: the run's ``elapsed_s`` is the sum over sessions."""

    def __init__(self, path: Path, options: Dict[str, Any], resume: bool):
        self.path = Path(path)
        self.options = json.loads(json.dumps(options))  # as it will read back
        self.done: Dict[str, FileResult] = {}
        self.earlier = 0.0  # seconds of the earlier sessions
        session = 0
        if resume:
            session = self._load()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(json.dumps({"t": STATE_KIND, "version": STATE_VERSION, "options": self.options}) + "\n",
                           encoding="utf-8")
            tmp.replace(self.path)
        self.session = session
        self.t0 = time.monotonic()
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self._write({"t": "session", "n": session}, lead=resume)

    def _write(self, rec: Dict[str, Any], lead: bool = False) -> None:
        data = (b"\n" if lead else b"") + (json.dumps(rec) + "\n").encode("utf-8")
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def add(self, r: FileResult) -> None:
        """Record one finished file (called as each file finishes)."""
        self.done[r.file] = r
        self._write({"t": "file", "session": self.session, "at": round(time.monotonic() - self.t0, 3),
                     "result": r.to_state()})

    def elapsed(self) -> float:
        """Wall time of the whole run: earlier sessions (up to their last finished file) plus this one."""
        return self.earlier + time.monotonic() - self.t0

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _load(self) -> int:
        """Read an existing state (for ``--resume``); the number of the new session."""
        head, lines = read_state(self.path)
        if head.get("options") != self.options:
            raise StateError(f"--resume: {self.path} is a run with other options ({_differences(head.get('options'), self.options)}): "
                             "resume with the same ones, or start a new run without --resume")
        last: Dict[int, float] = {}
        sessions = 0
        for i, rec in lines:
            if rec.get("t") == "session" and isinstance(rec.get("n"), int):
                sessions = max(sessions, rec["n"] + 1)
            if rec.get("t") != "file":
                continue
            try:
                r = from_state(rec.get("result"))
                at = float(rec.get("at", 0.0))
                n = int(rec.get("session", 0))
            except (ValueError, TypeError) as e:
                raise StateError(f"{self.path}:{i}: {e}") from None
            self.done[r.file] = r
            last[n] = max(last.get(n, 0.0), at)
        self.earlier = sum(last.values())
        return sessions


def read_state(path: Path) -> Tuple[Dict[str, Any], List[Tuple[int, Dict[str, Any]]]]:
    """A state file's options line and its other records (numbered from 1); a torn line is skipped."""
    try:
        raw = Path(path).read_bytes().split(b"\n")
    except OSError as e:
        raise StateError(f"--resume: cannot read {path}: {e.strerror}") from None
    recs: List[Tuple[int, Dict[str, Any]]] = []
    for i, line in enumerate(raw, 1):
        try:
            rec = json.loads(line.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(rec, dict):
            recs.append((i, rec))
    if not recs or recs[0][0] != 1 or recs[0][1].get("t") != STATE_KIND:
        raise StateError(f"--resume: {path} is not a wcr spec state file")
    if recs[0][1].get("version") != STATE_VERSION:
        raise StateError(f"--resume: {path} has state version {recs[0][1].get('version')!r}, this wcr writes "
                         f"{STATE_VERSION}")
    return recs[0][1], recs[1:]


def _differences(old: Any, new: Dict[str, Any]) -> str:
    """The options that differ, as ``name: X there, Y here`` (a file list as its length)."""
    old = old if isinstance(old, dict) else {}

    def show(v: Any) -> str:
        return f"{len(v)} files" if isinstance(v, list) else json.dumps(v)

    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return "; ".join(f"{k}: {show(old.get(k))} there, {show(new.get(k))} here" for k in keys)
