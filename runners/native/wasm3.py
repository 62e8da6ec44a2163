"""The ``wasm3`` target: PyPI ``pywasm3`` (wasm3 0.5.0), in a long-lived child process
(``_wasm3_child.py``: one Python start-up per batch, not per run; a crash or hang costs only the run that
caused it, the child is restarted).  The child speaks the framed protocol of :mod:`runners.framing`.

wasm3 cannot import memories, tables or globals, and links no module to another, so the target
*internalises* the spectest memory/table/globals (defines them in the module with the spectest's types
and values, see :func:`.rewrite.internalize_spectest`) and links the print functions as Python
callables (the child gets their names and types from :data:`vm.runtime.spectest.PRINTS` with each job).
Consequences: f32/f64 values pass through Python floats (``nan_exact=False``: NaN payloads may be
quieted), tables cannot be read back, and only one memory (memory 0) exists.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Tuple

from vm.runtime.spectest import PRINTS
from vm.snapshot.resume import Manifest

from ..framing import FramedChild
from .introspect import ModuleInfo
from .process import ServerDied, Unrunnable, ask
from .rewrite import internalize_spectest
from .target import NativeOutcome, Target, TrapTable, classify

STACK_BYTES = 256 * 1024
CHILD = Path(__file__).with_name("_wasm3_child.py")
REPO_ROOT = Path(__file__).resolve().parents[2]

#: wasm3 0.5.0 trap messages ("[trap] ...") → spec kinds (see :func:`.target.classify`)
TRAP_MESSAGES: TrapTable = (
    ("stack overflow", "call stack exhausted", ()),
    ("unreachable", "unreachable", ()),
    ("divide by zero", "integer divide by zero", ()),
    ("integer overflow", "integer overflow", ()),
    ("invalid conversion to integer", "invalid conversion to integer", ()),
    ("out of bounds memory access", "out of bounds memory access", ()),
    ("data segment", "out of bounds memory access", ()),  # "data segment out of bounds"
    # wasm3 says "undefined element" for a null entry inside the table too
    ("undefined element", "undefined element", ("undefined element", "uninitialized element")),
    ("null table element", "uninitialized element", ()),
    ("indirect call type mismatch", "indirect call type mismatch", ()),
)


class Wasm3Target(Target):
    name = "wasm3"
    # no bulk memory (data.drop is a "restricted opcode"), no reference types, no SIMD
    features = frozenset({"mvp", "mutable-globals", "sign-ext", "sat-trunc", "multi-value"})
    nan_exact = False

    def _available(self) -> Tuple[bool, str]:
        try:
            import wasm3  # noqa: F401
        except ImportError:
            return False, "PyPI package pywasm3 is not installed (pip install 'wcr[native]'; builds from sdist with gcc)"
        return True, ""

    def version(self) -> str:
        from importlib.metadata import version

        return f"pywasm3 {version('pywasm3')}"

    def _server(self) -> FramedChild:
        """The child runs as a script (its folder holds this ``wasm3.py``, which must not shadow pywasm3's
        ``wasm3``), with the repository root on ``PYTHONPATH`` so that it can import
        :mod:`runners.framing` (standard library only, like the child itself)."""
        srv = getattr(self, "_srv", None)
        if srv is None:
            env = dict(os.environ)
            env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
            srv = self._srv = FramedChild([sys.executable, str(CHILD)], env=env, name="wasm3 child")
        return srv

    def _run(self, wasm: bytes, info: ModuleInfo, man: Manifest, out: NativeOutcome, timeout: float) -> None:
        if len(man.memories) > 1:
            raise Unrunnable("wasm3 has one memory only")
        res_types = info.resume_results(man)
        gtypes = {g: info.type_of(g) for g in man.globals.values()}
        for t in list(res_types) + list(gtypes.values()):
            if t not in ("i32", "i64", "f32", "f64"):
                raise Unrunnable(f"value type {t}")
        assert info.module is not None
        job = {"wasm": internalize_spectest(info.module).hex(), "entry": man.entry, "results": list(res_types),
               "memories": list(man.memories.values()), "globals": gtypes, "stack": STACK_BYTES,
               "prints": {name: list(params) for name, params in PRINTS.items()}}
        try:
            res = ask(self._server(), job, timeout)
        except ServerDied as exc:
            out.inconclusive = f"wasm3 child died: {exc}"
            return
        error = res.get("error")
        if error:
            msg = error["message"]
            if error["phase"] == "load" and "[trap]" not in msg:
                raise Unrunnable(msg)
            kind, cands = classify(msg, TRAP_MESSAGES)
            out.set_trap(kind, msg, cands)
        if res.get("results") is not None:
            out.results = [(t, int(v)) for t, v in res["results"]]
        out.host_log = [(n, tuple((t, int(v)) for t, v in args)) for n, args in res["log"]]
        out.globals = {k: (t, int(v)) for k, (t, v) in res["globals"].items()}
        out.memories = {k: bytes.fromhex(v) for k, v in res["memories"].items()}
