"""The store's state and its engine-free operations: linking, allocation, segment initialisation,
constant expressions and host objects.

:class:`BaseStore` owns every instance created in it and the host state (the ``spectest`` print log).
Everything it holds is explicit data so that the snapshot code can serialise and rebuild it.  Running
code (the start function, invocations) needs an engine, and ``vm/runtime`` does not import ``vm/exec``:
the store that runs code is :class:`vm.exec.store.Store` (``vm.api.Store``), a subclass that adds the
engine.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Dict, List, Optional, Sequence, cast

from ..binary.opcodes import feature_of
from ..errors import LinkError, Trap, Unsupported
from ..module import Expr, Module
from ..types import ArrayType, FuncType, GlobalType, Limits, MemType, StructType, SubType, default_value
from ..valid.canon import canonical_types, heap_sub_c
from ..valid.match import match_externtype
from .heap import (
    any_convert_extern,
    extern_convert_any,
    field_mask,
    new_array,
    new_array_fixed,
    new_struct,
    ref_i31,
    struct_masks,
)
from .limits import Quota, StoreLimits, current
from .objects import (
    PAGE_SIZE,
    ExternRef,
    FuncInst,
    GlobalInst,
    MemInst,
    ModuleInst,
    TableInst,
    TagInst,
)

__all__ = ["BaseStore", "ExternRef"]

#: the GC instructions a constant expression may contain (Wasm 3.0), evaluated by :meth:`BaseStore._gc_const`
_GC_CONST_OPS = frozenset(("ref.i31", "any.convert_extern", "extern.convert_any", "struct.new",
                           "struct.new_default", "array.new", "array.new_default", "array.new_fixed"))


class BaseStore:
    """A set of instances and their host state, without an engine.

    ``limits`` (:class:`~vm.runtime.limits.StoreLimits`, the caller's settings) bound the explicit frame
    stack ("call stack exhausted") and the memory pages and table elements of all the store's objects
    together (instantiation beyond them raises :class:`~vm.errors.ResourceLimit`; ``memory.grow`` and
    ``table.grow`` fail, as the spec allows), so that no module or snapshot can make the host allocate
    gigabytes.  Without ``limits``, the process's (:func:`vm.runtime.limits.current`).  ``max_call_depth``/``max_memory_pages`` override single fields.  ``engine`` names the
    engine of the subclass that runs code (a snapshot records it).
    """

    def __init__(self, max_call_depth: Optional[int] = None, max_memory_pages: Optional[int] = None,
                 engine: str = "reference", limits: Optional[StoreLimits] = None):
        lim = limits if limits is not None else current()
        if max_call_depth is not None:
            lim = replace(lim, max_call_depth=max_call_depth)
        if max_memory_pages is not None:
            lim = replace(lim, max_memory_pages=max_memory_pages)
        self.limits = lim
        self.quota = Quota(lim)
        self.max_call_depth = lim.max_call_depth
        self.max_memory_pages = lim.max_memory_pages
        self.instances: List[ModuleInst] = []
        self.host_log: List[tuple] = []
        self.instructions = 0  # retired instructions of the last invocation
        self.engine_name = engine
        #: the WASI state of a store that runs a WASI program (:class:`vm.runtime.wasi.WasiState`), else
        #: None; ``vm.api`` links ``wasi_snapshot_preview1`` imports only when it is set
        self.wasi: Any = None

    # -- types ---------------------------------------------------------------------------------
    def canon_match(self, actual: Any, expected: Any) -> bool:
        """Is the canonical type ``actual`` a subtype of ``expected``?  (call_indirect, call_ref)"""
        return actual == expected or heap_sub_c(actual, expected)

    # -- instantiation ------------------------------------------------------------------------
    def allocate(self, module: Module, info: Any, imports: Sequence[Any], sha256: str = "",
                 compile: bool = True) -> ModuleInst:
        """Link and allocate an instance without running segments or the start function.

        Restoring a snapshot uses this and then overwrites the allocated state; ``initialize`` and the
        engine's ``instantiate`` add the initialisation steps.  ``compile=True`` hands the defined functions to :meth:`prepare`
        (the engine compiles them, so that an unsupported instruction makes the whole module
        unsupported at instantiation); ``compile=False`` leaves them to be compiled on first call
        (restore does that: the module was already accepted once, and a restore that runs a few
        instructions should not pay for compiling every function of a large module).
        """
        if len(imports) != len(module.imports):
            raise LinkError(f"wrong number of imports: expected {len(module.imports)}, got {len(imports)}")
        inst = ModuleInst(module, info, sha256)
        inst.canon = canonical_types(module)

        # imports
        for imp, ext in zip(module.imports, imports):
            kind = imp.desc.kind
            where = f"{imp.module}.{imp.name}"
            if getattr(ext, "kind", None) != kind:
                raise LinkError(f"incompatible import type for {where}: expected a {kind}")
            if kind in ("func", "tag"):
                ok = heap_sub_c(ext.canon, inst.canon[imp.desc.type]) if kind == "func" else (
                    ext.canon == inst.canon[imp.desc.type])
            elif kind == "table":
                actual = ext.type._replace(limits=Limits(len(ext.elements), ext.type.limits.max))
                ok = match_externtype(kind, actual, imp.desc.type, ext_canon(ext), inst.canon)
            elif kind == "memory":
                actual = ext.type._replace(limits=Limits(ext.pages, ext.type.limits.max))
                ok = match_externtype(kind, actual, imp.desc.type, [], inst.canon)
            else:
                ok = match_externtype(kind, ext.type, imp.desc.type, ext_canon(ext), inst.canon)
            if not ok:
                raise LinkError(f"incompatible import type for {where}")
            imported: Dict[str, List[Any]] = {"func": inst.funcs, "table": inst.tables, "memory": inst.mems,
                                              "global": inst.globals, "tag": inst.tags}
            imported[kind].append(ext)

        # defined functions
        nimp = len(inst.funcs)
        for j, f in enumerate(module.funcs):
            ft = cast(FuncType, module.types[f.typeidx].comp)  # valid: a function's type is a func type
            fi = FuncInst(ft, inst.canon[f.typeidx], inst, nimp + j, f, info.funcs[j])
            defaults = []
            for n, t in f.locals:
                defaults.extend([default_value(t)] * n)
            fi.defaults = defaults
            inst.funcs.append(fi)

        # globals (3.0: initialisers may read earlier globals)
        for g in module.globals:
            inst.globals.append(GlobalInst(g.type, self.eval_const(inst, g.init), inst))
        for i, tb in enumerate(module.tables):
            init = self.eval_const(inst, tb.init) if tb.init is not None else None
            inst.tables.append(TableInst(tb.type, init, inst, self.quota, f"table {i}"))
        for i, m in enumerate(module.memories):
            inst.mems.append(MemInst(m.type, self.quota, f"memory {i}"))
        for tg in module.tags:
            tag_type = cast(FuncType, module.types[tg.typeidx].comp)  # valid: a tag's type is a func type
            inst.tags.append(TagInst(tag_type, inst.canon[tg.typeidx]))
        for e in module.elems:
            inst.elems.append([self.eval_const(inst, x) for x in e.init])
            inst.elem_dropped.append(False)
        for d in module.datas:
            inst.datas.append(bytes(d.init))
            inst.data_dropped.append(False)
        spaces: Dict[str, List[Any]] = {"func": inst.funcs, "table": inst.tables, "memory": inst.mems,
                                        "global": inst.globals, "tag": inst.tags}
        for ex in module.exports:
            inst.exports[ex.name] = spaces[ex.kind][ex.index]

        if compile:
            self.prepare(inst.funcs[nimp:])
        self.instances.append(inst)
        return inst

    def prepare(self, funcs: Sequence[FuncInst]) -> None:
        """Hook for the engine: get newly allocated functions ready to run (nothing without one)."""

    def initialize(self, inst: ModuleInst) -> None:
        """Run the active and declarative segments of a freshly allocated instance, in order (the
        instantiation steps between allocation and the start function)."""
        module = inst.module
        # active and declarative segments, in order
        for i, e in enumerate(module.elems):
            if e.mode == "active":
                tab = inst.tables[e.table]
                off = self.eval_const(inst, e.offset)
                seg = inst.elems[i]
                if off + len(seg) > len(tab.elements):
                    raise Trap("out of bounds table access")
                tab.elements[off:off + len(seg)] = seg
                inst.drop_elem(i)
            elif e.mode == "declarative":
                inst.drop_elem(i)
        for i, d in enumerate(module.datas):
            if d.mode == "active":
                mem = inst.mems[d.memory]
                off = self.eval_const(inst, d.offset)
                dseg = inst.datas[i]
                if off + len(dseg) > len(mem.data):
                    raise Trap("out of bounds memory access")
                mem.data[off:off + len(dseg)] = dseg
                inst.drop_data(i)

    def eval_const(self, inst: ModuleInst, expr: Optional[Expr]) -> Any:
        """Evaluate a constant expression (incl. extended-const arithmetic)."""
        if expr is None:
            return None
        st: List[Any] = []
        for ins in expr:
            op = ins.op
            if op in ("i32.const", "i64.const", "f32.const", "f64.const", "v128.const"):
                st.append(ins.imm)
            elif op == "ref.null":
                st.append(None)
            elif op == "ref.func":
                st.append(inst.funcs[ins.imm])
            elif op == "global.get":
                st.append(inst.globals[ins.imm].value)
            elif op in ("i32.add", "i32.sub", "i32.mul", "i64.add", "i64.sub", "i64.mul"):
                b = st.pop()
                a = st.pop()
                mask = 0xFFFFFFFF if op[1] == "3" else (1 << 64) - 1
                if op.endswith("add"):
                    st.append((a + b) & mask)
                elif op.endswith("sub"):
                    st.append((a - b) & mask)
                else:
                    st.append((a * b) & mask)
            elif op in _GC_CONST_OPS:
                self._gc_const(inst, op, ins.imm, st)
            elif op == "end":
                break
            else:
                raise Unsupported(feature_of(op), f"{op} in a constant expression")
        return st[-1] if st else None

    def _gc_const(self, inst: ModuleInst, op: str, x: Any, st: List[Any]) -> None:
        """The GC instructions of constant expressions, through the same :mod:`.heap` operations the
        engine's handlers use (an allocation beyond the store's heap limit is a ResourceLimit here:
        the module cannot be instantiated under these settings)."""
        if op == "ref.i31":
            st[-1] = ref_i31(st[-1])
        elif op == "any.convert_extern":
            st[-1] = any_convert_extern(st[-1])
        elif op == "extern.convert_any":
            st[-1] = extern_convert_any(st[-1])
        elif op.startswith("struct."):
            comp = cast(StructType, inst.module.types[x].comp)  # valid: the validator checked it
            n = len(comp.fields)
            if op == "struct.new":
                vals = st[len(st) - n:]
                del st[len(st) - n:]
            else:
                vals = [default_value(f.storage) for f in comp.fields]
            st.append(new_struct(self.quota, inst.canon[x], struct_masks(comp), vals))
        else:
            typeidx = x[0] if op == "array.new_fixed" else x
            storage = cast(ArrayType, inst.module.types[typeidx].comp).field.storage
            mask = field_mask(storage)
            canon = inst.canon[typeidx]
            if op == "array.new_fixed":
                n = x[1]
                vals = st[len(st) - n:]
                del st[len(st) - n:]
                st.append(new_array_fixed(self.quota, canon, mask, vals))
            elif op == "array.new":
                n = st.pop()
                st[-1] = new_array(self.quota, canon, mask, n, st[-1])
            else:  # array.new_default
                st[-1] = new_array(self.quota, canon, 0, st[-1], default_value(storage))

    # -- host objects ---------------------------------------------------------------------------
    def host_func(self, name: str, ft: FuncType, fn: Callable[[List[Any]], List[Any]]) -> FuncInst:
        """A host function with a structural canonical type (host types never contain type indices)."""
        key = canonical_types(Module(types=[SubType(True, (), ft)], rec_sizes=[1]))[0]
        return FuncInst(ft, key, host=fn, name=name)

    def host_global(self, t: GlobalType, value: Any) -> GlobalInst:
        return GlobalInst(t, value)

    def host_memory(self, limits: Limits) -> MemInst:
        return MemInst(MemType(limits), self.quota, "host memory")


def ext_canon(ext: Any) -> List[Any]:
    """The canonical type keys of the module that defined a table/global (host ones have none)."""
    owner = getattr(ext, "owner", None)
    return owner.canon if owner is not None else []


__all__ += ["PAGE_SIZE"]
