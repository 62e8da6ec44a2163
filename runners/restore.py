"""Where a checkpoint can be resumed: the one interface the spec runner, the CLI and the fuzzer use.

A *restorer* is either a **host** (our VM in this process or in another Python interpreter; compared
bit-exactly, instruction count and state digest included) or a **target** (a native runtime that runs a
resume module; compared with the native-runtime rules of ARCHITECTURE.md).  Both answer the same
question for a batch of checkpoints: "resumed there, do you get what the uninterrupted run got?"

Checks are batched (``check_many``) because some targets are expensive per call (a node process, a gcc
compile): a target may amortise that over a whole batch.  Callers should hand over all the checkpoints
of one spec file (or one fuzzing round) at once.

Hosts live in :mod:`runners.hosts`; targets in :mod:`runners.native` (their restorer adapter is
``runners.native.restorer``); :func:`runners.session.resolve` turns a ``--restore-on`` list into
restorers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from vm.snapshot.model import SnapshotError
from vm.values import Value

from .oracle import compare_outcomes, compare_stopped

MATCH = "match"
MISMATCH = "mismatch"
NOT_APPLICABLE = "not-applicable"  # the target lacks a feature the module needs
NOT_CONVERTIBLE = "not-convertible"  # the snapshot cannot be turned into a resume module
INCONCLUSIVE = "inconclusive"  # native stack overflow, OOM, timeout: neither pass nor divergence
ERROR = "error"  # the host crashed / protocol failure: a finding, counted as a mismatch
# A target diverged at k, and running the *original* module's invocation from the start (no snapshot,
# nothing converted by us) it also disagrees with our VM: the target does not conform to the spec on
# this code, a finding about the target, not a checkpoint/restore divergence.  (A resume module of the
# k=0 snapshot is not a baseline: it goes through the same converter, so a converter bug in the store
# part would be blamed on the target.)
NONCONFORMANT = "target-nonconformant"
STATUSES = (MATCH, MISMATCH, NOT_APPLICABLE, NOT_CONVERTIBLE, INCONCLUSIVE, ERROR, NONCONFORMANT)


@dataclass
class Origin:
    """The original invocation, as a target runs it for the blame baseline: module bytes, export,
    arguments (tagged values: numbers and ``ref.null`` only), and ``log_start``, the number of host-log
    entries of the reference that were printed before the invocation (the from-scratch run prints only
    the rest).  Only made when the invoked instance's state before the invocation equals a fresh
    instantiation (:func:`origin_of`); otherwise a from-scratch run answers another question."""

    wasm: bytes
    export: str
    args: List[Value]
    log_start: int = 0
    #: a WASI program's :class:`vm.runtime.wasi.WasiConfig`: the target runs it under its own WASI in a
    #: fresh sandbox made from it (:func:`vm.snapshot.resume.wasi_part.fresh_run`); None: not WASI
    wasi: Any = None


def origin_of(store: Any, func: Any, args: Sequence[Any], wasm: Optional[bytes], wasi: Any = None
              ) -> Tuple[Optional[Origin], str]:
    """``(Origin, "")`` when ``func(*args)`` (runtime values), about to run in ``store``, can be re-run
    from scratch by a target as the blame baseline, else ``(None, why not)``.  The test: ``func`` is an
    export of an instance that imports only ``spectest``, the arguments are constants, and the
    instance's state (memories, tables, globals, dropped flags — imported spectest objects included) has
    the same live-walk digest (:func:`vm.snapshot.digest.instance_digest`) as a fresh instantiation of
    ``wasm`` whose instantiation printed nothing.  A WASI program (``wasi``: the
    :class:`vm.runtime.wasi.WasiConfig` it was started with, ``store.wasi`` still as started) may import
    ``wasi_snapshot_preview1`` too; its Origin carries the config.  Per instance, not per store: a spec script's store
    holds every module instantiated so far, and those the invocation cannot reach do not matter."""
    from vm.api import Store, instantiate, load_module
    from vm.snapshot.digest import instance_digest
    from vm.values import NUM_BITS, from_runtime

    inst = getattr(func, "module", None)
    if wasm is None or inst is None or getattr(func, "host", None) is not None:
        return None, "no module bytes for the invoked function"
    export = next((n for n, x in inst.exports.items() if x is func), None)
    if export is None:
        return None, "the invoked function is not exported"
    allowed = ("spectest", "wasi_snapshot_preview1") if wasi is not None else ("spectest",)
    if any(imp.module not in allowed for imp in inst.module.imports):
        return None, "the instance imports from other modules"
    try:
        tagged = [from_runtime(t, x) for t, x in zip(func.type.params, args)]
    except ValueError as exc:
        return None, f"argument: {exc}"
    if any(tag not in NUM_BITS and tag != "ref.null" for tag, _ in tagged):
        return None, "an argument has no constant (a host reference)"
    try:
        fresh = Store()
        if wasi is not None:
            from vm.runtime.wasi import WasiState

            fresh.wasi = WasiState.start(wasi, fresh.limits)
        fresh_inst = instantiate(fresh, load_module(wasm))
    except Exception as exc:  # noqa: BLE001 - no fresh instance, no baseline
        return None, f"fresh instantiation failed: {exc}"
    if fresh.host_log:
        return None, "instantiation prints"
    if instance_digest(fresh_inst) != instance_digest(inst):
        return None, "the instance's state before the invocation differs from a fresh instantiation"
    if wasi is not None and _wasi_view(store.wasi) != _wasi_view(fresh.wasi):
        return None, "the WASI state before the invocation differs from a fresh start"
    return Origin(bytes(wasm), export, tagged, len(store.host_log), wasi), ""


def _wasi_view(ws: Any) -> Any:
    """What a from-scratch WASI run must start from: output so far, fd table, files (None: no WASI)."""
    if ws is None:
        return None
    return (bytes(ws.stdout), bytes(ws.stderr), sorted((n, repr(e)) for n, e in ws.fds.items()), ws.fs.digest(),
            ws.exit_code)


@dataclass
class CheckItem:
    """One checkpoint to verify.

    ``snapshot``: encoded snapshot bytes; ``state``: the decoded :class:`vm.snapshot.model.State` (saves
    targets a decode); ``modules``: sha256 hex → module bytes for every instance in the snapshot;
    ``reference``: the uninterrupted run's outcome dict (:meth:`vm.snapshot.Outcome.to_dict`:
    results, trap, instructions, host_log, state_digest); ``final_state``: for targets, the final memories,
    globals and tables of the instance the thread runs in, as produced by
    :func:`vm.snapshot.resume.instance_final_state` on the reference store (hosts ignore it);
    ``label``: where it came from (``"i32.wast:37"``), for reports; ``origin``: the original invocation
    (:class:`Origin`, made by :func:`origin_of`) when running it from scratch on the target is a valid
    baseline — only then can a target mismatch be blamed on the target (status
    ``target-nonconformant``); None: a mismatch stays a C/R mismatch.
    """

    snapshot: bytes
    state: Any
    modules: Dict[str, bytes]
    reference: Dict[str, Any]
    final_state: Any = None
    label: str = ""
    k: int = 0
    origin: Optional[Origin] = None


@dataclass
class CheckResult:
    where: str
    status: str
    detail: str = ""  # first difference, reason, or error text
    outcome: Optional[Dict[str, Any]] = None
    extra: Dict[str, Any] = field(default_factory=dict)


class Restorer:
    """Base class: ``name`` as given on the command line, ``kind`` ``"host"`` or ``"target"``."""

    name = "?"
    kind = "host"

    def available(self) -> Tuple[bool, str]:
        return True, ""

    def check_many(self, items: Sequence[CheckItem]) -> List[CheckResult]:
        return [self.check(it) for it in items]

    def check(self, item: CheckItem) -> CheckResult:
        raise NotImplementedError


class HostRestorer(Restorer):
    """A Python host (``runners.hosts``): restore, finish, compare everything bit-exactly.  ``fuel`` and
    ``seconds`` are the user's limits of one restore (``--fuel``/``--timeout``); the fuel actually given
    is the smaller of that and :func:`runners.hosts.instruction_cap` of the reference.  A stopped run on
    either side is judged by :func:`runners.oracle.compare_stopped` (inconclusive, or a mismatch when the
    restore ran past the reference's total)."""

    kind = "host"

    def __init__(self, host: Any, fuel: Optional[int] = None, seconds: Optional[float] = None):
        self.host = host
        self.name = host.name
        self.fuel = fuel
        self.seconds = seconds

    def available(self) -> Tuple[bool, str]:
        return self.host.available()

    def check(self, item: CheckItem) -> CheckResult:
        from .hosts import instruction_cap  # the cap of every host restore: see runners.hosts

        cap = instruction_cap(item.reference)
        fuel = self.fuel if cap is None else cap if self.fuel is None else min(cap, self.fuel)
        try:
            got = self.host.restore_and_finish(item.snapshot, item.modules, fuel, self.seconds)
        except SnapshotError as e:
            return CheckResult(self.name, ERROR, f"snapshot error: {e}")
        except Exception as e:  # HostError (crash/timeout/protocol) and anything else is a finding
            kind = getattr(e, "kind", "error")
            status = INCONCLUSIVE if kind == "timeout" else ERROR
            return CheckResult(self.name, status, f"{kind}: {e}")
        stopped = compare_stopped(item.reference, got)
        if stopped is not None:
            return CheckResult(self.name, stopped[0], stopped[1], got)
        diffs = compare_outcomes(item.reference, got)
        if diffs:
            return CheckResult(self.name, MISMATCH, "; ".join(diffs), got)
        return CheckResult(self.name, MATCH, "", got)

    def close(self) -> None:
        self.host.close()
