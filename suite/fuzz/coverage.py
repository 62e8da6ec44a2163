"""The campaign's coverage report: which state kinds and control shapes (:mod:`vm.snapshot.coverage`)
were live at checkpoints, and where those checkpoints were restored.

Why its own file: the campaign logs one small dict per trial (checkpoints and host restores per kind)
and per target batch (restores per target and kind) in its JSONL files; the summary is recomputed from
them like every other count, so a killed or resumed campaign reports the same coverage.  The table
marks with ``!`` a kind that no host or no target has restored live: what the generators must reach.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

__all__ = ["Steering", "coverage_summary", "format_coverage", "trial_coverage"]

#: trials a worker runs before it steers (until then it knows nothing it could steer by)
WARMUP_TRIALS = 32
#: kinds boosted at once: boosting everything makes every program bigger, and the cost of a trial grows
#: with its length (exhaustive schedules check every instruction boundary)
MAX_BOOST = 2


class Steering:
    """What one worker has covered, and what its next chunk should boost.

    A kind counts as covered once it was live at a checkpoint restored on a host *and* at one restored
    on a target (on hosts alone when the campaign has no targets).  After :data:`WARMUP_TRIALS`, each
    chunk boosts up to :data:`MAX_BOOST` uncovered kinds that the generator has knobs for (in turn, by
    chunk number), fixed for the chunk (:meth:`new_chunk`: its examples must replay the same way while
    Hypothesis shrinks them) and passed as ``boost=`` to :func:`generators.modules.cases` (weighted
    strategies rather than Hypothesis ``target()``: its targeting phase re-draws the examples of a chunk,
    schedule draws included, and measurably shifted the share of exhaustive schedules);
    :meth:`on_hosts` returns how many boosted kinds a trial made live.  ``records``: the worker's
    earlier JSONL records, so a resumed campaign keeps steering where it stopped."""

    def __init__(self, records: List[Dict[str, Any]], has_targets: bool):
        self.has_targets = has_targets
        self.hosts: set = set()
        self.targets: set = set()
        self.boost: frozenset = frozenset()
        self.trials = sum(1 for rec in records if rec.get("t") == "trial")
        for rec in records:
            for kind, c in (rec.get("coverage") or {}).items():
                if rec.get("t") != "trial":
                    self.targets.add(kind)
                elif c.get("hosts"):
                    self.hosts.add(kind)

    def uncovered(self) -> frozenset:
        from vm.snapshot.coverage import KINDS

        done = self.hosts & self.targets if self.has_targets else self.hosts
        return frozenset(KINDS) - done

    def new_chunk(self, chunk: int) -> None:
        from generators.stateops import BOOSTS

        cands = [k for k in sorted(self.uncovered()) if k in BOOSTS] if self.trials >= WARMUP_TRIALS else []
        i = chunk % len(cands) if cands else 0
        self.boost = frozenset((cands + cands)[i:i + MAX_BOOST])

    def on_hosts(self, cov: Dict[str, Dict[str, int]]) -> float:
        """Note a trial's :func:`trial_coverage`; its score for Hypothesis ``target()``."""
        self.trials += 1
        self.hosts.update(k for k, c in cov.items() if c["hosts"])
        return float(len(self.boost.intersection(cov)))

    def on_targets(self, items: List[Tuple[Any, Any, Any]]) -> Dict[str, Dict[str, int]]:
        """``(PendingTarget, its trial's TrialResult, the target's TrialResult)`` of a flushed batch →
        kind → target → restores of checkpoints with the kind live (only those the target ran: not
        not-applicable or not-convertible ones)."""
        cov: Dict[str, Dict[str, int]] = {}
        for p, res, r in items:
            if p.target not in r.restores:
                continue
            for k, kinds, _hosts in res.coverage:
                if k == p.k:
                    for kind in kinds:
                        row = cov.setdefault(kind, {})
                        row[p.target] = row.get(p.target, 0) + 1
                    break
        self.targets.update(cov)
        return cov


def trial_coverage(coverage: List[Tuple[int, Any, Tuple[str, ...]]]) -> Dict[str, Dict[str, int]]:
    """One trial's :attr:`runners.trial.TrialResult.coverage` as counts: kind → checkpoints with it
    live, host restores of those checkpoints."""
    out: Dict[str, Dict[str, int]] = {}
    for _k, kinds, hosts in coverage:
        for kind in kinds:
            c = out.setdefault(kind, {"checkpoints": 0, "hosts": 0})
            c["checkpoints"] += 1
            c["hosts"] += len(hosts)
    return out


def coverage_summary(records: List[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """``{kind: {"trials": n, "checkpoints": n, "hosts": n, "targets": {name: n}}}`` over every kind
    of :data:`vm.snapshot.coverage.KINDS` (zeros included: a kind never reached must show); ``trials``:
    trials with at least one checkpoint where the kind was live (e.g. ``value.v128``: trials and
    checkpoints that held a live v128 value)."""
    from vm.snapshot.coverage import KINDS

    out: Dict[str, Dict[str, Any]] = {k: {"trials": 0, "checkpoints": 0, "hosts": 0, "targets": {}} for k in KINDS}
    for rec in records:
        for kind, c in (rec.get("coverage") or {}).items():
            row = out.setdefault(kind, {"trials": 0, "checkpoints": 0, "hosts": 0, "targets": {}})
            if rec.get("t") == "trial":
                row["trials"] += 1 if int(c.get("checkpoints", 0)) else 0
                row["checkpoints"] += int(c.get("checkpoints", 0))
                row["hosts"] += int(c.get("hosts", 0))
            else:
                for name, n in c.items():
                    row["targets"][name] = row["targets"].get(name, 0) + int(n)
    return out


def format_coverage(cov: Dict[str, Dict[str, Any]]) -> str:
    """The coverage section as a table (what ``wcr fuzz`` prints on stderr); ``!`` marks a kind with no
    live checkpoint restored on a host or on any target."""
    names = sorted({t for row in cov.values() for t in row["targets"]})
    head = f" {'kind':<21} {'trials':>7} {'checkpoints':>11} {'hosts':>7}" + "".join(f" {n:>9}" for n in names)
    lines = ["coverage (checkpoints with the kind live; restores of them on hosts and on each target):", head]
    for kind, row in cov.items():
        miss = "!" if not row["hosts"] or (names and not any(row["targets"].values())) else " "
        lines.append(f"{miss}{kind:<21} {row.get('trials', 0):>7} {row['checkpoints']:>11} {row['hosts']:>7}"
                     + "".join(f" {row['targets'].get(n, 0):>9}" for n in names))
    return "\n".join(lines)
