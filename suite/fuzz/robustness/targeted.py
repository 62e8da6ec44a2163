"""Targeted edits: each breaks exactly one documented consistency rule of docs/snapshot-format.md
("Consistency rules", numbered; the number is in each edit's docstring or name), by construction: a
*different* numeric tag is never the slot's type, a number is never a reference, an immutable global's
value is changed bit-wise, a host log entry names no print function.  Restore must refuse every one of
them with ``SnapshotError``.  Each is ``(state, layout, rng) -> str | None`` like the other edits of
:mod:`.edits` (None: not applicable to this state).
"""

from __future__ import annotations

import random
from typing import Callable, Dict, List, Optional

from vm.snapshot.model import DONE, NUM_BITS, RUNNING, TRAPPED, State, Value

from .edits import Edit, Layout, frames_with, other_num, same_type
from .wasi_targeted import WASI_TARGETED

__all__ = ["TARGETED"]


def _slot_type(attr: str) -> Callable[[State, Layout, random.Random], Optional[str]]:
    def edit(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
        frames = frames_with(state, attr)
        if not frames:
            return None
        fr = rng.choice(frames)
        vals = getattr(fr, attr)
        i = rng.randrange(len(vals))
        vals[i] = other_num(vals[i], rng)
        return f"frame func {fr.func} {attr}[{i}] := {vals[i][0]}"
    return edit


def _retype(vals: List[Value], name: Callable[[int], str], rng: random.Random) -> Optional[str]:
    """Give one of ``vals`` a number of another type (rule 6); ``name(i)`` names the slot."""
    if not vals:
        return None
    i = rng.randrange(len(vals))
    vals[i] = other_num(vals[i], rng)
    return f"{name(i)} := {vals[i][0]}"


def _global_type(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    return _retype(state.globals, lambda a: f"global {a}", rng)


def _result_type(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    ts = state.thread
    if ts is None or ts.status != DONE:
        return None
    return _retype(ts.results, lambda i: f"results[{i}]", rng)


def _arg_type(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    ts = state.thread
    return None if ts is None else _retype(ts.args, lambda i: f"args[{i}]", rng)


def _table_elem(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    tabs = [a for a, t in enumerate(state.tables) if t]
    if not tabs:
        return None
    a = rng.choice(tabs)
    i = rng.randrange(len(state.tables[a]))
    tt = layout.table_type.get(a)
    heap = getattr(getattr(tt, "elem", None), "heap", None)
    if heap == "func" and rng.random() < 0.5:
        state.tables[a][i] = ("ref.extern", 1)
    elif heap == "extern" and rng.random() < 0.5 and layout.func_type:
        state.tables[a][i] = ("ref.func", min(layout.func_type))
    else:
        state.tables[a][i] = ("i32", 0)
    return f"table {a}[{i}] := {state.tables[a][i][0]}"


def _entry_not_bottom(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    """The bottom frame's function differs from the entry (same type where one exists, so only this
    rule breaks).  Not applicable with tail calls (a return_call replaces the bottom frame)."""
    ts = state.thread
    if ts is None or ts.status != RUNNING or layout.tail_calls:
        return None
    bottom = ts.frames[0].func
    others = [a for a in layout.func_type if a != bottom]
    if not others:
        return None
    same = [a for a in others if layout.func_type[a] == layout.func_type.get(bottom)]
    ts.entry = rng.choice(same or others)
    return f"entry := func {ts.entry}, bottom frame func {bottom}"


def _bottom_replaced(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    ts = state.thread
    if ts is None or ts.status != RUNNING or layout.tail_calls:
        return None
    bottom = ts.frames[0].func
    others = [a for a in layout.func_type if a != bottom]
    if not others:
        return None
    same = [a for a in others if layout.func_type[a] == layout.func_type.get(bottom)]
    ts.frames[0].func = rng.choice(same or others)
    return f"bottom frame func {bottom} := {ts.frames[0].func} (entry {ts.entry})"


def _pending_call(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    ts = state.thread
    if ts is None or ts.status != RUNNING or len(ts.frames) < 2:
        return None
    i = rng.randrange(1, len(ts.frames))
    old = ts.frames[i].func
    # another *type*: wrong for a direct call and for call_indirect / call_ref alike
    others = [a for a in layout.func_type if layout.func_type[a] != layout.func_type.get(old)]
    if not others:
        return None
    ts.frames[i].func = rng.choice(others)
    return f"frame {i} func {old} := {ts.frames[i].func} (the call pending in frame {i - 1})"


def _immutable(host: bool) -> Edit:
    """Change an immutable global's numeric value: one a module defines (its initialiser says what it
    must hold) or a ``spectest`` one (its declaration says so)."""

    def edit(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
        if host:
            cands = [a for a, (_t, _v, mut) in layout.host_global.items() if not mut]
        else:
            cands = [a for a, gt in layout.global_type.items() if not gt.mutable]
        cands = [a for a in cands if state.globals[a][0] in NUM_BITS]
        if not cands:
            return None
        a = rng.choice(cands)
        v = same_type(state.globals[a], rng)
        assert v is not None
        state.globals[a] = v
        return f"immutable {'spectest ' if host else ''}global {a} := {v}"
    return edit


def _segment_not_dropped(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    cands = [(n, "elem", i) for n, ist in enumerate(state.instances) for i, mode in enumerate(layout.elem_modes[n])
             if mode != "passive" and ist.elem_dropped[i]]
    cands += [(n, "data", i) for n, ist in enumerate(state.instances) for i, mode in enumerate(layout.data_modes[n])
              if mode == "active" and ist.data_dropped[i]]
    if not cands:
        return None
    n, what, i = rng.choice(cands)
    getattr(state.instances[n], f"{what}_dropped")[i] = False
    return f"instance {n} {what} segment {i} ({layout.elem_modes[n][i] if what == 'elem' else 'active'}) not dropped"


def _status(status: str, trap: Optional[str] = None, results: bool = False, frames: bool = False
            ) -> Callable[[State, Layout, random.Random], Optional[str]]:
    """The thread's status/trap/results/frames made inconsistent in one way."""
    def edit(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
        ts = state.thread
        if ts is None or (frames and not ts.frames) or (status == RUNNING and ts.status != RUNNING):
            return None
        if status == DONE and frames:  # a done thread that kept its frames (results of the right type)
            ft = layout.func_type.get(ts.entry)
            if ft is None or not all(isinstance(t, str) for t in ft.results):
                return None
            ts.status, ts.trap, ts.results = DONE, None, [(t, 0) for t in ft.results]
            return "done thread with frames"
        if status == DONE:  # results of the entry's types, so that only the named rule breaks
            ft = layout.func_type.get(ts.entry)
            if ft is None or not all(isinstance(t, str) for t in ft.results):
                return None
            ts.status, ts.frames, ts.results, ts.trap = DONE, [], [(t, 0) for t in ft.results], None
        elif status != RUNNING:
            ts.status, ts.frames, ts.results, ts.trap = status, [], [], None
        if trap is not None:
            ts.trap = trap
        if results:
            ts.results = [("i32", 0)]
        return f"{status} thread, trap {trap!r}, results {ts.results!r}"
    return edit


def _mem_size(over: bool) -> Callable[[State, Layout, random.Random], Optional[str]]:
    def edit(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
        cands = [(a, mt) for a, mt in layout.mem_type.items() if (mt.limits.max is not None if over else mt.limits.min > 0)]
        if not cands:
            return None
        a, mt = rng.choice(cands)
        ms = state.mems[a]
        ms.pages = mt.limits.max + 1 if over else mt.limits.min - 1
        ms.nonzero = {p: b for p, b in ms.nonzero.items() if p < ms.pages}
        return f"memory {a}: {ms.pages} pages (limits {mt.limits.min}..{mt.limits.max})"
    return edit


def _table_size(over: bool) -> Callable[[State, Layout, random.Random], Optional[str]]:
    def edit(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
        cands = [(a, tt) for a, tt in layout.table_type.items()
                 if (tt.limits.max is not None and tt.limits.max < 100_000 if over else tt.limits.min > 0)]
        if not cands:
            return None
        a, tt = rng.choice(cands)
        n = tt.limits.max + 1 if over else tt.limits.min - 1
        tab = state.tables[a]
        state.tables[a] = (tab + [("ref.null", None)] * (n - len(tab)))[:n]
        return f"table {a}: {n} elements (limits {tt.limits.min}..{tt.limits.max})"
    return edit


def _host_log_name(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    """Rule 9: a host log entry of no ``spectest`` print function."""
    state.host_log.insert(rng.randrange(len(state.host_log) + 1), ("print_evil\x1b[2J", []))
    return "host log entry print_evil"


def _host_log_arg(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    """Rule 9: a ``print_i32`` entry whose argument is an i64."""
    state.host_log.append(("print_i32", [("i64", 1 << 40)]))
    return "host log print_i32(i64)"


def _frames_beyond_count(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    """Rule 5: more frames than retired calls could have made."""
    ts = state.thread
    if ts is None or ts.status != RUNNING or len(ts.frames) < 2:
        return None
    ts.count = len(ts.frames) - 2
    return f"count := {ts.count} with {len(ts.frames)} frames"


def _count_zero(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    """Rule 5: count 0, but not the initial state (a deeper stack, operands or another pc)."""
    ts = state.thread
    if ts is None or ts.status != RUNNING or ts.count == 0:
        return None
    if len(ts.frames) == 1 and not ts.frames[0].stack and ts.frames[0].pc == 0:
        return None
    ts.count = 0
    return "count := 0"


def _label_changed(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    """Rule 14: a label's height differs from the validator's control stack."""
    frames = frames_with(state, "labels")
    if not frames:
        return None
    fr = rng.choice(frames)
    lb = rng.choice(fr.labels)
    lb.height += 1
    return f"frame func {fr.func}: label {lb.kind}@{lb.start} height := {lb.height}"


def _host_frame(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    """Rule 11: a frame of a host function (they run at once and have no frames)."""
    hosts = [h.addr for h in state.hosts if h.kind == "func"]
    ts = state.thread
    if not hosts or ts is None or ts.status != RUNNING:
        return None
    fr = rng.choice(ts.frames)
    fr.func = rng.choice(hosts)
    return f"frame func := host function {fr.func}"


def _heap_objects(kinds: tuple) -> Callable[[State, Layout, random.Random], Optional[int]]:
    def pick(state: State, layout: Layout, rng: random.Random) -> Optional[int]:
        ids = [i for i, ob in enumerate(state.heap) if ob.kind in kinds]
        return rng.choice(ids) if ids else None
    return pick


def _heap_type(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    """Rule 18: a struct/array names a type index its instance's module does not have, or an exception a
    tag address out of range."""
    i = _heap_objects(("struct", "array", "exn"))(state, layout, rng)
    if i is None:
        return None
    ob = state.heap[i]
    if ob.kind == "exn":
        ob.tag = state.counts["tag"]
        return f"heap[{i}].tag := {ob.tag}"
    ob.type = (ob.type[0] if ob.type else 0, 1 << 20)
    return f"heap[{i}].type := {ob.type}"


def _heap_field_count(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    """Rule 19: a struct or an exception with one field more than its type or tag has."""
    i = _heap_objects(("struct", "exn"))(state, layout, rng)
    if i is None:
        return None
    state.heap[i].fields.append(("i32", 0))
    return f"heap[{i}].fields += i32"


def _heap_field_type(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    """Rule 19 (and 6): a numeric field of another numeric type (a packed field is an i32, so any other
    tag breaks it too)."""
    cands = [(i, k) for i, ob in enumerate(state.heap) for k, v in enumerate(ob.fields) if v[0] in NUM_BITS]
    if not cands:
        return None
    i, k = rng.choice(cands)
    state.heap[i].fields[k] = other_num(state.heap[i].fields[k], rng)
    return f"heap[{i}].fields[{k}] := {state.heap[i].fields[k][0]}"


def _heap_id_range(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    """Rule 6: a global holding a heap reference names an id past the heap section."""
    cands = [a for a, v in enumerate(state.globals) if v[0] in ("ref.struct", "ref.array", "ref.exn")]
    if not cands:
        return None
    a = rng.choice(cands)
    state.globals[a] = (state.globals[a][0], len(state.heap))
    return f"global {a} := id {len(state.heap)}"


def _caught_missing(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    """Rule 23: a frame inside a legacy catch block without the exception it caught."""
    frames = frames_with(state, "caught")
    if not frames:
        return None
    fr = rng.choice(frames)
    fr.caught.pop()
    return f"frame func {fr.func}: caught := {len(fr.caught)} entries"


#: rule name → an edit that breaks exactly that rule
TARGETED: Dict[str, Edit] = {
    "local-type": _slot_type("locals"),
    "stack-type": _slot_type("stack"),
    "global-type": _global_type,
    "result-type": _result_type,
    "arg-type": _arg_type,
    "table-elem-type": _table_elem,
    "entry-not-bottom": _entry_not_bottom,
    "bottom-frame-replaced": _bottom_replaced,
    "pending-call-mismatch": _pending_call,
    "immutable-global": _immutable(False),
    "immutable-spectest-global": _immutable(True),
    "segment-not-dropped": _segment_not_dropped,
    "trap-free-text": _status(TRAPPED, trap="no such trap\nkind"),
    "trap-empty": _status(TRAPPED, trap=""),
    "running-with-trap": _status(RUNNING, trap="unreachable"),
    "running-with-results": _status(RUNNING, results=True),
    "done-with-trap": _status(DONE, trap="unreachable"),
    "trapped-with-results": _status(TRAPPED, trap="unreachable", results=True),
    "done-with-frames": _status(DONE, frames=True),
    "memory-over-max": _mem_size(True),
    "memory-under-min": _mem_size(False),
    "table-over-max": _table_size(True),
    "table-under-min": _table_size(False),
    "host-log-name": _host_log_name,
    "host-log-arg-type": _host_log_arg,
    "frames-beyond-count": _frames_beyond_count,
    "count-zero-not-initial": _count_zero,
    "label-changed": _label_changed,
    "host-function-frame": _host_frame,
    "heap-type": _heap_type,
    "heap-field-count": _heap_field_count,
    "heap-field-type": _heap_field_type,
    "heap-id-range": _heap_id_range,
    "caught-missing": _caught_missing,
}
#: the WASI rules 25-37 (section 13), in their own file
TARGETED.update(WASI_TARGETED)
