"""Blame rules that cannot hide our bugs (issue 9, ARCHITECTURE.md "Comparison rules").

* A target mismatch is the target's own non-conformance only when the target, running the *original*
  module's invocation from the start (nothing of ours converted), disagrees with our VM too.  A bug in
  the store part of resume modules is wrong at k=0 as well, so the old "re-run from the k=0 snapshot"
  rule filed it as ``target-nonconformant``; it must be a C/R mismatch.
* Every resume module is validated (ours and ``wasm-tools validate``) before a target sees it; an
  invalid one is status ``error`` with the validator's message and the module, never inconclusive.
"""

from __future__ import annotations

import base64
import copy
from typing import Any, List

import pytest

from runners.native.restorer import TargetRestorer, target_restorer
from runners.native.validate import STATS, check_module
from runners.native.wasmtime import WasmtimeTarget
from runners.restore import ERROR, MATCH, MISMATCH, NONCONFORMANT, Origin, origin_of
from runners.session import items_for
from vm.api import Store, instantiate, load_module

wasmtime = pytest.importorskip("wasmtime")

DATA = """(module (memory 1) (data (i32.const 16) "\\01\\02\\03\\04")
  (func (export "main") (param i32) (result i32) (i32.add (i32.load (i32.const 16)) (local.get 0))))"""


def _wasm(text: str = DATA) -> bytes:
    return bytes(wasmtime.wat2wasm(text))


def _items() -> List[Any]:
    return items_for(_wasm(), "main", [5], ks=[0, 2, 4])


class _LyingTarget(WasmtimeTarget):
    """wasmtime, but every i32 result is off by one: on resume modules and on original modules."""

    name = "liar"

    def run_many(self, jobs: Any, timeout: float = 20.0) -> Any:
        outs = super().run_many(jobs, timeout)
        for o in outs:
            o.results = [(t, (x + 1) & 0xFFFFFFFF) if t == "i32" else (t, x) for t, x in o.results]
        return outs


class _ResumeLiar(WasmtimeTarget):
    """Lies on resume modules only: right from the start, wrong after a restore."""

    name = "resume-liar"

    def run_many(self, jobs: Any, timeout: float = 20.0) -> Any:
        outs = super().run_many(jobs, timeout)
        for (_w, man), o in zip(jobs, outs):
            if not man.entry.startswith("wcr:baseline"):
                o.results = [(t, (x + 1) & 0xFFFFFFFF) if t == "i32" else (t, x) for t, x in o.results]
        return outs


def test_items_carry_the_original_invocation() -> None:
    items = _items()
    assert all(isinstance(it.origin, Origin) and it.origin.export == "main" for it in items)
    assert items[0].origin.args == [("i32", 5)]
    assert [r.status for r in target_restorer("wasmtime").check_many(items)] == [MATCH] * len(items)


def test_converter_store_bug_is_a_cr_mismatch_not_the_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    """A data segment of the resume module one byte off: wrong at every k, k=0 included, yet the
    target running the original module is right, so it is our divergence."""
    from vm.snapshot.resume import store_part

    orig = store_part._runs
    monkeypatch.setattr(store_part, "_runs", lambda pages: [(off + 1, chunk) for off, chunk in orig(pages)])
    res = target_restorer("wasmtime").check_many(_items())
    assert [r.status for r in res] == [MISMATCH] * 3, [(r.status, r.detail) for r in res]
    assert all(r.extra["baseline_verdict"] == MATCH for r in res), [r.extra for r in res]


def test_a_target_wrong_from_the_start_is_nonconformant_with_its_own_difference() -> None:
    res = TargetRestorer(_LyingTarget()).check_many(_items())
    assert [r.status for r in res] == [NONCONFORMANT] * 3, [(r.status, r.detail) for r in res]
    for r in res:
        assert r.extra["baseline"].startswith("results[0]: expected i32:")  # its uninterrupted-run difference
        assert "uninterrupted run of the original module" in r.detail


def test_a_target_right_from_the_start_keeps_the_mismatch() -> None:
    res = TargetRestorer(_ResumeLiar()).check_many(_items())
    assert [r.status for r in res] == [MISMATCH] * 3, [(r.status, r.detail) for r in res]


def test_without_an_origin_a_mismatch_stays_a_mismatch() -> None:
    items = [copy.copy(it) for it in _items()]
    for it in items:
        it.origin = None
    res = TargetRestorer(_LyingTarget()).check_many(items)
    assert [r.status for r in res] == [MISMATCH] * 3
    assert all(r.extra["baseline_verdict"].startswith("none") for r in res)


def test_origin_only_when_the_instance_is_as_freshly_instantiated() -> None:
    wasm = _wasm()
    store = Store()
    inst = instantiate(store, load_module(wasm))
    func = inst.exports["main"]
    o, why = origin_of(store, func, [7], wasm)
    assert o is not None and o.args == [("i32", 7)] and o.log_start == 0, why
    inst.mems[0].data[100] = 1  # an earlier invocation wrote memory: a from-scratch run is no baseline
    o, why = origin_of(store, func, [7], wasm)
    assert o is None and "fresh instantiation" in why
    inst.mems[0].data[100] = 0
    other = instantiate(store, load_module(_wasm('(module (memory 1) (func (export "f")))')))
    other.mems[0].data[0] = 9  # other instances of a spec script's store do not matter
    assert origin_of(store, func, [7], wasm)[0] is not None


def test_invalid_resume_module_is_our_error_with_the_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never inconclusive: status error, the validator's message, the module's sha256 and bytes."""
    import dataclasses

    import vm.snapshot.resume as resume
    from vm.binary import encode_module
    from vm.module import Export

    orig = resume.make_resume_module

    def broken(state: Any, modules: Any) -> Any:
        rm = orig(state, modules)
        m = dataclasses.replace(rm.module, exports=list(rm.module.exports) + [Export("bad", "func", 999)])
        return rm._replace(bytes=encode_module(m), module=m)

    monkeypatch.setattr(resume, "make_resume_module", broken)
    res = target_restorer("wasmtime").check_many(_items())
    assert [r.status for r in res] == [ERROR] * 3, [(r.status, r.detail) for r in res]
    info = res[0].extra["invalid_module"]
    assert info["validator"] == "wcr" and info["sha256"] in res[0].detail
    assert check_module(base64.b64decode(info["wasm_base64"])) is not None


def test_wasm_tools_refuses_what_our_validator_might_miss(monkeypatch: pytest.MonkeyPatch) -> None:
    """The second validator is independent of ours: with ours fooled, wasm-tools still refuses."""
    from runners.native import validate

    monkeypatch.setattr(validate, "_ours", lambda data: None)
    monkeypatch.setattr(validate, "_CACHE", {})
    if not validate.wasm_tools_exe():
        pytest.skip("wasm-tools not installed")
    bad = _wasm('(module (func (export "f") (result i32) (i32.const 1)))').replace(b"\x41\x01", b"\x42\x01")
    verdict = check_module(bad)
    assert verdict is not None and verdict[0] == "wasm-tools", verdict


def test_validation_is_cached_by_sha256() -> None:
    data = _wasm('(module (func (export "g") (result i32) (i32.const 3)))')
    assert check_module(data) is None
    hits = STATS["hits"]
    assert check_module(data) is None and STATS["hits"] == hits + 1


_DATA_WAST = """
(module (memory 1) (data (i32.const 16) "\\01\\02\\03\\04")
  (func (export "main") (param i32) (result i32) (i32.add (i32.load (i32.const 16)) (local.get 0))))
(assert_return (invoke "main" (i32.const 5)) (i32.const 0x04030206))
"""


def test_spec_cr_files_a_converter_store_bug_as_mismatch(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The spec C/R path end to end: under the old rule (re-run from the k=0 snapshot's resume module)
    this planted converter bug was counted as target-nonconformant; now it fails the command."""
    from spec_tests.cr import CrConfig
    from spec_tests.runner import run_file
    from vm.snapshot.resume import store_part

    orig = store_part._runs
    monkeypatch.setattr(store_part, "_runs", lambda pages: [(off + 1, chunk) for off, chunk in orig(pages)])
    (tmp_path / "data.wast").write_text(_DATA_WAST)
    r = run_file(tmp_path, "data.wast", cr=CrConfig("random", 1, "wasmtime"))
    t = r.cr["targets"]["wasmtime"]
    assert t["target_nonconformant"] == 0 and t["mismatches"] >= 1 and r.cr["mismatches"] >= 1, t
    assert r.failed == 1
