"""Which Wasm features a (resume) module needs, in the feature names targets declare
(:attr:`runners.native.Target.features`).

A scan of the decoded module rather than ``wasm-tools validate --features`` runs (one subprocess per
module per feature set): the restorer asks this for every one of thousands of resume modules.  The scan
is conservative in one direction only: it may name a feature the module could do without (the target
is then skipped as *not applicable*), never omit one the module needs (the target would fail to load
it and the run would only be *inconclusive*, costing a run).
"""

from __future__ import annotations

from typing import Any, Iterable, Set

from vm.snapshot.resume import HOST_MODULE
from vm.snapshot.resume.wasi_part import WASI_MODULE

_BULK = {"memory.init", "data.drop", "memory.copy", "memory.fill", "table.init", "elem.drop", "table.copy"}
_REFS = {"ref.null", "ref.func", "ref.is_null", "table.get", "table.set", "table.size", "table.grow",
         "table.fill", "select_t"}
_SIGN = {"i32.extend8_s", "i32.extend16_s", "i64.extend8_s", "i64.extend16_s", "i64.extend32_s"}
_TAIL = {"return_call", "return_call_indirect"}
_FUNCREFS = {"call_ref", "return_call_ref", "ref.as_non_null", "br_on_null", "br_on_non_null"}
#: exception handling in three names, because runtimes implement different parts: tags and ``throw``
#: (both forms), the final form (``try_table``, ``throw_ref``, ``exnref``: wasmtime; node >= 24's V8),
#: and the legacy form of ``legacy/`` (``try``/``catch``/``delegate``/``rethrow``: node's V8 only)
_EXC_TAGS = {"throw"}
_EXC = {"try_table", "throw_ref"}
_EXC_LEGACY = {"try", "catch", "catch_all", "delegate", "rethrow"}
_EXN_HEAPS = ("exn", "noexn")
_CONST_PLAIN = {"i32.const", "i64.const", "f32.const", "f64.const", "v128.const", "ref.null", "ref.func",
                "global.get", "end"}


def _valtype(t: Any, out: Set[str]) -> None:
    if t == "v128":
        out.add("simd")
    elif not isinstance(t, str) and t is not None:
        heap = getattr(t, "heap", None)
        if heap in _EXN_HEAPS:
            out.add("exceptions")
        elif getattr(t, "nullable", True) and heap in ("func", "extern"):
            if heap == "extern":
                out.add("reference-types")
        else:
            out.add("function-references" if heap in ("func", "extern") or isinstance(heap, int) else "gc")


def _functype(ft: Any, out: Set[str]) -> None:
    comp = getattr(ft, "comp", ft)
    params = getattr(comp, "params", None)
    if params is None:  # struct/array
        out.add("gc")
        return
    if len(comp.results) > 1:
        out.add("multi-value")
    for t in tuple(params) + tuple(comp.results):
        _valtype(t, out)


def _blocktype(bt: Any, out: Set[str]) -> None:
    if isinstance(bt, int):
        out.add("multi-value")
    else:
        _valtype(bt, out)


def _instrs(body: Iterable[Any], out: Set[str], const: bool = False) -> None:
    for ins in body:
        op = ins.op
        if const and op not in _CONST_PLAIN:
            out.add("extended-const" if op.startswith(("i32.", "i64.")) else "gc")
        if op in ("block", "loop", "if"):
            _blocktype(ins.imm, out)
        elif op in _BULK:
            out.add("bulk-memory")
            if op in ("table.init", "table.copy", "elem.drop") and ins.imm not in (None, 0) and ins.imm != (0, 0):
                out.add("reference-types")
        elif op in _REFS:
            out.add("reference-types")
            if op == "select_t":
                for t in ins.imm or ():
                    _valtype(t, out)
            elif op == "ref.null" and ins.imm in _EXN_HEAPS:
                out.add("exceptions")
            elif op == "ref.null" and ins.imm not in ("func", "extern"):
                out.add("function-references" if isinstance(ins.imm, int) else "gc")
        elif op in _SIGN:
            out.add("sign-ext")
        elif "trunc_sat" in op:
            out.add("sat-trunc")
        elif op in _TAIL:
            out.add("tail-call")
            if op == "return_call_indirect" and ins.imm[1] != 0:
                out.add("reference-types")
        elif op == "call_indirect":
            if ins.imm[1] != 0:
                out.add("reference-types")
        elif op in _FUNCREFS:
            out.add("function-references")
        elif op in _EXC_TAGS:
            out.add("exception-tags")
        elif op in _EXC:
            out.add("exceptions")
            if op == "try_table":
                _blocktype(ins.imm[0], out)
        elif op in _EXC_LEGACY:
            out.add("legacy-exceptions")
            if op == "try":
                _blocktype(ins.imm, out)
        elif op.startswith(("struct.", "array.", "i31.", "ref.", "any.", "extern.", "br_on_cast")):
            out.add("gc")
        elif op.startswith("v128") or op.startswith(("i8x16", "i16x8", "i32x4", "i64x2", "f32x4", "f64x2")):
            out.add("simd")
            if "relaxed" in op:
                out.add("relaxed-simd")
        elif "atomic" in op:
            out.add("threads")


def module_features(m: Any) -> Set[str]:
    """Feature names ``m`` (a :class:`vm.module.Module`) needs; always includes ``mvp``."""
    out: Set[str] = {"mvp"}
    for st in m.types:
        _functype(st, out)
    for imp in m.imports:
        d = imp.desc
        if d.kind == "global" and d.type.mutable:
            out.add("mutable-globals")
        if d.kind == "global":
            _valtype(d.type.type, out)
        if d.kind == "tag":
            out.add("exception-tags")
        if imp.module == HOST_MODULE:  # a host reference the adapter must create (heap_part.py)
            out.add("host-references")
        if imp.module == WASI_MODULE:  # the target provides WASI preview 1 (runners/native/sandbox.py)
            out.add("wasi")
    gtypes = m.global_types()
    for ex in m.exports:
        if ex.kind == "global" and gtypes[ex.index].mutable:
            out.add("mutable-globals")
    ttypes = m.table_types()
    mtypes = m.mem_types()
    if len(ttypes) > 1:
        out.add("reference-types")
    for tt in ttypes:
        _valtype(tt.elem, out)
        if tt.is64:
            out.add("memory64")
    if len(mtypes) > 1:
        out.add("multi-memory")
    for mt in mtypes:
        if mt.is64:
            out.add("memory64")
        if getattr(mt, "shared", False):
            out.add("threads")
    for t in m.tables:
        if t.init is not None:
            out.add("function-references")
    for g in m.globals:
        _valtype(g.type.type, out)
        _instrs(g.init, out, const=True)
    for f in m.funcs:
        for _, t in f.locals:
            _valtype(t, out)
        _instrs(f.body, out)
    for e in m.elems:
        if e.mode != "active" or e.table != 0:
            out.add("bulk-memory")
            if e.mode == "active":
                out.add("reference-types")
        if not all(len(x) == 2 and x[0].op == "ref.func" for x in e.init):
            _valtype(e.type, out)  # funcidx-only segments are encoded as plain funcref ones
        for expr in e.init:
            if not (len(expr) == 2 and expr[0].op == "ref.func"):
                out.add("reference-types")
            _instrs(expr, out, const=True)
        if e.offset is not None:
            _instrs(e.offset, out, const=True)
    for d in m.datas:
        if d.mode != "active":
            out.add("bulk-memory")
        if d.offset is not None:
            _instrs(d.offset, out, const=True)
    if m.data_count is not None:
        out.add("bulk-memory")
    if m.tags:
        out.add("exception-tags")
    return out
