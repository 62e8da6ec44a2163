"""The store-state part of the module generator (:mod:`generators.modules`): memories, tables, segments
and the statements that write them after instantiation, plus the control shapes that C/R converters get
wrong (deep recursion, a ``br_table`` whose default leaves a loop, an ``if`` left by its false edge).

Why a part of its own: a restore that forgets a state kind passes every program that never makes that
kind live.  So the generated programs import ``spectest.memory``/``spectest.table`` and write them, use
a second memory and table, keep passive data/element segments and drop some of them, write table slots
that element segments filled (``table.set/fill/copy/init/grow``) and keep some mutable globals private.
:mod:`vm.snapshot.coverage` names those kinds; the campaign counts them per checkpoint and *boosts*
(:data:`BOOSTS`) the knobs of the kinds it has not reached yet.

Every knob is a draw whose zero is "off", so shrinking removes the feature; every statement stays in
bounds unless the ``traps`` feature is on (then a few out-of-bounds forms and drops of segments that a
later ``memory.init``/``table.init`` may still use are drawn on purpose).  Globals: non-exported
mutable ones are generated, and (knob ``import_global``) the wcr extension ``spectest.global_mut_i32``
(:data:`vm.runtime.spectest.GLOBALS`) is imported as global 0 and written by ``global.set`` like the
defined ones, so a host-owned mutable global is live at checkpoints (kind ``global.imported``).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, FrozenSet, List, Optional, Tuple

from hypothesis import strategies as st

from vm.module import Data, Elem, Global, Import, ImportDesc, Instr, MemArg, Memory, Table
from vm.runtime.spectest import GLOBALS, MEMORIES, TABLES
from vm.types import FUNCREF, I32, GlobalType, Limits, MemType, TableType

__all__ = ["BOOSTS", "KNOBS", "StateOps"]

_INTS: Dict[Tuple[int, int], st.SearchStrategy[int]] = {}


def _ints(lo: int, hi: int) -> st.SearchStrategy[int]:
    """Cached ``st.integers`` (the one copy every part of the generator draws through): building a
    strategy per draw costs more than the draw itself."""
    s = _INTS.get((lo, hi))
    if s is None:
        s = _INTS[(lo, hi)] = st.integers(lo, hi)
    return s


#: module-level knobs: name → (chances in 8 of being on, chances when boosted)
KNOBS: Dict[str, Tuple[int, int]] = {
    "import_memory": (2, 5),
    "second_memory": (1, 4),  # v8 has no multi-memory: such modules are not-applicable there
    "import_table": (2, 5),
    "second_table": (2, 5),
    "passive_data": (4, 7),
    "passive_elem": (4, 7),
    "deep_recursion": (1, 5),
    "import_global": (2, 5),
}
#: the imported mutable global (a wcr extension of the spectest interface)
IMPORTED_GLOBAL = "global_mut_i32"
#: coverage kind (:data:`vm.snapshot.coverage.KINDS`) → knobs and statement weights that make it likelier
BOOSTS: Dict[str, Tuple[Tuple[str, ...], Tuple[str, ...]]] = {
    "global.internal": ((), ("global.set",)),
    "global.imported": (("import_global",), ("global.set",)),
    "memory.imported": (("import_memory",), ("store", "bulk")),
    "memory.multi": (("second_memory",), ("mem2",)),
    "table.imported": (("import_table",), ("table_write",)),
    "table.multi": (("second_table",), ("table_write",)),
    "table.written": ((), ("table_write",)),
    "table.grown": ((), ("table_write",)),
    "data.passive": (("passive_data",), ()),
    "data.dropped": (("passive_data",), ("segment",)),
    "elem.passive": (("passive_elem",), ()),
    "elem.dropped": (("passive_elem",), ("segment",)),
    "frames.deep": (("deep_recursion",), ()),
    "ctl.br_table_exit": ((), ("br_table_loop",)),
    "memory.grown": ((), ("memory.grow",)),
    "ctl.if_false_end": ((), ("if_skip",)),
    "multi_value.label": ((), ("block",)),
    "ctl.else": ((), ("block",)),
}


class _Label:
    """A label of the function being generated (what a branch to it carries)."""

    __slots__ = ("kind", "types")

    def __init__(self, kind: str, types: Tuple[Any, ...]):
        self.kind = kind  # "func" | "block" | "loop" | "if"
        self.types = types  # branch types: results, or params for a loop


class StateOps:
    """Mixin of :class:`generators.modules._Gen` (which provides ``draw``, ``choice``, ``pick``,
    ``flag``, ``emit``, ``value``, ``stmt``, ``ctx`` ...)."""

    # provided by _Gen
    draw: Callable[[st.SearchStrategy], Any]
    f: FrozenSet[str]
    boost: FrozenSet[str]
    code: List[Instr]
    ctx: Any
    blocks: int
    types: List[Any]
    func_types: List[int]
    imports: List[Import]
    _nuser: int
    globals: List[Global]
    has_mem: bool
    mem_pages: int
    table_size: int
    slots: List[Optional[int]]
    choice: Callable[[int], int]
    pick: Callable[[Any], Any]
    flag: Callable[[], bool]
    emit: Callable[..., None]
    value: Callable[[Any], None]
    stmt: Callable[[], None]
    fuel_check: Callable[[], None]
    boost_knobs: FrozenSet[str] = frozenset()

    # -- module skeleton ----------------------------------------------------------------------------
    def knob(self, name: str) -> bool:
        """A module-level feature switch: on with the chances of :data:`KNOBS` (boosted when the
        campaign asks for it); a draw of 0 is "off", so shrinking turns it off."""
        base, boosted = KNOBS[name]
        on = boosted if name in self.boost_knobs else base
        return self.draw(_ints(0, 7)) >= 8 - on

    def init_state(self) -> None:
        self.other_imports: List[Import] = []  # memories/tables (funcs stay first in self.imports)
        self.mems: List[int] = []  # pages of each memory, by index (0 = the main one)
        self.mem_imported = False
        self.tabs: List[int] = []  # initial size of each table, by index
        self.tab_max: List[int] = []
        self.main_table = 0
        self.passive_datas: List[Tuple[int, int]] = []  # (segment index, length)
        self.passive_elems: List[Tuple[int, int]] = []
        self.rec_func: Optional[int] = None  # the deep-recursion function (function index)
        self.rec_depth = 0
        self.funcs_done: List[int] = []  # function indices whose bodies are generated
        self.gbase = 0  # imported globals (0 or 1: spectest.global_mut_i32), before the defined ones

    def import_global(self) -> None:
        """Import ``spectest.global_mut_i32`` as global 0 (the defined globals move up by one)."""
        t, _bits, mutable = GLOBALS[IMPORTED_GLOBAL]
        assert mutable
        self.other_imports.append(Import("spectest", IMPORTED_GLOBAL, ImportDesc("global", GlobalType(t, True))))
        self.gbase = 1

    def global_types(self) -> List[GlobalType]:
        """The types of the module's global index space (imported first)."""
        imported = [GLOBALS[IMPORTED_GLOBAL]] if self.gbase else []
        return [GlobalType(t, m) for t, _b, m in imported] + [g.type for g in self.globals]

    def build_memories(self, mems: List[Memory], datas: List[Data]) -> None:
        """Memory 0 (defined, or ``spectest.memory``), maybe a second one, active and passive data."""
        self.has_mem = True
        if "host" in self.f and "wasi" not in self.f and self.knob("import_memory"):
            lo, hi = MEMORIES["memory"]
            self.other_imports.append(Import("spectest", "memory", ImportDesc("memory", MemType(Limits(lo, hi)))))
            self.mem_pages = lo
            self.mem_imported = True
        else:
            self.mem_pages = self.draw(_ints(1, 2))
            mx = self.mem_pages + self.draw(_ints(0, 2))
            mems.append(Memory(MemType(Limits(self.mem_pages, mx))))
        self.mems = [self.mem_pages]
        if "multi_memory" in self.f and self.knob("second_memory"):
            mems.append(Memory(MemType(Limits(1, 1 + self.draw(_ints(0, 1))))))
            self.mems.append(1)
        for _ in range(self.draw(_ints(0, 2))):
            data = self.draw(st.binary(min_size=1, max_size=16))
            off = self.draw(_ints(0, 64))
            mem = self.choice(len(self.mems))
            datas.append(Data("active", data, mem, [Instr("i32.const", off), Instr("end")]))
        if "bulk_memory" in self.f and self.knob("passive_data"):
            for _ in range(self.draw(_ints(1, 2))):
                data = self.draw(st.binary(min_size=1, max_size=24))
                self.passive_datas.append((len(datas), len(data)))
                datas.append(Data("passive", data))

    def build_tables(self, nimp: int, nfuncs: int, tables: List[Table], elems: List[Elem]) -> None:
        """The main table (call_indirect's) with its active segment, maybe ``spectest.table`` and a
        second table, passive segments, and a declarative segment so ``ref.func`` can name any function."""
        writes = "bulk_memory" in self.f
        if writes and "host" in self.f and self.knob("import_table"):
            lo, hi, _is64 = TABLES["table"]
            self.other_imports.append(Import("spectest", "table", ImportDesc("table", TableType(FUNCREF, Limits(lo, hi)))))
            self.tabs.append(lo)
            self.tab_max.append(hi)
        self.main_table = len(self.tabs)
        self.table_size = self.draw(_ints(1, 6))
        grow = self.draw(_ints(0, 3)) if writes else 0
        tables.append(Table(TableType(FUNCREF, Limits(self.table_size, self.table_size + grow))))
        self.tabs.append(self.table_size)
        self.tab_max.append(self.table_size + grow)
        nent = self.table_size if self.choice(4) else self.draw(_ints(0, self.table_size))
        init = []
        self.slots = [None] * self.table_size
        for i in range(nent):
            if self.choice(6) == 5:
                init.append([Instr("ref.null", "func"), Instr("end")])
            else:
                self.slots[i] = nimp + self.choice(nfuncs)
                init.append([Instr("ref.func", self.slots[i]), Instr("end")])
        if init:
            elems.append(Elem("active", FUNCREF, init, self.main_table, [Instr("i32.const", 0), Instr("end")]))
        if not writes:
            return
        if self.knob("second_table"):
            size = self.draw(_ints(1, 4))
            tables.append(Table(TableType(FUNCREF, Limits(size, size + self.draw(_ints(0, 2))))))
            self.tabs.append(size)
            self.tab_max.append(tables[-1].type.limits.max or size)
            n = self.draw(_ints(0, size))
            if n:
                elems.append(Elem("active", FUNCREF, [self.ref_expr(nimp, nfuncs) for _ in range(n)],
                                  len(self.tabs) - 1, [Instr("i32.const", size - n), Instr("end")]))
        if self.knob("passive_elem"):
            for _ in range(self.draw(_ints(1, 2))):
                n = self.draw(_ints(1, 4))
                self.passive_elems.append((len(elems), n))
                elems.append(Elem("passive", FUNCREF, [self.ref_expr(nimp, nfuncs) for _ in range(n)]))
        elems.append(Elem("declarative", FUNCREF, [[Instr("ref.func", nimp + j), Instr("end")]
                                                    for j in range(nfuncs)]))

    def ref_expr(self, nimp: int, nfuncs: int) -> List[Instr]:
        if self.choice(5) == 4:
            return [Instr("ref.null", "func"), Instr("end")]
        return [Instr("ref.func", nimp + self.choice(nfuncs)), Instr("end")]

    # -- statements -----------------------------------------------------------------------------------
    def push_ref(self) -> None:
        if self.choice(4) == 3:
            self.emit("ref.null", "func")
        else:
            self.emit("ref.func", len(self.imports) + self.choice(self._nuser))

    def range_in(self, size: int) -> Tuple[int, int]:
        """``(start, n)`` with ``start + n <= size`` (or, with traps, sometimes past the end)."""
        if "traps" in self.f and self.choice(10) == 9:
            return self.draw(_ints(0, size + 2)), self.draw(_ints(0, 4))
        start = self.draw(_ints(0, max(0, size)))
        return start, self.draw(_ints(0, size - start))

    def s_table_write(self) -> None:
        """``table.set/fill/copy/init/grow`` over slots that element segments filled.  A write into the
        main table with ``table.set`` keeps the slot's function type (so call_indirect stays useful);
        the bulk forms write any table."""
        ops = ["table.fill", "table.copy", "table.grow", "table.set"]
        if self.passive_elems:
            ops.append("table.init")
        # boosted for a grown table: grow half of the time (one write op in five is too rare for a
        # campaign steering towards it, and for the test that asks the boost to find one)
        op = "table.grow" if "table.grown" in self.boost and self.flag() else self.pick(ops)
        t = self.choice(len(self.tabs))
        size = self.tabs[t]
        if op == "table.set":
            full = [i for i, f in enumerate(self.slots) if f is not None]
            if t == self.main_table and full:
                slot = self.pick(full)
                ti = self.func_types[self.slots[slot]]
                same = [j for j in range(len(self.imports), len(self.imports) + self._nuser)
                        if self.func_types[j] == ti]
                self.emit("i32.const", slot)
                self.emit("ref.func", self.pick(same))
            else:
                self.emit("i32.const", self.range_in(size - 1)[0])
                self.push_ref()
            self.emit("table.set", t)
        elif op == "table.fill":
            start, n = self.range_in(size)
            self.emit("i32.const", start)
            self.push_ref()
            self.emit("i32.const", n)
            self.emit("table.fill", t)
        elif op == "table.copy":
            s = self.choice(len(self.tabs))
            n = self.draw(_ints(0, min(size, self.tabs[s])))
            self.emit("i32.const", self.draw(_ints(0, size - n)))
            self.emit("i32.const", self.draw(_ints(0, self.tabs[s] - n)))
            self.emit("i32.const", n)
            self.emit("table.copy", (t, s))
        elif op == "table.init":
            seg, length = self.pick(self.passive_elems)
            n = self.draw(_ints(0, min(size, length)))
            self.emit("i32.const", self.draw(_ints(0, size - n)))
            self.emit("i32.const", self.draw(_ints(0, length - n)))
            self.emit("i32.const", n)
            self.emit("table.init", (t, seg))
        else:
            self.push_ref()
            self.emit("i32.const", self.draw(_ints(0, 2)))
            self.emit("table.grow", t)
            self.emit("drop")

    def s_segment(self) -> None:
        """``memory.init`` from a passive data segment, and (with traps) ``data.drop``/``elem.drop``: a
        dropped segment makes a later non-empty init trap, which is a state a restore must carry."""
        ops = []
        if self.passive_datas:
            ops.append("memory.init")
        if "traps" in self.f:
            if self.passive_datas:
                ops.append("data.drop")
            if self.passive_elems:
                ops.append("elem.drop")
        if not ops:
            return
        op = self.pick(ops)
        if op == "memory.init":
            seg, length = self.pick(self.passive_datas)
            mem = self.choice(len(self.mems))
            src, n = self.range_in(length)
            self.emit("i32.const", self.draw(_ints(0, 256)))
            self.emit("i32.const", src)
            self.emit("i32.const", n)
            self.emit("memory.init", (mem, seg))
        elif op == "data.drop":
            self.emit("data.drop", self.pick(self.passive_datas)[0])
        else:
            self.emit("elem.drop", self.pick(self.passive_elems)[0])

    def s_mem2(self) -> None:
        """Writes into the second memory: a store, a fill, or a copy between the two memories."""
        k = self.choice(3)
        if k == 0:
            self.emit("i32.const", self.draw(_ints(0, 4096)))
            self.value(I32)
            self.emit("i32.store", MemArg(2, 0, 1))
        elif k == 1:
            self.emit("i32.const", self.draw(_ints(0, 4096)))
            self.value(I32)
            self.emit("i32.const", self.draw(_ints(0, 64)))
            self.emit("memory.fill", 1)
        else:
            dst, src = (1, 0) if self.flag() else (0, 1)
            self.emit("i32.const", self.draw(_ints(0, 4096)))
            self.emit("i32.const", self.draw(_ints(0, 4096)))
            self.emit("i32.const", self.draw(_ints(0, 64)))
            self.emit("memory.copy", (dst, src))

    def s_br_table_loop(self) -> None:
        """``block $exit (c = K; loop $l (fuel check; c -= 1; stmts; br_table [$l] $exit (c == 0)))``:
        every iteration but the last continues through the table, the last leaves the loop by the
        *default* edge.  ``c`` is a reserved local decremented at the loop head, so a checkpoint inside
        the last iteration has ``c == 0`` (what :mod:`vm.snapshot.coverage` checks)."""
        ctx = self.ctx
        c = ctx.new_local(I32, reserved=True)
        self.emit("block", None)
        self.blocks += 1
        ctx.labels.append(_Label("block", ()))
        self.emit("i32.const", self.draw(_ints(1, 2)))
        self.emit("local.set", c)
        self.emit("loop", None)
        ctx.labels.append(_Label("loop", ()))
        self.fuel_check()
        self.code += [Instr("local.get", c), Instr("i32.const", 1), Instr("i32.sub"), Instr("local.set", c)]
        for _ in range(self.draw(_ints(0, 2))):
            self.stmt()
        self.code += [Instr("local.get", c), Instr("i32.eqz"), Instr("br_table", ((0,), 1)), Instr("end")]
        ctx.labels.pop()
        ctx.labels.pop()
        self.blocks -= 1
        self.emit("end")

    def s_if_skip(self) -> None:
        """``if (cond) (stmts; br 0) end``: the ``end`` is reachable only by the false edge (the
        validator marks it unreachable), the case :func:`vm.snapshot.pcs.false_if_end` exists for."""
        self.value(I32)
        self.emit("if", None)
        self.blocks += 1
        self.ctx.labels.append(_Label("if", ()))
        for _ in range(self.draw(_ints(0, 2))):
            self.stmt()
        self.emit("br", 0)
        self.ctx.labels.pop()
        self.blocks -= 1
        self.emit("end")

    def recursion_prologue(self, fidx: int) -> None:
        """In the deep-recursion function (first param i32 ``n``): ``if n (call self(n - 1, ...))``.
        The fuel check before it bounds the depth by the fuel, so a random ``n`` cannot overflow."""
        ft = self.types[self.func_types[fidx]]
        self.code += [Instr("local.get", 0), Instr("if", None), Instr("local.get", 0), Instr("i32.const", 1),
                      Instr("i32.sub")]
        self.code += [Instr("local.get", i) for i in range(1, len(ft.params))]
        self.code.append(Instr("call", fidx))
        self.code += [Instr("drop") for _ in ft.results]
        self.code.append(Instr("end"))

    def recursion_call(self) -> None:
        """In ``run``: call the deep-recursion function with a constant depth."""
        fidx = self.rec_func
        assert fidx is not None
        ft = self.types[self.func_types[fidx]]
        self.code.append(Instr("i32.const", self.rec_depth))
        for t in ft.params[1:]:
            self.code.append(Instr(f"{t}.const", 0))
        self.code.append(Instr("call", fidx))
        self.code += [Instr("drop") for _ in ft.results]
