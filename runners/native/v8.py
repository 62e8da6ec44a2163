"""The ``v8`` target: the machine's ``node`` (V8) runs the shim/resume/reader trio in ``v8_server.js``.

One long-lived node process serves every run of the target object (node's start-up, ~100 ms, would
dominate otherwise); it speaks the framed protocol of :mod:`runners.framing`.  Isolation is kept per
run: fresh instances for each module, and a run that hangs or crashes node costs only that run (the
process is killed and restarted, see :func:`.process.ask`).  Feature flags enable the proposals that
node 20's V8 implements in their final form (relaxed SIMD, extended constant expressions).

WASI programs (feature ``wasi``, node >= 20) run under ``node:wasi`` (``version: 'preview1'``,
``returnOnExit``) in a :class:`.sandbox.Sandbox`.  node binds WASI to an instance only through
``start()`` (which wants a ``_start`` and no ``_initialize``) or ``initialize()`` (which refuses a
``_start`` and would run an ``_initialize`` again): a resume module keeps the original's exports, a C
command's ``_start`` among them, so ``v8_server.js`` hands ``start()`` a stand-in object whose ``memory`` is
the resume module's and whose ``_start`` runs the reader (node checks only that these are a function and a
``WebAssembly.Memory``); ``proc_exit`` then returns its code from ``start()``.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, FrozenSet, Optional, Tuple

from vm.errors import PROC_EXIT, UNCAUGHT_EXCEPTION
from vm.snapshot.resume import Manifest

from ..framing import FramedChild
from . import adapter
from .introspect import ModuleInfo
from .process import ServerDied, Unrunnable, ask
from .rewrite import rename_import_module
from .sandbox import Sandbox, env_pairs, run_sandboxed, text_args
from .target import NativeOutcome, Target, TrapTable, classify

SERVER = Path(__file__).with_name("v8_server.js")
NODE_FLAGS = ("--experimental-wasm-relaxed-simd", "--experimental-wasm-extended-const", "--stack-size=900")

#: V8 11.3 (node 20) RuntimeError/RangeError messages → spec kinds (see :func:`.target.classify`)
TRAP_MESSAGES: TrapTable = (
    ("maximum call stack size exceeded", "call stack exhausted", ()),  # RangeError
    ("uncaught wasm exception", UNCAUGHT_EXCEPTION, ()),  # v8_server.js: a WebAssembly.Exception
    ("unreachable", "unreachable", ()),
    ("divide by zero", "integer divide by zero", ()),
    ("remainder by zero", "integer divide by zero", ()),
    ("divide result unrepresentable", "integer overflow", ()),
    # one message for trunc of NaN and of an out-of-range value (found by `wcr fuzz`)
    ("float unrepresentable in integer range", "invalid conversion to integer",
     ("invalid conversion to integer", "integer overflow")),
    ("memory access out of bounds", "out of bounds memory access", ()),
    ("data segment", "out of bounds memory access", ()),  # an active data segment does not fit
    ("element segment", "out of bounds table access", ()),  # an active element segment does not fit
    ("table initializer", "out of bounds table access", ()),
    # one message for call_indirect past the end and table.get/set/copy out of bounds
    ("table index is out of bounds", "undefined element", ("undefined element", "out of bounds table access")),
    # one message for a null entry and a signature mismatch of call_indirect
    ("null function or function signature mismatch", "indirect call type mismatch",
     ("uninitialized element", "indirect call type mismatch")),
    ("function signature mismatch", "indirect call type mismatch", ()),
    # call_ref of null, and every other null dereference
    ("dereferencing a null pointer", "null function reference", ("null function reference", "null reference")),
)


@lru_cache(maxsize=1)
def _node() -> Tuple[str, str]:
    """(path, version) of node, or ("", reason)."""
    exe = shutil.which("node") or shutil.which("nodejs")
    if not exe:
        return "", "node not found on PATH (install Node.js >= 20, e.g. apt-get install nodejs)"
    try:
        ver = subprocess.run([exe, "-p", "process.versions.node + ' / V8 ' + process.versions.v8"],
                             capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return "", f"node does not run: {exc}"
    major = int(ver.split(".")[0]) if ver[:1].isdigit() else 0
    if major < 16:
        return "", f"node {ver} is too old (need >= 16 for BigInt-i64 integration)"
    return exe, ver


#: what every node >= 20 runs; tags, ``throw`` and the legacy ``try``/``catch``/``delegate``/``rethrow``
#: are on by default since V8 9.5
BASE_FEATURES = frozenset({
    "mvp", "mutable-globals", "sign-ext", "sat-trunc", "multi-value", "bulk-memory", "reference-types",
    "simd", "relaxed-simd", "tail-call", "extended-const", "exception-tags", "legacy-exceptions",
    "host-references",
})
#: (V8 version, features it runs in their *final* encoding, by default): GC shipped in V8 11.9 (node 20's
#: V8 11.3 has only a pre-standard GC behind --experimental-wasm-gc, with other opcodes and types, so
#: that flag is never passed), exnref/``try_table`` in V8 13.7
LATER_FEATURES = (((11, 9), frozenset({"function-references", "gc"})), ((13, 7), frozenset({"exceptions"})))


#: node's own version from which its ``node:wasi`` takes ``version: 'preview1'`` (WASI for resume modules)
WASI_NODE = 20


def v8_features(version: str) -> FrozenSet[str]:
    """The features of node's V8 of this version string (``"20.20.2 / V8 11.3.244.8-node.33"``)."""
    try:
        major, minor = (int(x) for x in version.split("V8 ", 1)[1].split(".")[:2])
    except (IndexError, ValueError):
        return BASE_FEATURES
    out = set(BASE_FEATURES)
    if version[:2].isdigit() and int(version.split(".")[0]) >= WASI_NODE:
        out.add("wasi")
    for since, feats in LATER_FEATURES:
        if (major, minor) >= since:
            out |= feats
    return frozenset(out)


class V8Target(Target):
    name = "v8"
    wasi_baseline = True

    @property
    def features(self) -> FrozenSet[str]:  # type: ignore[override]  # depends on the machine's node
        return v8_features(_node()[1])

    def _available(self) -> Tuple[bool, str]:
        exe, ver = _node()
        return (True, "") if exe else (False, ver)

    def version(self) -> str:
        return f"node {_node()[1]}"

    def _server(self) -> FramedChild:
        srv = getattr(self, "_srv", None)
        if srv is None:
            srv = self._srv = FramedChild([_node()[0], *NODE_FLAGS, str(SERVER)], name="node")
        return srv

    def _run(self, wasm: bytes, info: ModuleInfo, man: Manifest, out: NativeOutcome, timeout: float) -> None:
        run_sandboxed(man, out, lambda sb: self._run_in(wasm, info, man, out, timeout, sb))

    def _run_in(self, wasm: bytes, info: ModuleInfo, man: Manifest, out: NativeOutcome, timeout: float,
                sb: Optional[Sandbox]) -> None:
        exe, why = _node()
        if not exe:
            raise Unrunnable(why)
        assert info.module is not None

        def b64(data: bytes) -> str:
            return base64.b64encode(data).decode("ascii")

        req: Dict[str, Any] = {"shim": b64(adapter.shim(info)), "resume": b64(rename_import_module(info.module, man=man)),
               "reader": b64(adapter.wat(adapter.reader_wat(info, man, dumps=False))),
               "memories": list(man.memories.values()), "tables": list(man.tables.values())}
        if sb is not None:  # node:wasi over the sandbox (v8_server.js opens the stream files)
            req["wasi"] = {"args": text_args(sb.run), "env": dict(env_pairs(sb.run)), "preopens": dict(sb.preopens),
                           "stdin": sb.stdin, "stdout": sb.stdout, "stderr": sb.stderr,
                           "status": sb.run.status_export}
        try:
            res = ask(self._server(), req, timeout)
        except ServerDied as exc:
            out.inconclusive = f"node died: {exc}"
            return
        self._parse(res, info, man, out)

    def _parse(self, res: Dict[str, Any], info: ModuleInfo, man: Manifest, out: NativeOutcome) -> None:
        error = res.get("error")
        if error:
            msg = f"{error['name']}: {error['message']}"
            if error["phase"] in ("setup", "readback") or error["name"] in ("CompileError", "LinkError"):
                raise Unrunnable(msg)
            kind, cands = classify(error["message"], TRAP_MESSAGES)
            out.set_trap(kind, msg, cands)
        if res.get("results") is not None:
            out.results = adapter.decode_int_results(info.resume_results(man), [int(x) for x in res["results"]])
        ev = [(int(w), int(v)) for w, v in res["run_events"]]
        gev = [(int(w), int(v)) for w, v in res["global_events"]]
        adapter.fill_from_adapter(out, info, man, ev, gev)
        out.memories = {k: base64.b64decode(v) for k, v in res.get("memories", {}).items()}
        wasi = res.get("wasi")
        if wasi is not None:
            if wasi.get("exited"):  # proc_exit: the invocation ends like a trap of kind "exit"
                out.set_trap(PROC_EXIT, f"proc_exit({wasi['exit_code']})")
                out.details["exit_code"] = int(wasi["exit_code"])
            out.details["wasi_status"] = int(wasi.get("status") or 0)
        out.tables = {k: ["ref" if x else "null" for x in v] for k, v in res.get("tables", {}).items()}
