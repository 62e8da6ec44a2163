"""C/R mode of the spec runner (``wcr spec --cr random|all``), on the one C/R session
(:class:`runners.session.Session`).

Every ``invoke`` that executes at least one instruction is checked: before the live invocation the
store is captured (a pre-invocation snapshot); the live run — the one the script's assertion judges —
is the reference; then the pre-invocation snapshot is restored into a scratch store, run to each chosen
instruction ``k`` and checkpointed (:func:`runners.session.checkpoints_from_snapshot`), and each
checkpoint goes to the session, which batches it over every ``--restore-on`` restorer.  A verdict that
is a mismatch or an error fails the command that produced it, with the first difference in its
message.

Checkpoint choice (:func:`pick_points`): every checked invocation is checkpointed at **k = total** — the
finished run, or the trapped one (the trapping instruction counts) — where a restore must reproduce the
results or trap, the host log and the final state without executing anything; that is the snapshot
shape of a finished program, and a restore path that only ever saw running threads gets it wrong.
On top of it: ``random``: one ``k`` in ``0 .. total-1`` per invocation from a per-file RNG seeded with
``"{seed}:{file}"`` (so ``-j N`` does not change the points); ``all``: every ``k`` in ``0 .. total``
when that is at most ``max_points`` points, else ``max_points`` points spread evenly over ``0 .. total``
(first and last included).  So ``checkpoints`` counts two per invocation in ``random`` mode.

RunLimits (``wcr spec --fuel/--timeout``): each restore gets the command's limits
(:class:`vm.exec.budget.RunLimits` in :attr:`CrConfig.limits`); a restore they stop is inconclusive
(:func:`runners.oracle.compare_stopped`), never a failure; a live run they stop has no checkpoints
(counted in ``not_checked``; the command itself fails).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from runners.restore import ERROR, MISMATCH, CheckItem, CheckResult, Restorer, origin_of
from runners.session import Session, checkpoints_from_snapshot, merge_counts, resolve
from vm.errors import WasmException
from vm.exec.budget import NO_LIMITS, RunLimits
from vm.snapshot import checkpoint, encode, outcome_of, start
from vm.snapshot.resume import instance_final_state

from .results import FAILED, CaseResult

DEFAULT_MAX_POINTS = 50

# restorers built once per process and reused across files (a python: host keeps its child alive)
_RESTORERS: Dict[str, List[Restorer]] = {}


@dataclass
class CrConfig:
    """What ``--cr`` asked for; a plain picklable value (it crosses into ``-j`` workers)."""

    mode: str = "random"  # "random" | "all"
    seed: int = 0
    restore_on: str = "inproc"
    max_points: int = DEFAULT_MAX_POINTS
    limits: RunLimits = NO_LIMITS


def restorers_for(spec: str, limits: RunLimits = NO_LIMITS) -> List[Restorer]:
    key = f"{spec}|{limits.fuel}|{limits.seconds}"
    r = _RESTORERS.get(key)
    if r is None:
        r = _RESTORERS[key] = resolve(spec, limits=limits)
    return r


def pick_points(cfg: CrConfig, rng: random.Random, total: int) -> List[int]:
    """The checkpoints of an invocation of ``total`` instructions (see the module docstring): always
    ``total`` itself, plus one random point or (``all``) up to ``max_points`` points in ``0 .. total``."""
    if total <= 0:
        return []
    if cfg.mode == "all":
        n = max(2, cfg.max_points)
        if total + 1 <= n:
            return list(range(total + 1))
        return sorted({round(i * total / (n - 1)) for i in range(n)})
    return [rng.randrange(total), total]


class CrFile:
    """The C/R side of one script: its RNG, the module bytes by sha256, and its session."""

    def __init__(self, cfg: CrConfig, file: str, restorers: Optional[List[Restorer]] = None):
        self.cfg = cfg
        self.file = file
        self.modules: Dict[str, bytes] = {}
        self.rng = random.Random(f"{cfg.seed}:{file}")
        self.session = Session(restorers or restorers_for(cfg.restore_on, cfg.limits), on_verdict=_judge)

    @property
    def counts(self) -> Dict[str, Any]:
        return self.session.counts

    def begin(self, store: Any, func: Any, args: List[Any]) -> Optional[bytes]:
        """The pre-invocation snapshot (None for a host function: it executes no instruction)."""
        if getattr(func, "host", None) is not None:
            return None
        # the blame baseline (runners.restore.origin_of): only for targets, decided before the run
        self._origin = origin_of(store, func, args, self.modules.get(getattr(func.module, "sha256", "")))[0] \
            if self.session.wants_final_state else None
        return encode(checkpoint(store, start(store, func, args)))

    def end(self, case: CaseResult, store: Any, func: Any, pre: bytes, results: Optional[List[Any]],
            exc: Optional[BaseException]) -> None:
        """After the live run (``results`` or the Trap/WasmException ``exc``): queue its checkpoints."""
        total = int(getattr(store, "instructions", 0) or 0)
        if total <= 0:
            return
        if exc is None:
            trap = None
        else:
            trap = exc.message if isinstance(exc, WasmException) else getattr(exc, "kind", str(exc))
        exn = exc.exn if isinstance(exc, WasmException) else None
        reference = outcome_of(store, func.type.results, results or [], trap, total, exn=exn).to_dict()
        final_state = instance_final_state(func.module) if self.session.wants_final_state else None
        self.counts["invocations"] += 1
        points = pick_points(self.cfg, self.rng, total)
        origin = getattr(self, "_origin", None)
        for k, data, state in checkpoints_from_snapshot(pre, self.modules, points):
            mods = {sha: self.modules[sha] for sha in state.modules}
            item = CheckItem(data, state, mods, reference, final_state, f"{case.name} k={k}", k, origin=origin)
            self.session.add(item, case)

    def flush(self) -> None:
        self.session.flush()


def _judge(case: CaseResult, item: CheckItem, restorer: Restorer, res: CheckResult) -> None:
    """A C/R mismatch or error fails the command that invoked, with the first difference."""
    if res.status not in (MISMATCH, ERROR):
        return
    msg = f"C/R {res.status} on {restorer.name} at k={item.k}: {res.detail}"[:2000]
    if case.status == FAILED:
        case.message = (case.message + " | " + msg)[:4000]
        return
    case.status = FAILED
    case.message = msg
    case.expected = f"restored run equals the uninterrupted run ({_short(item.reference)})"[:2000]
    case.actual = (_short(res.outcome) if res.outcome else res.detail)[:2000]


def _short(o: Optional[Dict[str, Any]]) -> str:
    if not o:
        return ""
    return (f"results={o.get('results')} trap={o.get('trap')!r} instructions={o.get('instructions')} "
            f"state_digest={str(o.get('state_digest'))[:30]}")


def summarize(counts: List[Dict[str, Any]]) -> Tuple[Dict[str, Any], int]:
    """Merge file counts; returns (summary, mismatches)."""
    out: Dict[str, Any] = {}
    for c in counts:
        merge_counts(out, c)
    return out, out.get("mismatches", 0)
