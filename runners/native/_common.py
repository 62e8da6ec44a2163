"""Shared machinery of the native targets: module introspection, the shim/reader adapter modules, the
import-renaming and import-internalising binary rewrites, the print-log protocol and bounded subprocesses.

The adapter protocol (used by wasmtime, v8 and wabt): the resume module's ``spectest`` imports are
renamed to ``wcr_spectest`` (a byte-level rewrite of the import section) and served by the *shim*, a Wasm
module that imports only integer prints (``spectest.print_i32``/``print_i64``) plus the host's memory,
table and globals, and re-exports the full spectest interface.  Each shim print emits a tag
(``print_i32(k)``, k = position in :data:`SHIM_TAGS`) followed by its arguments as integer bits, so the
host sees nothing but integers and NaN payloads survive.  The *reader* imports ``resume`` and the
manifest's exports from the instance registered as ``wcr_resume`` and exports ``run`` (calls resume,
returns results as integers), ``dump_globals`` and ``dump_mem_K``/``dump_tab_K`` (print state through the
same integer channel; used where the host cannot read memory itself).
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from vm.binary.leb128 import encode_u, read_u

from . import SPECTEST_PRINTS, NativeOutcome, ResumeManifest, Value

SHIM_TAGS = tuple(SPECTEST_PRINTS)  # tag k ↔ print name
RENAMED = "wcr_spectest"
RESUME_AS = "wcr_resume"
NUM = ("i32", "i64", "f32", "f64", "v128")
REF_NAMES = {"funcref": "func", "externref": "extern"}


class Unrunnable(Exception):
    """The module needs something this target cannot provide (reported as inconclusive)."""


class Timeout(Exception):
    """A run exceeded its wall-clock limit."""


def cache_dir() -> Path:
    """Where compiled artefacts are cached (``WCR_CACHE_DIR`` or a per-user temp dir)."""
    base = os.environ.get("WCR_CACHE_DIR")
    p = Path(base) if base else Path(tempfile.gettempdir()) / f"wcr-native-cache-{os.getuid() if hasattr(os, 'getuid') else 0}"
    p.mkdir(parents=True, exist_ok=True)
    return p


# ---------------------------------------------------------------------------------------------- module info
@dataclass
class Extern:
    name: str
    kind: str  # func | global | memory | table | tag
    type: str = ""  # global content / table element type
    mutable: bool = False
    params: Tuple[str, ...] = ()
    results: Tuple[str, ...] = ()
    is64: bool = False
    module: str = ""


@dataclass
class ModuleInfo:
    """Imports and exports of a module with their types, taken from wasmtime's validator (a hard
    dependency of wcr; it accepts every 3.0 feature, so it can describe any module)."""

    imports: List[Extern] = field(default_factory=list)
    exports: List[Extern] = field(default_factory=list)

    @classmethod
    def from_wasm(cls, wasm: bytes) -> ModuleInfo:
        """Validate with wasmtime (every 3.0 feature), describe with wcr's own decoder (wasmtime-py
        cannot print v128 types, the process aborts, and calls externref "anyref")."""
        import wasmtime

        from vm.binary import decode_module
        from vm.errors import WasmError

        try:
            wasmtime.Module.validate(_introspection_engine(), wasm)
        except Exception as exc:
            raise Unrunnable(f"invalid module: {str(exc).splitlines()[0]}") from exc
        try:
            mod = decode_module(wasm)
        except WasmError as exc:
            raise Unrunnable(f"wcr's decoder rejects the module: {exc}") from exc
        spaces: Dict[str, List[Any]] = {"func": [], "table": [], "memory": [], "global": [], "tag": []}
        info = cls()
        for imp in mod.imports:
            desc = imp.desc
            t = mod.types[desc.type].comp if desc.kind == "func" else desc.type
            spaces[desc.kind].append(t)
            info.imports.append(_extern(imp.name, desc.kind, t, imp.module))
        spaces["func"] += [mod.types[f.typeidx].comp for f in mod.funcs]
        spaces["table"] += [t.type for t in mod.tables]
        spaces["memory"] += [m.type for m in mod.memories]
        spaces["global"] += [g.type for g in mod.globals]
        for ex in mod.exports:
            info.exports.append(_extern(ex.name, ex.kind, spaces[ex.kind][ex.index] if ex.kind in spaces else None, ""))
        return info

    def export(self, name: str) -> Optional[Extern]:
        for e in self.exports:
            if e.name == name:
                return e
        return None

    def check(self, man: ResumeManifest) -> Optional[str]:
        """Why the module and manifest don't fit together (None when they do)."""
        f = self.export(man.entry)
        if f is None or f.kind != "func":
            return f"no exported function {man.entry!r}"
        if f.params:
            return f"{man.entry!r} takes parameters {f.params}"
        if man.results is not None and tuple(man.results) != f.results:
            return f"manifest says results {tuple(man.results)}, module's {man.entry!r} returns {f.results}"
        for names, kind in ((man.memories, "memory"), (man.globals, "global"), (man.tables, "table")):
            for n in names:
                e = self.export(n)
                if e is None or e.kind != kind:
                    return f"no exported {kind} {n!r}"
        for imp in self.imports:
            if imp.module != "spectest":
                return f"imports {imp.module}.{imp.name}: only spectest imports are provided"
        return None

    def resume_results(self, man: ResumeManifest) -> Tuple[str, ...]:
        f = self.export(man.entry)
        assert f is not None
        return f.results


_ENGINE: Any = None


def _introspection_engine() -> Any:
    global _ENGINE
    if _ENGINE is None:
        import wasmtime

        _ENGINE = wasmtime.Engine()
    return _ENGINE


def type_name(t: Any) -> str:
    """wcr value type → the WAT spelling used here (i32 ... v128, funcref, externref, or a repr)."""
    if isinstance(t, str):
        return t
    heap = getattr(t, "heap", None)
    if getattr(t, "nullable", False) and heap in ("func", "extern"):
        return f"{heap}ref"
    return repr(t)


def _extern(name: str, kind: str, t: Any, module: str) -> Extern:
    if kind == "func":
        return Extern(name, "func", params=tuple(type_name(p) for p in t.params),
                      results=tuple(type_name(r) for r in t.results), module=module)
    if kind == "global":
        return Extern(name, "global", type=type_name(t.type), mutable=bool(t.mutable), module=module)
    if kind == "memory":
        return Extern(name, "memory", is64=bool(t.is64), module=module)
    if kind == "table":
        return Extern(name, "table", type=type_name(t.elem), is64=bool(t.is64), module=module)
    return Extern(name, kind, module=module)


# ------------------------------------------------------------------------------------------- binary rewrite
def _uleb(data: bytes, pos: int) -> Tuple[int, int]:
    return read_u(data, pos, 64)


_enc_uleb = encode_u


def _name(s: str) -> bytes:
    b = s.encode("utf-8")
    return _enc_uleb(len(b)) + b


def split_sections(wasm: bytes) -> List[Tuple[int, bytes]]:
    if wasm[:4] != b"\0asm":
        raise Unrunnable("not a Wasm binary")
    pos, out = 8, []
    while pos < len(wasm):
        sid = wasm[pos]
        size, p = _uleb(wasm, pos + 1)
        out.append((sid, wasm[p:p + size]))
        pos = p + size
    return out


def join_sections(header: bytes, sections: Sequence[Tuple[int, bytes]]) -> bytes:
    return header + b"".join(bytes([sid]) + _enc_uleb(len(body)) + body for sid, body in sections)


def _skip_limits(body: bytes, p: int) -> int:
    flags = body[p]
    p += 1
    _, p = _uleb(body, p)
    if flags & 1:
        _, p = _uleb(body, p)
    return p


def _skip_reftype(body: bytes, p: int) -> int:
    b = body[p]
    if b in (0x63, 0x64):  # (ref null? ht): heap type is an s33
        p += 1
        while body[p] & 0x80:
            p += 1
        return p + 1
    return p + 1


def _parse_imports(body: bytes) -> List[Tuple[str, str, int, bytes]]:
    """(module, name, kind, raw descriptor bytes) per import."""
    n, p = _uleb(body, 0)
    out = []
    for _ in range(n):
        ml, p = _uleb(body, p)
        mod = body[p:p + ml].decode("utf-8")
        p += ml
        nl, p = _uleb(body, p)
        nm = body[p:p + nl].decode("utf-8")
        p += nl
        kind = body[p]
        start = p + 1
        if kind == 0:  # func: typeidx
            _, p = _uleb(body, start)
        elif kind == 1:  # table: reftype limits
            p = _skip_limits(body, _skip_reftype(body, start))
        elif kind == 2:  # memory: limits
            p = _skip_limits(body, start)
        elif kind == 3:  # global: valtype mut
            q = _skip_reftype(body, start) if body[start] in (0x63, 0x64) else start + 1
            p = q + 1
        elif kind == 4:  # tag: attribute typeidx
            _, p = _uleb(body, start + 1)
        else:
            raise Unrunnable(f"unknown import kind {kind}")
        out.append((mod, nm, kind, body[start:p]))
    return out


def _build_imports(items: Sequence[Tuple[str, str, int, bytes]]) -> bytes:
    return _enc_uleb(len(items)) + b"".join(_name(m) + _name(n) + bytes([k]) + d for m, n, k, d in items)


def rename_import_module(wasm: bytes, old: str = "spectest", new: str = RENAMED) -> bytes:
    """The same module with imports from ``old`` taken from ``new`` (nothing else changes)."""
    secs = split_sections(wasm)
    out = []
    for sid, body in secs:
        if sid == 2:
            items = [(new if m == old else m, n, k, d) for m, n, k, d in _parse_imports(body)]
            body = _build_imports(items)
        out.append((sid, body))
    return join_sections(wasm[:8], out)


_ORDER = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13}
_GLOBAL_INIT = {
    "global_i32": b"\x7f\x00\x41" + b"\x9a\x05" + b"\x0b",  # i32.const 666
    "global_i64": b"\x7e\x00\x42" + b"\x9a\x05" + b"\x0b",  # i64.const 666
    "global_f32": b"\x7d\x00\x43" + (0x4426A666).to_bytes(4, "little") + b"\x0b",
    "global_f64": b"\x7c\x00\x44" + (0x4084D4CCCCCCCCCD).to_bytes(8, "little") + b"\x0b",
}


def internalize_spectest(wasm: bytes) -> bytes:
    """Turn the spectest memory/table/global imports into definitions with the spectest's types and
    values (for runtimes that cannot import them, i.e. wasm3).  Index spaces are preserved: imported
    entries come first, and every one of them is moved to the front of its definition section.  The
    shared-identity aspect is lost, which does not matter for one resume module."""
    secs = split_sections(wasm)
    imports = next((_parse_imports(b) for s, b in secs if s == 2), [])
    keep, tables, mems, globs = [], [], [], []
    for m, n, k, d in imports:
        if m == "spectest" and k == 1 and n in ("table",):
            tables.append(b"\x70\x01\x0a\x14")  # funcref, min 10 max 20
        elif m == "spectest" and k == 2 and n == "memory":
            mems.append(b"\x01\x01\x02")  # min 1 max 2
        elif m == "spectest" and k == 3 and n in _GLOBAL_INIT:
            globs.append(_GLOBAL_INIT[n])
        elif k in (1, 2, 3):
            raise Unrunnable(f"cannot define import {m}.{n} in place")
        else:
            keep.append((m, n, k, d))
    if not (tables or mems or globs):
        return wasm
    extra = {4: tables, 5: mems, 6: globs}
    out: List[Tuple[int, bytes]] = []
    present = {s for s, _ in secs}
    for sid, body in secs:
        if sid == 2:
            body = _build_imports(keep)
        elif sid in extra and extra[sid]:
            n, p = _uleb(body, 0)
            body = _enc_uleb(n + len(extra[sid])) + b"".join(extra[sid]) + body[p:]
        out.append((sid, body))
    for sid, items in extra.items():
        if items and sid not in present:
            new = (sid, _enc_uleb(len(items)) + b"".join(items))
            idx = len(out)
            for i, (s, _) in enumerate(out):
                if s != 0 and _ORDER.get(s, 99) > _ORDER[sid]:
                    idx = i
                    break
            out.insert(idx, new)
    return join_sections(wasm[:8], out)


# ------------------------------------------------------------------------------------------ adapter modules
def shim_wat(host: str = "spectest", needed: Sequence[str] = ("memory", "table", "global_i32", "global_i64",
                                                               "global_f32", "global_f64")) -> str:
    """The spectest shim: full spectest interface on top of integer prints of ``host``."""
    lines = [
        "(module",
        f'  (import "{host}" "print_i32" (func $pi (param i32)))',
        f'  (import "{host}" "print_i64" (func $pl (param i64)))',
    ]
    if "memory" in needed:
        lines += [f'  (import "{host}" "memory" (memory $m 1 2))', '  (export "memory" (memory $m))']
    if "table" in needed:
        lines += [f'  (import "{host}" "table" (table $t 10 20 funcref))', '  (export "table" (table $t))']
    for g, t in (("global_i32", "i32"), ("global_i64", "i64"), ("global_f32", "f32"), ("global_f64", "f64")):
        if g in needed:
            lines += [f'  (import "{host}" "{g}" (global ${g} {t}))', f'  (export "{g}" (global ${g}))']
    for tag, (name, params) in enumerate(SPECTEST_PRINTS.items()):
        body = [f"(call $pi (i32.const {tag}))"]
        for i, t in enumerate(params):
            body.append(_emit_bits(t, f"(local.get {i})"))
        ps = " ".join(params)
        lines.append(f'  (func (export "{name}") {"(param " + ps + ")" if ps else ""} {" ".join(body)})')
    lines.append(")")
    return "\n".join(lines)


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


def reader_wat(info: ModuleInfo, man: ResumeManifest, host: str = "spectest", dumps: bool = True) -> str:
    """The reader module (see the module docstring).  ``dumps``: include memory/table dump functions."""
    res = info.resume_results(man)
    for t in res:
        if t not in NUM and t not in REF_NAMES:
            raise Unrunnable(f"result type {t} cannot be read back")
    lines = [
        "(module",
        f'  (import "{host}" "print_i32" (func $pi (param i32)))',
        f'  (import "{host}" "print_i64" (func $pl (param i64)))',
        f'  (import "{RESUME_AS}" {_wat_str(man.entry)} (func $resume (result {" ".join(res)})))',
    ]
    for i, g in enumerate(man.globals):
        e = info.export(g)
        assert e is not None
        if e.type not in NUM and e.type not in REF_NAMES:
            raise Unrunnable(f"global type {e.type} cannot be read back")
        gt = f"(mut {e.type})" if e.mutable else e.type
        lines.append(f'  (import "{RESUME_AS}" {_wat_str(g)} (global $g{i} {gt}))')
    for i, m in enumerate(man.memories if dumps else ()):
        e = info.export(m)
        assert e is not None
        lines.append(f'  (import "{RESUME_AS}" {_wat_str(m)} (memory $m{i} {"i64 " if e.is64 else ""}0))')
    for i, tb in enumerate(man.tables if dumps else ()):
        e = info.export(tb)
        assert e is not None
        if e.type in REF_NAMES:
            lines.append(f'  (import "{RESUME_AS}" {_wat_str(tb)} (table $t{i} 0 {e.type}))')
    # run: call resume, store results into locals (last on top), push them back as integers
    locs = " ".join(f"(local $r{i} {t})" for i, t in enumerate(res))
    body = ["(call $resume)"] + [f"(local.set $r{i})" for i in reversed(range(len(res)))]
    for i, t in enumerate(res):
        g = f"(local.get $r{i})"
        body.append({"i32": g, "i64": g, "f32": f"(i32.reinterpret_f32 {g})", "f64": f"(i64.reinterpret_f64 {g})",
                     "v128": f"(i64x2.extract_lane 0 {g}) (i64x2.extract_lane 1 {g})"}.get(t, f"(ref.is_null {g})"))
    ires = _int_results(res)
    lines.append(f'  (func (export "run") {"(result " + " ".join(ires) + ")" if ires else ""} {locs} {" ".join(body)})')
    gl = [_emit_bits(info.export(g).type, f"(global.get $g{i})") for i, g in enumerate(man.globals)]  # type: ignore[union-attr]
    lines.append(f'  (func (export "dump_globals") {" ".join(gl)})')
    if dumps:
        for i, m in enumerate(man.memories):
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
        for i, tb in enumerate(man.tables):
            e = info.export(tb)
            assert e is not None
            if e.type not in REF_NAMES:
                continue
            lines.append(
                f'  (func (export "dump_tab_{i}") (local $a i32)'
                f" (call $pi (table.size $t{i}))"
                f" (block $done (loop $l (br_if $done (i32.ge_u (local.get $a) (table.size $t{i})))"
                f" (call $pi (ref.is_null (table.get $t{i} (local.get $a))))"
                f" (local.set $a (i32.add (local.get $a) (i32.const 1))) (br $l))))")
    lines.append(")")
    return "\n".join(lines)


def wat(text: str) -> bytes:
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
            out.append((name, tuple(self.value(t) for t in SPECTEST_PRINTS[name])))
        return out

    def globals(self, info: ModuleInfo, man: ResumeManifest) -> Dict[str, Value]:
        return {g: self.value(info.export(g).type) for g in man.globals}  # type: ignore[union-attr]

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


# --------------------------------------------------------------------------------------------- subprocess
def run_proc(cmd: Sequence[str], timeout: float, cwd: Optional[str] = None,
             input: Optional[bytes] = None) -> subprocess.CompletedProcess:
    """Run ``cmd`` with a hard wall-clock limit; :class:`Timeout` when exceeded (the process group is
    killed, so no grandchild survives)."""
    # subprocess.run's own timeout kills only the direct child: gcc's cc1 (6 GB, minutes) survived
    # it.  Kill the whole session instead.
    proc = subprocess.Popen(list(cmd), cwd=cwd, stdin=subprocess.PIPE if input is not None else None,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
        out, err = proc.communicate()
        t = Timeout(f"{Path(cmd[0]).name} did not finish in {timeout:.0f} s")
        t.stdout = out.decode("utf-8", "replace") if out else ""  # type: ignore[attr-defined]
        raise t from exc
    return subprocess.CompletedProcess(list(cmd), proc.returncode, out, err)


def fill_from_adapter(out: NativeOutcome, info: ModuleInfo, man: ResumeManifest, run_events: Sequence[Tuple[int, int]],
                      global_events: Sequence[Tuple[int, int]]) -> None:
    """Decode the shim prints of ``run`` and the ``dump_globals`` prints into ``out``."""
    try:
        out.host_log = EventStream(run_events).host_log()
        out.globals = EventStream(global_events).globals(info, man)
    except ValueError as exc:
        out.inconclusive = f"could not decode the adapter's prints: {exc}"


# ------------------------------------------------------------------------------------------ trap messages
#: (substring of a runtime's trap message, primary spec kind, other spec kinds it may stand for).
#: First match wins, so the more specific patterns come first.  Sources: V8 11.3 (node 20), wabt 1.0.42
#: (wasm-interp/spectest-interp), wasm3 0.5.0.
TRAP_MESSAGES: Tuple[Tuple[str, str, Tuple[str, ...]], ...] = (
    ("maximum call stack size exceeded", "call stack exhausted", ()),  # V8 (RangeError)
    ("call stack exhausted", "call stack exhausted", ()),  # wabt
    ("stack overflow", "call stack exhausted", ()),  # wasm3
    ("unreachable", "unreachable", ()),  # all
    ("divide by zero", "integer divide by zero", ()),  # V8, wabt, wasm3
    ("remainder by zero", "integer divide by zero", ()),  # V8
    ("divide result unrepresentable", "integer overflow", ()),  # V8
    ("integer overflow", "integer overflow", ()),  # wabt, wasm3
    # V8 uses one message for trunc of NaN and of an out-of-range value (found by `wcr fuzz`)
    ("float unrepresentable in integer range", "invalid conversion to integer",
     ("invalid conversion to integer", "integer overflow")),  # V8
    ("invalid conversion to integer", "invalid conversion to integer", ()),  # wabt, wasm3
    ("invalid integer conversion", "invalid conversion to integer", ()),
    ("integer conversion", "invalid conversion to integer", ()),
    ("out of bounds memory access", "out of bounds memory access", ()),  # wabt, wasm3
    ("memory access out of bounds", "out of bounds memory access", ()),  # V8
    ("data segment", "out of bounds memory access", ()),  # V8/wabt: active data segment does not fit
    ("out of bounds table access", "out of bounds table access", ()),  # wabt
    ("table access out of bounds", "out of bounds table access", ()),
    ("element segment", "out of bounds table access", ()),  # instantiation: elem segment does not fit
    ("table initializer", "out of bounds table access", ()),
    ("undefined table index", "undefined element", ()),  # wabt call_indirect
    # wasm3 says "undefined element" for a null entry inside the table too
    ("undefined element", "undefined element", ("undefined element", "uninitialized element")),
    # V8 uses one message for call_indirect past the end and table.get/set/copy out of bounds
    ("table index is out of bounds", "undefined element", ("undefined element", "out of bounds table access")),
    ("uninitialized table element", "uninitialized element", ()),  # wabt
    ("null table element", "uninitialized element", ()),  # wasm3
    ("uninitialized element", "uninitialized element", ()),
    ("indirect call signature mismatch", "indirect call type mismatch", ()),  # wabt
    ("indirect call type mismatch", "indirect call type mismatch", ()),  # wasm3
    # V8 merges a null entry and a signature mismatch of call_indirect
    ("null function or function signature mismatch", "indirect call type mismatch",
     ("uninitialized element", "indirect call type mismatch")),
    ("function signature mismatch", "indirect call type mismatch", ()),
    ("dereferencing a null pointer", "null function reference", ()),  # V8 call_ref null
    ("null function reference", "null function reference", ()),
    ("null reference", "null function reference", ()),
)


def classify_trap(message: str) -> Tuple[Optional[str], Tuple[str, ...]]:
    """Spec trap kind (and alternatives) for a runtime's trap message; (None, ()) if unknown."""
    low = message.lower()
    for needle, kind, cands in TRAP_MESSAGES:
        if needle in low:
            return kind, cands
    return None, ()


# ------------------------------------------------------------------------------------ long-lived servers
class ServerDied(Exception):
    """The server process exited (crash, native stack overflow) while handling a request."""


class Server:
    """A long-lived child process answering length-prefixed JSON requests (4-byte little-endian length,
    then UTF-8 JSON, both ways), so that a batch pays the process start-up once.

    Isolation is kept where it matters: a request that does not answer within its timeout gets the
    process (group) killed (:class:`Timeout`), a crash raises :class:`ServerDied`; either way the next
    request starts a fresh process.  Callers report both as inconclusive for that one module."""

    def __init__(self, cmd: Sequence[str], cwd: Optional[str] = None):
        self.cmd = list(cmd)
        self.cwd = cwd
        self.proc: Optional[subprocess.Popen] = None
        self.started = 0

    def _start(self) -> subprocess.Popen:
        if self.proc is None or self.proc.poll() is not None:
            # stderr to a file, not a pipe: a chatty child must never block on a full pipe
            self.errf = tempfile.TemporaryFile()
            self.proc = subprocess.Popen(self.cmd, cwd=self.cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=self.errf, start_new_session=True)
            self.started += 1
        return self.proc

    def close(self) -> None:
        p, self.proc = self.proc, None
        if p is None:
            return
        try:
            if p.poll() is None:
                os.killpg(p.pid, 9)
        except OSError:
            pass
        for f in (p.stdin, p.stdout):
            try:
                if f:
                    f.close()
            except OSError:
                pass
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass

    def request(self, obj: Any, timeout: float) -> Any:
        import json
        import select
        import time

        p = self._start()
        data = json.dumps(obj).encode("utf-8")
        try:
            assert p.stdin is not None
            p.stdin.write(len(data).to_bytes(4, "little") + data)
            p.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            err = self._stderr_tail()
            self.close()
            raise ServerDied(f"{Path(self.cmd[0]).name} is gone: {err or exc}") from exc
        deadline = time.monotonic() + timeout
        assert p.stdout is not None
        fd = p.stdout.fileno()
        buf = bytearray()
        need = 4
        length = -1
        while len(buf) < need:
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                raise Timeout(f"no answer in {timeout:.0f} s")
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                continue
            chunk = os.read(fd, max(65536, need - len(buf)))
            if not chunk:
                code = p.wait()
                err = self._stderr_tail()
                self.close()
                raise ServerDied(f"exit status {code}" + (f": {err}" if err else ""))
            buf += chunk
            if length < 0 and len(buf) >= 4:
                length = int.from_bytes(buf[:4], "little")
                need = 4 + length
        return json.loads(bytes(buf[4:need]).decode("utf-8"))

    def _stderr_tail(self) -> str:
        f = getattr(self, "errf", None)
        if f is None:
            return ""
        try:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 4096))
            lines = f.read().decode("utf-8", "replace").strip().splitlines()
            return lines[-1] if lines else ""
        except (OSError, ValueError):
            return ""
