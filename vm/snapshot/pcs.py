"""Where a frame is, in both directions: the engine's pc (an index into the decoded body) ⇄ the
portable byte offset a snapshot stores, and what the validator recorded at a pc (operand types, the
label stack).  Capture converts with these and restore checks with the same functions, so the two can
never disagree about a frame.
"""

from __future__ import annotations

import bisect
from typing import List, Tuple

from ..runtime.objects import FuncInst
from .model import Label, SnapshotError

__all__ = ["byte_pc", "caught_at", "false_if_end", "labels_at", "pc_index", "stack_types"]

#: the legacy handler blocks whose frame holds the exception they caught (what ``rethrow`` throws)
CATCH_KINDS = ("catch", "catch_all")


def byte_pc(f: FuncInst, idx: int) -> int:
    """Instruction index → byte offset in the code entry (docs/execution-model.md, "pcs")."""
    body = f.func.body
    base = f.func.body_offset
    if base < 0 or idx >= len(body) or body[idx].offset < 0:
        raise SnapshotError(f"function {f.index} was not decoded from a binary: no byte offsets for pcs")
    return body[idx].offset - base


def pc_index(f: FuncInst, pc: int) -> int:
    """Byte offset → instruction index (offsets are increasing, so a bisection finds it)."""
    body = f.func.body
    base = f.func.body_offset
    offs = [ins.offset - base for ins in body]
    i = bisect.bisect_left(offs, pc)
    if base < 0 or i >= len(offs) or offs[i] != pc:
        raise SnapshotError(f"pc {pc} is not an instruction boundary of function {f.index}")
    return i


def false_if_end(f: FuncInst, idx: int) -> bool:
    """Is ``idx`` the ``end`` of an ``if`` without ``else``?  A false condition jumps there even when
    the then-arm cannot fall through (the validator marks such an ``end`` unreachable)."""
    ctl = f.info.controls[idx]
    return f.func.body[idx].op == "end" and bool(ctl) and ctl[-1].kind == "if"


def stack_types(f: FuncInst, idx: int) -> tuple:
    """Operand types before instruction ``idx`` as execution can reach it: the validator's, except at
    an unreachable-by-fall-through ``if`` ``end``, reached from the ``if`` with its params on top."""
    info = f.info
    if not info.reachable[idx] and false_if_end(f, idx):
        return tuple(info.stack_types[info.controls[idx][-1].start][:-1])
    return info.stack_types[idx]


def labels_at(f: FuncInst, idx: int) -> List[Label]:
    """The label stack (outermost first) the validator recorded before instruction ``idx``."""
    out = []
    for c in f.info.controls[idx]:
        start = -1 if c.start < 0 else byte_pc(f, c.start)
        out.append(Label(c.kind, start, len(c.params), len(c.results), c.height))
    return out


def caught_at(f: FuncInst, idx: int) -> List[Tuple[int, int]]:
    """The legacy ``catch``/``catch_all`` blocks enclosing instruction ``idx`` (outermost first), each as
    (index of its ``try``, the ``try``'s byte offset): the engine's ``Frame.caught`` keys and the
    snapshot's ``FrameState.caught`` offsets."""
    return [(c.start, byte_pc(f, c.start)) for c in f.info.controls[idx] if c.kind in CATCH_KINDS]
