"""A campaign's summary (the final JSON of ``wcr fuzz``), recomputed from its committed chunks.

Why from the files and not from the workers' counters: a killed, resumed or multi-worker campaign is
summarized the same way, and only what :mod:`suite.fuzz.chunklog` vouches for counts (whole chunks,
the last version of a chunk that was re-run).  Its coverage section: :mod:`suite.fuzz.coverage`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

from .chunklog import chunk_records
from .coverage import coverage_summary

__all__ = ["INCONCLUSIVE_ALARM", "MAX_NOTES", "NothingRan", "nothing_ran_reason", "summarize"]


class NothingRan(Exception):
    """A campaign (or a selftest) completed no trial.  Why an error and not a zero: a fuzzer that tested
    nothing must never look like a fuzzer that found nothing.  The message is one line saying why."""


#: notes (where and what of inconclusive / target-nonconformant verdicts) a summary lists
MAX_NOTES = 100
#: an inconclusive share above this is flagged: in a healthy campaign it is a fraction of a percent
#: (native stack overflows), so a jump means resource failures are hiding results
INCONCLUSIVE_ALARM = 0.02


def summarize(directory: Path) -> Dict[str, Any]:
    """The campaign summary from its committed chunks (the final JSON of ``wcr fuzz``)."""
    trials = checkpoints = divergences = inconclusive = 0
    restores: Dict[str, int] = {}
    skipped: Dict[str, int] = {}
    notes: List[Dict[str, Any]] = []
    reports: List[str] = []
    first_catch = None
    records: List[Dict[str, Any]] = []
    for rec in chunk_records(Path(directory)):
        if rec.get("coverage"):
            records.append(rec)
        t = rec.get("t")
        if t in ("trial", "targets"):
            for k, v in (rec.get("restores") or {}).items():
                restores[k] = restores.get(k, 0) + int(v)
            for k, v in (rec.get("skipped") or {}).items():
                skipped[k] = skipped.get(k, 0) + int(v)
            inconclusive += int(rec.get("inconclusive", 0))
            notes += (rec.get("notes") or [])[:max(0, MAX_NOTES - len(notes))]
        if t == "trial":
            trials += 1
            checkpoints += int(rec.get("checkpoints", 0))
        elif t == "divergence":
            divergences += 1
            fc = rec.get("first_catch")
            if fc is not None and (first_catch is None or fc < first_catch):
                first_catch = fc
        elif t == "report" and rec["path"] not in reports:  # as found, then minimized over it
            reports.append(rec["path"])
    done = sum(restores.values()) + trials  # every restore, plus each trial's conformance run
    rate = inconclusive / done if done else 0.0
    return {"trials": trials, "checkpoints": checkpoints, "restores": restores, "divergences": divergences,
            "inconclusive": inconclusive, "inconclusive_rate": round(rate, 4),
            "inconclusive_flag": (f"inconclusive rate {rate:.1%} is above {INCONCLUSIVE_ALARM:.0%}: something is "
                                  "failing for resource reasons (see notes)") if rate > INCONCLUSIVE_ALARM else None,
            "notes": notes, "reports": reports, "not_applicable": skipped,
            "first_catch_seconds": first_catch, "coverage": coverage_summary(records)}


def nothing_ran_reason(directory: Path, seconds: float, budget: float) -> str:
    """One line for :class:`NothingRan`: the last recorded trial error, else the budget."""
    errors = [rec for rec in chunk_records(Path(directory)) if rec.get("t") == "error"]
    why = (f"every trial failed, last error: {' '.join(str(errors[-1].get('error', '?')).split())}" if errors
           else f"the budget of {budget:g} s ended before the first trial finished")
    return f"the campaign completed 0 trials in {seconds:g} s: {why} (log: {directory})"
