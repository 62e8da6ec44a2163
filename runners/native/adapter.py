"""The adapter modules that keep floats out of a host language: the spectest *shim* in front of a resume
module and the *reader* behind it, and the decoding of the integer print stream they produce.

Used by wasmtime, v8 and wabt.  The resume module's ``spectest`` imports are renamed to ``wcr_spectest``
(:func:`.rewrite.rename_import_module`) and served by the shim, a Wasm module that imports only integer
prints (``spectest.print_i32``/``print_i64``) from the host and provides the whole spectest interface:
each print emits a tag (``print_i32(k)``, k = position in :data:`SHIM_TAGS`) followed by its arguments
as integer bits, so the host sees nothing but integers and NaN payloads survive; the memory, tables and
globals the module imports are *defined* in the shim.  The shim is generated from the one declaration
of the interface, :mod:`vm.runtime.spectest` (prints, globals, tables, memories), so no host keeps a
list of its own.  The *reader* imports ``resume`` and the manifest's exports from the instance
registered as ``wcr_resume`` and exports ``run`` (calls resume, returns results as integers),
``dump_globals`` and ``dump_mem_K``/``dump_tab_K`` (print state through the same integer channel; used
where the host cannot read memory itself).  K is the position in the manifest's ``values()``.
"""

from __future__ import annotations

import struct
from functools import lru_cache
from typing import Dict, List, Optional, Sequence, Tuple

from vm.runtime.spectest import GLOBALS, MEMORIES, PRINTS, TABLES
from vm.snapshot.resume import Manifest

from .introspect import HOST_READABLE, ModuleInfo
from .rewrite import PROBE_RUN, null_probe
from .target import NativeOutcome, Value

SHIM_TAGS = tuple(PRINTS)  # tag k ↔ print name
RESUME_AS = "wcr_resume"
NUM = ("i32", "i64", "f32", "f64", "v128")
REF_NAMES = {"funcref": "func", "externref": "extern"}


# ------------------------------------------------------------------------------------------ adapter modules
def shim_wat(needed: Sequence[str] = (), host: str = "spectest") -> str:
    """The spectest shim: every print of :data:`vm.runtime.spectest.PRINTS` on top of the integer prints
    of ``host``, and the memories, tables and globals among ``needed`` (the names the resume module
    imports: a runtime may lack a feature one of the others needs, e.g. table64)."""
    lines = [
        "(module",
        f'  (import "{host}" "print_i32" (func $pi (param i32)))',
        f'  (import "{host}" "print_i64" (func $pl (param i64)))',
    ]
    for name, (lo, hi) in MEMORIES.items():
        if name in needed:
            lines.append(f'  (memory (export "{name}") {lo} {hi})')
    for name, (lo, hi, is64) in TABLES.items():
        if name in needed:
            lines.append(f'  (table (export "{name}") {"i64 " if is64 else ""}{lo} {hi} funcref)')
    for name, (t, bits, mutable) in GLOBALS.items():
        if name in needed:
            gt = f"(mut {t})" if mutable else t
            lines.append(f'  (global (export "{name}") {gt} ({t}.const {_literal(t, bits)}))')
    for tag, (name, params) in enumerate(PRINTS.items()):
        body = [f"(call $pi (i32.const {tag}))"]
        for i, t in enumerate(params):
            body.append(_emit_bits(t, f"(local.get {i})"))
        ps = " ".join(params)
        lines.append(f'  (func (export "{name}") {"(param " + ps + ")" if ps else ""} {" ".join(body)})')
    lines.append(")")
    return "\n".join(lines)


@lru_cache(maxsize=64)
def _shim_bytes(needed: Tuple[str, ...]) -> bytes:
    return wat(shim_wat(needed))


def shim(info: ModuleInfo) -> bytes:
    """The shim binary for this module's spectest imports (memoised: modules share a few shapes)."""
    names = set(info.spectest_imports())
    return _shim_bytes(tuple(n for n in (*MEMORIES, *TABLES, *GLOBALS) if n in names))


def _literal(t: str, bits: int) -> str:
    """A WAT constant with exactly these bits (floats as hex floats or ``nan:0x…``, never rounded)."""
    if t in ("i32", "i64"):
        return str(bits)
    width, frac_bits = (32, 23) if t == "f32" else (64, 52)
    sign = "-" if bits >> (width - 1) else ""
    exp_all = ((1 << (width - 1 - frac_bits)) - 1) << frac_bits
    frac = bits & ((1 << frac_bits) - 1)
    if bits & exp_all == exp_all:
        return f"{sign}nan:0x{frac:x}" if frac else f"{sign}inf"
    if t == "f32":
        return struct.unpack("<f", struct.pack("<I", bits))[0].hex()
    return struct.unpack("<d", struct.pack("<Q", bits))[0].hex()


def _emit_bits(t: str, expr: str) -> str:
    """Instructions that print the value of ``expr`` (type t) through $pi/$pl as integer bits."""
    if t == "i32":
        return f"(call $pi {expr})"
    if t == "i64":
        return f"(call $pl {expr})"
    if t == "f32":
        return f"(call $pi (i32.reinterpret_f32 {expr}))"
    if t == "f64":
        return f"(call $pl (i64.reinterpret_f64 {expr}))"
    if t == "v128":
        return f"(call $pl (i64x2.extract_lane 0 {expr})) (call $pl (i64x2.extract_lane 1 {expr}))"
    return f"(call $pi (ref.is_null {expr}))"  # references: 1 = null


def _wat_str(s: str) -> str:
    """A WAT string literal for an export name (any UTF-8: unsafe bytes become ``\\hh`` escapes)."""
    safe = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_-. "
    return '"' + "".join(chr(b) if b in safe else f"\\{b:02x}" for b in s.encode("utf-8")) + '"'


def _int_results(results: Sequence[str]) -> List[str]:
    out: List[str] = []
    for t in results:
        out += {"i32": ["i32"], "i64": ["i64"], "f32": ["i32"], "f64": ["i64"], "v128": ["i64", "i64"]}.get(t, ["i32"])
    return out


def reader_wat(info: ModuleInfo, man: Manifest, host: str = "spectest", dumps: bool = True) -> str:
    """The reader module (see the module docstring).  ``dumps``: include memory/table dump functions."""
    res = info.resume_results(man)
    probed = any(t not in HOST_READABLE for t in res)  # resume through its null probe (rewrite.py)
    lines = ["(module", *_reader_imports(info, man, host, res, dumps), _reader_run(res, probed)]
    gl = [_emit_bits(info.type_of(g), f"(global.get $g{i})") if info.type_of(g) in HOST_READABLE
          else f"(call $pi (call $g{i}))" for i, g in enumerate(man.globals.values())]
    lines.append(f'  (func (export "dump_globals") {" ".join(gl)})')
    if dumps:
        lines += _reader_dumps(info, man)
    lines.append(")")
    return "\n".join(lines)


def _reader_imports(info: ModuleInfo, man: Manifest, host: str, res: Sequence[str], dumps: bool) -> List[str]:
    """The prints, ``resume`` and the manifest's globals (and, with ``dumps``, memories and tables)."""
    lines = [
        f'  (import "{host}" "print_i32" (func $pi (param i32)))',
        f'  (import "{host}" "print_i64" (func $pl (param i64)))',
    ]
    if any(t not in HOST_READABLE for t in res):
        lines.append(f'  (import "{RESUME_AS}" {_wat_str(PROBE_RUN)} (func $resume (result {" ".join(_int_results(res))})))')
    else:
        lines.append(f'  (import "{RESUME_AS}" {_wat_str(man.entry)} (func $resume (result {" ".join(res)})))')
    for i, g in enumerate(man.globals.values()):
        e = info.export(g)
        assert e is not None
        if e.type not in HOST_READABLE:
            lines.append(f'  (import "{RESUME_AS}" {_wat_str(null_probe(g))} (func $g{i} (result i32)))')
            continue
        gt = f"(mut {e.type})" if e.mutable else e.type
        lines.append(f'  (import "{RESUME_AS}" {_wat_str(g)} (global $g{i} {gt}))')
    for i, m in enumerate(man.memories.values() if dumps else ()):
        e = info.export(m)
        assert e is not None
        lines.append(f'  (import "{RESUME_AS}" {_wat_str(m)} (memory $m{i} {"i64 " if e.is64 else ""}0))')
    for i, tb in enumerate(man.tables.values() if dumps else ()):
        t = info.type_of(tb)
        if t in REF_NAMES:
            lines.append(f'  (import "{RESUME_AS}" {_wat_str(tb)} (table $t{i} 0 {t}))')
    return lines


def _reader_run(res: Sequence[str], probed: bool = False) -> str:
    """``run``: call resume, store results into locals (last on top), push them back as integers
    (``probed``: ``resume`` is its null probe, whose results are integers already)."""
    if probed:
        ires = _int_results(res)
        return f'  (func (export "run") {"(result " + " ".join(ires) + ")" if ires else ""} (call $resume))'
    locs = " ".join(f"(local $r{i} {t})" for i, t in enumerate(res))
    body = ["(call $resume)"] + [f"(local.set $r{i})" for i in reversed(range(len(res)))]
    for i, t in enumerate(res):
        g = f"(local.get $r{i})"
        body.append({"i32": g, "i64": g, "f32": f"(i32.reinterpret_f32 {g})", "f64": f"(i64.reinterpret_f64 {g})",
                     "v128": f"(i64x2.extract_lane 0 {g}) (i64x2.extract_lane 1 {g})"}.get(t, f"(ref.is_null {g})"))
    ires = _int_results(res)
    return f'  (func (export "run") {"(result " + " ".join(ires) + ")" if ires else ""} {locs} {" ".join(body)})'


def _reader_dumps(info: ModuleInfo, man: Manifest) -> List[str]:
    """``dump_mem_K`` (page count, then (address, non-zero word) pairs, then -1) for each 32-bit memory
    and ``dump_tab_K`` (size, then 1 = null per element) for each reference table."""
    lines = []
    for i, m in enumerate(man.memories.values()):
        e = info.export(m)
        assert e is not None
        if e.is64:
            continue
        lines.append(
            f'  (func (export "dump_mem_{i}") (local $a i32) (local $n i32) (local $w i64)'
            f" (call $pi (memory.size $m{i}))"
            f" (local.set $n (i32.mul (memory.size $m{i}) (i32.const 65536)))"
            f" (block $done (loop $l (br_if $done (i32.ge_u (local.get $a) (local.get $n)))"
            f" (local.set $w (i64.load $m{i} (local.get $a)))"
            f" (if (i64.ne (local.get $w) (i64.const 0)) (then (call $pi (local.get $a)) (call $pl (local.get $w))))"
            f" (local.set $a (i32.add (local.get $a) (i32.const 8))) (br $l)))"
            f" (call $pi (i32.const -1)))")
    for i, tb in enumerate(man.tables.values()):
        if info.type_of(tb) not in REF_NAMES:
            continue
        lines.append(
            f'  (func (export "dump_tab_{i}") (local $a i32)'
            f" (call $pi (table.size $t{i}))"
            f" (block $done (loop $l (br_if $done (i32.ge_u (local.get $a) (table.size $t{i})))"
            f" (call $pi (ref.is_null (table.get $t{i} (local.get $a))))"
            f" (local.set $a (i32.add (local.get $a) (i32.const 1))) (br $l))))")
    return lines


def wat(text: str) -> bytes:
    """WAT text → binary (wasmtime's parser: every adapter is text so it can be read in a report)."""
    import wasmtime

    return bytes(wasmtime.wat2wasm(text))


# ------------------------------------------------------------------------------------------ value decoding
MASK = {"i32": 0xFFFFFFFF, "i64": 0xFFFFFFFFFFFFFFFF, "f32": 0xFFFFFFFF, "f64": 0xFFFFFFFFFFFFFFFF}


def decode_int_results(types: Sequence[str], ints: Sequence[int]) -> List[Value]:
    """Reader ``run`` results (integers, possibly signed) back to typed values."""
    it = iter(ints)
    out: List[Value] = []
    for t in types:
        if t in MASK:
            out.append((t, int(next(it)) & MASK[t]))
        elif t == "v128":
            lo = int(next(it)) & MASK["i64"]
            hi = int(next(it)) & MASK["i64"]
            out.append(("v128", lo | (hi << 64)))
        else:
            out.append(("ref.null", None) if int(next(it)) else ("ref", None))
    return out


class EventStream:
    """A stream of raw integer print events ``(width, value)``; width 32 = print_i32, 64 = print_i64."""

    def __init__(self, events: Sequence[Tuple[int, int]]):
        self.ev = list(events)
        self.pos = 0

    def take(self, width: Optional[int] = None) -> int:
        if self.pos >= len(self.ev):
            raise ValueError("print stream ended early")
        w, v = self.ev[self.pos]
        self.pos += 1
        if width is not None and w != width:
            raise ValueError(f"print stream: expected a {width}-bit value, got {w}-bit")
        return v & (MASK["i32"] if w == 32 else MASK["i64"])

    def value(self, t: str) -> Value:
        if t in ("i32", "f32"):
            return (t, self.take(32))
        if t in ("i64", "f64"):
            return (t, self.take(64))
        if t == "v128":
            lo = self.take(64)
            return ("v128", lo | (self.take(64) << 64))
        return ("ref.null", None) if self.take(32) else ("ref", None)

    def host_log(self) -> List[Tuple[str, Tuple[Value, ...]]]:
        out = []
        while self.pos < len(self.ev):
            tag = self.take(32)
            if tag >= len(SHIM_TAGS):
                raise ValueError(f"print stream: bad tag {tag}")
            name = SHIM_TAGS[tag]
            out.append((name, tuple(self.value(t) for t in PRINTS[name])))
        return out

    def globals(self, info: ModuleInfo, man: Manifest) -> Dict[str, Value]:
        return {g: self.value(info.type_of(g)) for g in man.globals.values()}

    def memory(self) -> bytes:
        pages = self.take(32)
        buf = bytearray(pages * 65536)
        while True:
            a = self.take(32)
            if a == 0xFFFFFFFF:
                return bytes(buf)
            buf[a:a + 8] = self.take(64).to_bytes(8, "little")

    def table(self) -> List[str]:
        n = self.take(32)
        return ["null" if self.take(32) else "ref" for _ in range(n)]


def fill_from_adapter(out: NativeOutcome, info: ModuleInfo, man: Manifest, run_events: Sequence[Tuple[int, int]],
                      global_events: Sequence[Tuple[int, int]]) -> None:
    """Decode the shim prints of ``run`` and the ``dump_globals`` prints into ``out``."""
    try:
        out.host_log = EventStream(run_events).host_log()
        out.globals = EventStream(global_events).globals(info, man)
    except ValueError as exc:
        out.inconclusive = f"could not decode the adapter's prints: {exc}"
