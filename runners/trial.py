"""One C/R trial: a case → conformance run (VM vs wasmtime, nothing converted) → uninterrupted reference →
checkpoint schedule → restores on hosts and targets → the oracle.  The fuzz campaign runs trials, bug
reports replay them; the checkpoints, restores and verdicts come from :mod:`runners.session`.

Data here is plain (bytes, ints, strings), so a trial can be logged as JSON, rebuilt from a YAML bug
report and replayed.  The pieces:

* :class:`Case` — module bytes, export, arguments (runtime values), where it came from;
* :class:`vm.snapshot.schedule.Schedule` — ``single``, ``multi``, ``exhaustive`` or ``chain``, plus the
  native targets.  Every checkpoint of a single/multi/exhaustive schedule, k = total (the finished or
  trapped run) included, goes to every host *and* every target (targets batched); a chain's hops run
  on our hosts (restore, run, re-checkpoint) and its final snapshot goes to the targets as well;
* :class:`Divergence` — kind (``conformance``: VM vs wasmtime without C/R; ``cr-host``: one of our
  hosts differs from the uninterrupted run; ``cr-target``: a native target does; ``oracle``: the
  oracle's self-probe found it blind to a changed field), where, k, detail, expected/actual, the
  snapshot;
* :func:`run_trial` — everything above, with target checks either run at once or handed back as
  :class:`PendingTarget` items for a batched ``check_many`` (:func:`judge_target_results`).

The oracle (:mod:`runners.oracle`): hosts bit-exactly (results, trap, instruction count, host log,
final-state digest) through :class:`runners.restore.HostRestorer`; targets by their restorer (the NaN
and trap-candidate rules); the conformance run by :func:`runners.oracle.compare_conformance`.  Inconclusive outcomes (native stack overflow,
OOM, a limit that stopped the uninterrupted run) are counted apart, never as passes or divergences.
**RunLimits** (:class:`vm.exec.budget.RunLimits`, ``wcr fuzz --fuel/--timeout``) are per trial: the fuel bounds
every run of the trial (the conformance run, the reference, each restore), the clock the whole trial; a
trial whose reference is stopped, or whose clock runs out, is inconclusive with the reason.  A *restore*
that does not end is a divergence: every host restore's fuel is at most
:func:`runners.hosts.instruction_cap` of the reference, and a restore stopped past the reference's total
has diverged (:func:`runners.oracle.compare_stopped`), so a corrupted loop counter ends as a finding that
replays, never as a stuck campaign.

The oracle checks itself too (:func:`oracle_probe`): each trial hands it the reference outcome with one
field changed at a time, and a comparison that does not notice is an ``oracle`` divergence — an oracle
that went blind to the host log would otherwise pass every trial silently.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from vm.errors import FUEL_EXHAUSTED, TIMEOUT, Stopped, stop_message, trap_kind
from vm.exec.budget import Budget, RunLimits
from vm.runtime.wasi import WasiConfig
from vm.snapshot import decode
from vm.snapshot.coverage import live_kinds
from vm.snapshot.schedule import Schedule
from vm.values import format_value

from .conformance import BudgetExceeded, run_vm, run_wasmtime
from .oracle import compare_conformance, compare_outcomes, relaxed_simd_verdict
from .restore import (
    ERROR,
    INCONCLUSIVE,
    MATCH,
    MISMATCH,
    NONCONFORMANT,
    CheckItem,
    CheckResult,
    HostRestorer,
    Origin,
    origin_of,
)
from .session import checkpoints_of_run, fresh_instance, reference_run

#: hard ceiling of an uninterrupted run (a generator bug if reached: programs must terminate): the
#: default fuel of a trial
MAX_INSTRUCTIONS = 2_000_000
#: a trial's limits unless the campaign says otherwise (``wcr fuzz --fuel/--timeout``)
DEFAULT_LIMITS = RunLimits(MAX_INSTRUCTIONS, None)
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
    #: a WASI program's start configuration, JSON-able (``args``, ``env`` pairs, ``dirs`` (guest path,
    #: host directory or None) pairs, ``seed``; our generator's: ``generators.wasi.WASI_CONFIG``): every
    #: fresh run of the case starts a WASI state from it (:func:`wasi_config`)
    wasi: Optional[Dict[str, Any]] = None

    @property
    def sha256(self) -> str:
        import hashlib

        return hashlib.sha256(self.wasm).hexdigest()

    def key(self) -> Tuple[Any, ...]:
        return (self.wasm, self.export, tuple(self.args))


def wasi_config(wasi: Optional[Dict[str, Any]]) -> Optional[WasiConfig]:
    """A case's WASI start configuration as a :class:`vm.runtime.wasi.WasiConfig` (virtual clock)."""
    if wasi is None:
        return None
    return WasiConfig(args=[str(a) for a in wasi.get("args", [])],
                      env=[(str(k), str(v)) for k, v in wasi.get("env", [])],
                      dirs=[(str(g), None if h is None else str(h)) for g, h in wasi.get("dirs", [])],
                      seed=int(wasi.get("seed", 0)))


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
    item: CheckItem
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
    #: per checkpoint: (k, live state kinds and control shapes (vm.snapshot.coverage), hosts restored on)
    coverage: List[Tuple[int, Any, Tuple[str, ...]]] = field(default_factory=list)
    #: where and what, for every verdict that is neither a pass nor a divergence (inconclusive,
    #: target-nonconformant): counted is not enough, a person must be able to look
    notes: List[Dict[str, Any]] = field(default_factory=list)

    def restored(self, where: str, n: int = 1) -> None:
        self.restores[where] = self.restores.get(where, 0) + n

    def note(self, where: str, status: str, detail: str, k: Optional[int] = None, at: str = "",
             own: str = "", stopped: str = "") -> None:
        n: Dict[str, Any] = {"where": where, "status": status, "k": k, "at": at, "detail": detail[:500]}
        if own:
            n["uninterrupted_difference"] = own[:500]
        if stopped:  # the stop kind (vm.errors.STOP_KINDS) when a limit made it inconclusive
            n["stopped"] = stopped
        self.notes.append(n)


# -- the pieces ------------------------------------------------------------------------------------------
def differential(case: Case, fuel: Optional[int] = None) -> Tuple[Optional[Divergence], str]:
    """VM vs wasmtime on the unmodified module: ``(divergence or None, why it is inconclusive or "")``."""
    export = case.diff_export or case.export
    args = case.diff_args if case.diff_args is not None else case.args
    fuel = MAX_INSTRUCTIONS if fuel is None else fuel
    try:
        vm = run_vm(case.wasm, export, args, max_instructions=fuel, wasi=wasi_config(case.wasi))
    except BudgetExceeded:
        return None, f"our VM: {stop_message(FUEL_EXHAUSTED, fuel)}"
    wt = run_wasmtime(case.wasm, export, args, wasi=wasi_config(case.wasi))
    # resource limits differ between engines: says nothing about conformance
    if wt.inconclusive:
        return None, wt.inconclusive
    if (vm.trap or "").startswith("call stack exhausted"):
        return None, "our VM: call stack exhausted"
    d = compare_conformance(vm, wt, case.deterministic)
    if d is None:
        return None, ""
    if _has_relaxed_simd(case.wasm):  # wasmtime may pick another allowed relaxed result
        return None, relaxed_simd_verdict("mismatch", [d], True)[1][0]

    def shown(o: Any) -> Dict[str, Any]:
        return {"results": None if o.results is None else [format_value(v) for v in o.results], "trap": o.trap,
                **({"wasi": o.wasi} if o.wasi is not None else {})}

    return Divergence("conformance", "wasmtime", d, expected=shown(vm), actual=shown(wt)), ""


def _has_relaxed_simd(wasm: bytes) -> bool:
    from vm.binary.decode import decode_module

    from .native.features import module_features

    return "relaxed-simd" in module_features(decode_module(wasm))


def reference(case: Case, budget: Optional[Budget] = None) -> Tuple[Dict[str, Any], Any]:
    """The uninterrupted run: its outcome dict and the final state of the instance (for targets).
    :class:`vm.errors.Stopped` when ``budget`` (default: :data:`MAX_INSTRUCTIONS` of fuel) stopped it."""
    ref = reference_run(case.wasm, case.export, case.args, budget or DEFAULT_LIMITS.start(), wasi_config(case.wasi))
    return ref.outcome, ref.final_state


def snapshots_at(case: Case, ks: Sequence[int]) -> List[Tuple[int, bytes, Any]]:
    """Checkpoints of one run at each k (increasing): ``(k, bytes, State)``."""
    return list(checkpoints_of_run(case.wasm, case.export, case.args, ks, wasi_config(case.wasi)))


def _host_finish(host: Any, snap: bytes, modules: Dict[str, bytes], ref: Dict[str, Any], k: int,
                 res: TrialResult, budget: Optional[Budget] = None) -> None:
    """Restore on one of our hosts and judge it (bit-exact, :class:`runners.restore.HostRestorer`),
    within the trial's fuel and what is left of its clock."""
    res.restored(host.name)
    fuel, left = (None, None) if budget is None else (budget.fuel, budget.left())
    r: CheckResult = HostRestorer(host, fuel, left).check(CheckItem(snap, None, modules, ref, None, "", k))
    if r.status == INCONCLUSIVE and r.detail.startswith("timeout"):
        # the host gave no answer within HOST_TIMEOUT (its run is capped far below that): a hang is a
        # finding about the restore, not a resource accident
        res.divergences.append(Divergence("cr-host", host.name, f"no answer within {HOST_TIMEOUT:g} s: {r.detail}",
                                          k, ref, None, snap, ERROR))
    elif r.status == INCONCLUSIVE:
        res.inconclusive += 1
        res.note(host.name, r.status, r.detail, k, stopped=(r.outcome or {}).get("stopped") or "")
    elif r.status != MATCH:
        res.divergences.append(Divergence("cr-host", host.name, r.detail, k, ref, r.outcome, snap, r.status))


def oracle_probe(ref: Dict[str, Any]) -> List[str]:
    """The outcome fields the host oracle would not notice a change in (empty: it sees them all).  Each
    probe is the reference with exactly one field changed the way a broken restore would change it."""
    log = list(ref.get("host_log") or [])
    results = list(ref.get("results") or [])
    probes = {
        "results": dict(ref, results=results[:-1] if results else ["i32:0"]),
        "trap": dict(ref, trap=None if ref.get("trap") else "unreachable"),
        "instructions": dict(ref, instructions=int(ref.get("instructions") or 0) + 1),
        "host_log": dict(ref, host_log=log[:-1] if log else [["print_i32", ["i32:0"]]]),
        "state_digest": dict(ref, state_digest="sha256:" + ("0" if str(ref.get("state_digest", "")).endswith("1")
                                                           else "1") * 64),
    }
    if isinstance(ref.get("wasi"), dict):  # a WASI program: its exit code, output and files are compared too
        w = ref["wasi"]
        probes["wasi"] = dict(ref, wasi=dict(w, exit_code=1 if w.get("exit_code") is None else None))
    return [f for f, changed in probes.items() if not compare_outcomes(ref, changed)]


def _target_item(snap: bytes, state: Any, modules: Dict[str, bytes], ref: Dict[str, Any], final: Any,
                 k: int, label: str, origin: Optional[Origin] = None) -> CheckItem:
    if ref.get("trap"):  # traps compare by kind against native runtimes (they cannot name the index)
        ref = dict(ref, trap=trap_kind(ref["trap"]) or ref["trap"])
    return CheckItem(snap, state, modules, ref, final, label, k, origin=origin)


def _origin(case: Case) -> Optional[Origin]:
    """The blame baseline of a trial: its invocation on a fresh instance, which a target can re-run
    from scratch with nothing of ours converted (None when it cannot, e.g. a start function printed)."""
    config = wasi_config(case.wasi)
    store, _inst, func = fresh_instance(case.wasm, case.export, wasi=config)
    return origin_of(store, func, case.args, case.wasm, config)[0]


def judge_target_results(pending: Sequence[PendingTarget], results: Sequence[Any], res_by_item: Sequence[TrialResult]
                         ) -> None:
    """Fold batched target results into their trials' :class:`TrialResult` (counts, divergences)."""
    for p, r, res in zip(pending, results, res_by_item):
        if r.status in (MATCH, MISMATCH, ERROR, INCONCLUSIVE):
            res.restored(p.target)
        if r.status == INCONCLUSIVE:
            res.inconclusive += 1
            res.note(p.target, r.status, r.detail, p.k, p.item.label)
        elif r.status in (MISMATCH, ERROR):
            res.divergences.append(Divergence("cr-target", p.target, r.detail, p.k, p.item.reference, r.outcome,
                                              p.item.snapshot, r.status))
        elif r.status != MATCH:
            res.skipped[f"{p.target}:{r.status}"] = res.skipped.get(f"{p.target}:{r.status}", 0) + 1
            if r.status == NONCONFORMANT:  # the target's own deviation, with its own difference
                res.note(p.target, r.status, r.detail, p.k, p.item.label, str(r.extra.get("baseline", "")))


def run_trial(case: Case, schedule_fn: Any, hosts: Dict[str, Any], targets: Dict[str, Any],
              batch_targets: bool = False, only: Optional[Tuple[str, str]] = None,
              limits: RunLimits = DEFAULT_LIMITS) -> Tuple[TrialResult, Optional[Schedule]]:
    """Run one trial.  ``schedule_fn(total) -> Schedule`` draws the schedule once the instruction total
    is known (a Hypothesis draw in a campaign, a fixed schedule on replay).  ``hosts``: name →
    :class:`runners.hosts.Host` (:func:`make_hosts`); ``targets``: name → restorer.  With ``batch_targets`` the target checks
    are returned in ``pending`` instead of run.  ``only``: a divergence signature to look for (skips
    the conformance run unless it is that kind).  ``limits``: the trial's fuel and wall time (see the
    module docstring)."""
    t0 = time.perf_counter()
    res = TrialResult()
    budget = Budget(MAX_INSTRUCTIONS if limits.fuel is None else limits.fuel, limits.seconds)
    if only is None or only[0] == "conformance":
        div, inconc = differential(case, budget.fuel)
        if inconc:
            res.inconclusive += 1
            res.note("wasmtime", INCONCLUSIVE, inconc, at="conformance run",
                     stopped=FUEL_EXHAUSTED if inconc.startswith(f"our VM: {FUEL_EXHAUSTED}") else "")
            res.seconds = time.perf_counter() - t0
            return res, None
        if div is not None:
            res.divergences.append(div)
        if only is not None:
            res.seconds = time.perf_counter() - t0
            return res, None
    try:
        ref, final = reference(case, budget)
    except Stopped as e:
        res.inconclusive += 1
        res.note("inproc", INCONCLUSIVE, str(e), at="reference run", stopped=e.kind)
        res.seconds = time.perf_counter() - t0
        return res, None
    res.reference = ref
    total = ref["instructions"]
    res.total = total
    if only is None or only[0] == "oracle":
        blind = oracle_probe(ref)
        if blind:
            res.divergences.append(Divergence("oracle", "oracle", "the host oracle does not notice a changed "
                                              + ", ".join(blind), None, ref, {"blind_to": blind}))
        if only is not None:
            res.seconds = time.perf_counter() - t0
            return res, schedule_fn(total) if schedule_fn is not None else None
    sched: Schedule = schedule_fn(total)
    modules = {case.sha256: case.wasm}
    to_targets: List[Tuple[int, bytes, Any]] = []
    if sched.shape != "chain":  # single, multi, exhaustive: every checkpoint everywhere
        snaps = snapshots_at(case, sched.ks)
        res.checkpoints += len(snaps)
        res.coverage += [(k, live_kinds(s, modules, ref), tuple(h for h in sched.hosts if h in hosts))
                         for k, _, s in snaps]
        for k, snap, _st in snaps:
            if _out_of_time(budget, res, k):
                break
            for h in sched.hosts:
                if h in hosts and (only is None or only == ("cr-host", h)):
                    _host_finish(hosts[h], snap, modules, ref, k, res, budget)
        to_targets = snaps  # k = total included; batched per chunk by the campaign
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
                _host_finish(host, snap, modules, ref, k, res, budget)
                to_targets = [(k, snap, decode(snap))]
                res.coverage.append((k, live_kinds(to_targets[0][2], modules, ref), (host.name,)))
    origin = _origin(case) if sched.targets and to_targets else None
    for name in sched.targets:
        if name not in targets or (only is not None and only != ("cr-target", name)):
            continue
        for k, snap, st in to_targets:
            item = _target_item(snap, st, modules, ref, final, k, f"{case.generator}:{case.sha256[:12]}@{k}", origin)
            p = PendingTarget(name, item, k)
            if batch_targets:
                res.pending.append(p)
            else:
                judge_target_results([p], targets[name].check_many([item]), [res])
    res.seconds = time.perf_counter() - t0
    return res, sched


def _out_of_time(budget: Budget, res: TrialResult, k: int) -> bool:
    """True (and the trial counted inconclusive once, with the reason) when the trial's clock has run
    out: the checkpoints not yet restored are left unchecked rather than restored with no time."""
    if not budget.expired():
        return False
    res.inconclusive += 1
    res.note("trial", INCONCLUSIVE, f"timeout after {budget.seconds:g} s: checkpoints from k={k} on not restored", k,
             stopped=TIMEOUT)
    return True


def _step(host: Any, snap: bytes, modules: Dict[str, bytes], k: int, ref: Dict[str, Any],
          res: TrialResult) -> Optional[bytes]:
    """One chain hop on ``host``: restore, run to k, checkpoint.  None (and a divergence) on failure.

    The new snapshot must stand exactly at k (or at the end, for a k past it): a hop that stops
    elsewhere gives the same final outcome — the run is deterministic — so only this check sees it, and
    a checkpoint that is not where it was asked for breaks every "stop at instruction k" promise."""
    from runners.hosts import HostError

    res.restored(host.name)
    try:
        out = host.step(snap, modules, k)
        st = decode(out)
        want = min(k, int(ref["instructions"]))
        got = st.thread.count if st.thread is not None else None
        if got == want:
            return out
        detail = f"step to k={k} returned a checkpoint at {got} (expected {want})"
    except HostError as e:
        detail = f"no answer within {HOST_TIMEOUT:g} s: {e}" if e.kind == "timeout" else str(e)
    except Exception as e:  # noqa: BLE001 - SnapshotError or a VM crash: a finding
        detail = f"{type(e).__name__}: {e}"
    res.divergences.append(Divergence("cr-host", host.name, detail, k, ref, None, snap, "error"))
    return None
