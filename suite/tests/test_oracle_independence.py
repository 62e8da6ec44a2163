"""The oracle does not share code with what it checks (issue 9, ARCHITECTURE.md "Comparison rules").

The final-state digest of a run (:func:`vm.snapshot.digest.state_digest`) walks the live store; it must
not go through :mod:`vm.snapshot.capture`, or a capture bug would change the reference digest and the
restored one alike.  Each test plants a realistic capture bug and checks that a C/R check on the
``inproc`` host — our VM alone, no native target — reports a mismatch *through the digest*.  Routing
``state_digest`` through ``capture_store`` again makes these tests fail (the reference digest would then
carry the bug too and the check would pass).
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from runners.hosts import get_host
from runners.restore import MATCH, MISMATCH, HostRestorer
from runners.session import items_for
from vm.api import Store, instantiate, load_module
from vm.runtime.objects import PAGE_SIZE
from vm.snapshot import capture as capture_mod
from vm.snapshot.digest import instance_digest, state_digest

wasmtime = pytest.importorskip("wasmtime")

# page 1 is written only past its first 4 KiB; $hidden is a mutable global nobody exports; the result
# does not read either, so only the final-state digest can see a lost page or a lost global
WAT = """(module
 (memory 2) (global $hidden (mut i32) (i32.const 0))
 (func (export "main") (result i32) (local i32)
   (i64.store (i32.const 0x11000) (i64.const 0x0123456789abcdef))
   (global.set $hidden (i32.const 42))
   (local.set 0 (i32.const 7))
   (local.get 0)))"""


def _wasm() -> bytes:
    return bytes(wasmtime.wat2wasm(WAT))


def _checks() -> list:
    """Each checkpoint after the memory write and the global write, restored on inproc."""
    items = [it for it in items_for(_wasm(), "main") if it.k >= 5]
    assert items
    return HostRestorer(get_host("inproc")).check_many(items)


@pytest.fixture
def page_tail_lost(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Capture bug: a page whose first 4 KiB are zero is treated as all zero."""
    orig = capture_mod.Capture.state

    def state(self: Any) -> Any:
        st = orig(self)
        for ms in st.mems:
            for p in [p for p, data in ms.nonzero.items() if not any(data[:4096])]:
                del ms.nonzero[p]
        return st

    monkeypatch.setattr(capture_mod.Capture, "state", state)
    yield


@pytest.fixture
def global_not_saved(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Capture bug: a global that no instance exports is saved with its type's zero."""
    orig = capture_mod.Capture.state

    def state(self: Any) -> Any:
        st = orig(self)
        exported = {id(g) for inst in self.store.instances for g in inst.exports.values()}
        for a, g in enumerate(self.objs["global"]):
            if id(g) not in exported and st.globals[a][0] == "i32":
                st.globals[a] = ("i32", 0)
        return st

    monkeypatch.setattr(capture_mod.Capture, "state", state)
    yield


def test_without_a_fault_every_checkpoint_matches() -> None:
    assert {r.status for r in _checks()} == {MATCH}


@pytest.mark.usefixtures("page_tail_lost")
def test_lost_page_tail_is_caught_by_the_digest_on_a_host() -> None:
    results = _checks()
    assert results and all(r.status == MISMATCH for r in results), [(r.status, r.detail) for r in results]
    assert all(r.detail.startswith("state_digest:") for r in results), results[0].detail


@pytest.mark.usefixtures("global_not_saved")
def test_unsaved_global_is_caught_by_the_digest_on_a_host() -> None:
    results = _checks()
    assert results and all(r.status == MISMATCH for r in results), [(r.status, r.detail) for r in results]
    assert all(r.detail.startswith("state_digest:") for r in results), results[0].detail


def test_state_digest_does_not_call_capture(monkeypatch: pytest.MonkeyPatch) -> None:
    """The digest is computed without the capture code at all (not merely with a correct one)."""
    store = Store()
    instantiate(store, load_module(_wasm()))

    def boom(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("state_digest went through vm.snapshot.capture")

    monkeypatch.setattr(capture_mod, "capture_store", boom)
    monkeypatch.setattr(capture_mod.Capture, "__init__", boom)
    assert state_digest(store).startswith("sha256:")


def test_digest_sees_every_page_byte_and_global() -> None:
    """A byte anywhere in a page (not only its first 4 KiB) and an unexported global change the digest;
    two fresh stores agree."""
    s1, s2 = Store(), Store()
    i1, i2 = instantiate(s1, load_module(_wasm())), instantiate(s2, load_module(_wasm()))
    assert state_digest(s1) == state_digest(s2) and instance_digest(i1) == instance_digest(i2)
    i2.mems[0].data[2 * PAGE_SIZE - 1] = 1
    assert state_digest(s1) != state_digest(s2) and instance_digest(i1) != instance_digest(i2)
    i2.mems[0].data[2 * PAGE_SIZE - 1] = 0
    assert state_digest(s1) == state_digest(s2)
    i2.globals[0].value = 42
    assert state_digest(s1) != state_digest(s2) and instance_digest(i1) != instance_digest(i2)
