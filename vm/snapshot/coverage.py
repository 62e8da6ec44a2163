"""Which state kinds and control shapes are *live* at a checkpoint.

Why: a C/R campaign is only as strong as the states it checkpoints.  A restore that writes back only the
exported globals passes every test whose programs never change a non-exported one; a converter that
mishandles a loop left by a ``br_table`` default passes every test that never checkpoints inside such an
iteration.  This module looks at one checkpoint (a :class:`vm.snapshot.model.State` plus the module it
names) and says which of those situations the snapshot actually carries, so a campaign can count them
per restorer and steer its generators towards the ones it has not reached.

Everything is computed from the snapshot model and the module's static description (its definitions and
the validator's metadata); nothing here runs code.  A kind counts only when the state *differs* from what
instantiation alone produces (a global changed from its initial value, a table whose elements are not the
ones the active segments put there ...): a restore that re-instantiates the module and forgets the rest
would get exactly the unchanged ones right.  The ``heap.*`` kinds are the exception: they count any live
GC or exception object (also one a global's initializer made), because objects have identity and a
restore must carry them (sharing, cycles, later writes) rather than make fresh ones.

The names (:data:`STATE_KINDS`, :data:`CONTROL_SHAPES`) are the keys of the campaign's coverage report.
"""

from __future__ import annotations

import base64
import bisect
from collections import OrderedDict
from typing import Any, Dict, FrozenSet, List, Mapping, Optional, Set, Tuple

from ..runtime.objects import PAGE_SIZE
from ..runtime.spectest import GLOBALS, MEMORIES, TABLES
from ..runtime.wasi.state import CLOCK_START_NS
from .model import DONE, TRAPPED, FrameState, InstanceState, State, WasiSnapshot

__all__ = ["CONTROL_SHAPES", "DEEP_FRAMES", "KINDS", "STATE_KINDS", "live_kinds"]

#: a call stack at least this deep counts as deep recursion (``frames.deep``)
DEEP_FRAMES = 8

#: state kinds: name → what is live
STATE_KINDS: Dict[str, str] = {
    "global.internal": "a non-exported mutable global differs from its initial value",
    "global.exported": "an exported mutable global differs from its initial value",
    "global.imported": "an imported mutable global (spectest.global_mut_i32) differs from its initial value",
    "memory.written": "a memory defined by the module differs from its instantiated content",
    "memory.imported": "an imported memory (spectest.memory) differs from its instantiated content",
    "memory.grown": "a memory is larger than after instantiation",
    "memory.multi": "several memories, and one past index 0 differs from its instantiated content",
    "table.written": "a table's elements differ from what instantiation put there (set/fill/copy/init/grow)",
    "table.imported": "an imported table (spectest.table) differs from its instantiated content",
    "table.grown": "a table is larger than after instantiation",
    "table.multi": "several tables, and one past index 0 differs from its instantiated content",
    "data.passive": "a passive data segment is still available (not dropped)",
    "data.dropped": "a passive data segment was dropped (data.drop)",
    "elem.passive": "a passive element segment is still available (not dropped)",
    "elem.dropped": "a passive element segment was dropped (elem.drop)",
    "multi_value.label": "a frame is inside a block/loop/if with parameters or several results",
    "multi_value.results": "a frame's function returns several values (or the run ended with several)",
    "frames.deep": f"at least {DEEP_FRAMES} frames (deep recursion)",
    "value.v128": "a v128 value in a local, on an operand stack or in a global",
    "heap.objects": "GC or exception objects are live (the snapshot's heap section is not empty)",
    "heap.struct": "a struct object is live",
    "heap.array": "an array object is live",
    "heap.exn": "an exception object is live (an exnref held, or an exception caught by a legacy catch)",
    "heap.shared": "a heap object is referenced from two or more places (identity must survive restore)",
    "heap.cycle": "heap objects reference each other in a cycle",
    "host.log": "the spectest print log is not empty",
    "wasi.fd_file_open": "a WASI program holds a file open (an fd of kind file)",
    "wasi.offset_nonzero": "an open file's offset is past 0",
    "wasi.stdout_partial": "stdout was written before the checkpoint and the run writes more after it "
                           "(without the uninterrupted run to ask: the run is not over yet)",
    "wasi.files_changed": "the WASI filesystem holds entries besides its preopened directories "
                          "(the campaign's sandbox starts empty)",
    "wasi.exited": "the program ended with proc_exit (an exit code is state)",
    "wasi.clock_read": "the virtual clock has advanced (a clock was read)",
    "wasi.random_used": "the seeded random stream has been drawn from",
}
#: control shapes: name → where the checkpoint sits
CONTROL_SHAPES: Dict[str, str] = {
    "ctl.entry": "k = 0: before the first instruction",
    "ctl.block": "a frame inside a block",
    "ctl.loop": "a frame inside a loop body",
    "ctl.if": "a frame inside the then-arm of an if",
    "ctl.else": "a frame inside an else-arm",
    "ctl.nested": "a frame inside three or more nested blocks",
    "ctl.handler": "a frame inside a try_table or legacy try body, or inside a legacy catch/catch_all "
                   "handler (the handlers to rebuild on restore)",
    "ctl.call": "a pending call (two or more frames)",
    "ctl.br_table_exit": "inside a loop iteration that leaves the loop by a br_table's default edge, "
                         "before that br_table",
    "ctl.if_false_end": "at the end of an if without else, reached by the false edge",
    "ctl.done": "the run has finished (k = total)",
    "ctl.trapped": "the run has trapped (k = total)",
}
KINDS: Tuple[str, ...] = tuple(STATE_KINDS) + tuple(CONTROL_SHAPES)

_CACHE_SIZE = 64
_STATIC: OrderedDict[str, _Static] = OrderedDict()


class _BrTableExit:
    """A ``br_table`` whose default leaves its innermost enclosing loop.  ``index`` tells how its index
    operand is computed, when that is simple enough to evaluate from the frame's locals:
    ``("eqz", x)`` (``local.get x; i32.eqz``) or ``("get", x)`` (``local.get x``), else None."""

    __slots__ = ("loop", "at", "ntargets", "index", "writes")

    def __init__(self, loop: int, at: int, ntargets: int, index: Optional[Tuple[str, int]],
                 writes: List[int]):
        self.loop = loop  # instruction index of the loop
        self.at = at  # instruction index of the br_table
        self.ntargets = ntargets
        self.index = index
        self.writes = writes  # indices of local.set/tee of the index local inside the loop


class _FuncStatic:
    __slots__ = ("offsets", "nresults", "false_ends", "br_exits")

    def __init__(self, offsets: List[int], nresults: int, false_ends: FrozenSet[int],
                 br_exits: List[_BrTableExit]):
        self.offsets = offsets
        self.nresults = nresults
        self.false_ends = false_ends
        self.br_exits = br_exits


class _Static:
    """What instantiation alone produces, and the control facts of each function, for one module."""

    def __init__(self, lm: Any):
        m = lm.module
        self.nimp = {k: len(m.imported(k)) for k in ("func", "table", "memory", "global")}
        self.imports = {k: [i for i in m.imports if i.desc.kind == k] for k in ("table", "memory")}
        exported = {ex.index for ex in m.exports if ex.kind == "global"}
        gtypes = m.global_types()
        gimports = [i for i in m.imports if i.desc.kind == "global"]
        #: global index → (kind, initial value or None when unknown: not a plain constant, or an import
        #: from elsewhere than the spectest declaration)
        self.globals: Dict[int, Tuple[str, Optional[int]]] = {}
        for i, gt in enumerate(gtypes):
            if not gt.mutable:
                continue
            init = None
            j = i - self.nimp["global"]
            if j >= 0:
                e = m.globals[j].init
                if len(e) == 2 and e[0].op.endswith(".const"):
                    init = e[0].imm
                kind = "global.exported" if i in exported else "global.internal"
            else:
                imp = gimports[i]
                if imp.module == "spectest" and imp.name in GLOBALS:
                    init = GLOBALS[imp.name][1]
                kind = "global.imported"
            self.globals[i] = (kind, init)
        self.mem_pages: List[int] = []
        for imp in self.imports["memory"]:
            self.mem_pages.append(MEMORIES.get(imp.name, (imp.desc.type.limits.min, 0))[0])
        self.mem_pages += [mem.type.limits.min for mem in m.memories]
        self.mem_image: List[Dict[int, bytes]] = [{} for _ in self.mem_pages]
        self.passive_data = [i for i, d in enumerate(m.datas) if d.mode == "passive"]
        self.passive_elem = [i for i, e in enumerate(m.elems) if e.mode == "passive"]
        self.table_size: List[int] = [TABLES.get(imp.name, (imp.desc.type.limits.min,))[0]
                                      for imp in self.imports["table"]]
        self.table_size += [t.type.limits.min for t in m.tables]
        self.ok = True  # False when an offset is not a plain constant: content kinds are then skipped
        pages: List[Dict[int, bytearray]] = [{} for _ in self.mem_pages]
        for d in m.datas:
            off = _const(d.offset) if d.mode == "active" else None
            if d.mode != "active":
                continue
            if off is None:
                self.ok = False
                continue
            for n, b in enumerate(d.init):
                a = off + n
                page = pages[d.memory].setdefault(a // PAGE_SIZE, bytearray(PAGE_SIZE))
                page[a % PAGE_SIZE] = b
        for i, ps in enumerate(pages):
            self.mem_image[i] = {p: bytes(b) for p, b in ps.items() if any(b)}
        #: table index → slot → function index (None = null) written by active segments
        self.table_init: List[Dict[int, Optional[int]]] = [{} for _ in self.table_size]
        for e in m.elems:
            if e.mode != "active":
                continue
            off = _const(e.offset)
            if off is None:
                self.ok = False
                continue
            for n, expr in enumerate(e.init):
                op = expr[0].op if expr else ""
                self.table_init[e.table][off + n] = expr[0].imm if op == "ref.func" else None
                if op not in ("ref.func", "ref.null"):
                    self.ok = False
        self.funcs: List[_FuncStatic] = []
        types = m.func_typeidxs()[self.nimp["func"]:]
        for f, info, ti in zip(m.funcs, lm.info.funcs, types):
            self.funcs.append(_func_static(f, info, len(m.func_type(ti).results)))


def _const(e: Any) -> Optional[int]:
    if e is not None and len(e) == 2 and e[0].op in ("i32.const", "i64.const"):
        return int(e[0].imm)
    return None


def _func_static(f: Any, info: Any, nresults: int) -> _FuncStatic:
    body = f.body
    base = f.body_offset
    offsets = [ins.offset - base for ins in body]
    false_ends = frozenset(i for i, ins in enumerate(body)
                           if ins.op == "end" and not info.reachable[i] and info.controls[i]
                           and info.controls[i][-1].kind == "if")
    exits: List[_BrTableExit] = []
    for i, ins in enumerate(body):
        if ins.op != "br_table" or not info.reachable[i]:
            continue
        ctl = info.controls[i]
        loops = [p for p, c in enumerate(ctl) if c.kind == "loop"]
        if not loops:
            continue
        p = loops[-1]
        targets, default = ins.imm
        if len(ctl) - 1 - default >= p:
            continue  # the default stays inside the innermost loop
        index: Optional[Tuple[str, int]] = None
        if i >= 2 and body[i - 1].op == "i32.eqz" and body[i - 2].op == "local.get":
            index = ("eqz", body[i - 2].imm)
        elif i >= 1 and body[i - 1].op == "local.get":
            index = ("get", body[i - 1].imm)
        loop_at = ctl[p].start
        writes = []
        if index is not None:
            writes = [j for j in range(loop_at, i) if body[j].op in ("local.set", "local.tee")
                      and body[j].imm == index[1]]
        exits.append(_BrTableExit(loop_at, i, len(targets), index, writes))
    return _FuncStatic(offsets, nresults, false_ends, exits)


def _static(sha: str, modules: Mapping[str, Any]) -> Optional[_Static]:
    hit = _STATIC.get(sha)
    if hit is not None:
        _STATIC.move_to_end(sha)
        return hit
    data = modules.get(sha)
    if data is None:
        return None
    from ..api import LoadedModule, load_module

    lm = data if isinstance(data, LoadedModule) else load_module(data)
    s = _STATIC[sha] = _Static(lm)
    if len(_STATIC) > _CACHE_SIZE:
        _STATIC.popitem(last=False)
    return s


def live_kinds(state: State, modules: Mapping[str, Any], reference: Optional[Mapping[str, Any]] = None
               ) -> FrozenSet[str]:
    """The names of :data:`KINDS` live in ``state``.  ``modules``: sha256 → module bytes (or a
    :class:`vm.api.LoadedModule`) for the modules the state names; instances of other modules are
    skipped (their facts are unknown, so nothing is claimed about them).  ``reference``: the
    uninterrupted run's outcome dict, when known (``wasi.stdout_partial`` then asks it whether more
    output follows)."""
    out: Set[str] = set()
    if state.wasi is not None:
        _wasi_kinds(state, state.wasi, reference, out)
    host_addrs = {(h.kind, h.addr) for h in state.hosts}
    func_of: Dict[int, Tuple[_Static, int, InstanceState]] = {}
    for inst in state.instances:
        s = _static(state.modules[inst.module], modules)
        if s is None:
            continue
        _store_kinds(state, inst, s, host_addrs, out)
        nimp = s.nimp["func"]
        for j, addr in enumerate(inst.funcs[nimp:]):
            func_of.setdefault(addr, (s, j, inst))
    if state.host_log:
        out.add("host.log")
    if any(v[0] == "v128" for v in state.globals):
        out.add("value.v128")
    if state.heap:
        _heap_kinds(state, out)
    th = state.thread
    if th is None:
        return frozenset(out)
    if th.count == 0 and th.status not in (DONE, TRAPPED):
        out.add("ctl.entry")
    if th.status == DONE:
        out.add("ctl.done")
        if len(th.results) >= 2:
            out.add("multi_value.results")
    elif th.status == TRAPPED:
        out.add("ctl.trapped")
    frames = th.frames
    if len(frames) >= 2:
        out.add("ctl.call")
    if len(frames) >= DEEP_FRAMES:
        out.add("frames.deep")
    for fr in frames:
        _frame_kinds(fr, func_of.get(fr.func), out)
    return frozenset(out)


def _store_kinds(state: State, inst: InstanceState, s: _Static, host_addrs: Set[Tuple[str, int]],
                 out: Set[str]) -> None:
    for i, (kind, init) in s.globals.items():
        if i >= len(inst.globals) or init is None:
            continue
        v = state.globals[inst.globals[i]]
        if v[1] != init:
            out.add(kind)
    for d in s.passive_data:
        if d < len(inst.data_dropped):
            out.add("data.dropped" if inst.data_dropped[d] else "data.passive")
    for e in s.passive_elem:
        if e < len(inst.elem_dropped):
            out.add("elem.dropped" if inst.elem_dropped[e] else "elem.passive")
    if not s.ok:
        return
    nimp_m = s.nimp["memory"]
    for i, addr in enumerate(inst.mems[:len(s.mem_pages)]):
        mem = state.mems[addr]
        if mem.pages > s.mem_pages[i]:
            out.add("memory.grown")
        if mem.nonzero != s.mem_image[i]:
            out.add("memory.imported" if i < nimp_m or ("memory", addr) in host_addrs else "memory.written")
            if i > 0:
                out.add("memory.multi")
    nimp_t = s.nimp["table"]
    func_addrs = inst.funcs
    for i, addr in enumerate(inst.tables[:len(s.table_size)]):
        elems = state.tables[addr]
        changed = len(elems) != s.table_size[i]
        if len(elems) > s.table_size[i]:
            out.add("table.grown")
        if not changed:
            filled = s.table_init[i]
            for slot, v in enumerate(elems):
                f = filled.get(slot)
                want: Tuple[str, Any] = ("ref.null", None) if f is None else ("ref.func", func_addrs[f])
                if tuple(v) != want:
                    changed = True
                    break
        if changed:
            out.add("table.imported" if i < nimp_t or ("table", addr) in host_addrs else "table.written")
            if i > 0:
                out.add("table.multi")


def _wasi_kinds(state: State, w: WasiSnapshot, reference: Optional[Mapping[str, Any]], out: Set[str]) -> None:
    """``wasi.*``: open files and their offsets, output before and after the checkpoint, changed files,
    an exit, the clock and the random stream."""
    files = [fd for fd in w.fds if fd.kind == "file"]
    if files:
        out.add("wasi.fd_file_open")
    if any(fd.offset > 0 for fd in files):
        out.add("wasi.offset_nonzero")
    over = state.thread is None or state.thread.status in (DONE, TRAPPED)
    if w.stdout and not over:
        final = ((reference or {}).get("wasi") or {}).get("stdout")
        if final is None or len(base64.b64decode(final)) > len(w.stdout):
            out.add("wasi.stdout_partial")
    if len(w.inodes) > len(w.roots):
        out.add("wasi.files_changed")
    if w.exit_code is not None:
        out.add("wasi.exited")
    if not w.real_clock and w.clock_ns > CLOCK_START_NS:
        out.add("wasi.clock_read")
    if w.random_counter:
        out.add("wasi.random_used")


#: label kinds (:class:`vm.snapshot.model.Label`) that put a frame inside exception handling
_HANDLER_LABELS = frozenset(("try_table", "try", "catch", "catch_all"))
_HEAP_TAGS = frozenset(("ref.struct", "ref.array", "ref.exn"))


def _heap_ids(v: Any, out: List[int]) -> None:
    """The heap ids a value refers to (``ref.extern`` may wrap an internal reference)."""
    tag, x = v[0], v[1]
    if tag in _HEAP_TAGS:
        out.append(int(x))
    elif tag == "ref.extern" and isinstance(x, (tuple, list)):
        _heap_ids(x, out)


def _heap_kinds(state: State, out: Set[str]) -> None:
    """``heap.*``: which kinds of objects are live, and whether one is shared or part of a cycle."""
    out.add("heap.objects")
    for obj in state.heap:
        out.add(f"heap.{obj.kind}")
    refs: List[int] = []  # every reference to a heap object, wherever it is held
    roots: List[Any] = list(state.globals)
    for elems in state.tables:
        roots += elems
    for _name, args in state.host_log:
        roots += args
    th = state.thread
    if th is not None:
        roots += th.args + th.results
        for fr in th.frames:
            roots += fr.locals + fr.stack + [v for _at, v in fr.caught]
            if fr.caught:
                out.add("heap.exn")
    for v in roots:
        _heap_ids(v, refs)
    edges: List[List[int]] = []
    for obj in state.heap:
        mine: List[int] = []
        for v in obj.fields:
            _heap_ids(v, mine)
        edges.append(mine)
        refs += mine
    if len(refs) != len(set(refs)):
        out.add("heap.shared")
    if _has_cycle(edges):
        out.add("heap.cycle")


def _has_cycle(edges: List[List[int]]) -> bool:
    """Whether the object graph (id → ids its fields refer to) has a cycle (iterative DFS, so a long
    linked list cannot overflow Python's stack)."""
    state = [0] * len(edges)  # 0 unvisited, 1 on the DFS path, 2 done
    for start in range(len(edges)):
        if state[start]:
            continue
        state[start] = 1
        stack = [(start, 0)]
        while stack:
            node, i = stack[-1]
            if i < len(edges[node]):
                stack[-1] = (node, i + 1)
                nxt = edges[node][i]
                if not 0 <= nxt < len(edges):
                    continue
                if state[nxt] == 1:
                    return True
                if state[nxt] == 0:
                    state[nxt] = 1
                    stack.append((nxt, 0))
            else:
                state[node] = 2
                stack.pop()
    return False


def _frame_kinds(fr: FrameState, where: Optional[Tuple[_Static, int, InstanceState]], out: Set[str]) -> None:
    if any(v[0] == "v128" for v in fr.locals) or any(v[0] == "v128" for v in fr.stack):
        out.add("value.v128")
    if fr.caught or any(lab.kind in _HANDLER_LABELS for lab in fr.labels):
        out.add("ctl.handler")
    nested = 0
    for lab in fr.labels:
        if lab.start < 0:
            continue
        nested += 1
        kind = "ctl.if" if lab.kind == "if" else f"ctl.{lab.kind}"
        if kind in CONTROL_SHAPES:
            out.add(kind)
        if lab.nparams or lab.nresults >= 2:
            out.add("multi_value.label")
    if nested >= 3:
        out.add("ctl.nested")
    if where is None:
        return
    s, j, _inst = where
    fs = s.funcs[j]
    if fs.nresults >= 2:
        out.add("multi_value.results")
    idx = bisect.bisect_left(fs.offsets, fr.pc)
    if idx >= len(fs.offsets) or fs.offsets[idx] != fr.pc:
        return
    if idx in fs.false_ends:
        out.add("ctl.if_false_end")
    for ex in fs.br_exits:
        if ex.loop < idx <= ex.at and ex.index is not None and not any(idx <= w < ex.at for w in ex.writes):
            if not any(lab.start == fs.offsets[ex.loop] for lab in fr.labels):
                continue
            x = ex.index[1]
            if x >= len(fr.locals):
                continue
            v = fr.locals[x][1]
            operand = int(v == 0) if ex.index[0] == "eqz" else v
            if operand >= ex.ntargets:  # the br_table will take its default
                out.add("ctl.br_table_exit")
                return
