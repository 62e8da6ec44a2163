"""The SIMD kernel of ``wcr bench``: an i32x4 multiply-add loop over memory, next to the same loop on
scalar i32 lanes.

Why both: the engine's figure is instructions per second, and one i32x4 instruction does the work of
four scalar ones, so the row shows instr/s *and* lane operations per second (each loop iteration does
one multiply-add per lane: 4 for the vector loop, 1 for the scalar one).  A VM without SIMD reports
``{"unsupported": why}`` instead of failing (``wcr bench`` prints the row as unsupported).

``python -m suite.bench.simd_bench`` prints the JSON.
"""

from __future__ import annotations

import json
from typing import Any, Dict

from .engine_bench import time_loop

#: per iteration: address, load, multiply-add into the accumulator, store back, counter
_LOOP = """(module (memory 1)
  (func (export "f") (param $n i32) (result i32) (local $a i32) (local $acc {T})
    (local.set $acc {INIT})
    (block $done (loop $l
      (br_if $done (i32.eqz (local.get $n)))
      (local.set $a (i32.and (i32.shl (local.get $n) (i32.const {SHIFT})) (i32.const {MASK})))
      (local.set $acc ({ADD} (local.get $acc) ({MUL} ({LOAD} (local.get $a)) (local.get $acc))))
      ({STORE} (local.get $a) (local.get $acc))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $l)))
    {RESULT}))"""
SIMD_WAT = _LOOP.format(T="v128", INIT="(i32x4.splat (i32.const 1))", SHIFT=4, MASK="0xfff0", ADD="i32x4.add",
                        MUL="i32x4.mul", LOAD="v128.load", STORE="v128.store",
                        RESULT="(i32x4.extract_lane 0 (local.get $acc))")
SCALAR_WAT = _LOOP.format(T="i32", INIT="(i32.const 1)", SHIFT=2, MASK="0xfffc", ADD="i32.add", MUL="i32.mul",
                          LOAD="i32.load", STORE="i32.store", RESULT="(local.get $acc)")
LANES = {"simd": 4, "scalar": 1}


def bench_simd(n: int = 20_000, repeat: int = 3) -> Dict[str, Any]:
    """``{"simd": {...}, "scalar": {...}}`` (instructions, seconds, instructions_per_s, lane_ops_per_s;
    best of ``repeat`` runs of ``n`` iterations); ``simd`` is ``{"unsupported": why}`` when the VM
    cannot run SIMD code."""
    from vm.errors import Unsupported

    out: Dict[str, Any] = {}
    for name, wat in (("simd", SIMD_WAT), ("scalar", SCALAR_WAT)):
        try:
            d = time_loop(wat, n, repeat)
        except Unsupported as e:
            out[name] = {"unsupported": f"the VM does not run this kernel: {e}"}
            continue
        d["lane_ops_per_s"] = round(n * LANES[name] / d["seconds"]) if d["seconds"] else 0
        out[name] = d
    return out


if __name__ == "__main__":
    print(json.dumps(bench_simd(), indent=1))
