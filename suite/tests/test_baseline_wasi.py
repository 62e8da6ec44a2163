"""The blame baseline of WASI programs (ARCHITECTURE.md, "Comparison rules"): a target that disagrees
after a restore is blamed on itself (``target-nonconformant``) only when it also disagrees running the
original module from the start, under its own WASI in a fresh sandbox made from the program's
:class:`vm.runtime.wasi.WasiConfig` (:attr:`runners.restore.Origin.wasi`).  node's ``node:wasi`` refuses
a ``path_open`` asking for rights beyond what the directory passes on (ENOTCAPABLE) where our VM and
wasmtime open the file: that is node's own difference, not a C/R divergence; an altered snapshot prefix
still is one.
"""

from __future__ import annotations

import dataclasses

import pytest

pytest.importorskip("wasmtime")
from runners.native.registry import get_target  # noqa: E402
from runners.native.restorer import target_restorer  # noqa: E402
from runners.restore import MATCH, MISMATCH, NONCONFORMANT, CheckItem  # noqa: E402
from runners.session import items_for  # noqa: E402
from suite.tests.test_resume_wasi import IMPORTS, config, wasm_of  # noqa: E402
from vm.runtime.wasi.constants import RIGHTS_ALL  # noqa: E402

#: path_open asking for every right: our VM and wasmtime give errno 0, node's uvwasi ENOTCAPABLE (76)
ALL_RIGHTS = f"""(module {IMPORTS}
  (memory (export "memory") 1)
  (data (i32.const 64) "f.txt") (data (i32.const 80) "opened\\n")
  (func (export "main") (result i32)
    (i32.store (i32.const 16) (i32.const 80)) (i32.store (i32.const 20) (i32.const 7))
    (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))
    (call $path_open (i32.const 3) (i32.const 0) (i32.const 64) (i32.const 5) (i32.const 1)
      (i64.const {RIGHTS_ALL}) (i64.const {RIGHTS_ALL}) (i32.const 0) (i32.const 0))))"""


def v8():
    r = target_restorer("v8")
    if not r.available()[0] or "wasi" not in r.target.features:
        pytest.skip("node with node:wasi (>= 20) is not available")
    return r


def test_wasi_items_carry_their_config_as_origin() -> None:
    items = items_for(wasm_of(ALL_RIGHTS), "main", ks=[0], wasi=config())
    assert items[0].origin is not None and items[0].origin.wasi == config()


def test_node_errno_difference_is_target_nonconformant() -> None:
    item = items_for(wasm_of(ALL_RIGHTS), "main", ks=[0], wasi=config())[0]
    res = v8().check(item)
    assert res.status == NONCONFORMANT, (res.status, res.detail, res.extra)
    assert "i32:76" in res.extra["baseline"]
    assert res.extra["baseline_outcome"]["wasi"]["stdout"]  # the from-scratch run's own WASI end


def test_wasmtime_baseline_agrees_with_our_vm() -> None:
    """The baseline run itself: wasmtime from the start under its WASI gives our VM's results and end."""
    from runners.native.restorer import baseline_verdict

    item = items_for(wasm_of(ALL_RIGHTS), "main", ks=[0], wasi=config())[0]
    o = item.origin
    out, = get_target("wasmtime").run_original_many([(o.wasm, o.export, o.args, o.wasi)])
    assert out is not None and out.wasi is not None
    assert baseline_verdict(item.reference, o.log_start, out, item.final_state) == (MATCH, [])


def test_wasi_module_without_config_has_no_baseline() -> None:
    item = items_for(wasm_of(ALL_RIGHTS), "main", ks=[0], wasi=config())[0]
    o = item.origin
    out, = get_target("wasmtime").run_original_many([(o.wasm, o.export, o.args)])
    assert out is not None and "start configuration" in (out.unsupported or "")


def test_targets_without_a_wasi_baseline_say_why() -> None:
    """A target that cannot run the original WASI module (wasm3: no WASI) gives no baseline, with the
    reason: a mismatch there stays a C/R mismatch."""
    item = items_for(wasm_of(ALL_RIGHTS), "main", ks=[0], wasi=config())[0]
    o = item.origin
    out, = get_target("wasm3").run_original_many([(o.wasm, o.export, o.args, o.wasi)])
    assert out is not None and "cannot run a WASI program's original module" in (out.unsupported or "")


def test_altered_prefix_stays_a_mismatch_with_a_baseline() -> None:
    """A genuine C/R divergence (the snapshot's stdout so far altered) is not blamed on the target: its
    from-scratch run agrees with our VM."""
    item = next(it for it in items_for(wasm_of(ALL_RIGHTS), "main", wasi=config()) if it.state.wasi.stdout)
    ws = item.state.wasi
    bad = dataclasses.replace(item.state, wasi=dataclasses.replace(ws, stdout=b"X" + ws.stdout[1:]))
    tampered = CheckItem(item.snapshot, bad, item.modules, item.reference, item.final_state, "altered", item.k,
                         item.origin)
    res = target_restorer("wasmtime").check(tampered)
    assert res.status == MISMATCH and "wasi.stdout" in res.detail, (res.status, res.detail)
    assert res.extra["baseline_verdict"] == MATCH
