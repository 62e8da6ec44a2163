"""The WASI-command wrapper: a resume module made runnable by a runtime that can only run ``_start`` of a
WASI command from a command line (WAMR, ``cmd:`` targets).  What it prints is read by
:func:`.command.parse` (the record format below is described once, here).

Such a runtime cannot call ``resume`` and cannot be asked for memories or globals afterwards, so the
module has to say everything itself, through ``fd_write`` to stdout.  :func:`wrap` edits the decoded
resume module (one module, no linking: the runtime links nothing but WASI):

* the spectest memory/table/global imports become definitions (:func:`.rewrite.internalized`), each
  spectest print becomes a defined function that writes a ``P`` record (tag, argument bits);
* ``wasi_snapshot_preview1.fd_write``/``proc_exit`` are imported if the module lacks them (a spec-test
  or fuzz module gains WASI imports only for the wrapper); any other import is refused (unsupported);
* the program's own ``proc_exit`` calls go to an intercept that writes an ``X`` record (the code) and the
  final state, then calls the real ``proc_exit``;
* ``_start`` (the program's own ``_start`` export, if any, is renamed) calls ``resume`` and writes an
  ``R`` record (results), the final state and an ``E`` record (the end: the wrapper finished).

Records are ``NONCE (16 bytes) | kind (1 byte) | length (u32 LE) | payload``.  The nonce is random per
module and *border-free* (no proper prefix equals a suffix), so scanning for it can neither start inside
the program's own bytes nor overlap two occurrences; a payload is skipped by its length, so memory
contents never confuse the scan.  The program's stdout is every byte outside the records.  A program
cannot print the nonce: it lives only in the code of the wrapper (constants of ``i64.store``), which
Wasm cannot read.

Final state (what :meth:`.target.Target.run` reports, compared by the same rules as every target):
``G`` globals in manifest order (numbers by their bits, references as a null flag), per memory an ``M``
record (manifest position, pages) then ``D`` (the raw bytes; memory 0) or ``W`` records (address and
non-zero 8-byte word; other memories, which ``fd_write`` cannot point into), per table a ``T`` record
(position, size, one null flag byte per element).  Writing needs scratch memory: bytes 0..63 of memory 0
are saved in 8 added globals before the wrapper uses them and restored after a print (the ``D`` record
carries the saved bytes, so the dump is exact).  A print while memory 0 has no pages cannot be written:
the ``E`` record's flag says so and the run is inconclusive, never guessed.  A memory-0 of 0 pages at
the end is grown by one page for the dump (the program is over) and reported as 0 pages.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple

from vm.binary import encode_module
from vm.module import Export, Func, Global, Import, ImportDesc, Instr, MemArg, Memory, Module
from vm.runtime.spectest import PRINTS
from vm.snapshot.resume import Manifest
from vm.snapshot.resume.fold import _remap_expr as remap_funcs
from vm.types import FuncType, GlobalType, Limits, MemType, SubType

from .introspect import type_name
from .process import Unrunnable
from .rewrite import internalized

WASI = "wasi_snapshot_preview1"
#: exit codes of the wrapper itself (no E record follows them): fd_write failed / no scratch memory
EXIT_WRITE_FAILED = 121
EXIT_NO_SCRATCH = 122
SCRATCH = 64  # bytes of memory 0 the wrapper borrows (saved and restored)
STAGE = 16  # where values are staged for writing (0..7 iovec, 8..11 nwritten)
WIDTH = {"i32": 4, "f32": 4, "i64": 8, "f64": 8, "v128": 16}
_FD_WRITE = FuncType(("i32", "i32", "i32", "i32"), ("i32",))
_PROC_EXIT = FuncType(("i32",), ())


@dataclass
class Layout:
    """What :func:`parse` needs to read a wrapped module's stdout (kept with the module)."""

    nonce: bytes
    results: Tuple[str, ...]
    globals: Tuple[Tuple[str, str], ...]  # (manifest name, type name) in manifest order
    memories: Tuple[str, ...]
    tables: Tuple[str, ...]


def new_nonce() -> bytes:
    """16 random bytes with no border (see the module docstring)."""
    while True:
        n = os.urandom(16)
        if not any(n[:k] == n[-k:] for k in range(1, 16)):
            return n


def _i(op: str, imm: object = None) -> Instr:
    return Instr(op, imm)


def _mem(align: int, offset: int = 0, memidx: int = 0) -> MemArg:
    return MemArg(align, offset, memidx)


class _Builder:
    """The module being extended: types, function index space, added functions and globals."""

    def __init__(self, m: Module, nonce: bytes):
        self.m = m
        self.nonce = nonce
        self.types: List[SubType] = list(m.types)
        self.rec: List[int] = list(m.rec_sizes) if sum(m.rec_sizes) == len(m.types) else [1] * len(m.types)
        self.funcs: List[Func] = []
        self.first_new = 0  # funcidx of the first added function (set once imports are known)
        self.nglobals = len([i for i in m.imports if i.desc.kind == "global"]) + len(m.globals)
        self.globals: List[Global] = []

    def functype(self, ft: FuncType) -> int:
        for i, st in enumerate(self.types):
            if st.comp == ft and st.final and not st.supers:
                return i
        self.types.append(SubType(True, (), ft))
        self.rec.append(1)
        return len(self.types) - 1

    def reserve(self) -> int:
        """A funcidx for a function defined later (:meth:`define`)."""
        self.funcs.append(Func(0, [], []))
        return self.first_new + len(self.funcs) - 1

    def define(self, idx: int, ft: FuncType, locals_: Sequence[Tuple[int, Any]], body: List[Instr]) -> None:
        self.funcs[idx - self.first_new] = Func(self.functype(ft), list(locals_), body + [_i("end")])

    def global_(self, t: str, mutable: bool = True) -> int:
        self.globals.append(Global(GlobalType(t, mutable), [_i(f"{t}.const", 0), _i("end")]))
        return self.nglobals + len(self.globals) - 1


def _kind_of(t: object) -> str:
    """How a value of type ``t`` is written: its number type, or ``ref`` (a null flag, 4 bytes)."""
    name = type_name(t)
    return name if name in WIDTH else "ref"


def wrap(module: Module, man: Manifest, tables: bool = True) -> Tuple[bytes, Layout]:
    """The wrapped module and its :class:`Layout` (see the module docstring).  ``tables``: dump tables
    (needs ``table.get``: reference types).  :class:`Unrunnable` for what the wrapper cannot express
    (imports other than spectest and WASI, a 64-bit memory, an export ``memory`` that is not memory 0)."""
    m = internalized(module)
    nonce = new_nonce()
    b = _Builder(m, nonce)
    if any(i.desc.kind != "func" for i in m.imports):
        raise Unrunnable("imports a tag: the command wrapper links nothing but WASI")
    if any(mem.type.is64 or mem.type.page_size_log2 != 16 for mem in m.memories):
        raise Unrunnable("a 64-bit or custom-page memory: fd_write needs a plain 32-bit memory 0")
    imports, fmap, prints, program_exit = _imports(m, b)
    fw = _find(imports, "fd_write", _FD_WRITE, b)
    pe = _find(imports, "proc_exit", _PROC_EXIT, b)
    nold = len([i for i in m.imports if i.desc.kind == "func"])
    b.first_new = len(imports) + len(m.funcs)
    for k in range(len(m.funcs)):
        fmap[nold + k] = len(imports) + k
    ids = {n: b.reserve() for n in ("out", "w8", "w32", "w64", "w128", "hdr", "enter", "leave", "prep",
                                    "dump", "end", "start")}
    for j in prints:
        fmap[j] = b.reserve()
    if program_exit is not None:
        fmap[program_exit] = b.reserve()
    saved = [b.global_("i64") for _ in range(SCRATCH // 8)]
    lost = b.global_("i32")
    c = _Code(b, ids, fw, pe, saved, lost)
    c.helpers()
    for j, name in prints.items():
        c.print_(fmap[j], list(PRINTS).index(name), PRINTS[name])
    exports = _exports(m, fmap, ids["start"])
    entry = next((e for e in exports if e.name == man.entry and e.kind == "func"), None)
    if entry is None:
        raise Unrunnable(f"no exported function {man.entry!r}")
    lay = _layout(m, man, nonce, exports, tables)
    c.dump(lay, {e.name: e.index for e in exports})
    ft = b.types[_functype_of(m, entry.index, fmap, imports)].comp
    assert isinstance(ft, FuncType)
    c.start(entry.index, list(ft.results))
    if program_exit is not None:
        c.intercept(fmap[program_exit])
    memories = list(m.memories) or [Memory(MemType(Limits(1, None)))]
    out = replace(
        m, types=b.types, rec_sizes=b.rec, imports=imports,
        funcs=[replace(f, body=remap_funcs(f.body, fmap)) for f in m.funcs] + b.funcs,
        globals=[replace(g, init=remap_funcs(g.init, fmap)) for g in m.globals] + b.globals,
        tables=[replace(t, init=None if t.init is None else remap_funcs(t.init, fmap)) for t in m.tables],
        elems=[replace(e, init=[remap_funcs(x, fmap) for x in e.init]) for e in m.elems],
        memories=memories, exports=exports, start=None if m.start is None else fmap[m.start],
        customs=[cu for cu in m.customs if cu.name != "name"])
    return encode_module(out), lay


def _imports(m: Module, b: _Builder) -> Tuple[List[Import], Dict[int, int], Dict[int, str], Optional[int]]:
    """The kept WASI imports (new index = position), the old → new map for them, the spectest prints
    (old index → name) and the old index of the program's ``proc_exit``, if it imports one."""
    kept: List[Import] = []
    fmap: Dict[int, int] = {}
    prints: Dict[int, str] = {}
    program_exit = None
    for j, imp in enumerate(i for i in m.imports if i.desc.kind == "func"):
        if imp.module == "spectest" and imp.name in PRINTS:
            prints[j] = imp.name
            continue
        if imp.module != WASI:
            raise Unrunnable(f"imports {imp.module}.{imp.name}: the command wrapper links nothing but WASI")
        if imp.name == "proc_exit":
            program_exit = j  # its callers go to the intercept; the import itself stays, for it
        else:
            fmap[j] = len(kept)
        kept.append(imp)
    return kept, fmap, prints, program_exit


def _find(imports: List[Import], name: str, ft: FuncType, b: _Builder) -> int:
    """The funcidx of WASI import ``name`` (added when missing; its type checked when present)."""
    for k, imp in enumerate(imports):
        if imp.module == WASI and imp.name == name:
            if b.types[imp.desc.type].comp != ft:
                raise Unrunnable(f"{WASI}.{name} is imported with a wrong type")
            return k
    imports.append(Import(WASI, name, ImportDesc("func", b.functype(ft))))
    return len(imports) - 1


def _functype_of(m: Module, idx: int, fmap: Dict[int, int], imports: List[Import]) -> int:
    """Type index of (new) function ``idx`` among the imports and the original definitions."""
    if idx < len(imports):
        return int(imports[idx].desc.type)
    return m.funcs[idx - len(imports)].typeidx


def _exports(m: Module, fmap: Dict[int, int], start: int) -> List[Export]:
    """The exports remapped, the program's ``_start`` renamed, ours added, memory 0 as ``memory``."""
    names = {e.name for e in m.exports}
    out: List[Export] = []
    for e in m.exports:
        if e.kind == "func":
            e = e._replace(index=fmap[e.index])
        if e.name == "_start":
            new = "wcr:program:_start"
            while new in names:
                new += "_"
            e = e._replace(name=new)
        if e.name == "memory" and (e.kind != "memory" or e.index != 0):
            raise Unrunnable("exports 'memory' that is not memory 0 (WASI writes through memory 0)")
        out.append(e)
    out.append(Export("_start", "func", start))
    if not any(e.name == "memory" for e in out):
        out.append(Export("memory", "memory", 0))
    return out


def _layout(m: Module, man: Manifest, nonce: bytes, exports: List[Export], tables: bool) -> Layout:
    by = {e.name: e for e in exports}
    gt = [g.type.type for g in m.globals]
    return Layout(
        nonce=nonce, results=tuple(_kind_of(t) for t in man.results),
        globals=tuple((n, _kind_of(gt[by[n].index])) for n in man.globals.values() if n in by),
        memories=tuple(n for n in man.memories.values() if n in by),
        tables=tuple(n for n in man.tables.values() if n in by) if tables else ())


_I32, _I64 = "i32", "i64"


class _Code:
    """The wrapper's functions (helpers first: ``out(ptr, len)`` writes memory 0 bytes to stdout until
    done, ``wN(x)`` stages and writes one value, ``hdr(kind, len)`` a record header, ``enter``/``leave``
    save/restore the scratch bytes, ``prep`` makes memory 0 usable and enters, ``dump(pages0)`` the
    final state, ``end`` the E record)."""

    def __init__(self, b: _Builder, ids: Dict[str, int], fw: int, pe: int, saved: List[int], lost: int):
        self.b, self.ids, self.fw, self.pe, self.saved, self.lost = b, ids, fw, pe, saved, lost

    def call(self, name: str) -> Instr:
        return _i("call", self.ids[name])

    def helpers(self) -> None:
        b, c = self.b, self.call
        failed = [_i("i32.const", 0), _i("i32.load", _mem(2, 8)), _i("i32.eqz"), _i("i32.or"), _i("if", None),
                  _i("i32.const", EXIT_WRITE_FAILED), _i("call", self.pe), _i("end")]
        b.define(self.ids["out"], FuncType((_I32, _I32), ()), [], [
            _i("block", None), _i("loop", None), _i("local.get", 1), _i("i32.eqz"), _i("br_if", 1),
            _i("i32.const", 0), _i("local.get", 0), _i("i32.store", _mem(2)),
            _i("i32.const", 0), _i("local.get", 1), _i("i32.store", _mem(2, 4)),
            _i("i32.const", 1), _i("i32.const", 0), _i("i32.const", 1), _i("i32.const", 8), _i("call", self.fw),
            *failed,
            _i("local.get", 0), _i("i32.const", 0), _i("i32.load", _mem(2, 8)), _i("i32.add"), _i("local.set", 0),
            _i("local.get", 1), _i("i32.const", 0), _i("i32.load", _mem(2, 8)), _i("i32.sub"), _i("local.set", 1),
            _i("br", 0), _i("end"), _i("end")])
        for name, t, store, width in (("w8", _I32, ("i32.store8", 0), 1), ("w32", _I32, ("i32.store", 2), 4),
                                      ("w64", _I64, ("i64.store", 3), 8), ("w128", "v128", ("v128.store", 4), 16)):
            body = [_i("i32.const", STAGE), _i("local.get", 0), _i(store[0], _mem(store[1])),
                    _i("i32.const", STAGE), _i("i32.const", width), c("out")]
            if name != "w128":  # a placeholder until a v128 value needs it (:meth:`_simd`): no SIMD type otherwise
                b.define(self.ids[name], FuncType((t,), ()), [], body)
        b.define(self.ids["w128"], FuncType((), ()), [], [])
        lo, hi = int.from_bytes(b.nonce[:8], "little"), int.from_bytes(b.nonce[8:], "little")
        b.define(self.ids["hdr"], FuncType((_I32, _I32), ()), [], [
            _i("i32.const", STAGE), _i("i64.const", lo), _i("i64.store", _mem(3)),
            _i("i32.const", STAGE), _i("i64.const", hi), _i("i64.store", _mem(3, 8)),
            _i("i32.const", STAGE), _i("local.get", 0), _i("i32.store8", _mem(0, 16)),
            _i("i32.const", STAGE), _i("local.get", 1), _i("i32.store", _mem(0, 17)),
            _i("i32.const", STAGE), _i("i32.const", 21), c("out")])
        enter: List[Instr] = []
        leave: List[Instr] = []
        for k, g in enumerate(self.saved):
            enter += [_i("i32.const", 0), _i("i64.load", _mem(3, 8 * k)), _i("global.set", g)]
            leave += [_i("i32.const", 0), _i("global.get", g), _i("i64.store", _mem(3, 8 * k))]
        b.define(self.ids["enter"], FuncType((), ()), [], enter)
        b.define(self.ids["leave"], FuncType((), ()), [], leave)
        b.define(self.ids["prep"], FuncType((), (_I32,)), [(1, _I32)], [
            _i("memory.size", 0), _i("local.tee", 0), _i("i32.eqz"), _i("if", None),
            _i("i32.const", 1), _i("memory.grow", 0), _i("i32.const", 0xFFFFFFFF), _i("i32.eq"), _i("if", None),
            _i("i32.const", EXIT_NO_SCRATCH), _i("call", self.pe), _i("end"), _i("end"),
            c("enter"), _i("local.get", 0)])
        b.define(self.ids["end"], FuncType((), ()), [], [
            _i("i32.const", ord("E")), _i("i32.const", 4), c("hdr"), _i("global.get", self.lost), c("w32")])

    def hdr(self, kind: str, length: int) -> List[Instr]:
        return [_i("i32.const", ord(kind)), _i("i32.const", length), self.call("hdr")]

    def value(self, kind: str) -> List[Instr]:
        """Write the value on the stack, of kind ``kind`` (:func:`_kind_of`)."""
        conv = {"f32": [_i("i32.reinterpret_f32")], "f64": [_i("i64.reinterpret_f64")], "ref": [_i("ref.is_null")]}
        w = {"i32": "w32", "f32": "w32", "ref": "w32", "i64": "w64", "f64": "w64", "v128": "w128"}[kind]
        if kind == "v128":
            self._simd()
        return conv.get(kind, []) + [self.call(w)]

    def _simd(self) -> None:
        """``w128`` for real (only a module that has v128 values gets a v128 instruction from us)."""
        self.b.define(self.ids["w128"], FuncType(("v128",), ()), [], [
            _i("i32.const", STAGE), _i("local.get", 0), _i("v128.store", _mem(4)),
            _i("i32.const", STAGE), _i("i32.const", 16), self.call("out")])

    def print_(self, idx: int, tag: int, params: Sequence[str]) -> None:
        body = [_i("memory.size", 0), _i("i32.eqz"), _i("if", None), _i("i32.const", 1), _i("global.set", self.lost),
                _i("return"), _i("end"), self.call("enter"),
                *self.hdr("P", 1 + sum(WIDTH[p] for p in params)), _i("i32.const", tag), self.call("w8")]
        for i, p in enumerate(params):
            body += [_i("local.get", i), *self.value(p)]
        self.b.define(idx, FuncType(tuple(params), ()), [], body + [self.call("leave")])

    def dump(self, lay: Layout, index: Dict[str, int]) -> None:
        """``dump(pages0)``: G, M/D/W and T records (locals: 1 address, 2 limit, 3 word)."""
        b = self.b
        body = self.hdr("G", sum(WIDTH.get(k, 4) for _n, k in lay.globals))
        for n, k in lay.globals:
            body += [_i("global.get", index[n]), *self.value(k)]
        for pos, n in enumerate(lay.memories):
            mi = index[n]
            body += [*self.hdr("M", 8), _i("i32.const", pos), self.call("w32")]
            body += [_i("local.get", 0) if mi == 0 else _i("memory.size", mi), self.call("w32")]
            body += self._mem0() if mi == 0 else self._words(mi)
        for pos, n in enumerate(lay.tables):
            ti = index[n]
            is64 = b.m.tables[ti].type.is64
            size = [_i("table.size", ti)] + ([_i("i32.wrap_i64")] if is64 else [])
            body += [*size, _i("local.set", 2), _i("i32.const", ord("T")), _i("local.get", 2), _i("i32.const", 8),
                     _i("i32.add"), self.call("hdr"), _i("i32.const", pos), self.call("w32"), _i("local.get", 2),
                     self.call("w32"), _i("i32.const", 0), _i("local.set", 1),
                     _i("block", None), _i("loop", None), _i("local.get", 1), _i("local.get", 2), _i("i32.ge_u"),
                     _i("br_if", 1), _i("local.get", 1), *([_i("i64.extend_i32_u")] if is64 else []),
                     _i("table.get", ti), _i("ref.is_null"), self.call("w8"),
                     _i("local.get", 1), _i("i32.const", 1), _i("i32.add"), _i("local.set", 1), _i("br", 0),
                     _i("end"), _i("end")]
        b.define(self.ids["dump"], FuncType((_I32,), ()), [(2, _I32), (1, _I64)], body)

    def _mem0(self) -> List[Instr]:
        """D record of memory 0: the saved scratch bytes, then the rest straight from memory."""
        body = [_i("i32.const", ord("D")), _i("local.get", 0), _i("i32.const", 16), _i("i32.shl"), self.call("hdr"),
                _i("local.get", 0), _i("if", None)]
        for g in self.saved:
            body += [_i("i32.const", STAGE), _i("global.get", g), _i("i64.store", _mem(3)),
                     _i("i32.const", STAGE), _i("i32.const", 8), self.call("out")]
        return body + [_i("i32.const", SCRATCH), _i("local.get", 0), _i("i32.const", 16), _i("i32.shl"),
                       _i("i32.const", SCRATCH), _i("i32.sub"), self.call("out"), _i("end")]

    def _words(self, mi: int) -> List[Instr]:
        """W records of memory ``mi`` (not 0): each non-zero 8-byte word with its address."""
        return [_i("memory.size", mi), _i("i32.const", 16), _i("i32.shl"), _i("local.set", 2),
                _i("i32.const", 0), _i("local.set", 1),
                _i("block", None), _i("loop", None), _i("local.get", 1), _i("local.get", 2), _i("i32.ge_u"),
                _i("br_if", 1), _i("local.get", 1), _i("i64.load", _mem(3, 0, mi)), _i("local.tee", 3),
                _i("i64.const", 0), _i("i64.ne"), _i("if", None), *self.hdr("W", 12), _i("local.get", 1),
                self.call("w32"), _i("local.get", 3), self.call("w64"), _i("end"),
                _i("local.get", 1), _i("i32.const", 8), _i("i32.add"), _i("local.set", 1), _i("br", 0),
                _i("end"), _i("end")]

    def start(self, resume: int, results: List[object]) -> None:
        n = len(results)
        body = [_i("call", resume)] + [_i("local.set", i) for i in reversed(range(n))]
        body += [self.call("prep"), _i("local.set", n), *self.hdr("R", sum(WIDTH.get(_kind_of(t), 4) for t in results))]
        for i, t in enumerate(results):
            body += [_i("local.get", i), *self.value(_kind_of(t))]
        body += [_i("local.get", n), self.call("dump"), self.call("end")]
        self.b.define(self.ids["start"], FuncType((), ()), [(1, t) for t in results] + [(1, _I32)], body)

    def intercept(self, idx: int) -> None:
        """The program's ``proc_exit``: X record, final state, E record, then the real one."""
        self.b.define(idx, _PROC_EXIT, [(1, _I32)], [
            self.call("prep"), _i("local.set", 1), *self.hdr("X", 4), _i("local.get", 0), self.call("w32"),
            _i("local.get", 1), self.call("dump"), self.call("end"), _i("local.get", 0), _i("call", self.pe)])

