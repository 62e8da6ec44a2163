"""The ``wasm3`` target: PyPI ``pywasm3`` (wasm3 0.5.0), in a long-lived child process
(``_wasm3_child.py --serve``: one Python start-up per batch, not per run; a crash or hang costs only the
run that caused it, the child is restarted).

wasm3 cannot import memories, tables or globals, and links no module to another, so the target
*internalises* the spectest memory/table/globals (defines them in the module with the spectest's types
and values, see :func:`._common.internalize_spectest`) and links the print functions as Python
callables.  Consequences: f32/f64 values pass through Python floats (``nan_exact=False``: NaN payloads
may be quieted), tables cannot be read back, and only one memory (memory 0) exists.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Tuple

from . import NativeOutcome, ResumeManifest, Target
from . import _common as C

STACK_BYTES = 256 * 1024
CHILD = Path(__file__).with_name("_wasm3_child.py")  # standalone: imports nothing of wcr


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

    def _run(self, wasm: bytes, info: C.ModuleInfo, man: ResumeManifest, out: NativeOutcome, timeout: float) -> None:
        if len(man.memories) > 1:
            raise C.Unrunnable("wasm3 has one memory only")
        res_types = info.resume_results(man)
        gtypes = {g: info.export(g).type for g in man.globals}  # type: ignore[union-attr]
        for t in list(res_types) + list(gtypes.values()):
            if t not in ("i32", "i64", "f32", "f64"):
                raise C.Unrunnable(f"value type {t}")
        job = {"wasm": C.internalize_spectest(wasm).hex(), "entry": man.entry, "results": list(res_types),
               "memories": list(man.memories), "globals": gtypes, "stack": STACK_BYTES}
        srv = getattr(self, "_srv", None)
        if srv is None:
            srv = self._srv = C.Server([sys.executable, str(CHILD), "--serve"])
        try:
            res = srv.request(job, timeout)
        except C.ServerDied as exc:
            out.inconclusive = f"wasm3 child died: {exc}"
            return
        error = res.get("error")
        if error:
            msg = error["message"]
            if error["phase"] == "load" and "[trap]" not in msg:
                raise C.Unrunnable(msg)
            kind, cands = C.classify_trap(msg)
            out.set_trap(kind, msg, cands)
        if res.get("results") is not None:
            out.results = [(t, int(v)) for t, v in res["results"]]
        out.host_log = [(n, tuple((t, int(v)) for t, v in args)) for n, args in res["log"]]
        out.globals = {k: (t, int(v)) for k, (t, v) in res["globals"].items()}
        out.memories = {k: bytes.fromhex(v) for k, v in res["memories"].items()}
