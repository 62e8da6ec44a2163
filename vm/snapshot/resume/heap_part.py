"""The heap part of a resume module: the snapshot's GC objects and exceptions rebuilt into *helper
globals* before anything uses them, so that every slot that held object id X holds the same rebuilt
object (sharing and ``ref.eq`` identity survive).

* A struct/array reachable from a converted slot gets an **immutable** helper global ``(ref $t)``
  whose initialiser is ``struct.new $t`` / ``array.new_fixed $t N`` of its fields, a field holding
  another object being ``global.get`` of that object's helper (built first: helpers are ordered by a
  depth-first post-order of the field graph).  Constant expressions may read them, so global
  initialisers and element segments name the same objects as the code does.
* A field that closes a *cycle* (a back edge of that walk) is allocated null and set by the prologue
  (``struct.set``/``array.set``): the two-phase build.  That needs a mutable field of a nullable type;
  a cycle through immutable or non-nullable fields only cannot be built by any Wasm program from
  outside, so it is refused ("heap cycle").
* An array longer than :data:`MAX_FIXED` is allocated by ``array.new_default`` and its non-default
  elements are set by the prologue (``array.set``, one per element; mutable arrays of defaultable
  element types only, else "unsupported value"): runtimes bound ``array.new_fixed`` operands.
* An exception object (``ref.exn``) cannot be made in a constant expression: its helper is a mutable
  ``exnref`` global (null at instantiation) set by the prologue with
  ``block (result exnref) (try_table (catch_all_ref 0) <payload> (throw $tag)) unreachable end``; a
  field holding one is set by the prologue too (mutable nullable fields only).  An ``exnref`` in a
  constant expression (a global initialiser, an element segment) is refused.
* ``ref.i31 u`` is ``(ref.i31 (i32.const u))``; ``extern.convert_any`` of an internal reference is that
  reference followed by ``extern.convert_any``; a host reference (``ref.host``, a host ``ref.extern``)
  is refused ("host externref"): a resume module cannot recreate what its host gave.

Helpers are inserted into the global index space right after the imported globals (an initialiser can
only read earlier globals), so the defined globals move up by the number of helpers: until assembly every
use of a helper is a placeholder (:class:`HelperRef`) and :meth:`HeapPart.relocate` then renumbers every
``global.get``/``global.set``, constant expression and export in one pass.

Object types keep their canonical identity: an object allocated with a type of the thread's module uses
that type index; one allocated by another instance's module uses the thread module's type with the same
canonical key (:func:`vm.valid.canonical_types`), or is refused when the module has none.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Set, Tuple

from ...binary import decode_module
from ...errors import WasmError
from ...module import Catch, Global, Import, ImportDesc, Instr, Module
from ...types import EXTERNREF, ArrayType, FieldType, GlobalType, RefType, StructType
from ...valid import validate_module
from ..model import HeapObject, Value
from .common import NotConvertible, end

#: longest array built by one ``array.new_fixed`` (V8 and wasmtime accept 10 000 operands)
MAX_FIXED = 10000
_HEAP_TAGS = {"ref.struct": "struct", "ref.array": "array", "ref.exn": "exn"}
EXNREF = RefType(True, "exn")

__all__ = ["HOST_MODULE", "HelperRef", "HeapPart", "HostImport", "MAX_FIXED", "host_import"]


class HelperRef:
    """Placeholder immediate of ``global.get``/``global.set``: the helper global of heap object ``id``,
    resolved by :meth:`HeapPart.relocate` once the number of helpers is known."""

    __slots__ = ("id",)

    def __init__(self, id: int):
        self.id = id

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HelperRef) and other.id == self.id

    def __hash__(self) -> int:
        return hash(("helper", self.id))

    def __repr__(self) -> str:
        return f"HelperRef({self.id})"


class HostImport:
    """Placeholder immediate of ``global.get``: the imported global ``wcr_host`` ``"extern N"`` that
    carries host reference N into the resume module (resolved by :meth:`HeapPart.relocate`)."""

    __slots__ = ("n",)

    def __init__(self, n: int):
        self.n = n

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HostImport) and other.n == self.n

    def __hash__(self) -> int:
        return hash(("host", self.n))


#: the import module of host references (:func:`host_import`)
HOST_MODULE = "wcr_host"


def host_import(n: int) -> Import:
    """The import that carries host reference ``ref.extern n``: an immutable ``externref`` global the
    target's adapter provides (any non-null host value: Wasm cannot look inside a host reference, and
    the native comparison rules compare references by null-ness)."""
    return Import(HOST_MODULE, f"extern {n}", ImportDesc("global", GlobalType(EXTERNREF, False)))


def _storage_valtype(ft: FieldType) -> Any:
    return "i32" if ft.storage in ("i8", "i16") else ft.storage


def _is_default(v: Value) -> bool:
    return v[0] == "ref.null" or (v[0] in ("i32", "i64", "f32", "f64", "v128") and v[1] == 0)


def _defaultable(t: Any) -> bool:
    return not isinstance(t, RefType) or t.nullable


class HeapPart:
    """Collects the heap objects the resume module needs (:meth:`code`) and, at assembly, makes their
    helper globals and the prologue that finishes them (:meth:`finish`)."""

    def __init__(self, b: Any):
        self.b = b
        self.roots: Set[int] = set()
        self.hosts: Set[int] = set()  # host references imported (HostImport)
        self._types: Dict[Tuple[int, int], int] = {}

    # -- values ----------------------------------------------------------------------------------
    def code(self, v: Value, in_const: bool, nullable: bool = True) -> Optional[List[Instr]]:
        """Instructions producing the heap-related or host value ``v`` (None: neither).  ``in_const``:
        inside a constant expression (no exnref there); ``nullable``: the slot's type is."""
        tag, x = v
        if tag == "ref.i31":
            return [Instr("i32.const", int(x) & 0x7FFFFFFF), Instr("ref.i31")]
        if tag in _HEAP_TAGS:
            self.obj(x, _HEAP_TAGS[tag])
            self.roots.add(x)
            if tag == "ref.exn":
                if in_const:
                    raise NotConvertible("unsupported value", "exnref in a constant expression")
                return [Instr("global.get", HelperRef(x)), Instr("ref.as_non_null")]
            return [Instr("global.get", HelperRef(x))]
        if tag == "ref.extern" and isinstance(x, tuple):
            if x[0] == "ref.host" and type(x[1]) is int:  # extern.convert_any(any.convert_extern(n)) = n
                return self.host(x[1], in_const, nullable)
            inner = self.code(x, in_const)
            if inner is None:
                raise NotConvertible("unsupported value", f"extern.convert_any of {x[0]}")
            return inner + [Instr("extern.convert_any")]
        if tag == "ref.extern" and type(x) is int:
            return self.host(x, in_const, nullable)
        if tag == "ref.host" and type(x) is int:  # any.convert_extern of host reference x
            return self.host(x, in_const, nullable) + [Instr("any.convert_extern")]
        return None

    def host(self, n: int, in_const: bool, nullable: bool) -> List[Instr]:
        """``global.get`` of the import carrying host reference ``n`` (nullable, as node's V8 can
        import it): ``ref.as_non_null`` where a non-null reference is expected."""
        self.hosts.add(n)
        if nullable:
            return [Instr("global.get", HostImport(n))]
        if in_const:
            raise NotConvertible("host externref", "a host reference in a non-null constant")
        return [Instr("global.get", HostImport(n)), Instr("ref.as_non_null")]

    def obj(self, oid: Any, kind: str) -> HeapObject:
        heap = self.b.state.heap
        if not isinstance(oid, int) or not 0 <= oid < len(heap) or heap[oid].kind != kind:
            raise NotConvertible("inconsistent state", f"ref.{kind} {oid!r} names no {kind} of the heap")
        return heap[oid]

    # -- types -----------------------------------------------------------------------------------
    def typeidx(self, o: HeapObject) -> int:
        """The thread module's type index with the canonical identity of ``o``'s type."""
        if o.type is None:
            raise NotConvertible("inconsistent state", f"{o.kind} object without a type")
        if o.type not in self._types:
            self._types[o.type] = self._find_type(*o.type)
        j = self._types[o.type]
        comp = self.b.types[j].comp
        if not isinstance(comp, StructType if o.kind == "struct" else ArrayType):
            raise NotConvertible("inconsistent state", f"{o.kind} object of type {j}, not a {o.kind} type")
        return j

    def _find_type(self, inst: int, typeidx: int) -> int:
        state, b = self.b.state, self.b
        if not 0 <= inst < len(state.instances):
            raise NotConvertible("inconsistent state", f"object type names instance {inst}")
        sha = state.modules[state.instances[inst].module]
        if sha == state.modules[b.ist.module]:
            if not 0 <= typeidx < len(b.m.types):
                raise NotConvertible("inconsistent state", f"object type {typeidx} out of range")
            return typeidx
        data = b.modules.get(sha)
        if data is None:
            raise NotConvertible("module missing", sha)
        try:
            keys = validate_module(decode_module(bytes(data))).type_keys
        except WasmError as e:
            raise NotConvertible("module not decodable", str(e)) from None
        if not 0 <= typeidx < len(keys):
            raise NotConvertible("inconsistent state", f"object type {typeidx} out of range")
        mine = b.info.type_keys
        for j, k in enumerate(mine):
            if k == keys[typeidx]:
                return j
        raise NotConvertible("unsupported value", "an object of a type the thread's module does not define")

    # -- assembly --------------------------------------------------------------------------------
    def finish(self) -> Tuple[List[int], List[Global], List[Instr]]:
        """(helper object ids in global order, helper globals, heap prologue)."""
        order, patches = self._order()
        globs: List[Global] = []
        for oid in order:
            globs.append(self._helper(oid, patches))
        prologue: List[Instr] = []
        for oid in order:
            if self.b.state.heap[oid].kind == "exn":
                prologue += self._exn_build(oid)
        for oid, pos, v in patches:
            prologue += self._patch(oid, pos, v)
        return order, globs, prologue

    def _fields(self, o: HeapObject) -> List[Tuple[Any, Value]]:
        """(field type or None for an exn payload value, value) of each field."""
        if o.kind == "exn":
            return [(None, v) for v in o.fields]
        j = self.typeidx(o)
        comp = self.b.types[j].comp
        if isinstance(comp, StructType):
            if len(comp.fields) != len(o.fields):
                raise NotConvertible("inconsistent state", f"struct of type {j}: field count")
            return list(zip(comp.fields, o.fields))
        return [(comp.field, v) for v in o.fields]

    def _field_type(self, o: HeapObject, pos: int) -> FieldType:
        comp = self.b.types[self.typeidx(o)].comp
        return comp.fields[pos] if isinstance(comp, StructType) else comp.field

    def _order(self) -> Tuple[List[int], List[Tuple[int, int, Value]]]:
        """Depth-first post-order of every object reachable from the roots (an object after the
        objects its constant initialiser reads), and the (object, field position, value) writes the
        prologue makes: back edges of cycles, exnref fields, elements of long arrays."""
        heap = self.b.state.heap
        order: List[int] = []
        done: Set[int] = set()
        active: Set[int] = set()
        patches: List[Tuple[int, int, Value]] = []
        self.deferred: Set[Tuple[int, int]] = set()

        def refs(v: Value) -> Optional[int]:
            if v[0] in _HEAP_TAGS:
                self.obj(v[1], _HEAP_TAGS[v[0]])
                return int(v[1])
            if v[0] == "ref.extern" and isinstance(v[1], tuple):
                return refs(v[1])
            return None

        def visit(root: int) -> None:  # iterative: a long chain must not hit Python's recursion limit
            stack: List[Tuple[int, List[Tuple[Any, Value]], int]] = [(root, self._fields(heap[root]), 0)]
            active.add(root)
            while stack:
                oid, fields, pos = stack[-1]
                o = heap[oid]
                long = o.kind == "array" and len(fields) > MAX_FIXED
                if pos == len(fields):
                    stack.pop()
                    active.discard(oid)
                    done.add(oid)
                    order.append(oid)
                    continue
                stack[-1] = (oid, fields, pos + 1)
                ft, v = fields[pos]
                p = refs(v)
                if long and not _is_default(v):
                    self._need_mutable(oid, ft, "an element of a long array")
                    patches.append((oid, pos, v))
                    self.deferred.add((oid, pos))
                if p is None:
                    continue
                into_exn = heap[p].kind == "exn" and o.kind != "exn"
                if p in active or into_exn:
                    if o.kind == "exn":
                        raise NotConvertible("heap cycle", "through an exception payload")
                    if not long:
                        self._need_mutable(oid, ft, "a cycle" if not into_exn else "an exnref field")
                        patches.append((oid, pos, v))
                        self.deferred.add((oid, pos))
                    if p in active:
                        continue
                if p not in done and p not in active:
                    active.add(p)
                    stack.append((p, self._fields(heap[p]), 0))

        for r in sorted(self.roots):
            if r not in done:
                visit(r)
        return order, patches

    def _need_mutable(self, oid: int, ft: FieldType, why: str) -> None:
        o = self.b.state.heap[oid]
        st = ft.storage
        if not ft.mutable or (isinstance(st, RefType) and not st.nullable and why != "an element of a long array"):
            raise NotConvertible("heap cycle" if why == "a cycle" else "unsupported value",
                                 f"{why} in {'an immutable' if not ft.mutable else 'a non-nullable'} field of "
                                 f"{o.kind} type {self.typeidx(o)}")

    def _helper(self, oid: int, patches: List[Tuple[int, int, Value]]) -> Global:
        o = self.b.state.heap[oid]
        if o.kind == "exn":
            return Global(GlobalType(EXNREF, True), [Instr("ref.null", "exn"), end()])
        j = self.typeidx(o)
        fields = self._fields(o)
        if o.kind == "array" and len(fields) > MAX_FIXED:
            ft = fields[0][0]
            if not _defaultable(_storage_valtype(ft)):
                raise NotConvertible("unsupported value", f"array of {len(fields)} non-defaultable elements")
            init = [Instr("i32.const", len(fields)), Instr("array.new_default", j)]
        else:
            init = []
            for pos, (ft, v) in enumerate(fields):
                if (oid, pos) in self.deferred:
                    init.append(Instr("ref.null", ft.storage.heap))
                else:
                    init += self.b.value_code(v, _storage_valtype(ft), in_const=True)
            init.append(Instr("struct.new", j) if o.kind == "struct" else Instr("array.new_fixed", (j, len(fields))))
        return Global(GlobalType(RefType(False, j), False), init + [end()])

    def _exn_build(self, oid: int) -> List[Instr]:
        """The prologue code that sets the helper of exception ``oid``: throw it and catch its exnref."""
        code = [Instr("block", EXNREF), Instr("try_table", (None, (Catch("catch_all_ref", None, 0),)))]
        code += self.throw_code(("ref.exn", oid))
        return code + [end(), Instr("unreachable"), end(), Instr("global.set", HelperRef(oid))]

    def throw_code(self, v: Value) -> List[Instr]:
        """``<payload> throw $tag`` of the exception ``v`` (``("ref.exn", id)``): an exception of the
        same tag and payload, what a rebuilt legacy ``rethrow`` throws (Wasm cannot tell it from the
        original: ``exnref`` has no identity test; legacy-only targets run it)."""
        if v[0] != "ref.exn":
            raise NotConvertible("inconsistent state", f"caught value {v[0]} is not an exception")
        o = self.obj(v[1], "exn")
        ist, m = self.b.ist, self.b.m
        if o.tag is None or o.tag not in ist.tags:
            raise NotConvertible("foreign function", f"exception of tag address {o.tag}, not a tag of the instance")
        tagidx = ist.tags.index(o.tag)
        typeidxs = [i.desc.type for i in m.imported("tag")] + [t.typeidx for t in m.tags]
        params = m.func_type(typeidxs[tagidx]).params
        if len(params) != len(o.fields):
            raise NotConvertible("inconsistent state", f"exception payload does not fit tag {tagidx}")
        code: List[Instr] = []
        for t, x in zip(params, o.fields):
            code += self.b.value_code(x, t)
        return code + [Instr("throw", tagidx)]

    def _patch(self, oid: int, pos: int, v: Value) -> List[Instr]:
        o = self.b.state.heap[oid]
        j = self.typeidx(o)
        ft = self._field_type(o, pos)
        val = self.b.value_code(v, _storage_valtype(ft))
        if o.kind == "struct":
            return [Instr("global.get", HelperRef(oid))] + val + [Instr("struct.set", (j, pos))]
        return [Instr("global.get", HelperRef(oid)), Instr("i32.const", pos)] + val + [Instr("array.set", j)]

    # -- relocation ------------------------------------------------------------------------------
    def relocate(self, out: Module, order: List[int], helpers: List[Global]) -> Module:
        """``out`` with the host-reference imports after the imported globals, then the helper globals,
        and every global index (code, constant expressions, exports) renumbered; placeholders
        resolved."""
        nimp_globals = len(out.imported("global"))
        hosts = sorted(self.hosts)
        host_at = {h: nimp_globals + k for k, h in enumerate(hosts)}
        at = {oid: nimp_globals + len(hosts) + k for k, oid in enumerate(order)}
        n = len(hosts) + len(helpers)

        def fix(expr: List[Instr]) -> List[Instr]:
            res = []
            for ins in expr:
                if ins.op in ("global.get", "global.set"):
                    g = ins.imm
                    if isinstance(g, HelperRef):
                        g = at[g.id]
                    elif isinstance(g, HostImport):
                        g = host_at[g.n]
                    elif g >= nimp_globals:
                        g += n
                    ins = Instr(ins.op, g, ins.offset)
                res.append(ins)
            return res

        if not n:
            return out
        last = max((k for k, i in enumerate(out.imports) if i.desc.kind == "global"), default=-1)
        imports = out.imports[:last + 1] + [host_import(h) for h in hosts] + out.imports[last + 1:]
        return dataclasses.replace(
            out, imports=imports,
            funcs=[dataclasses.replace(f, body=fix(f.body)) for f in out.funcs],
            globals=[dataclasses.replace(g, init=fix(g.init)) for g in helpers + list(out.globals)],
            tables=[t if t.init is None else dataclasses.replace(t, init=fix(t.init)) for t in out.tables],
            elems=[dataclasses.replace(e, init=[fix(x) for x in e.init],
                                       offset=None if e.offset is None else fix(e.offset)) for e in out.elems],
            datas=[d if d.offset is None else dataclasses.replace(d, offset=fix(d.offset)) for d in out.datas],
            exports=[e._replace(index=e.index + n) if e.kind == "global" and e.index >= nimp_globals else e
                     for e in out.exports],
        )
