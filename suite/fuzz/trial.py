"""One fuzzing trial: a case → differential run (VM vs wasmtime) → uninterrupted reference → checkpoint
schedule → restores → oracle.

Data here is plain (bytes, ints, strings), so a trial can be logged as JSON, rebuilt from a YAML bug
report and replayed.  The pieces:

* :class:`Case` — module bytes, export, arguments (runtime values), where it came from;
* :class:`Schedule` — ``single`` (one k), ``multi`` (several ks in one run) or ``chain`` (start host,
  hops ``(k, host)``; the last hop's host finishes), plus ``targets``: the native targets that resume
  the checkpoint(s) (for a chain: the last one);
* :class:`Divergence` — kind (``conformance``: VM vs wasmtime without C/R; ``cr-host``: one of our
  hosts differs from the uninterrupted run; ``cr-target``: a native target does), where, k, detail,
  expected/actual, the snapshot;
* :func:`run_trial` — everything above, with target checks either run at once or handed back as
  :class:`PendingTarget` items for a batched ``check_many`` (:func:`judge_target_results`).

The oracle: hosts are compared by :func:`vm.snapshot.cr.compare_outcomes` (results, trap, instruction
count, host log, final-state digest: all bit-exact); targets by their restorer
(:mod:`runners.native.restorer` → :mod:`runners.oracle`, the NaN and trap-candidate rules); the
conformance check by :func:`generators.diff.compare`.  Inconclusive outcomes (native stack overflow,
OOM, timeouts, the VM's instruction budget) are counted apart, never as passes or divergences.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from vm.snapshot import SnapshotError, advance, checkpoint, encode, finish, start
from vm.snapshot.cr import compare_outcomes, instantiate_bytes

#: hard ceiling of an uninterrupted run (a generator bug if reached: programs must terminate)
MAX_INSTRUCTIONS = 2_000_000
#: seconds one host request may take in a campaign or replay (trials take milliseconds; a hang is a finding
#: counted as inconclusive, and it must not stall the campaign for the hosts' 120 s default)
HOST_TIMEOUT = 60.0


def make_hosts(specs: Sequence[str]) -> Dict[str, Any]:
    """Host spec → :class:`runners.hosts.Host` (``inproc`` or a long-lived ``python:PATH`` child);
    ``ValueError`` for an unknown spec."""
    from runners.hosts import get_host

    return {h: get_host(h, HOST_TIMEOUT) for h in specs}


@dataclass
class Case:
    """A module and one call.  ``diff_export``/``diff_args``: what the VM-vs-wasmtime run calls (for
    our generator ``run_bits``, whose float params/results are integer bits: wasmtime-py quiets f32
    NaN payloads of floats that cross into Python)."""

    wasm: bytes
    export: str
    args: List[Any]
    generator: str = "own"
    diff_export: str = ""
    diff_args: Optional[List[Any]] = None
    deterministic: bool = True
    seed: Optional[bytes] = None  # smith seed

    @property
    def sha256(self) -> str:
        import hashlib

        return hashlib.sha256(self.wasm).hexdigest()

    def key(self) -> Tuple[Any, ...]:
        return (self.wasm, self.export, tuple(self.args))


@dataclass
class Schedule:
    shape: str  # "single" | "multi" | "chain"
    ks: Tuple[int, ...]
    start: str = "inproc"  # chain: where the run starts
    hosts: Tuple[str, ...] = ()  # chain: host of each hop (restores, runs on / finishes); others: all hosts
    targets: Tuple[str, ...] = ()

    def to_dict(self) -> Dict[str, Any]:
        d: Dict[str, Any] = {"shape": self.shape, "ks": list(self.ks), "targets": list(self.targets)}
        if self.shape == "chain":
            d["start"] = self.start
            d["hops"] = [[k, h] for k, h in zip(self.ks, self.hosts)]
        else:
            d["hosts"] = list(self.hosts)
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> Schedule:
        shape = d["shape"]
        if shape not in ("single", "multi", "chain"):
            raise ValueError(f"unknown schedule shape {shape!r}")
        targets = tuple(str(t) for t in d.get("targets", ()))
        if shape == "chain":
            hops = [(int(k), str(h)) for k, h in d["hops"]]
            return cls(shape, tuple(k for k, _ in hops), str(d.get("start", "inproc")),
                       tuple(h for _, h in hops), targets)
        return cls(shape, tuple(int(k) for k in d["ks"]), "inproc", tuple(str(h) for h in d.get("hosts", ())),
                   targets)

    def key(self) -> Tuple[Any, ...]:
        return (self.shape, self.ks, self.start, self.hosts, self.targets)

    def describe(self) -> str:
        if self.shape == "chain":
            hops = " → ".join(f"{h}@{k}" for k, h in zip(self.ks, self.hosts))
            tail = f" → {'/'.join(self.targets)}" if self.targets else ""
            return f"chain {self.start} → {hops}{tail}"
        return f"{self.shape} k={list(self.ks)} on {', '.join(self.hosts + self.targets)}"


@dataclass
class Divergence:
    kind: str  # "conformance" | "cr-host" | "cr-target"
    where: str  # host/target name, or "wasmtime"
    detail: str
    k: Optional[int] = None
    expected: Any = None
    actual: Any = None
    snapshot: Optional[bytes] = None
    status: str = "mismatch"

    @property
    def signature(self) -> Tuple[str, str]:
        return (self.kind, self.where)


@dataclass
class PendingTarget:
    """A checkpoint waiting for a batched target check."""

    target: str
    item: Any  # runners.restore.CheckItem
    k: int


@dataclass
class TrialResult:
    total: Optional[int] = None
    checkpoints: int = 0
    restores: Dict[str, int] = field(default_factory=dict)
    inconclusive: int = 0
    skipped: Dict[str, int] = field(default_factory=dict)  # not-applicable / not-convertible, by name
    divergences: List[Divergence] = field(default_factory=list)
    pending: List[PendingTarget] = field(default_factory=list)
    reference: Optional[Dict[str, Any]] = None
    seconds: float = 0.0

    def restored(self, where: str, n: int = 1) -> None:
        self.restores[where] = self.restores.get(where, 0) + n


# -- the pieces ------------------------------------------------------------------------------------------
def differential(case: Case) -> Tuple[Optional[Divergence], bool]:
    """VM vs wasmtime on the unmodified module: ``(divergence or None, inconclusive)``."""
    from generators.diff import BudgetExceeded, compare, run_vm, run_wasmtime

    export = case.diff_export or case.export
    args = case.diff_args if case.diff_args is not None else case.args
    try:
        vm = run_vm(case.wasm, export, args, max_instructions=MAX_INSTRUCTIONS)
    except BudgetExceeded:
        return None, True
    wt = run_wasmtime(case.wasm, export, args)
    if wt.trap in ("STACK_OVERFLOW", "OUT_OF_FUEL") or (vm.trap or "").startswith("call stack exhausted"):
        return None, True  # resource limits differ between engines: says nothing about conformance
    d = compare(vm, wt, case.deterministic)
    if d is None:
        return None, False
    return Divergence("conformance", "wasmtime", d,
                      expected={"results": vm.results, "trap": vm.trap},
                      actual={"results": wt.results, "trap": wt.trap}), False


_LOADED: Dict[str, Any] = {}


def _loaded(case: Case) -> Any:
    """Decode + validate once per module (a trial instantiates it several times), and seed the
    restore-side cache of :mod:`vm.snapshot.checkpoint` with the same (immutable) AST and metadata."""
    from vm.api import load_module
    from vm.snapshot.checkpoint import _MODULE_CACHE, _Loaded

    sha = case.sha256
    lm = _LOADED.get(sha)
    if lm is None:
        if len(_LOADED) > 64:
            _LOADED.clear()
        lm = _LOADED[sha] = load_module(case.wasm)
        if sha not in _MODULE_CACHE:
            _MODULE_CACHE[sha] = _Loaded(lm.module, lm.info)
    return lm


def _fresh(case: Case):
    from vm.api import Store
    from vm.runtime.spectest import spectest_exports

    store = Store()
    lm = _loaded(case)
    if any(imp.module != "spectest" for imp in lm.module.imports):
        inst = instantiate_bytes(store, case.wasm)
    else:
        host = spectest_exports(store)
        inst = store.instantiate(lm.module, lm.info, [host[imp.name] for imp in lm.module.imports], lm.sha256)
    return store, inst, inst.exports[case.export]


def reference(case: Case) -> Tuple[Dict[str, Any], Any]:
    """The uninterrupted run: its outcome dict and the final state of the instance (for targets)."""
    from vm.snapshot.resume import instance_final_state

    store, inst, func = _fresh(case)
    run = start(store, func, case.args)
    advance(store, run, MAX_INSTRUCTIONS)
    if run.status == "running":
        raise TimeoutError(f"no end within {MAX_INSTRUCTIONS} instructions")
    ref = finish(store, run).to_dict()
    return ref, instance_final_state(inst)


def snapshots_at(case: Case, ks: Sequence[int]) -> List[Tuple[int, bytes, Any]]:
    """Checkpoints of one run at each k (increasing): ``(k, bytes, State)``."""
    store, _inst, func = _fresh(case)
    run = start(store, func, case.args)
    out = []
    for k in ks:
        advance(store, run, k)
        st = checkpoint(store, run)
        out.append((k, encode(st), st))
    return out


def _host_finish(host: Any, snap: bytes, modules: Dict[str, bytes], ref: Dict[str, Any], k: int,
                 res: TrialResult) -> None:
    from runners.hosts import HostError

    res.restored(host.name)
    try:
        got = host.restore_and_finish(snap, modules)
    except SnapshotError as e:
        res.divergences.append(Divergence("cr-host", host.name, f"snapshot error: {e}", k, ref, None, snap,
                                          "error"))
        return
    except HostError as e:
        if e.kind == "timeout":
            res.inconclusive += 1
            return
        res.divergences.append(Divergence("cr-host", host.name, str(e), k, ref, None, snap, "error"))
        return
    except Exception as e:  # noqa: BLE001 - a VM crash after restore is a C/R finding
        res.divergences.append(Divergence("cr-host", host.name, f"{type(e).__name__}: {e}", k, ref, None, snap,
                                          "error"))
        return
    diffs = compare_outcomes(ref, got)
    if diffs:
        res.divergences.append(Divergence("cr-host", host.name, "; ".join(diffs), k, ref, got, snap))


def _target_item(snap: bytes, state: Any, modules: Dict[str, bytes], ref: Dict[str, Any], final: Any,
                 k: int, label: str):
    from runners.restore import CheckItem

    if ref.get("trap"):
        ref = dict(ref, trap=trap_kind(ref["trap"]))
    return CheckItem(snap, state, modules, ref, final, label, k)


def trap_kind(message: str) -> str:
    """Our trap message without its detail (``undefined element 2`` → ``undefined element``): traps
    compare by kind against native runtimes, which cannot name the index."""
    from runners.native import TRAP_KINDS

    best = ""
    for kind in TRAP_KINDS:
        if message.startswith(kind) and len(kind) > len(best):
            best = kind
    return best or message


def judge_target_results(pending: Sequence[PendingTarget], results: Sequence[Any], res_by_item: Sequence[TrialResult]
                         ) -> None:
    """Fold batched target results into their trials' :class:`TrialResult` (counts, divergences)."""
    from runners.restore import ERROR, INCONCLUSIVE, MATCH, MISMATCH

    for p, r, res in zip(pending, results, res_by_item):
        if r.status in (MATCH, MISMATCH, ERROR, INCONCLUSIVE):
            res.restored(p.target)
        if r.status == INCONCLUSIVE:
            res.inconclusive += 1
        elif r.status in (MISMATCH, ERROR):
            res.divergences.append(Divergence("cr-target", p.target, r.detail, p.k, p.item.reference, r.outcome,
                                              p.item.snapshot, r.status))
        elif r.status != MATCH:
            res.skipped[f"{p.target}:{r.status}"] = res.skipped.get(f"{p.target}:{r.status}", 0) + 1


def run_trial(case: Case, schedule_fn: Any, hosts: Dict[str, Any], targets: Dict[str, Any],
              batch_targets: bool = False, only: Optional[Tuple[str, str]] = None) -> Tuple[TrialResult, Optional[Schedule]]:
    """Run one trial.  ``schedule_fn(total) -> Schedule`` draws the schedule once the instruction total
    is known (a Hypothesis draw in a campaign, a fixed schedule on replay).  ``hosts``: name →
    :class:`runners.hosts.Host` (:func:`make_hosts`); ``targets``: name → restorer.  With ``batch_targets`` the target checks
    are returned in ``pending`` instead of run.  ``only``: a divergence signature to look for (skips
    the conformance run unless it is that kind)."""
    t0 = time.perf_counter()
    res = TrialResult()
    if only is None or only[0] == "conformance":
        div, inconc = differential(case)
        if inconc:
            res.inconclusive += 1
            res.seconds = time.perf_counter() - t0
            return res, None
        if div is not None:
            res.divergences.append(div)
        if only is not None:
            res.seconds = time.perf_counter() - t0
            return res, None
    try:
        ref, final = reference(case)
    except TimeoutError:
        res.inconclusive += 1
        return res, None
    res.reference = ref
    total = ref["instructions"]
    res.total = total
    sched: Schedule = schedule_fn(total)
    modules = {case.sha256: case.wasm}
    to_targets: List[Tuple[int, bytes, Any]] = []
    if sched.shape in ("single", "multi"):
        snaps = snapshots_at(case, sched.ks)
        res.checkpoints += len(snaps)
        for k, snap, _st in snaps:
            for h in sched.hosts:
                if h in hosts and (only is None or only == ("cr-host", h)):
                    _host_finish(hosts[h], snap, modules, ref, k, res)
        to_targets = snaps[:1]  # targets are the expensive part: one checkpoint per trial
    else:
        snap = None
        k0 = 0
        if sched.start == "inproc" or sched.start not in hosts:
            (k0, snap, st), = snapshots_at(case, sched.ks[:1] or (0,))
        else:
            (k0, snap, st), = snapshots_at(case, (0,))
            snap = _step(hosts[sched.start], snap, modules, sched.ks[0], ref, res)
            if snap is None:
                res.seconds = time.perf_counter() - t0
                return res, sched
        res.checkpoints += 1
        for i, (k, h) in enumerate(zip(sched.ks, sched.hosts)):
            host = hosts[h]
            if i + 1 < len(sched.ks):
                snap = _step(host, snap, modules, sched.ks[i + 1], ref, res)
                if snap is None:
                    break
                res.checkpoints += 1
            else:
                _host_finish(host, snap, modules, ref, k, res)
                from vm.snapshot import decode

                to_targets = [(k, snap, decode(snap))]
    for name in sched.targets:
        if name not in targets or (only is not None and only != ("cr-target", name)):
            continue
        for k, snap, st in to_targets:
            item = _target_item(snap, st, modules, ref, final, k, f"{case.generator}:{case.sha256[:12]}@{k}")
            p = PendingTarget(name, item, k)
            if batch_targets:
                res.pending.append(p)
            else:
                judge_target_results([p], targets[name].check_many([item]), [res])
    res.seconds = time.perf_counter() - t0
    return res, sched


def _step(host: Any, snap: bytes, modules: Dict[str, bytes], k: int, ref: Dict[str, Any],
          res: TrialResult) -> Optional[bytes]:
    """One chain hop on ``host``: restore, run to k, checkpoint.  None (and a divergence) on failure."""
    from runners.hosts import HostError

    res.restored(host.name)
    try:
        return host.step(snap, modules, k)
    except HostError as e:
        if e.kind == "timeout":
            res.inconclusive += 1
            return None
        detail = str(e)
    except Exception as e:  # noqa: BLE001 - SnapshotError or a VM crash: a finding
        detail = f"{type(e).__name__}: {e}"
    res.divergences.append(Divergence("cr-host", host.name, detail, k, ref, None, snap, "error"))
    return None
