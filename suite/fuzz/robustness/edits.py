"""Model-level edits of a checkpoint's :class:`~vm.snapshot.model.State`, for the snapshot probes.

Three families, each a function ``(state, layout, rng) -> str | None`` that edits ``state`` in place
and returns what it did (None: not applicable to this state):

* :data:`.targeted.TARGETED` (its own file): each breaks one documented consistency rule.
* :data:`NEUTRAL`: keep every rule (a number in a mutable slot replaced by another of the same type:
  a state the rules cannot tell from a reachable one).  Restore must accept them.
* :func:`random_edit`: anything (any field, any value, list lengths); no expectation but "a documented
  error or a run", never another exception or a hang.

:class:`Layout` is what the edits need to know about the state's modules (types of functions, tables,
memories, globals; segment modes), computed from the modules, never from the snapshot.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Dict, List, Optional, Tuple

from vm.snapshot.model import DONE, NUM_BITS, RUNNING, TRAPPED, FrameState, State, Value

__all__ = ["NEUTRAL", "Edit", "Layout", "frames_with", "other_num", "random_edit", "same_type"]

_NUMS = ("i32", "i64", "f32", "f64")
_CALLS_TAIL = ("return_call", "return_call_indirect", "return_call_ref")


class Layout:
    """Per address: the function type of every defined function, the table/memory/global type of
    every module-defined or ``spectest`` object; per instance: segment modes; whether any module
    has tail calls (then the bottom frame may legitimately differ from the entry)."""

    def __init__(self, state: State, modules: Dict[str, bytes]):
        from vm.api import load_module
        from vm.runtime.spectest import GLOBALS

        self.func_type: Dict[int, Any] = {}
        self.table_type: Dict[int, Any] = {}
        self.mem_type: Dict[int, Any] = {}
        self.global_type: Dict[int, Any] = {}
        self.host_global: Dict[int, Tuple[Any, Any, bool]] = {}
        self.elem_modes: List[List[str]] = []
        self.data_modes: List[List[str]] = []
        self.tail_calls = False
        for h in state.hosts:
            if h.kind == "global" and h.module == "spectest" and h.name in GLOBALS:
                self.host_global[h.addr] = GLOBALS[h.name]
        for ist in state.instances:
            m = load_module(modules[state.modules[ist.module]]).module
            idx = m.func_typeidxs()
            nimp = {k: len(m.imported(k)) for k in ("func", "table", "memory", "global")}
            for j, a in enumerate(ist.funcs[nimp["func"]:]):
                self.func_type[a] = m.func_type(idx[nimp["func"] + j])
            for j, a in enumerate(ist.tables[nimp["table"]:]):
                self.table_type[a] = m.tables[j].type
            for j, a in enumerate(ist.mems[nimp["memory"]:]):
                self.mem_type[a] = m.memories[j].type
            for j, a in enumerate(ist.globals[nimp["global"]:]):
                self.global_type[a] = m.globals[j].type
            self.elem_modes.append([e.mode for e in m.elems])
            self.data_modes.append([d.mode for d in m.datas])
            self.tail_calls = self.tail_calls or any(
                ins.op in _CALLS_TAIL for f in m.funcs for ins in f.body)


def other_num(v: Value, rng: random.Random) -> Value:
    """A numeric value whose tag differs from ``v``'s (so it is never of ``v``'s slot type)."""
    tag = rng.choice([t for t in _NUMS if t != v[0]])
    return (tag, rng.randrange(1 << NUM_BITS[tag]))


def same_type(v: Value, rng: random.Random) -> Optional[Value]:
    """Another value of ``v``'s numeric type (None for references)."""
    if v[0] not in NUM_BITS:
        return None
    bits = NUM_BITS[v[0]]
    x = rng.choice((0, 1, (1 << bits) - 1, rng.randrange(1 << bits)))
    return (v[0], x if x != v[1] else (x ^ 1))


def frames_with(state: State, attr: str) -> List[FrameState]:
    ts = state.thread
    if ts is None or ts.status != RUNNING:
        return []
    return [f for f in ts.frames if getattr(f, attr)]


Edit = Callable[[State, Layout, random.Random], Optional[str]]


# ------------------------------------------------------------------------------------------- neutral
def _slot_value(attr: str) -> Edit:
    def edit(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
        frames = [f for f in frames_with(state, attr) if any(v[0] in NUM_BITS for v in getattr(f, attr))]
        # (before the first instruction the locals are the arguments and default values: rule 5)
        if not frames or state.thread is None or state.thread.count == 0:
            return None
        fr = rng.choice(frames)
        vals = getattr(fr, attr)
        i = rng.choice([j for j, v in enumerate(vals) if v[0] in NUM_BITS])
        vals[i] = same_type(vals[i], rng) or vals[i]
        return f"frame func {fr.func} {attr}[{i}] := {vals[i]}"
    return edit


def _mutable_global_value(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    mutable = {a for a, gt in layout.global_type.items() if gt.mutable}
    mutable |= {a for a, (_t, _v, mut) in layout.host_global.items() if mut}
    cands = [a for a in sorted(mutable) if state.globals[a][0] in NUM_BITS]
    if not cands:
        return None
    a = rng.choice(cands)
    state.globals[a] = same_type(state.globals[a], rng) or state.globals[a]
    return f"mutable global {a} := {state.globals[a]}"


def _memory_byte(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    cands = [ms for ms in state.mems if ms.pages]
    if not cands:
        return None
    ms = rng.choice(cands)
    p = rng.randrange(min(ms.pages, 4))
    page = bytearray(ms.nonzero.get(p, bytes(65536)))
    i = rng.randrange(len(page))
    page[i] = (page[i] + rng.randrange(1, 256)) % 256
    ms.nonzero[p] = bytes(page)
    return f"memory byte {p * 65536 + i} changed"


def _count(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    # never to 0 (rule 5 fixes that state) and never below frames - 1 (rule 4): larger keeps both
    if state.thread is None or state.thread.count == 0:
        return None
    state.thread.count = rng.choice((state.thread.count + 1, state.thread.count * 2 + 7))
    return f"count := {state.thread.count}"


#: edits that keep every consistency rule (a refusal of one of them is a finding too)
NEUTRAL: Dict[str, Edit] = {
    "local-value": _slot_value("locals"),
    "stack-value": _slot_value("stack"),
    "mutable-global-value": _mutable_global_value,
    "memory-byte": _memory_byte,
    "count": _count,
}


# -------------------------------------------------------------------------------------------- random
def _value(rng: random.Random) -> Value:
    tag = rng.choice(("i32", "i64", "f32", "f64", "v128", "ref.null", "ref.func", "ref.extern", "int"))
    if tag in NUM_BITS:
        return (tag, rng.choice((0, 1, (1 << NUM_BITS[tag]) - 1, rng.randrange(1 << NUM_BITS[tag]))))
    if tag == "ref.null":
        return (tag, None)
    return (tag, rng.choice((0, 1, 2, 7, 1000, 1 << 31, 1 << 40)))


def _num(rng: random.Random, x: int) -> int:
    return max(0, rng.choice((0, 1, x - 1, x + 1, x * 2, 1 << 16, (1 << 32) - 1, 1 << 32, 1 << 40)))


def _edit_list(rng: random.Random, lst: List[Any], make: Callable[[], Any]) -> str:
    """Replace, insert, delete or duplicate one element of ``lst`` (in place)."""
    how = rng.randrange(4) if lst else 1
    i = rng.randrange(len(lst)) if lst else 0
    if how == 0:
        lst[i] = make()
    elif how == 1:
        lst.insert(i, make() if rng.random() < 0.5 or not lst else lst[i])
    elif how == 2:
        del lst[i]
    else:
        lst.append(lst[i])
    return ("replace", "insert", "delete", "duplicate")[how]


def random_edit(state: State, layout: Layout, rng: random.Random) -> Optional[str]:
    """One random edit anywhere in the state (no rule is kept on purpose)."""
    ts = state.thread
    where = rng.choice(("config", "counts", "instance", "table", "memory", "global", "hostlog", "thread",
                        "frame", "frame", "frame", "label", "limits"))
    if where == "limits" and state.mems:
        # the snapshot raises the limits it carries and grows a memory to 4 GiB (or its maximum): the
        # restorer's own limits must refuse it cleanly, never allocate it (issue 10)
        state.config["max_memory_pages"], state.config["max_call_depth"] = 1 << 40, 1 << 32
        a = rng.randrange(len(state.mems))
        mt = layout.mem_type.get(a)
        state.mems[a].pages = min(65536, mt.limits.max if mt is not None and mt.limits.max is not None else 65536)
        return f"limits raised, memory {a}: {state.mems[a].pages} pages"
    if where == "config":
        key = rng.choice(sorted(state.config))
        if key == "engine":
            state.config[key] = rng.choice(("", "nope", "reference"))
        else:
            state.config[key] = _num(rng, int(state.config[key]))
        return f"config {key} := {state.config[key]}"
    if where == "counts":
        key = rng.choice(sorted(state.counts))
        state.counts[key] = _num(rng, state.counts[key])
        return f"counts {key} := {state.counts[key]}"
    if where == "instance" and state.instances:
        ist = rng.choice(state.instances)
        attr = rng.choice(("funcs", "tables", "mems", "globals", "elem_dropped", "data_dropped", "module"))
        if attr == "module":
            ist.module = _num(rng, ist.module)
            return f"instance module := {ist.module}"
        lst = getattr(ist, attr)
        make = (lambda: rng.random() < 0.5) if attr.endswith("dropped") else (lambda: _num(rng, 1))
        return f"instance {attr} {_edit_list(rng, lst, make)}"
    if where == "table" and state.tables:
        a = rng.randrange(len(state.tables))
        return f"table {a} {_edit_list(rng, state.tables[a], lambda: _value(rng))}"
    if where == "memory" and state.mems:
        ms = rng.choice(state.mems)
        ms.pages = rng.choice((0, max(0, ms.pages - 1), ms.pages + 1, ms.pages * 2))
        ms.nonzero = {p: b for p, b in ms.nonzero.items() if p < ms.pages}
        return f"memory pages := {ms.pages}"
    if where == "global" and state.globals:
        a = rng.randrange(len(state.globals))
        state.globals[a] = _value(rng)
        return f"global {a} := {state.globals[a]}"
    if where == "hostlog":
        return f"host log {_edit_list(rng, state.host_log, lambda: ('print_i32', [_value(rng)]))}"
    if ts is None:
        return None
    if where == "thread":
        attr = rng.choice(("status", "entry", "args", "results", "trap", "count"))
        if attr == "status":
            ts.status = rng.choice((RUNNING, DONE, TRAPPED))
        elif attr == "entry":
            ts.entry = _num(rng, ts.entry)
        elif attr == "trap":
            ts.trap = rng.choice((None, "", "unreachable", "out of bounds memory access", "x\x1b[31m\n"))
        elif attr == "count":
            ts.count = _num(rng, ts.count)
        else:
            _edit_list(rng, getattr(ts, attr), lambda: _value(rng))
        return f"thread {attr} edited"
    if not ts.frames:
        return f"frames {_edit_list(rng, ts.frames, lambda: FrameState(0, 0))}"
    fr = rng.choice(ts.frames)
    if where == "label" and fr.labels:
        lb = rng.choice(fr.labels)
        attr = rng.choice(("start", "nparams", "nresults", "height", "kind"))
        if attr == "kind":
            lb.kind = rng.choice(("block", "loop", "if", "else", "func", "try_table", "?"))
        else:
            setattr(lb, attr, _num(rng, getattr(lb, attr)) if attr != "start" else rng.choice((-1, 0, lb.start + 1)))
        return f"label {attr} edited"
    attr = rng.choice(("func", "pc", "locals", "stack", "frames"))
    if attr == "func":
        fr.func = _num(rng, fr.func)
    elif attr == "pc":
        fr.pc = rng.choice((0, max(0, fr.pc - 1), fr.pc + 1, fr.pc + 2, _num(rng, fr.pc)))
    elif attr == "frames":
        return f"frames {_edit_list(rng, ts.frames, lambda: FrameState(fr.func, fr.pc, list(fr.locals)))}"
    else:
        _edit_list(rng, getattr(fr, attr), lambda: _value(rng))
    return f"frame {attr} edited"
