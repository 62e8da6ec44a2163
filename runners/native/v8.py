"""The ``v8`` target: the machine's ``node`` (V8) runs ``v8_runner.js`` on the shim/resume/reader trio.

One long-lived node process (``v8_server.js``) serves every run of the target object: node's start-up
(~100 ms) used to dominate.  Isolation is kept per run: fresh spectest objects and instances for each
module, and a run that hangs or crashes node costs only that run (the process is killed and restarted,
see :class:`._common.Server`).  ``run_one_process`` is the old one-process-per-run path (benchmarks).  Feature flags enable the proposals that node 20's V8
implements in their final form (relaxed SIMD, extended constant expressions).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Tuple

from . import NativeOutcome, ResumeManifest, Target
from . import _common as C

RUNNER = Path(__file__).with_name("v8_runner.js")
SERVER = Path(__file__).with_name("v8_server.js")
NODE_FLAGS = ("--experimental-wasm-relaxed-simd", "--experimental-wasm-extended-const", "--stack-size=900")


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


class V8Target(Target):
    name = "v8"
    features = frozenset({
        "mvp", "mutable-globals", "sign-ext", "sat-trunc", "multi-value", "bulk-memory", "reference-types",
        "simd", "relaxed-simd", "tail-call", "extended-const",
    })

    def _available(self) -> Tuple[bool, str]:
        exe, ver = _node()
        return (True, "") if exe else (False, ver)

    def version(self) -> str:
        return f"node {_node()[1]}"

    def _server(self) -> C.Server:
        srv = getattr(self, "_srv", None)
        if srv is None:
            exe, why = _node()
            shim = C.cache_dir() / "v8-shim.wasm"
            if not shim.exists():
                tmp = shim.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_bytes(C.wat(C.shim_wat("spectest")))
                os.replace(tmp, shim)
            srv = self._srv = C.Server([exe, *NODE_FLAGS, str(SERVER), str(shim)])
        return srv

    def _run(self, wasm: bytes, info: C.ModuleInfo, man: ResumeManifest, out: NativeOutcome, timeout: float) -> None:
        exe, why = _node()
        if not exe:
            raise C.Unrunnable(why)
        req = {"resume": base64.b64encode(C.rename_import_module(wasm)).decode("ascii"),
               "reader": base64.b64encode(C.wat(C.reader_wat(info, man, dumps=False))).decode("ascii"),
               "memories": list(man.memories), "tables": list(man.tables)}
        try:
            res = self._server().request(req, timeout)
        except C.ServerDied as exc:
            out.inconclusive = f"node died: {exc}"
            return
        self._parse(res, info, man, out)

    def run_one_process(self, wasm: bytes, manifest: object = None, timeout: float = 20.0) -> NativeOutcome:
        """The old way (one node process for this run, via ``v8_runner.js``), kept for benchmarks."""
        saved, self._run = self._run, self._run_process  # type: ignore[method-assign]
        try:
            return self.run(wasm, manifest, timeout)
        finally:
            self._run = saved  # type: ignore[method-assign]

    def _run_process(self, wasm: bytes, info: C.ModuleInfo, man: ResumeManifest, out: NativeOutcome,
                     timeout: float) -> None:
        exe, why = _node()
        if not exe:
            raise C.Unrunnable(why)
        with tempfile.TemporaryDirectory(prefix="wcr-v8-") as d:
            dp = Path(d)
            (dp / "shim.wasm").write_bytes(C.wat(C.shim_wat("spectest")))
            (dp / "resume.wasm").write_bytes(C.rename_import_module(wasm))
            (dp / "reader.wasm").write_bytes(C.wat(C.reader_wat(info, man, dumps=False)))
            job = {"dir": d, "memories": list(man.memories), "tables": list(man.tables)}
            (dp / "job.json").write_text(json.dumps(job))
            proc = C.run_proc([exe, *NODE_FLAGS, str(RUNNER), str(dp / "job.json")], timeout)
        try:
            res = json.loads(proc.stdout.decode("utf-8", "replace"))
        except ValueError:
            err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            out.inconclusive = f"node exited {proc.returncode}: {err[-1] if err else 'no output'}"
            return
        self._parse(res, info, man, out)

    def _parse(self, res: dict, info: C.ModuleInfo, man: ResumeManifest, out: NativeOutcome) -> None:
        error = res.get("error")
        if error:
            msg = f"{error['name']}: {error['message']}"
            if error["phase"] in ("setup", "readback") or error["name"] in ("CompileError", "LinkError"):
                raise C.Unrunnable(msg)
            kind, cands = C.classify_trap(error["message"])
            out.set_trap(kind, msg, cands)
        if res.get("results") is not None:
            out.results = C.decode_int_results(info.resume_results(man), [int(x) for x in res["results"]])
        ev = [(int(w), int(v)) for w, v in res["run_events"]]
        gev = [(int(w), int(v)) for w, v in res["global_events"]]
        C.fill_from_adapter(out, info, man, ev, gev)
        out.memories = {k: base64.b64decode(v) for k, v in res.get("memories", {}).items()}
        out.tables = {k: ["ref" if x else "null" for x in v] for k, v in res.get("tables", {}).items()}
