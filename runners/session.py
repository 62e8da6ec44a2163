"""The one C/R session: checkpoints of invocations, restored on any mix of hosts and targets, judged by
the one oracle.

``wcr spec --cr``, the fuzz trial, ``wcr restore`` and ``wcr replay`` all go through here:

* :func:`resolve` turns a ``--restore-on`` list (``inproc,python:/usr/bin/pypy3,wasmtime``) into
  restorers (:mod:`runners.restore`: hosts compare bit-exactly, targets by the native rules);
* :func:`reference_run` is the uninterrupted run of an invocation on a fresh store: its outcome (the
  oracle's expectation), its instruction total, and the final state targets are compared against;
* :func:`checkpoints_of_run` / :func:`checkpoints_from_snapshot` take checkpoints at the instruction
  counts of a schedule, through the public :mod:`vm.snapshot` API only, as :class:`CheckItem`\\ s;
* :class:`Session` queues items (with a caller's tag: the spec command, the fuzz trial), hands them to
  every restorer in batches (native targets amortise process starts and compiles over a batch), keeps the
  counts of every status per restorer, and gives each verdict back to the caller.  The caller decides
  what a verdict means for it (the spec runner fails the command, the campaign files a divergence):
  nothing here imports back into them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, cast

from vm.api import Store, StoreLimits, instantiate, load_module
from vm.exec.budget import NO_LIMITS, Budget, RunLimits
from vm.runtime import ModuleInst
from vm.snapshot import State, advance, advance_within, checkpoint, decode, encode, finish, restore, start
from vm.snapshot.resume import instance_final_state
from vm.values import format_value

from .oracle import wasi_with_prefix
from .restore import (
    ERROR,
    INCONCLUSIVE,
    MISMATCH,
    NONCONFORMANT,
    NOT_CONVERTIBLE,
    STATUSES,
    CheckItem,
    CheckResult,
    HostRestorer,
    Restorer,
    origin_of,
)

#: checkpoints handed to the restorers at once (per file in spec mode)
BATCH = 200
#: statuses that must say where and what: neither a pass nor a C/R divergence (non-conformant,
#: inconclusive), or our own error (an invalid resume module: counted with the mismatches and shown)
NOTED = (NONCONFORMANT, INCONCLUSIVE, ERROR)
#: how many of them one summary lists (the counts are always complete)
MAX_NOTES = 100


def split_restore_on(spec: str) -> List[str]:
    """The items of a ``--restore-on`` list: comma-separated, except that a ``cmd:`` item (a target
    defined by a command line, :mod:`runners.native.cmdspec`) runs to the end, commas and all; so it
    comes last (targets from a config file are named like built-in ones)."""
    head, sep, tail = spec.partition("cmd:")
    if head and not head.rstrip().endswith(","):  # "cmd:" inside another item is no cmd: item
        head, sep, tail = spec, "", ""
    return [x for x in head.split(",") if x.strip()] + ([sep + tail] if sep else [])


def resolve(spec: str, host_timeout: Optional[float] = None, limits: RunLimits = NO_LIMITS) -> List[Restorer]:
    """Parse a comma-separated ``--restore-on`` list; unknown names raise ``ValueError`` naming them.
    ``limits``: the user's fuel and wall time of one restore (a native target gets the wall time only:
    fuel does not translate to native engines)."""
    from .hosts import get_host
    from .native.restorer import target_restorer

    out: List[Restorer] = []
    for raw in split_restore_on(spec):
        name = raw.strip()
        if not name:
            continue
        if name == "inproc" or name.startswith("python:") or name == "pypy3":
            host_spec = "python:pypy3" if name == "pypy3" else name
            host = get_host(host_spec) if host_timeout is None else get_host(host_spec, host_timeout)
            out.append(HostRestorer(host, limits.fuel, limits.seconds))
        else:
            out.append(target_restorer(name, limits.seconds))
    if not out:
        raise ValueError("empty --restore-on list")
    return out


# ------------------------------------------------------------------------------------- checkpoints
@dataclass
class Reference:
    """The uninterrupted run: the outcome dict every restore must reproduce, the instruction total
    (schedules choose k in ``0..total``) and the final state of the entry's instance (for targets)."""

    outcome: Dict[str, Any]
    total: int
    final_state: Any = None


def fresh_instance(wasm: bytes, export: str, budget: Optional[Budget] = None, wasi: Any = None
                   ) -> Tuple[Any, Any, Any]:
    """A fresh store with ``wasm`` instantiated (imports: the store's ``spectest``, and WASI started from
    ``wasi``, a :class:`vm.runtime.wasi.WasiConfig`, when given): (store, instance, the exported
    function).  ``budget`` bounds the start function (:class:`vm.errors.Stopped`)."""
    store = Store()
    if wasi is not None:
        from vm.runtime.wasi import WasiState

        store.wasi = WasiState.start(wasi, store.limits)
    store.budget = budget
    inst = instantiate(store, load_module(wasm))
    store.budget = None
    return store, inst, inst.exports[export]


def reference_run(wasm: bytes, export: str, args: Sequence[Any], budget: Optional[Budget] = None,
                  wasi: Any = None) -> Reference:
    """The uninterrupted run, within ``budget``; :class:`vm.errors.Stopped` when a limit stopped it
    (there is then nothing to compare restores with).  ``wasi``: as for :func:`fresh_instance`."""
    store, inst, func = fresh_instance(wasm, export, budget, wasi)
    run = start(store, func, list(args))
    stop = advance_within(store, run, budget)
    if stop is not None:
        assert budget is not None
        raise budget.stopped(stop, run.count)
    out = finish(store, run).to_dict()
    return Reference(out, out["instructions"], instance_final_state(inst))


def checkpoints_of_run(wasm: bytes, export: str, args: Sequence[Any], ks: Sequence[int], wasi: Any = None
                       ) -> Iterator[Tuple[int, bytes, Any]]:
    """Checkpoints of one fresh run at each k (non-decreasing): ``(k, snapshot bytes, State)``."""
    store, _inst, func = fresh_instance(wasm, export, wasi=wasi)
    run = start(store, func, list(args))
    for k in ks:
        advance(store, run, k)
        state = checkpoint(store, run)
        yield k, encode(state), state


def checkpoints_from_snapshot(snapshot: bytes, modules: Dict[str, bytes], ks: Sequence[int]
                              ) -> Iterator[Tuple[int, bytes, Any]]:
    """The same from a snapshot (e.g. the spec runner's pre-invocation one): restore it into a scratch
    store and checkpoint at each k (non-decreasing)."""
    store, run = restore(decode(snapshot), modules)
    if run is None:
        raise ValueError("snapshot has no thread")
    for k in ks:
        advance(store, run, k)
        state = checkpoint(store, run)
        yield k, encode(state), state


def items_for(wasm: bytes, export: str, args: Sequence[Any] = (), ks: Optional[Sequence[int]] = None,
              label: str = "", wasi: Any = None) -> List[CheckItem]:
    """Check items of ``export(*args)`` at each k of ``ks`` (default: every instruction boundary and
    the finished run), with the uninterrupted run as reference; ``wasi``: the program's
    :class:`vm.runtime.wasi.WasiConfig` (each run starts from it afresh)."""
    import hashlib

    ref = reference_run(wasm, export, args, wasi=wasi)
    modules = {hashlib.sha256(wasm).hexdigest(): bytes(wasm)}
    ks = range(ref.total + 1) if ks is None else [min(k, ref.total) for k in ks]
    store, _inst, func = fresh_instance(wasm, export, wasi=wasi)
    origin = origin_of(store, func, args, wasm, wasi)[0]  # a fresh run: the original invocation is the baseline
    return [CheckItem(data, state, modules, ref.outcome, ref.final_state, f"{label or export}@{k}", k, origin)
            for k, data, state in checkpoints_of_run(wasm, export, args, ks, wasi)]


# ---------------------------------------------------------------------------------------- session
Verdict = Tuple[Any, CheckItem, Restorer, CheckResult]


def status_key(status: str) -> str:
    """A status as the plural count key of the JSON summaries (``match`` → ``matches``)."""
    return {"match": "matches", "mismatch": "mismatches", "error": "errors"}.get(status, status.replace("-", "_"))


@dataclass
class Session:
    """Batches checkpoints over restorers and counts every verdict (see the module docstring).

    ``on_verdict(tag, item, restorer, result)`` is called for every restore; ``counts`` has the shape
    of the spec summary's ``cr`` section: invocations, checkpoints, restores, mismatches (C/R
    mismatches and errors on any restorer), not_checked, ``hosts`` (restores per host), ``targets``
    (per target: restores and one count per status, plus the not-convertible reasons) and ``notes``
    (where and what differed for each target-nonconformant or inconclusive verdict, the first
    :data:`MAX_NOTES`)."""

    restorers: List[Restorer]
    on_verdict: Optional[Callable[[Any, CheckItem, Restorer, CheckResult], None]] = None
    batch: int = BATCH
    counts: Dict[str, Any] = field(default_factory=dict)
    pending: List[Tuple[Any, CheckItem]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = new_counts(self.restorers)

    @property
    def wants_final_state(self) -> bool:
        return any(r.kind == "target" for r in self.restorers)

    def add(self, item: CheckItem, tag: Any = None) -> None:
        self.pending.append((tag, item))
        self.counts["checkpoints"] += 1
        if len(self.pending) >= self.batch:
            self.flush()

    def flush(self) -> List[Verdict]:
        """Check everything queued on every restorer; returns (and reports) the verdicts."""
        batch, self.pending = self.pending, []
        if not batch:
            return []
        items = [it for _, it in batch]
        out: List[Verdict] = []
        for r in self.restorers:
            try:
                results = r.check_many(items)
            except Exception as e:  # a restorer that fails as a whole fails every item it was given
                results = [CheckResult(r.name, ERROR, f"{type(e).__name__}: {e}") for _ in items]
            for (tag, item), res in zip(batch, results):
                self._count(r, item, res)
                out.append((tag, item, r, res))
                if self.on_verdict is not None:
                    self.on_verdict(tag, item, r, res)
        return out

    def check(self, items: Sequence[CheckItem]) -> List[Verdict]:
        """Check ``items`` now (after whatever is queued)."""
        for it in items:
            self.pending.append((None, it))
            self.counts["checkpoints"] += 1
        return self.flush()

    def _count(self, r: Restorer, item: CheckItem, res: CheckResult) -> None:
        c = self.counts
        c["restores"] += 1
        if r.kind == "target":
            t = c["targets"].setdefault(r.name, _target_counts())
            t["restores"] += 1
            key = status_key(res.status)
            t[key] = t.get(key, 0) + 1
            if res.status == NOT_CONVERTIBLE:
                reason = (res.detail or "unknown").split(":")[0][:80]
                t["not_convertible_reasons"][reason] = t["not_convertible_reasons"].get(reason, 0) + 1
        else:
            c["hosts"][r.name] = c["hosts"].get(r.name, 0) + 1
        if res.status in (MISMATCH, ERROR):
            c["mismatches"] += 1
        if res.status in NOTED and len(c["notes"]) < MAX_NOTES:
            c["notes"].append(note(r, item, res))

    def close(self) -> None:
        for r in self.restorers:
            close = getattr(r, "close", None)
            if close is not None:
                close()


def note(r: Restorer, item: CheckItem, res: CheckResult) -> Dict[str, Any]:
    """Where and what: a non-pass verdict as the summaries list it."""
    d: Dict[str, Any] = {"restorer": r.name, "at": item.label, "k": item.k, "status": res.status,
                         "detail": res.detail[:1000]}
    if "baseline" in res.extra:
        d["uninterrupted_difference"] = str(res.extra["baseline"])[:1000]
    return d


def _target_counts() -> Dict[str, Any]:
    t: Dict[str, Any] = {"restores": 0}
    t.update({status_key(st): 0 for st in STATUSES})
    t["not_convertible_reasons"] = {}
    return t


def new_counts(restorers: Sequence[Restorer]) -> Dict[str, Any]:
    c: Dict[str, Any] = {"invocations": 0, "checkpoints": 0, "restores": 0, "mismatches": 0,
                         "not_checked": 0, "hosts": {}, "targets": {}, "notes": []}
    for r in restorers:
        if r.kind == "target":
            c["targets"][r.name] = _target_counts()
        else:
            c["hosts"][r.name] = 0
    return c


def merge_counts(into: Dict[str, Any], c: Dict[str, Any]) -> Dict[str, Any]:
    """Add counts ``c`` into ``into`` (files of a spec run, chunks of a campaign)."""
    for k in ("invocations", "checkpoints", "restores", "mismatches", "not_checked"):
        into[k] = into.get(k, 0) + c.get(k, 0)
    notes = into.setdefault("notes", [])
    notes.extend(c.get("notes", [])[:max(0, MAX_NOTES - len(notes))])
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


# ----------------------------------------------------------------------------- one snapshot, one place
def restore_on(snapshot: bytes, modules: Dict[str, bytes], where: str, limits: RunLimits = NO_LIMITS,
               state: Optional[State] = None, store_limits: Optional[StoreLimits] = None
               ) -> Dict[str, Any]:
    """``wcr restore``: resume ``snapshot`` on one host or target and describe it in the one outcome
    shape — ``results``, ``trap``, ``instructions``, ``host_log``, ``state_digest``, ``stopped``,
    ``restored_on``, and ``wasi`` for a WASI program (a target's output after the snapshot's) —
    plus, everywhere but in this process, the ``verdict`` against our VM resuming the same snapshot
    here (``reference``) and the ``differences``.  A native runtime neither counts instructions nor
    sees our canonical store, so for a target ``instructions`` and ``state_digest`` are null and the
    final state is judged by the native rules instead.  ``limits`` bound the restored run and the
    reference here alike (each its own clock); a stopped side makes the verdict inconclusive.
    ``state``: the snapshot already decoded (a large one is not decoded twice); ``store_limits``:
    the restorer's (default: the process's).  Raises ``SnapshotError`` for a bad snapshot,
    ``ValueError`` for an unknown name."""
    from vm.snapshot import SnapshotError

    (r,) = resolve(where, limits=limits)
    ok, why = r.available()
    if not ok:
        raise ValueError(f"{where} is not available here: {why}")
    if state is None:
        state = decode(snapshot, store_limits)
    store, run = restore(state, modules, limits=store_limits)
    if run is None:
        raise SnapshotError("snapshot has no thread to resume")
    reference = finish(store, run, budget=limits.start()).to_dict()
    out: Dict[str, Any]
    if r.kind == "host" and r.name == "inproc":
        return dict(reference, restored_on=r.name)
    final_state = instance_final_state(cast(ModuleInst, run.entry.module))  # the entry's defining instance
    item = CheckItem(snapshot, state, modules, reference, final_state,
                     f"restore on {r.name}", state.thread.count if state.thread is not None else 0)
    try:
        res = r.check_many([item])[0]
    finally:
        close = getattr(r, "close", None)
        if close is not None:
            close()
    got = res.outcome or {}
    log = got.get("host_log")
    if r.kind == "target" and log is not None:  # a resume module prints only what comes after the checkpoint
        log = [[n, [format_value(v) for v in a]] for n, a in state.host_log] + list(log)
    out = {"results": got.get("results"), "trap": got.get("trap"),
           "instructions": got.get("instructions") if r.kind == "host" else None,
           "host_log": log,
           "state_digest": got.get("state_digest") if r.kind == "host" else None,
           "stopped": got.get("stopped"),
           "restored_on": r.name, "verdict": res.status,
           "differences": [d for d in res.detail.split("; ") if d] if res.detail else [],
           "reference": reference}
    for key in ("trap_candidates", "inconclusive"):
        if key in got:
            out[key] = got[key]
    if "wasi" in got or "wasi" in reference:  # a WASI program: exit code, output, files (a target's
        # output is what it wrote after the checkpoint; the snapshot holds what came before)
        w = got.get("wasi")
        out["wasi"] = w if r.kind == "host" or w is None else wasi_with_prefix(state.wasi, w)
    return out
