"""GC instructions (structs, arrays, i31, casts, extern conversions) for the reference engine.

Contract with :func:`vm.exec.engine.compile_function`: ``OPS[op](machine, inst, imm, i, branch)`` returns
the ``(handler, arg)`` pair of instruction ``i`` (``imm`` its immediate, ``inst`` the ModuleInst,
``branch(i, depth)`` the pair of a branch to label ``depth`` for ``br_on_cast``/``br_on_cast_fail``).
Handlers have the engine's signature ``handler(stack, locals, arg, pc) -> next_pc``.  Heap objects are
:mod:`vm.runtime.heap`'s, and so are the operations constant expressions share with these handlers
(allocation, ``ref.i31``, the extern conversions, the dynamic type test :func:`~vm.runtime.heap.ref_matches`).

Every type-dependent fact (canonical key, field masks, element width, the canonical cast target) is
resolved here at compile time, so a handler does only the run-time work.  Traps use the reference
interpreter's wording (:data:`vm.errors.TRAP_KINDS`): ``null structure reference``, ``null array
reference``, ``null i31 reference``, ``out of bounds array access``, ``cast failure``; the segment
forms trap like ``memory.init``/``table.init`` on the segment side.  An allocation beyond the store's
``max_heap_fields`` is :class:`~vm.errors.Exhaustion` ``out of memory`` (the program is fine, the store
is full, as when the host runs out of memory).  Counting is unchanged: each instruction counts once.
"""

from __future__ import annotations

import struct
from typing import Any, Callable, Dict, Tuple, cast

from ..errors import Exhaustion, ResourceLimit, Trap
from ..runtime.heap import (
    any_convert_extern,
    extern_convert_any,
    field_mask,
    new_array,
    new_array_fixed,
    new_struct,
    ref_i31,
    ref_matches,
    struct_masks,
)
from ..runtime.objects import ModuleInst
from ..types import ArrayType, RefType, StructType, default_value
from ..valid.canon import canon_valtype

Pair = Tuple[Callable, Any]

_M32 = 0xFFFFFFFF


def _null_struct() -> Trap:
    return Trap("null structure reference")


def _null_array() -> Trap:
    return Trap("null array reference")


def _array_oob() -> Trap:
    return Trap("out of bounds array access")


def oom(e: ResourceLimit) -> Exhaustion:
    """What a heap allocation beyond the store's limit raises (also ``throw``'s, in :mod:`.eh`)."""
    return Exhaustion(f"out of memory ({e.message})")


def _sext(bits: int) -> Callable[[int], int]:
    """The i32 of a packed field read with ``_s``: sign-extend a ``bits``-wide unsigned value."""
    sign = 1 << (bits - 1)

    def f(v: int) -> int:
        return ((v ^ sign) - sign) & _M32
    return f


_SEXT: Dict[Any, Callable[[int], int]] = {"i8": _sext(8), "i16": _sext(16)}  # by storage type


def _struct_type(inst: ModuleInst, x: int) -> StructType:
    return cast(StructType, inst.module.types[x].comp)  # valid: the validator checked the type index


def _array_type(inst: ModuleInst, x: int) -> ArrayType:
    return cast(ArrayType, inst.module.types[x].comp)


# -- structs ---------------------------------------------------------------------------------------

def _h_struct_new(st, lc, a, pc):
    store, canon, masks, n = a
    vals = st[len(st) - n:]
    del st[len(st) - n:]
    try:
        st.append(new_struct(store.quota, canon, masks, vals))
    except ResourceLimit as e:
        raise oom(e) from None
    return pc + 1


def _h_struct_new_default(st, lc, a, pc):
    store, canon, masks, defaults = a
    try:
        st.append(new_struct(store.quota, canon, masks, defaults))
    except ResourceLimit as e:
        raise oom(e) from None
    return pc + 1


def _h_struct_get(st, lc, a, pc):
    s = st[-1]
    if s is None:
        raise _null_struct()
    st[-1] = s.fields[a]
    return pc + 1


def _h_struct_get_packed(st, lc, a, pc):
    s = st[-1]
    if s is None:
        raise _null_struct()
    st[-1] = a[1](s.fields[a[0]])
    return pc + 1


def _h_struct_set(st, lc, a, pc):
    v = st.pop()
    s = st.pop()
    if s is None:
        raise _null_struct()
    idx, mask = a
    s.fields[idx] = v & mask if mask else v
    return pc + 1


def _struct_new(m, inst, x, i, branch) -> Pair:
    comp = _struct_type(inst, x)
    return _h_struct_new, (m.store, inst.canon[x], struct_masks(comp), len(comp.fields))


def _struct_new_default(m, inst, x, i, branch) -> Pair:
    comp = _struct_type(inst, x)
    defaults = tuple(default_value(f.storage) for f in comp.fields)
    return _h_struct_new_default, (m.store, inst.canon[x], struct_masks(comp), defaults)


def _struct_get(m, inst, imm, i, branch, signed=False) -> Pair:
    """``struct.get``/``_u`` read the stored value (packed fields are stored unsigned); ``_s`` of a
    packed field sign-extends it."""
    x, y = imm
    storage = _struct_type(inst, x).fields[y].storage
    if signed and storage in _SEXT:
        return _h_struct_get_packed, (y, _SEXT[storage])
    return _h_struct_get, y


def _struct_set(m, inst, imm, i, branch) -> Pair:
    x, y = imm
    return _h_struct_set, (y, field_mask(_struct_type(inst, x).fields[y].storage))


# -- arrays ----------------------------------------------------------------------------------------

def _h_array_new(st, lc, a, pc):
    store, canon, mask = a
    n = st.pop()
    try:
        st[-1] = new_array(store.quota, canon, mask, n, st[-1])
    except ResourceLimit as e:
        raise oom(e) from None
    return pc + 1


def _h_array_new_default(st, lc, a, pc):
    store, canon, default = a
    try:
        st[-1] = new_array(store.quota, canon, 0, st[-1], default)
    except ResourceLimit as e:
        raise oom(e) from None
    return pc + 1


def _h_array_new_fixed(st, lc, a, pc):
    store, canon, mask, n = a
    vals = st[len(st) - n:]
    del st[len(st) - n:]
    try:
        st.append(new_array_fixed(store.quota, canon, mask, vals))
    except ResourceLimit as e:
        raise oom(e) from None
    return pc + 1


def _h_array_new_data(st, lc, a, pc):
    store, canon, inst, y, decode, z = a
    n = st.pop()
    s = st[-1]
    data = inst.datas[y]
    if s + n * z > len(data):
        raise Trap("out of bounds memory access")
    try:
        st[-1] = new_array_fixed(store.quota, canon, 0, decode(data, s, n))
    except ResourceLimit as e:
        raise oom(e) from None
    return pc + 1


def _h_array_new_elem(st, lc, a, pc):
    store, canon, inst, y = a
    n = st.pop()
    s = st[-1]
    seg = inst.elems[y]
    if s + n > len(seg):
        raise Trap("out of bounds table access")
    try:
        st[-1] = new_array_fixed(store.quota, canon, 0, seg[s:s + n])
    except ResourceLimit as e:
        raise oom(e) from None
    return pc + 1


def _h_array_get(st, lc, a, pc):
    i = st.pop()
    arr = st[-1]
    if arr is None:
        raise _null_array()
    el = arr.elements
    if i >= len(el):
        raise _array_oob()
    st[-1] = el[i] if a is None else a(el[i])
    return pc + 1


def _h_array_set(st, lc, a, pc):
    v = st.pop()
    i = st.pop()
    arr = st.pop()
    if arr is None:
        raise _null_array()
    el = arr.elements
    if i >= len(el):
        raise _array_oob()
    el[i] = v & a if a else v
    return pc + 1


def _h_array_len(st, lc, a, pc):
    arr = st[-1]
    if arr is None:
        raise _null_array()
    st[-1] = len(arr.elements)
    return pc + 1


def _h_array_fill(st, lc, a, pc):
    n = st.pop()
    v = st.pop()
    d = st.pop()
    arr = st.pop()
    if arr is None:
        raise _null_array()
    el = arr.elements
    if d + n > len(el):
        raise _array_oob()
    if n:
        el[d:d + n] = [v & a if a else v] * n
    return pc + 1


def _h_array_copy(st, lc, a, pc):
    n = st.pop()
    s = st.pop()
    src = st.pop()
    d = st.pop()
    dst = st.pop()
    if dst is None or src is None:
        raise _null_array()
    de = dst.elements
    se = src.elements
    if d + n > len(de) or s + n > len(se):
        raise _array_oob()
    if n:
        de[d:d + n] = se[s:s + n]  # the slice is a copy: overlapping ranges move as memmove does
    return pc + 1


def _h_array_init_data(st, lc, a, pc):
    inst, y, decode, z = a
    n = st.pop()
    s = st.pop()
    d = st.pop()
    arr = st.pop()
    if arr is None:
        raise _null_array()
    el = arr.elements
    if d + n > len(el):
        raise _array_oob()
    data = inst.datas[y]
    if s + n * z > len(data):
        raise Trap("out of bounds memory access")
    if n:
        el[d:d + n] = decode(data, s, n)
    return pc + 1


def _h_array_init_elem(st, lc, a, pc):
    inst, y = a
    n = st.pop()
    s = st.pop()
    d = st.pop()
    arr = st.pop()
    if arr is None:
        raise _null_array()
    el = arr.elements
    if d + n > len(el):
        raise _array_oob()
    seg = inst.elems[y]
    if s + n > len(seg):
        raise Trap("out of bounds table access")
    if n:
        el[d:d + n] = seg[s:s + n]
    return pc + 1


# Element decoding of array.new_data / array.init_data: the storage type's little-endian bytes, read as
# the runtime representation (unsigned ints, float bit patterns, a v128 as a 128-bit int).
_DATA_FMT = {"i8": "B", "i16": "H", "i32": "I", "f32": "I", "i64": "Q", "f64": "Q"}


def _data_decoder(storage: Any) -> Tuple[Callable[[bytes, int, int], list], int]:
    """``(decode(data, offset, n) -> elements, element size in bytes)`` of a numeric storage type."""
    if storage == "v128":
        def v128s(data, s, n):
            return [int.from_bytes(data[s + 16 * k:s + 16 * k + 16], "little") for k in range(n)]
        return v128s, 16
    code = _DATA_FMT[storage]

    def nums(data, s, n):
        return list(struct.unpack_from(f"<{n}{code}", data, s))
    return nums, struct.calcsize(code)


def _array_new(m, inst, x, i, branch) -> Pair:
    return _h_array_new, (m.store, inst.canon[x], field_mask(_array_type(inst, x).field.storage))


def _array_new_default(m, inst, x, i, branch) -> Pair:
    return _h_array_new_default, (m.store, inst.canon[x], default_value(_array_type(inst, x).field.storage))


def _array_new_fixed(m, inst, imm, i, branch) -> Pair:
    x, n = imm
    return _h_array_new_fixed, (m.store, inst.canon[x], field_mask(_array_type(inst, x).field.storage), n)


def _array_new_data(m, inst, imm, i, branch) -> Pair:
    x, y = imm
    decode, z = _data_decoder(_array_type(inst, x).field.storage)
    return _h_array_new_data, (m.store, inst.canon[x], inst, y, decode, z)


def _array_new_elem(m, inst, imm, i, branch) -> Pair:
    x, y = imm
    return _h_array_new_elem, (m.store, inst.canon[x], inst, y)


def _array_get(m, inst, x, i, branch, signed=False) -> Pair:
    storage = _array_type(inst, x).field.storage
    return _h_array_get, (_SEXT.get(storage) if signed else None)


def _array_set(m, inst, x, i, branch) -> Pair:
    return _h_array_set, field_mask(_array_type(inst, x).field.storage)


def _array_fill(m, inst, x, i, branch) -> Pair:
    return _h_array_fill, field_mask(_array_type(inst, x).field.storage)


def _array_init_data(m, inst, imm, i, branch) -> Pair:
    x, y = imm
    decode, z = _data_decoder(_array_type(inst, x).field.storage)
    return _h_array_init_data, (inst, y, decode, z)


# -- i31, casts, extern conversions ----------------------------------------------------------------

def _h_ref_i31(st, lc, a, pc):
    st[-1] = ref_i31(st[-1])
    return pc + 1


def _h_i31_get(st, lc, a, pc):
    r = st[-1]
    if r is None:
        raise Trap("null i31 reference")
    v = r.value
    st[-1] = v | 0x80000000 if a and v & 0x40000000 else v
    return pc + 1


def _h_ref_test(st, lc, a, pc):
    st[-1] = 1 if ref_matches(st[-1], a) else 0
    return pc + 1


def _h_ref_cast(st, lc, a, pc):
    if not ref_matches(st[-1], a):
        raise Trap("cast failure")
    return pc + 1


def _h_br_on_cast(st, lc, a, pc):
    if ref_matches(st[-1], a[2]):
        return a[0](st, lc, a[1], pc)
    return pc + 1


def _h_br_on_cast_fail(st, lc, a, pc):
    if not ref_matches(st[-1], a[2]):
        return a[0](st, lc, a[1], pc)
    return pc + 1


def _h_any_convert_extern(st, lc, a, pc):
    st[-1] = any_convert_extern(st[-1])
    return pc + 1


def _h_extern_convert_any(st, lc, a, pc):
    st[-1] = extern_convert_any(st[-1])
    return pc + 1


def _cast_target(inst: ModuleInst, t: RefType) -> RefType:
    """The canonical form of a cast's target type (type indices replaced by canonical keys)."""
    return cast(RefType, canon_valtype(t, inst.canon))


def _br_on_cast(h: Callable) -> Callable[..., Pair]:
    def make(m, inst, imm, i, branch) -> Pair:
        label, _rt1, rt2 = imm
        fn, arg = branch(i, label)
        return h, (fn, arg, _cast_target(inst, rt2))
    return make


def _fixed(pair: Pair) -> Callable[..., Pair]:
    return lambda m, inst, imm, i, branch: pair


OPS: Dict[str, Callable[..., Pair]] = {
    "struct.new": _struct_new,
    "struct.new_default": _struct_new_default,
    "struct.get": _struct_get,
    "struct.get_s": lambda m, inst, imm, i, branch: _struct_get(m, inst, imm, i, branch, True),
    "struct.get_u": lambda m, inst, imm, i, branch: _struct_get(m, inst, imm, i, branch, False),
    "struct.set": _struct_set,
    "array.new": _array_new,
    "array.new_default": _array_new_default,
    "array.new_fixed": _array_new_fixed,
    "array.new_data": _array_new_data,
    "array.new_elem": _array_new_elem,
    "array.get": _array_get,
    "array.get_s": lambda m, inst, imm, i, branch: _array_get(m, inst, imm, i, branch, True),
    "array.get_u": lambda m, inst, imm, i, branch: _array_get(m, inst, imm, i, branch, False),
    "array.set": _array_set,
    "array.len": _fixed((_h_array_len, None)),
    "array.fill": _array_fill,
    "array.copy": _fixed((_h_array_copy, None)),
    "array.init_data": _array_init_data,
    "array.init_elem": lambda m, inst, imm, i, branch: (_h_array_init_elem, (inst, imm[1])),
    "ref.i31": _fixed((_h_ref_i31, None)),
    "i31.get_s": _fixed((_h_i31_get, True)),
    "i31.get_u": _fixed((_h_i31_get, False)),
    "ref.test": lambda m, inst, imm, i, branch: (_h_ref_test, _cast_target(inst, imm)),
    "ref.cast": lambda m, inst, imm, i, branch: (_h_ref_cast, _cast_target(inst, imm)),
    "br_on_cast": _br_on_cast(_h_br_on_cast),
    "br_on_cast_fail": _br_on_cast(_h_br_on_cast_fail),
    "any.convert_extern": _fixed((_h_any_convert_extern, None)),
    "extern.convert_any": _fixed((_h_extern_convert_any, None)),
}
