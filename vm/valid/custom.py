"""Checks of the custom sections wcr understands (``assert_{malformed,invalid}_custom``).

A bad custom section never makes a module invalid (the spec says custom sections are ignored by
validation), so these checks are a separate entry point that the spec runner calls for the custom
assertions only.  Known sections: ``metadata.code.branch_hint`` (branch hinting proposal).
"""

from __future__ import annotations

from ..binary.leb128 import read_u
from ..errors import InvalidModule, MalformedModule
from ..module import Module

BRANCH_HINT = "metadata.code.branch_hint"


def validate_custom_sections(m: Module) -> None:
    """Raise ``InvalidModule`` (or ``MalformedModule``) with the reference interpreter's wording when a
    known custom section is inconsistent with the module."""
    for c in m.customs:
        if c.name == BRANCH_HINT:
            _branch_hints(m, c.data)


def _branch_hints(m: Module, data: bytes) -> None:
    prefix = "@metadata.code.branch_hint annotation: "
    nimported = len(m.imported("func"))
    pos = 0

    def u32() -> int:
        nonlocal pos
        try:
            v, pos = read_u(data, pos, 32)
        except (MalformedModule, IndexError, ValueError):
            raise MalformedModule(prefix + "malformed section", pos) from None
        return v

    last_func = -1
    for _ in range(u32()):
        fidx = u32()
        if fidx <= last_func:
            raise InvalidModule(prefix + "out of order")
        last_func = fidx
        if fidx < nimported or fidx - nimported >= len(m.funcs):
            raise InvalidModule(prefix + f"unknown function {fidx}")
        f = m.funcs[fidx - nimported]
        targets = {ins.offset - f.body_offset for ins in f.body if ins.op in ("if", "br_if")}
        last_off = -1
        for _ in range(u32()):
            off = u32()
            size = u32()
            if pos >= len(data):
                raise MalformedModule(prefix + "unexpected end", pos)
            value = data[pos]
            pos += 1
            if size != 1 or value > 1:
                raise MalformedModule(prefix + "malformed hint", pos)
            if off <= last_off:
                raise InvalidModule(prefix + "out of order")
            last_off = off
            if off not in targets:
                raise InvalidModule(prefix + "invalid target")
    if pos != len(data):
        raise MalformedModule(prefix + "unexpected content after hints", pos)
