"""Checkpoint/restore figures: snapshot size and latency.

``python -m suite.bench.snapshot_bench`` prints JSON; :func:`bench_snapshot` returns the same dict (for
``wcr bench``).  Cases:

* ``one_page_ten_frames`` — the issue's acceptance case: one touched 64 KiB page and a 10-frame stack
  (size must be < 4 KiB);
* ``pages_64_frames_100`` — 64 touched pages (4 MiB) and 100 frames.

Latencies are medians over ``repeat`` runs: checkpoint (capture), encode, decode, restore (decode
already done; includes decoding/validating the module), and the round trip checkpoint→restore.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from typing import Any, Callable, Dict, List

WAT = """(module
  (memory 64)
  (func $touch (param $pages i32)
    (local $i i32)
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $pages)))
      (i32.store (i32.mul (local.get $i) (i32.const 65536)) (i32.add (local.get $i) (i32.const 1)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l))))
  (func $down (export "down") (param $n i32) (param $pages i32) (result i32)
    (if (result i32) (i32.eqz (local.get $n))
      (then (call $touch (local.get $pages)) (i32.const 0))
      (else (i32.add (i32.const 1) (call $down (i32.sub (local.get $n) (i32.const 1)) (local.get $pages))))))
)"""


def _module() -> bytes:
    import wasmtime

    return bytes(wasmtime.wat2wasm(WAT))


def _median(f: Callable[[], Any], repeat: int) -> float:
    ts: List[float] = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def _case(data: bytes, frames: int, pages: int, repeat: int) -> Dict[str, Any]:
    from vm.api import Store, instantiate
    from vm.snapshot import advance, checkpoint, decode, encode, restore, start

    mods = {hashlib.sha256(data).hexdigest(): data}
    store = Store()
    inst = instantiate(store, data)
    run = start(store, inst.exports["down"], [frames - 1, pages])
    # run until the deepest frame has touched its pages and is about to return
    while not (len(run.thread.frames) == frames and
               run.thread.frames[-1].func.func.body[run.thread.frames[-1].pc].op == "end" and
               run.thread.frames[-1].pc == len(run.thread.frames[-1].func.func.body) - 1):
        before = run.count
        advance(store, run, run.count + 1)
        if run.count == before:
            raise RuntimeError("benchmark program ended early")
    nonzero = sum(1 for p in range(len(store.instances[0].mems[0].data) // 65536)
                  if any(store.instances[0].mems[0].data[p * 65536:(p + 1) * 65536]))
    state = checkpoint(store, run)
    blob = encode(state)
    t_cp = _median(lambda: checkpoint(store, run), repeat)
    t_enc = _median(lambda: encode(state), repeat)
    t_dec = _median(lambda: decode(blob), repeat)
    t_res = _median(lambda: restore(decode(blob), mods), repeat)
    t_rt = _median(lambda: restore(decode(encode(checkpoint(store, run))), mods), repeat)
    return {"frames": len(run.thread.frames), "nonzero_pages": nonzero, "snapshot_bytes": len(blob),
            "checkpoint_ms": round(t_cp * 1e3, 3), "encode_ms": round(t_enc * 1e3, 3),
            "decode_ms": round(t_dec * 1e3, 3), "decode_restore_ms": round(t_res * 1e3, 3),
            "checkpoint_to_restored_ms": round(t_rt * 1e3, 3)}


def bench_snapshot(repeat: int = 5) -> Dict[str, Any]:
    data = _module()
    return {"one_page_ten_frames": _case(data, 10, 1, repeat),
            "pages_64_frames_100": _case(data, 100, 64, repeat)}


if __name__ == "__main__":
    print(json.dumps(bench_snapshot(), indent=2))
