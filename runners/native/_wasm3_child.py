"""Child process of the ``wasm3`` target: ``python _wasm3_child.py JOB.json OUT.json``.

wasm3 runs in process with no time limit and may crash on native stack exhaustion, so the parent runs
it here, under a timeout.  wasm3 prints a backtrace on stdout when it traps: the result therefore goes
to OUT.json, never to stdout.  ``python _wasm3_child.py --serve`` answers many jobs (see :func:`serve`).  JOB = {"wasm": path, "entry", "results", "memories", "globals": {name:
type}, "stack": bytes}.
"""

from __future__ import annotations

import json
import os
import struct
import sys
from typing import Any, Dict, List

# This file's directory holds wcr's own ``wasm3.py``: keep it from shadowing the pywasm3 extension.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]


def _bits(t: str, v: Any) -> int:
    if t == "f32":
        return struct.unpack("<I", struct.pack("<f", v))[0]
    if t == "f64":
        return struct.unpack("<Q", struct.pack("<d", v))[0]
    return int(v) & (0xFFFFFFFF if t == "i32" else 0xFFFFFFFFFFFFFFFF)


def run_job(job: Dict[str, Any], wasm: bytes) -> Dict[str, Any]:
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
    sigs = {"i32": "i", "i64": "I", "f32": "f", "f64": "F"}
    prints = {"print": (), "print_i32": ("i32",), "print_i64": ("i64",), "print_f32": ("f32",),
              "print_f64": ("f64",), "print_i32_f32": ("i32", "f32"), "print_f64_f64": ("f64", "f64")}
    for name, params in prints.items():
        def fn(*args: Any, _n: str = name, _p: Any = params) -> None:
            res["log"].append([_n, [[t, _bits(t, a)] for t, a in zip(_p, args)]])
        try:
            mod.link_function("spectest", name, "v(" + "".join(sigs[p] for p in params) + ")", fn)
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


def serve() -> int:
    """Long-lived mode (``--serve``): length-prefixed JSON jobs on stdin (``wasm`` as hex), answers on
    the original stdout.  wasm3 prints trap backtraces on fd 1, so fd 1 is pointed at stderr and the
    protocol uses a private duplicate of the original stdout."""
    proto = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    inp = sys.stdin.buffer
    while True:
        head = inp.read(4)
        if len(head) < 4:
            return 0
        job = json.loads(inp.read(int.from_bytes(head, "little")).decode("utf-8"))
        res = run_job(job, bytes.fromhex(job["wasm"]))
        data = json.dumps(res).encode("utf-8")
        proto.write(len(data).to_bytes(4, "little") + data)
        proto.flush()


def main(argv: List[str]) -> int:
    if argv and argv[0] == "--serve":
        return serve()
    job = json.load(open(argv[0]))
    res = run_job(job, open(job["wasm"], "rb").read())
    json.dump(res, open(argv[1], "w"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
