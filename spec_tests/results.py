"""What a spec run produces: one :class:`CaseResult` per script command, one :class:`FileResult` per
file.  Plain data shared by the runner, its C/R mode and the reports (a file of its own so that none of
them imports another to reach it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


@dataclass
class CaseResult:
    """The outcome of one script command."""

    file: str
    line: int
    command: str
    name: str
    status: str
    message: str = ""
    expected: str = ""
    actual: str = ""
    traceback: str = ""
    feature: str = ""
    elapsed: float = 0.0
    stopped: str = ""  # the stop kind (vm.errors.STOP_KINDS) when a limit made the command fail

    def to_dict(self) -> Dict[str, Any]:
        d = {"file": self.file, "line": self.line, "command": self.command, "name": self.name,
             "status": self.status, "message": self.message, "expected": self.expected,
             "actual": self.actual}
        if self.traceback:
            d["traceback"] = self.traceback
        if self.feature:
            d["feature"] = self.feature
        if self.stopped:
            d["stopped"] = self.stopped
        return d


@dataclass
class FileResult:
    file: str
    cases: List[CaseResult] = field(default_factory=list)
    elapsed: float = 0.0
    instructions: int = 0
    cr: Optional[Dict[str, Any]] = None  # C/R counts of this file (``--cr`` mode only)

    def count(self, status: str) -> int:
        return sum(1 for c in self.cases if c.status == status)

    @property
    def passed(self) -> int:
        return self.count(PASSED)

    @property
    def failed(self) -> int:
        return self.count(FAILED)

    @property
    def skipped(self) -> int:
        return self.count(SKIPPED)
