"""Peak resident memory of a run, a checkpoint and a restore that write N MiB of guest memory.

The target (issue 10): a run that touches N bytes needs at most about 2 x N plus a constant, so each
figure is reported as a ratio to N after subtracting the constant (the same commands on a module with a
one-page memory that is never written).  Each step runs as its own ``python -m suite`` process and its peak is that
child's own ``ru_maxrss`` (``os.wait4``), so the figures do not depend on this process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

__all__ = ["bench_memory"]

PAGE = 65536


def _module(mib: int) -> bytes:
    """A module whose ``fill`` writes all of its ``mib`` MiB memory (0: a 1-page memory, not written)."""
    import wasmtime

    pages = max(1, mib * (1 << 20) // PAGE)
    fill = f"(memory.fill (i32.const 0) (i32.const 171) (i32.const {pages * PAGE}))" if mib else "(nop)"
    return bytes(wasmtime.wat2wasm(f"""(module (memory {pages} {pages})
      (func (export "fill") (result i32) {fill} (i32.load8_u (i32.const 12345))))"""))


def _peak_kib(argv: List[str]) -> int:
    """Run ``python -m suite ARGV`` and return its peak RSS in KiB (Linux: ru_maxrss is in KiB)."""
    p = subprocess.Popen([sys.executable, "-m", "suite", *argv], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    assert p.stderr is not None
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status
    if p.returncode != 0:
        raise RuntimeError(f"wcr {' '.join(argv)} failed: {err.decode(errors='replace').strip()}")
    return int(usage.ru_maxrss)


def _steps(d: Path, wasm: bytes, tag: str) -> Dict[str, int]:
    m = d / f"{tag}.wasm"
    snap = d / f"{tag}.snap"
    m.write_bytes(wasm)
    run = ["run", str(m), "--invoke", "fill"]
    return {"run": _peak_kib(run),
            "run_checkpoint": _peak_kib(run + ["--checkpoint-at", "4", "--snapshot", str(snap)]),
            "restore": _peak_kib(["restore", str(snap), "--module", str(m)])}


def bench_memory(mib: int = 64) -> Dict[str, object]:
    """Peak RSS (MiB) of run, run + checkpoint and restore of a module that fills ``mib`` MiB, the
    same for one that never writes its memory (the constant), and ``(peak - constant) / N``."""
    with tempfile.TemporaryDirectory(prefix="wcr-membench-") as tmp:
        d = Path(tmp)
        touched = _steps(d, _module(mib), "fill")
        untouched = _steps(d, _module(0), "idle")
    out: Dict[str, object] = {"guest_mib": mib}
    for step, kib in touched.items():
        base = untouched[step]
        out[step] = {"peak_mib": round(kib / 1024, 1), "constant_mib": round(base / 1024, 1),
                     "ratio_to_guest": round((kib - base) / 1024 / mib, 2)}
    return out
