"""C/R mode of the spec runner (``wcr spec --cr random|all``).

Every ``invoke`` that executes at least one instruction is checked: before the live invocation the
store is captured (a pre-invocation snapshot); the live run — the one the script's assertion judges —
is the reference; then a scratch store restored from the pre-invocation snapshot is replayed to each
chosen instruction ``k``, checkpointed and serialized through the codec, and the snapshot becomes a
:class:`runners.restore.CheckItem`.  Items are batched per file (flushed every ``BATCH`` items and at
the end of the file) and handed to every restorer's ``check_many``, because native targets amortize
process starts and compiles over a batch.  A mismatch or error fails the assertion that produced the
item, with the first difference in its message.

Checkpoint choice: ``k`` ranges over ``0 .. total-1`` (the resumed part always executes at least one
instruction).  ``random``: one ``k`` per invocation from a per-file RNG seeded with ``"{seed}:{file}"``
(so ``-j N`` does not change the points).  ``all``: every ``k`` when ``total <= max_points``, else
``max_points`` points spread evenly over ``0 .. total-1`` (first and last included).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

BATCH = 200
DEFAULT_MAX_POINTS = 50

# restorers built once per process and reused across files (a python: host keeps its child alive)
_RESTORERS: Dict[str, List[Any]] = {}


@dataclass
class CrConfig:
    """What ``--cr`` asked for; a plain picklable value (it crosses into ``-j`` workers)."""

    mode: str = "random"  # "random" | "all"
    seed: int = 0
    restore_on: str = "inproc"
    max_points: int = DEFAULT_MAX_POINTS


def restorers_for(spec: str) -> List[Any]:
    from runners.restore import resolve

    r = _RESTORERS.get(spec)
    if r is None:
        r = _RESTORERS[spec] = resolve(spec)
    return r


def new_counts(restorers: List[Any]) -> Dict[str, Any]:
    from runners.restore import STATUSES

    c: Dict[str, Any] = {"invocations": 0, "checkpoints": 0, "restores": 0, "mismatches": 0,
                         "not_checked": 0, "hosts": {}, "targets": {}}
    for r in restorers:
        if r.kind == "target":
            t = {"restores": 0}
            t.update({_status_key(st): 0 for st in STATUSES})
            t["not_convertible_reasons"] = {}
            c["targets"][r.name] = t
        else:
            c["hosts"][r.name] = 0
    return c


def _status_key(status: str) -> str:
    return {"match": "matches", "mismatch": "mismatches", "error": "errors"}.get(status, status.replace("-", "_"))


def merge_counts(into: Dict[str, Any], c: Dict[str, Any]) -> Dict[str, Any]:
    """Add file counts ``c`` into ``into`` (for the run summary)."""
    for k in ("invocations", "checkpoints", "restores", "mismatches", "not_checked"):
        into[k] = into.get(k, 0) + c.get(k, 0)
    hosts = into.setdefault("hosts", {})
    for name, n in c.get("hosts", {}).items():
        hosts[name] = hosts.get(name, 0) + n
    targets = into.setdefault("targets", {})
    for name, t in c.get("targets", {}).items():
        dst = targets.setdefault(name, {})
        for k, v in t.items():
            if k == "not_convertible_reasons":
                r = dst.setdefault(k, {})
                for reason, n in v.items():
                    r[reason] = r.get(reason, 0) + n
            else:
                dst[k] = dst.get(k, 0) + v
    return into


def pick_points(cfg: CrConfig, rng: random.Random, total: int) -> List[int]:
    if total <= 0:
        return []
    if cfg.mode == "all":
        n = max(1, cfg.max_points)
        if total <= n:
            return list(range(total))
        if n == 1:
            return [0]
        return sorted({round(i * (total - 1) / (n - 1)) for i in range(n)})
    return [rng.randrange(total)]


@dataclass
class _Pending:
    case: Any  # the CaseResult of the command that invoked
    item: Any  # CheckItem


@dataclass
class CrSession:
    """Per-file C/R state: the RNG, module bytes by sha256, the pending batch and the counts."""

    cfg: CrConfig
    file: str
    restorers: List[Any] = field(default_factory=list)
    modules: Dict[str, bytes] = field(default_factory=dict)
    pending: List[_Pending] = field(default_factory=list)
    counts: Dict[str, Any] = field(default_factory=dict)
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if not self.restorers:
            self.restorers = restorers_for(self.cfg.restore_on)
        self.counts = new_counts(self.restorers)
        self.rng = random.Random(f"{self.cfg.seed}:{self.file}")
        self.want_final = any(r.kind == "target" for r in self.restorers)

    # -- one invocation ----------------------------------------------------------------------------
    def begin(self, store: Any, func: Any, args: List[Any]) -> Optional[bytes]:
        """The pre-invocation snapshot (None for a host function: it executes no instruction)."""
        from vm.snapshot import checkpoint, encode, start

        if getattr(func, "host", None) is not None:
            return None
        return encode(checkpoint(store, start(store, func, args)))

    def end(self, case: Any, store: Any, func: Any, pre: bytes, results: Optional[List[Any]],
            exc: Optional[BaseException]) -> None:
        """After the live run (``results`` or the Trap/WasmException ``exc``): build the items."""
        from vm.errors import WasmException
        from vm.snapshot import advance, checkpoint, decode, encode, restore
        from vm.snapshot.checkpoint import _Capture
        from vm.snapshot.digest import state_digest
        from vm.snapshot.model import format_value

        total = int(getattr(store, "instructions", 0) or 0)
        if total <= 0:
            return
        caps = _Capture(store, require_sha=False)
        if exc is None:
            res = [format_value(caps.value(t, x)) for t, x in zip(func.type.results, results or [])]
            trap = None
        else:
            res = []
            trap = exc.message if isinstance(exc, WasmException) else getattr(exc, "kind", str(exc))
        reference = {
            "results": res, "trap": trap, "instructions": total,
            "host_log": [[name, [format_value(v) for v in vals]] for name, vals in caps.host_log()],
            "state_digest": state_digest(store),
        }
        final_state = None
        if self.want_final:
            from vm.snapshot.resume import instance_final_state

            final_state = instance_final_state(func.module)
        points = pick_points(self.cfg, self.rng, total)
        self.counts["invocations"] += 1
        scratch, run = restore(decode(pre), self.modules)
        assert run is not None
        from runners.restore import CheckItem

        for k in points:
            advance(scratch, run, k)
            state = checkpoint(scratch, run)
            data = encode(state)
            mods = {sha: self.modules[sha] for sha in state.modules}
            label = f"{case.name} k={k}"
            item = CheckItem(data, state, mods, reference, final_state, label, k,
                             baseline=pre if self.want_final else None)
            self.pending.append(_Pending(case, item))
            self.counts["checkpoints"] += 1
        if len(self.pending) >= BATCH:
            self.flush()

    # -- checking ----------------------------------------------------------------------------------
    def flush(self) -> None:
        from runners.restore import ERROR, MISMATCH, NOT_CONVERTIBLE, CheckResult

        batch, self.pending = self.pending, []
        if not batch:
            return
        items = [p.item for p in batch]
        for r in self.restorers:
            try:
                results = r.check_many(items)
            except Exception as e:  # a restorer that fails as a whole fails every item it was given
                results = [CheckResult(r.name, ERROR, f"{type(e).__name__}: {e}") for _ in items]
            for p, res in zip(batch, results):
                self.counts["restores"] += 1
                if r.kind == "target":
                    t = self.counts["targets"][r.name]
                    t["restores"] += 1
                    key = _status_key(res.status)
                    t[key] = t.get(key, 0) + 1
                    if res.status == NOT_CONVERTIBLE:
                        reason = (res.detail or "unknown").split(":")[0][:80]
                        t["not_convertible_reasons"][reason] = t["not_convertible_reasons"].get(reason, 0) + 1
                else:
                    self.counts["hosts"][r.name] = self.counts["hosts"].get(r.name, 0) + 1
                if res.status in (MISMATCH, ERROR):
                    self.counts["mismatches"] += 1
                    fail(p.case, r.name, p.item, res)


def fail(case: Any, where: str, item: Any, res: Any) -> None:
    """Turn the command's case into a failure carrying the first difference."""
    from .runner import FAILED

    msg = f"C/R {res.status} on {where} at k={item.k}: {res.detail}"[:2000]
    if case.status == FAILED and case.message.startswith("C/R"):
        case.message = (case.message + " | " + msg)[:4000]
        return
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
