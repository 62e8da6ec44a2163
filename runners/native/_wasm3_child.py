"""Child process of the ``wasm3`` target: ``python _wasm3_child.py`` answers jobs until end of input.

wasm3 runs in process with no time limit and may crash on native stack exhaustion, so the parent runs
it here, under a timeout (:class:`runners.framing.FramedChild`).  Requests and replies are frames of
wcr's one child protocol (:mod:`runners.framing`).  Why a script and not ``-m``: this file's folder holds
wcr's own ``wasm3.py``, which is dropped from ``sys.path`` below so that ``import wasm3`` is pywasm3; the
parent puts the repository root on ``PYTHONPATH`` so that :mod:`runners.framing` is importable (it and
this file use the standard library only, plus pywasm3).  Importing the module itself has no side
effect beyond that path fix, so it stays importable standalone (tests call :func:`run_job`).

JOB = {"wasm": hex, "entry", "results": [types], "memories": [names], "globals": {name: type},
"stack": bytes, "prints": {name: [param types]}}; the reply: {"log", "results", "error": {"phase",
"message"} | null, "memories": {name: hex}, "globals": {name: [type, bits]}}.
"""

from __future__ import annotations

import io
import os
import struct
import sys
from typing import Any, Dict

# This file's directory holds wcr's own ``wasm3.py``: keep it from shadowing the pywasm3 extension.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

_SIGS = {"i32": "i", "i64": "I", "f32": "f", "f64": "F"}


def _bits(t: str, v: Any) -> int:
    if t == "f32":
        return struct.unpack("<I", struct.pack("<f", v))[0]
    if t == "f64":
        return struct.unpack("<Q", struct.pack("<d", v))[0]
    return int(v) & (0xFFFFFFFF if t == "i32" else 0xFFFFFFFFFFFFFFFF)


def run_job(job: Dict[str, Any], wasm: bytes) -> Dict[str, Any]:
    """Load, link the prints, call the entry, read back; every failure is an ``error`` in the reply."""
    import wasm3

    res: Dict[str, Any] = {"log": [], "results": None, "error": None, "memories": {}, "globals": {}}
    env = wasm3.Environment()
    rt = env.new_runtime(int(job["stack"]))
    try:
        mod = env.parse_module(wasm)
        rt.load(mod)
    except RuntimeError as exc:
        res["error"] = {"phase": "load", "message": str(exc)}
        return res
    for name, params in job["prints"].items():
        def fn(*args: Any, _n: str = name, _p: Any = params) -> None:
            res["log"].append([_n, [[t, _bits(t, a)] for t, a in zip(_p, args)]])
        try:
            mod.link_function("spectest", name, "v(" + "".join(_SIGS[p] for p in params) + ")", fn)
        except RuntimeError:
            pass  # not imported by this module
    try:
        f = rt.find_function(job["entry"])
        r = f()
        vals = [] if r is None else (list(r) if isinstance(r, tuple) else [r])
        res["results"] = [[t, _bits(t, v)] for t, v in zip(job["results"], vals)]
    except RuntimeError as exc:
        res["error"] = {"phase": "run", "message": str(exc)}
    for name, t in job["globals"].items():
        try:
            res["globals"][name] = [t, _bits(t, mod.get_global(name))]
        except RuntimeError as exc:
            res["error"] = res["error"] or {"phase": "readback", "message": f"global {name}: {exc}"}
    for name in job["memories"]:
        res["memories"][name] = bytes(rt.get_memory(0)).hex()
    return res


def _handle(job: Any) -> Dict[str, Any]:
    try:
        return run_job(job, bytes.fromhex(job["wasm"]))
    except Exception as exc:  # a malformed job is reported, the loop goes on
        return {"log": [], "results": None, "memories": {}, "globals": {},
                "error": {"phase": "load", "message": f"bad job: {type(exc).__name__}: {exc}"}}


def main() -> int:
    """Serve jobs with :func:`runners.framing.serve`.  wasm3 prints trap backtraces on fd 1, so fd 1 is
    pointed at stderr and the protocol uses a private duplicate of the original stdout."""
    from runners import framing

    proto = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = io.TextIOWrapper(proto)  # serve() writes frames to sys.stdout.buffer
    return framing.serve(_handle)


if __name__ == "__main__":
    sys.exit(main())
