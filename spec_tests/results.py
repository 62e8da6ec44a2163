"""What a spec run produces: one :class:`CaseResult` per script command, one :class:`FileResult` per
file.  Plain data shared by the runner, its C/R mode and the reports (a file of its own so that none of
them imports another to reach it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
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

    def to_state(self) -> Dict[str, Any]:
        """Everything of this result as JSON data (``wcr spec``'s state file: :func:`from_state` reads it
        back exactly, so a resumed run reports a finished file as if it had just run it)."""
        return asdict(self)

    @property
    def passed(self) -> int:
        return self.count(PASSED)

    @property
    def failed(self) -> int:
        return self.count(FAILED)

    @property
    def skipped(self) -> int:
        return self.count(SKIPPED)


_TYPES = {"str": str, "int": int, "float": (int, float)}


def _checked(cls: Any, d: Any, where: str) -> Dict[str, Any]:
    """``d``'s fields of dataclass ``cls`` whose annotation is str/int/float, type-checked."""
    if not isinstance(d, dict):
        raise ValueError(f"{where}: not an object")
    out = {}
    for f in fields(cls):
        want = _TYPES.get(str(f.type))
        if f.name in d and want is not None:
            v = d[f.name]
            if not isinstance(v, want) or isinstance(v, bool):
                raise ValueError(f"{where}: field {f.name!r} is not {f.type}")
            out[f.name] = v
    return out


def from_state(d: Any) -> FileResult:
    """The inverse of :meth:`FileResult.to_state`.  The data comes from a file (a state file can be cut,
    edited or from another version), so every field is checked: :class:`ValueError` names the bad one."""
    head = _checked(FileResult, d, "file result")
    if "file" not in head:
        raise ValueError("file result: no 'file'")
    cases = d.get("cases", [])
    cr = d.get("cr")
    if not isinstance(cases, list) or not (cr is None or isinstance(cr, dict)):
        raise ValueError(f"{head['file']}: 'cases' must be a list and 'cr' an object or null")
    out = FileResult(**head, cr=cr)
    for i, c in enumerate(cases):
        args = _checked(CaseResult, c, f"{head['file']}: case {i}")
        missing = [k for k in ("file", "line", "command", "name", "status") if k not in args]
        if missing or args["status"] not in (PASSED, FAILED, SKIPPED):
            raise ValueError(f"{head['file']}: case {i}: missing {missing} or unknown status")
        out.cases.append(CaseResult(**args))
    return out
