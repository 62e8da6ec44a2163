"""The reference engine's speed on a scalar loop: ``time_loop`` is the one timing harness of the
engine benchmarks (the SIMD kernel uses it too, so the two figures are measured the same way)."""

from __future__ import annotations

import time
from typing import Any, Dict, Optional

__all__ = ["LOOP_WAT", "bench_engine", "time_loop"]

LOOP_WAT = """(module (func (export "f") (param i32) (result i32) (local i32)
  (block $done (loop $l
    (br_if $done (i32.eqz (local.get 0)))
    (local.set 1 (i32.add (local.get 1) (local.get 0)))
    (local.set 0 (i32.sub (local.get 0) (i32.const 1)))
    (br $l)))
  (local.get 1)))"""


def time_loop(wat: str, n: int, repeat: int) -> Dict[str, Any]:
    """Best of ``repeat`` runs of export ``f(n)`` of ``wat`` on a fresh store: instructions, seconds,
    instructions per second."""
    import wasmtime

    from vm.api import Store, instantiate

    data = bytes(wasmtime.wat2wasm(wat))
    best: Optional[float] = None
    count = 0
    for _ in range(repeat):
        store = Store()
        inst = instantiate(store, data)
        t = time.perf_counter()
        store.invoke(inst.exports["f"], [n])
        dt = time.perf_counter() - t
        count = store.instructions
        best = dt if best is None else min(best, dt)
    assert best is not None
    return {"instructions": count, "seconds": round(best, 4), "instructions_per_s": round(count / best)}


def bench_engine(n: int = 100_000, repeat: int = 3) -> Dict[str, Any]:
    """Reference-engine speed on a 13-instruction-per-iteration i32 sum loop (best of ``repeat``)."""
    return time_loop(LOOP_WAT, n, repeat)
