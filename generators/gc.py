"""The GC part of the module generator (:mod:`generators.modules`, feature ``gc``): struct, array and
``i31`` values that live in locals, globals, a table and other objects' fields, and the instructions that
make, read, write and test them.

Why a part of its own: a checkpoint holding live heap objects must carry their identity (sharing,
cycles), types and fields through capture, the codec, restore and the resume module, and only programs
that keep objects live at checkpoints test that.  The shapes:

* a fixed type section prefix (:data:`GC_TYPES`): an open struct ``$base`` and its final subtype
  ``$derived`` (packed ``i8``/``i16`` fields, mutable and immutable), a recursive type group
  ``{$node = struct (mut i32) (mut (ref null $node)); $nodes = array (mut (ref null $node))}`` (linked
  lists, and cycles when a node is linked to itself or an earlier one), arrays of ``i8`` and ``i64``, and a
  ``$holder`` struct with an ``eqref`` field and a nested array reference;
* objects in function locals (set at entry, so every frame holds some), in mutable non-exported globals
  (initialised by constant ``struct.new``/``array.new*``/``ref.i31``: they live across calls), in the
  global ``$list`` that statements push nodes onto, and in an ``eqref`` table;
* ``struct.new``/``struct.new_default``, ``array.new``/``new_default``/``new_fixed``, ``ref.i31``;
  ``struct.get``/``get_s``/``get_u``/``set``, ``array.get``/``get_s``/``get_u``/``set``/``len``/``fill``/
  ``copy``, ``i31.get_s``/``get_u``, ``ref.eq``, ``ref.is_null``, ``ref.test``, ``ref.cast``,
  ``br_on_cast``/``br_on_cast_fail``, ``br_on_null`` and a bounded walk of the list.

Traps: without the ``traps`` feature no read can trap (locals and globals are never set to null, arrays
are at least one element long and indexed at 0, no cast can fail); with it, null references, indices past
the end and failing casts are drawn on purpose.  Function signatures stay numeric (the hosts call ``run``
and compare its results), so objects cross calls through globals, the table and the list.
"""

from __future__ import annotations

from typing import Any, List, Tuple

from vm.module import Global, Instr, Table
from vm.types import (
    I8,
    I16,
    I32,
    I64,
    ArrayType,
    FieldType,
    GlobalType,
    Limits,
    RefType,
    StructType,
    SubType,
    TableType,
)

from .stateops import _ints

__all__ = ["ARRAYS", "BASE", "DERIVED", "EQREF", "GC_REC_SIZES", "GC_TYPES", "HOLDER", "I31REF", "NODE",
           "NODES", "REF_TYPES", "STRUCTS", "GcOps"]

BASE, DERIVED, NODE, NODES, BYTES, INTS, HOLDER = range(7)
EQREF = RefType(True, "eq")
I31REF = RefType(True, "i31")


def _r(i: int) -> RefType:
    return RefType(True, i)


#: the type section prefix of a GC module (type index = position)
GC_TYPES: List[SubType] = [
    SubType(False, (), StructType((FieldType(I32, True),))),
    SubType(True, (BASE,), StructType((FieldType(I32, True), FieldType(I64, False), FieldType(I8, True),
                                       FieldType(I16, False)))),
    SubType(True, (), StructType((FieldType(I32, True), FieldType(_r(NODE), True)))),
    SubType(True, (), ArrayType(FieldType(_r(NODE), True))),
    SubType(True, (), ArrayType(FieldType(I8, True))),
    SubType(True, (), ArrayType(FieldType(I64, True))),
    SubType(True, (), StructType((FieldType(EQREF, True), FieldType(_r(INTS), False)))),
]
#: rec group sizes of :data:`GC_TYPES` ($node and $nodes form one group)
GC_REC_SIZES = [1, 1, 2, 1, 1, 1]
STRUCTS = (BASE, DERIVED, NODE, HOLDER)
ARRAYS = (NODES, BYTES, INTS)
#: the reference types the generator keeps in locals and globals
REF_TYPES: Tuple[RefType, ...] = tuple(_r(i) for i in range(len(GC_TYPES))) + (EQREF,)



def _unpacked(storage: Any) -> Any:
    return I32 if storage in (I8, I16) else storage


def _fields(ti: int) -> Tuple[FieldType, ...]:
    comp = GC_TYPES[ti].comp
    return comp.fields if isinstance(comp, StructType) else (comp.field,)


class GcOps:
    """Mixed into the generator (:class:`generators.modules._Gen`), whose drawing, emitting and value
    methods it uses.  ``gc_*`` methods are its entry points; ``ref_value`` pushes one reference."""

    draw: Any
    pick: Any
    flag: Any
    choice: Any
    emit: Any
    value: Any
    values: Any
    ctx: Any
    f: Any
    code: Any
    depth: int
    blocks: int
    globals: List[Global]
    global_types: Any
    fuel_check: Any
    exhausted: bool
    can_block: Any
    MAX_DEPTH: int
    gc_list: int = -1  # global index of the list head
    gc_table: int = -1  # table index of the eqref table

    # -- module skeleton ---------------------------------------------------------------------------
    def gc_globals(self, gbase: int) -> None:
        """The list head and up to three more reference globals (mutable, not exported)."""
        self.gc_list = gbase + len(self.globals)
        head = [Instr("ref.null", NODE)] if self.flag() else self.gc_const(_r(NODE))
        self.globals.append(Global(GlobalType(_r(NODE), True), head + [Instr("end")]))
        for _ in range(self.draw(_ints(0, 3))):
            t = self.pick(REF_TYPES)
            self.globals.append(Global(GlobalType(t, True), self.gc_const(t) + [Instr("end")]))

    def gc_const(self, t: RefType) -> List[Instr]:
        """A constant expression making a non-null object of type ``t``."""
        v = self.draw(_ints(0, 1 << 20))
        if t.heap in ("eq", "i31"):
            return [Instr("i32.const", v), Instr("ref.i31")]
        ti = int(t.heap)
        if ti == NODES:
            return [Instr("i32.const", self.draw(_ints(1, 4))), Instr("array.new_default", NODES)]
        if ti == BYTES:
            return [Instr("i32.const", v & 0xFF), Instr("i32.const", self.draw(_ints(1, 6))), Instr("array.new", BYTES)]
        if ti == INTS:
            n = self.draw(_ints(1, 3))
            return [Instr("i64.const", v * (k + 1)) for k in range(n)] + [Instr("array.new_fixed", (INTS, n))]
        if ti == HOLDER:
            return [Instr("i32.const", v), Instr("ref.i31"), *self.gc_const(_r(INTS)), Instr("struct.new", HOLDER)]
        return [Instr("struct.new_default", ti)]

    def gc_table_def(self, index: int, tables: List[Table]) -> None:
        """An ``eqref`` table (its slots start null): objects stored in it stay live across calls."""
        self.gc_table = index
        n = self.draw(_ints(1, 4))
        tables.append(Table(TableType(EQREF, Limits(n, n))))
        self.gc_table_size = n

    def gc_locals(self) -> None:
        """Usually one or two reference locals set to fresh objects at function entry (like
        :meth:`generators.simd.SimdOps.v128_local`): every frame then holds live objects."""
        for _ in range(self.draw(_ints(0, 2))):
            t = self.pick(REF_TYPES)
            self.gc_new(t)  # before the local exists: its own (null) value must not be read
            self.emit("local.set", self.ctx.new_local(t))
        if self.choice(3) == 2:  # the list grows by a node per call, and sometimes closes into a cycle
            self.push_node()
            if self.flag():
                self.link_head()

    # -- references ----------------------------------------------------------------------------------
    def ref_value(self, t: RefType) -> None:
        """Push one reference of type ``t`` (a GC type, ``eqref``, ``i31ref``, or ``exnref``)."""
        ctx = self.ctx
        if not t.nullable or self.exhausted or self.depth >= self.MAX_DEPTH:
            self.ref_leaf(t)
            return
        opts = ["leaf"]
        # reserved locals (a list walk's cursor) may hold null; the others hold objects (or, with
        # ``traps``, whatever was drawn)
        locs = [i for i, lt in enumerate(ctx.local_types) if lt == t and i not in ctx.reserved]
        globs = [i for i, gt in enumerate(self.global_types()) if gt.type == t]
        if t.heap == NODE and self.gc_list in globs and "traps" not in self.f:
            globs.remove(self.gc_list)  # the list head may be null
        if locs:
            opts += ["local.get", "local.get", "local.tee"]
        if globs:
            opts += ["global.get", "global.get"]
        if t.heap != "exn":
            opts += ["new", "select"]
            if "traps" in self.f:  # fields and table slots may be null
                if t.heap in (NODE, INTS, "eq"):
                    opts.append("field")
                if t.heap == "eq" and self.gc_table >= 0:
                    opts.append("table.get")
                opts.append("null")
                if t.heap in (DERIVED, "i31"):
                    opts.append("cast")
        o = self.pick(opts)
        self.depth += 1
        if o == "leaf":
            self.ref_leaf(t)
        elif o == "local.get":
            self.emit("local.get", self.pick(locs))
        elif o == "local.tee":
            self.ref_value(t)
            self.emit("local.tee", self.pick(locs))
        elif o == "global.get":
            self.emit("global.get", self.pick(globs))
        elif o == "new":
            self.gc_new(t)
        elif o == "select":
            self.ref_value(t)
            self.ref_value(t)
            self.value(I32)
            self.emit("select", (t,))
        elif o == "field":
            self.ref_field(t)
        elif o == "table.get":
            self.emit("i32.const", self.gc_slot())
            self.emit("table.get", self.gc_table)
        elif o == "null":
            self.emit("ref.null", t.heap)
        else:  # cast (may fail: a trap on purpose)
            self.ref_value(EQREF if t.heap == "i31" else _r(BASE))
            self.emit("ref.cast", t)
        self.depth -= 1

    def ref_leaf(self, t: RefType) -> None:
        """Without sub-expressions: a default object (never null, so reads do not trap), ``ref.i31`` of
        a constant; ``ref.null exn`` for an exception reference."""
        if t.heap == "exn":
            self.emit("ref.null", "exn")
        elif t.heap in ("eq", "i31"):
            self.emit("i32.const", self.draw(_ints(0, 1 << 20)))
            self.emit("ref.i31")
        elif t.heap in ARRAYS:
            self.emit("i32.const", self.draw(_ints(1, 4)))
            self.emit("array.new_default", t.heap)
        else:
            self.emit("struct.new_default", t.heap)

    def gc_new(self, t: RefType) -> None:
        """A fresh object of type ``t`` (for ``$base``/``eqref`` also of a subtype)."""
        heap = t.heap
        if heap == "eq":
            k = self.choice(len(GC_TYPES) + 1)
            if k == len(GC_TYPES):
                self.value(I32)
                self.emit("ref.i31")
                return
            heap = k
        elif heap == "i31":
            self.value(I32)
            self.emit("ref.i31")
            return
        elif heap == BASE and self.flag():
            heap = DERIVED
        if heap in STRUCTS:
            if self.choice(4) == 0:
                self.emit("struct.new_default", heap)
                return
            for fld in _fields(heap):
                self.value(_unpacked(fld.storage))
            self.emit("struct.new", heap)
            return
        elem = _unpacked(_fields(heap)[0].storage)
        k = self.choice(3)
        if k == 0:
            self.emit("i32.const", self.gc_length())
            self.emit("array.new_default", heap)
        elif k == 1:
            self.value(elem)
            self.emit("i32.const", self.gc_length())
            self.emit("array.new", heap)
        else:
            n = self.draw(_ints(1, 4))
            for _ in range(n):
                self.value(elem)
            self.emit("array.new_fixed", (heap, n))

    def gc_length(self) -> int:
        return self.draw(_ints(0 if "traps" in self.f else 1, 6))

    def gc_index(self) -> None:
        """An array index: 0 (in bounds of every array the program makes without ``traps``), or with
        ``traps`` sometimes a larger constant or an arbitrary expression."""
        k = self.choice(4) if "traps" in self.f else 0
        if k < 3:
            self.emit("i32.const", 0 if k < 2 else self.draw(_ints(1, 7)))
        else:
            self.value(I32)

    def gc_slot(self) -> int:
        return self.draw(_ints(0, self.gc_table_size - (0 if "traps" in self.f else 1)))

    def ref_field(self, t: RefType) -> None:
        """A reference read out of another object: ``$node.next``, ``$nodes[i]``, ``$holder`` fields."""
        if t.heap == NODE:
            if self.flag():
                self.ref_value(_r(NODE))
                self.emit("struct.get", (NODE, 1))
            else:
                self.ref_value(_r(NODES))
                self.gc_index()
                self.emit("array.get", NODES)
        else:
            self.ref_value(_r(HOLDER))
            self.emit("struct.get", (HOLDER, 1 if t.heap == INTS else 0))

    # -- scalars read from objects ------------------------------------------------------------------------
    def gc_scalar(self, t: str) -> None:
        """An i32 or i64 computed from objects (``value``'s ``gc`` alternative)."""
        if t == I64:
            if self.flag():
                self.ref_value(_r(DERIVED))
                self.emit("struct.get", (DERIVED, 1))
            else:
                self.ref_value(_r(INTS))
                self.gc_index()
                self.emit("array.get", INTS)
            return
        k = self.choice(11)
        if k == 0:
            self.ref_value(_r(BASE))
            self.emit("struct.get", (BASE, 0))
        elif k == 1:
            self.ref_value(_r(DERIVED))
            self.emit(self.pick(("struct.get_s", "struct.get_u")), (DERIVED, self.pick((2, 3))))
        elif k == 2:
            self.ref_value(_r(NODE))
            self.emit("struct.get", (NODE, 0))
        elif k == 3:
            self.ref_value(_r(self.pick(ARRAYS)))
            self.emit("array.len")
        elif k == 4:
            self.ref_value(_r(BYTES))
            self.gc_index()
            self.emit(self.pick(("array.get_s", "array.get_u")), BYTES)
        elif k == 5:
            self.ref_value(self.pick((EQREF, _r(BASE))))
            self.emit("ref.test", RefType(self.flag(), self.pick((DERIVED, BASE, NODE, "i31", "struct", "array"))))
        elif k == 6:
            self.ref_value(self.pick(REF_TYPES))
            self.ref_value(self.pick(REF_TYPES))
            self.emit("ref.eq")
        elif k == 7:
            self.ref_value(self.pick(REF_TYPES))
            self.emit("ref.is_null")
        elif k == 8:
            self.ref_value(I31REF)
            self.emit(self.pick(("i31.get_s", "i31.get_u")))
        elif k == 9 and self.can_block():
            self.br_on_cast()
        else:
            self.list_walk()

    def br_on_cast(self) -> None:
        """``block (result (ref null $base)) <base> br_on_cast[_fail] 0 ... end; struct.get $base 0``:
        both edges reach the same read, the branch taken depends on the object's run-time type."""
        from .stateops import _Label

        self.emit("block", _r(BASE))
        self.blocks += 1
        self.ctx.labels.append(_Label("block", (_r(BASE),)))
        self.ref_value(_r(BASE))
        op = self.pick(("br_on_cast", "br_on_cast_fail"))
        self.emit(op, (0, _r(BASE), RefType(self.flag(), DERIVED)))
        self.ctx.labels.pop()
        self.blocks -= 1
        self.emit("end")
        self.emit("struct.get", (BASE, 0))

    def list_walk(self) -> None:
        """The sum of the values of the nodes of ``$list`` (a fuel-checked loop: a cycle ends by fuel)."""
        cur = self.ctx.new_local(_r(NODE), reserved=True)
        acc = self.ctx.new_local(I32, reserved=True)
        self.code += [Instr("i32.const", 0), Instr("local.set", acc),
                      Instr("global.get", self.gc_list), Instr("local.set", cur), Instr("block", None),
                      Instr("loop", None)]
        self.fuel_check()
        self.code += [Instr("local.get", cur), Instr("br_on_null", 1), Instr("struct.get", (NODE, 0)),
                      Instr("local.get", acc), Instr("i32.add"), Instr("local.set", acc),
                      Instr("local.get", cur), Instr("struct.get", (NODE, 1)), Instr("local.set", cur),
                      Instr("br", 0), Instr("end"), Instr("end"), Instr("local.get", acc)]

    # -- statements ----------------------------------------------------------------------------------------
    def gc_stmt(self) -> None:
        """A write into an object, the list or the table (``stmt``'s ``gc`` alternative)."""
        k = self.choice(12 if self.gc_table >= 0 else 11)
        if k >= 9 + (self.gc_table >= 0):  # the list's own statements are drawn more often
            k = 0 if k % 2 else 8
        if k == 0:
            self.push_node()
        elif k < 5:
            ti, fi = ((BASE, 0), (DERIVED, 2), (NODE, 1), (HOLDER, 0))[k - 1]
            self.ref_value(_r(ti))
            self.gc_field_value(_fields(ti)[fi].storage)
            self.emit("struct.set", (ti, fi))
        elif k == 5:
            ti = self.pick(ARRAYS)
            self.ref_value(_r(ti))
            self.gc_index()
            self.gc_field_value(_fields(ti)[0].storage)
            self.emit("array.set", ti)
        elif k == 6:
            ti = self.pick(ARRAYS)
            self.ref_value(_r(ti))
            self.gc_index()
            self.gc_field_value(_fields(ti)[0].storage)
            self.gc_count()
            self.emit("array.fill", ti)
        elif k == 7:
            ti = self.pick(ARRAYS)
            self.ref_value(_r(ti))
            self.gc_index()
            self.ref_value(_r(ti))
            self.gc_index()
            self.gc_count()
            self.emit("array.copy", (ti, ti))
        elif k == 8:
            self.link_head()
        else:
            self.emit("i32.const", self.gc_slot())
            self.ref_value(EQREF)
            self.emit("table.set", self.gc_table)

    def push_node(self) -> None:
        """``$list = struct.new $node (<i32>, $list)``."""
        self.value(I32)
        self.emit("global.get", self.gc_list)
        self.emit("struct.new", NODE)
        self.emit("global.set", self.gc_list)

    def link_head(self) -> None:
        """``$list.next = <node>`` when the list is not empty (a cycle when the node is the head or
        one after it): ``block global.get $list br_on_null 0 <node> struct.set end``."""
        from .stateops import _Label

        self.code += [Instr("block", None), Instr("global.get", self.gc_list), Instr("br_on_null", 0)]
        if self.flag():  # the head itself: a cycle of one, longer ones as more nodes are pushed
            self.code.append(Instr("global.get", self.gc_list))
        else:
            self.blocks += 1
            self.ctx.labels.append(_Label("block", ()))
            self.ref_value(_r(NODE))
            self.ctx.labels.pop()
            self.blocks -= 1
        self.code += [Instr("struct.set", (NODE, 1)), Instr("end")]

    def gc_field_value(self, storage: Any) -> None:
        if isinstance(storage, RefType):
            self.ref_value(storage)
        else:
            self.value(_unpacked(storage))

    def gc_count(self) -> None:
        """The length of a fill/copy: 0 or 1 (in bounds at index 0), with ``traps`` sometimes more."""
        hi = 7 if "traps" in self.f and self.choice(4) == 3 else 1
        self.emit("i32.const", self.draw(_ints(0, hi)))
