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

from .oracle import compare_outcomes

MATCH = "match"
MISMATCH = "mismatch"
NOT_APPLICABLE = "not-applicable"  # the target lacks a feature the module needs
NOT_CONVERTIBLE = "not-convertible"  # the snapshot cannot be turned into a resume module
INCONCLUSIVE = "inconclusive"  # native stack overflow, OOM, timeout: neither pass nor divergence
ERROR = "error"  # the host crashed / protocol failure: a finding, counted as a mismatch
# A target diverged at k, and it diverges the same way when resumed at k=0 (the whole invocation run by
# the target, no mid-execution state involved): the target does not conform to the spec on this code,
# which is a conformance finding about the target, not a checkpoint/restore divergence.
NONCONFORMANT = "target-nonconformant"
STATUSES = (MATCH, MISMATCH, NOT_APPLICABLE, NOT_CONVERTIBLE, INCONCLUSIVE, ERROR, NONCONFORMANT)


@dataclass
class CheckItem:
    """One checkpoint to verify.

    ``snapshot``: encoded snapshot bytes; ``state``: the decoded :class:`vm.snapshot.model.State` (saves
    targets a decode); ``modules``: sha256 hex → module bytes for every instance in the snapshot;
    ``reference``: the uninterrupted run's outcome dict (:meth:`vm.snapshot.Outcome.to_dict`:
    results, trap, instructions, host_log, state_digest); ``final_state``: for targets, the final memories,
    globals and tables of the instance the thread runs in, as produced by
    :func:`vm.snapshot.resume.instance_final_state` on the reference store (hosts ignore it);
    ``label``: where it came from (``"i32.wast:37"``), for reports; ``baseline``: the snapshot of the
    same invocation before its first instruction (k=0), which lets a target tell a C/R divergence from
    its own non-conformance (status ``target-nonconformant``).
    """

    snapshot: bytes
    state: Any
    modules: Dict[str, bytes]
    reference: Dict[str, Any]
    final_state: Any = None
    label: str = ""
    k: int = 0
    baseline: Optional[bytes] = None


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
    """A Python host (``runners.hosts``): restore, finish, compare everything bit-exactly."""

    kind = "host"

    def __init__(self, host: Any):
        self.host = host
        self.name = host.name

    def available(self) -> Tuple[bool, str]:
        return self.host.available()

    def check(self, item: CheckItem) -> CheckResult:
        try:
            got = self.host.restore_and_finish(item.snapshot, item.modules)
        except SnapshotError as e:
            return CheckResult(self.name, ERROR, f"snapshot error: {e}")
        except Exception as e:  # HostError (crash/timeout/protocol) and anything else is a finding
            kind = getattr(e, "kind", "error")
            status = INCONCLUSIVE if kind == "timeout" else ERROR
            return CheckResult(self.name, status, f"{kind}: {e}")
        diffs = compare_outcomes(item.reference, got)
        if diffs:
            return CheckResult(self.name, MISMATCH, "; ".join(diffs), got)
        return CheckResult(self.name, MATCH, "", got)

    def close(self) -> None:
        self.host.close()
