"""The store part of a resume module: the instance's globals, memories and tables as the snapshot
has them, and its data/elem segments as they are after the run so far.

* memories are declared with ``min`` = their current size and filled by active data segments
  (non-zero runs only); imported memories/tables/mutable globals are set by a prologue in ``resume``
  (grow, fill, ``memory.init``/``table.set``/``global.set``), because their size at instantiation is
  whatever the import provides;
* defined globals get the snapshot values as their initialisers; defined tables get ``min`` = their
  current size and one active element segment per run of non-null entries;
* original data/elem segments keep their indices: a dropped one becomes an *empty passive* segment
  (``memory.init``/``table.init`` then behave exactly like on a dropped segment: length 0 succeeds,
  anything else traps), a live passive one stays; declarative ones stay.  Segment indices are observable
  only through ``memory.init``/``data.drop`` (``table.init``/``elem.drop``, and the GC
  ``array.*_data``/``_elem``): without those the original segments (already applied) are left out, so an
  MVP module gives an MVP resume module (wasm3 has no bulk memory).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from ...module import Data, Elem, Global, Instr, Memory, Table
from ...types import Limits, TableType
from .. import faults as _faults
from .common import PAGE, Builder, NotConvertible, const_offset, end

#: zero bytes tolerated inside one data segment before a run is split (fewer, larger segments)
_GAP = 32
_NONZERO = re.compile(b"[^\\x00]+")
_DATA_INDEX_OPS = frozenset(("memory.init", "data.drop", "array.new_data", "array.init_data"))
_ELEM_INDEX_OPS = frozenset(("table.init", "elem.drop", "array.new_elem", "array.init_elem"))

__all__ = ["StorePart", "store_part"]


@dataclass
class StorePart:
    """The module sections that hold the store, and the prologue ``resume`` runs first."""

    globals: List[Global]
    memories: List[Memory]
    tables: List[Table]
    elems: List[Elem]
    datas: List[Data]
    prologue: List[Instr]
    data_count: Optional[int]  # the data count section (None: none needed)


def store_part(b: Builder) -> StorePart:
    """Globals, then memories (data segments), then tables (element segments): the prologue sets
    imported ones in that order."""
    m = b.m
    used = {ins.op for f in m.funcs for ins in f.body}
    prologue: List[Instr] = []
    globals_ = _globals(b, prologue)
    datas = _kept_segments_data(b) if used & _DATA_INDEX_OPS else []
    memories = _memories(b, datas, prologue)
    elems = _kept_segments_elem(b, bool(used & _ELEM_INDEX_OPS))
    tables = _tables(b, elems, prologue)
    nimp_m = len(m.imported("memory"))
    data_count = len(datas) if datas and (bool(used & _DATA_INDEX_OPS) or nimp_m) else None
    return StorePart(globals_, memories, tables, elems, datas, prologue, data_count)


def _globals(b: Builder, prologue: List[Instr]) -> List[Global]:
    """Defined globals initialised to their snapshot values; imported mutable ones set by the prologue
    (an immutable import already has its value, unless it is a host reference we cannot recreate)."""
    m, ist, state = b.m, b.ist, b.state
    out = []
    nimp = len(m.imported("global"))
    for gi, gt in enumerate(m.global_types()):
        v = state.globals[ist.globals[gi]]
        if gi < nimp:
            if gt.mutable:
                prologue += b.value_code(v, gt.type)
                prologue.append(Instr("global.set", gi))
            elif v[0] == "ref.extern":
                raise NotConvertible("host externref")
        else:
            g = m.globals[gi - nimp]
            init = b.const_expr(v, gt.type)
            if _faults.ACTIVE:  # deliberate bugs for `wcr selftest` only (vm/snapshot/faults.py)
                init = _faults.resume_global_init(init, g.init)
            out.append(type(g)(g.type, init))
    return out


def _kept_segments_data(b: Builder) -> List[Data]:
    """The original data segments at their indices, passive, empty when dropped."""
    return [Data("passive", b"") if b.ist.data_dropped[i] else Data("passive", bytes(d.init))
            for i, d in enumerate(b.m.datas)]


def _memories(b: Builder, datas: List[Data], prologue: List[Instr]) -> List[Memory]:
    m, ist, state = b.m, b.ist, b.state
    nimp = len(m.imported("memory"))
    out = []
    for mi, mt in enumerate(m.mem_types()):
        ms = state.mems[ist.mems[mi]]
        runs = _runs(ms.nonzero)
        if mi < nimp:
            # the import's size at instantiation is the provider's: grow, clear, init in the prologue
            c = "i64.const" if mt.is64 else "i32.const"
            sub = "i64.sub" if mt.is64 else "i32.sub"
            ne = "i64.ne" if mt.is64 else "i32.ne"
            prologue += [Instr(c, ms.pages), Instr("memory.size", mi), Instr(sub),
                         Instr("memory.grow", mi), Instr("drop"),
                         Instr("memory.size", mi), Instr(c, ms.pages), Instr(ne),
                         Instr("if", None), Instr("unreachable"), end(),
                         Instr(c, 0), Instr("i32.const", 0), Instr(c, ms.pages * PAGE),
                         Instr("memory.fill", mi)]
            for off, chunk in runs:
                k = len(datas)
                datas.append(Data("passive", chunk))
                prologue += [Instr(c, off), Instr("i32.const", 0), Instr("i32.const", len(chunk)),
                             Instr("memory.init", (mi, k)), Instr("data.drop", k)]
        else:
            mem = m.memories[mi - nimp]
            lim = mt.limits
            if lim.max is not None and ms.pages > lim.max:
                raise NotConvertible("inconsistent state", "memory larger than its maximum")
            out.append(type(mem)(mt._replace(limits=Limits(ms.pages, lim.max))))
            for off, chunk in runs:
                if _faults.ACTIVE:  # deliberate bugs for `wcr selftest` only (vm/snapshot/faults.py)
                    off = _faults.resume_data_offset(off)
                datas.append(Data("active", chunk, mi, const_offset(mt.is64, off)))
    return out


def _runs(page_data: Dict[int, bytes]) -> List[Tuple[int, bytes]]:
    """Non-zero runs (offset, bytes) of a sparse memory; zero gaps shorter than ``_GAP`` are kept
    inside a run so that the segment count stays small."""
    out: List[Tuple[int, bytes]] = []
    cur_start = -1
    cur_end = -1
    pieces: List[bytes] = []
    for p in sorted(page_data):
        chunk = page_data[p]
        base = p * PAGE
        for mo in _NONZERO.finditer(chunk):
            a, z = base + mo.start(), base + mo.end()
            if cur_start >= 0 and a - cur_end <= _GAP:
                pieces.append(bytes(a - cur_end))
            else:
                if cur_start >= 0:
                    out.append((cur_start, b"".join(pieces)))
                cur_start = a
                pieces = []
            pieces.append(mo.group())
            cur_end = z
    if cur_start >= 0:
        out.append((cur_start, b"".join(pieces)))
    return out


def _kept_segments_elem(b: Builder, keep: bool) -> List[Elem]:
    """Declarative segments always; the others (passive, empty when dropped) only when ``keep``.  A
    segment whose items the snapshot holds (``State.segments``: it holds heap objects, evaluated once at
    instantiation) gets those items, so ``array.init_elem``/``table.init`` copy the very objects they
    copied before the checkpoint (``ref.eq``), not fresh ones."""
    th = b.state.thread
    addr = th.frames[0].func if th is not None and th.frames else (th.entry if th is not None else -1)
    inst = next((k for k, ist in enumerate(b.state.instances) if addr in ist.funcs), -1)
    items = {seg: vals for k, seg, vals in getattr(b.state, "segments", []) if k == inst}
    out = []
    for i, e in enumerate(b.m.elems):
        if e.mode == "declarative":
            out.append(e)
        elif not keep:
            continue
        elif b.ist.elem_dropped[i]:
            out.append(Elem("passive", e.type, []))
        elif i in items:
            out.append(Elem("passive", e.type, [b.const_expr(v, e.type) for v in items[i]]))
        else:
            out.append(Elem("passive", e.type, list(e.init)))
    return out


def _tables(b: Builder, elems: List[Elem], prologue: List[Instr]) -> List[Table]:
    m, ist, state = b.m, b.ist, b.state
    nimp = len(m.imported("table"))
    out = []
    for ti, tt in enumerate(m.table_types()):
        entries = state.tables[ist.tables[ti]]
        c = "i64.const" if tt.is64 else "i32.const"
        if ti < nimp:
            n = len(entries)
            null = Instr("ref.null", tt.elem.heap)
            prologue += [null, Instr(c, n), Instr("table.size", ti),
                         Instr("i64.sub" if tt.is64 else "i32.sub"), Instr("table.grow", ti),
                         Instr("drop"), Instr("table.size", ti), Instr(c, n),
                         Instr("i64.ne" if tt.is64 else "i32.ne"), Instr("if", None),
                         Instr("unreachable"), end(),
                         Instr(c, 0), Instr("ref.null", tt.elem.heap), Instr(c, n),
                         Instr("table.fill", ti)]
            for k, v in enumerate(entries):
                if v[0] != "ref.null":
                    prologue += [Instr(c, k), *b.value_code(v, tt.elem), Instr("table.set", ti)]
        else:
            t = m.tables[ti - nimp]
            lim = tt.limits
            out.append(type(t)(tt._replace(limits=Limits(len(entries), lim.max)), t.init))
            elems.extend(_table_segments(b, ti, tt, t, entries))
    return out


def _table_segments(b: Builder, ti: int, tt: TableType, t: Table, entries: list) -> List[Elem]:
    """One active segment per run of entries (nulls included when the table has an initialiser that
    is not null: every entry is then written)."""
    overwrite_all = t.init is not None
    out = []
    k = 0
    n = len(entries)
    while k < n:
        if entries[k][0] == "ref.null" and not overwrite_all:
            k += 1
            continue
        s = k
        init = []
        while k < n and (overwrite_all or entries[k][0] != "ref.null"):
            init.append(b.const_expr(entries[k], tt.elem))
            k += 1
        out.append(Elem("active", tt.elem, init, ti, const_offset(tt.is64, s)))
    return out
