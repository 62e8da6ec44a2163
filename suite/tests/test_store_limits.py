"""Resource limits belong to the runner/restorer (vm/runtime/limits.py), memories never copy whole ranges
(vm/runtime/memdata.py), and running out of memory is one line with exit 2 (issue 10)."""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from suite import cli
from vm.api import Store, instantiate
from vm.errors import ResourceLimit
from vm.runtime import memdata
from vm.runtime.limits import ENV, StoreLimits, current
from vm.snapshot import SnapshotError, checkpoint, codec, decode, encode, finish, restore, run_to

GROW = """(module (memory (export "mem") 2)
  (table 2 funcref)
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  (func (export "tgrow") (param i32) (result i32) (table.grow (ref.null func) (local.get 0)))
  (func (export "deep") (param i32) (result i32)
    (if (result i32) (local.get 0)
      (then (i32.add (i32.const 1) (call 2 (i32.sub (local.get 0) (i32.const 1)))))
      (else (i32.const 0)))))"""


def wat(text: str) -> bytes:
    import wasmtime

    return bytes(wasmtime.wat2wasm(text))


def _mods(b: bytes) -> Dict[str, bytes]:
    return {hashlib.sha256(b).hexdigest(): b}


def _at(b: bytes, export: str, args: Any, k: int, limits: StoreLimits) -> Tuple[Any, Any]:
    store = Store(limits=limits)
    inst = instantiate(store, b)
    return store, run_to(store, inst.exports[export], args, k)


def test_instantiation_beyond_the_limit_is_refused_naming_the_flag() -> None:
    b = wat("(module (memory 20))")
    with pytest.raises(ResourceLimit, match="--max-memory-pages"):
        instantiate(Store(limits=StoreLimits(max_memory_pages=10)), b)
    instantiate(Store(limits=StoreLimits(max_memory_pages=20)), b)
    with pytest.raises(ResourceLimit, match="--max-table-elements"):
        instantiate(Store(limits=StoreLimits(max_table_elements=5)), wat("(module (table 6 funcref))"))


def test_grow_fails_at_the_store_limit_for_all_memories_and_tables_together() -> None:
    b = wat(GROW)
    store = Store(limits=StoreLimits(max_memory_pages=5, max_table_elements=4))
    inst = instantiate(store, b)
    assert store.invoke(inst.exports["grow"], [3]) == [2]
    assert store.invoke(inst.exports["grow"], [1]) == [0xFFFFFFFF]  # 6 > 5: grow fails, no trap
    assert store.invoke(inst.exports["tgrow"], [2]) == [2]
    assert store.invoke(inst.exports["tgrow"], [1]) == [0xFFFFFFFF]
    # a second instance shares the budget: its 2 pages do not fit next to the first one's 5
    with pytest.raises(ResourceLimit):
        instantiate(store, b)


def test_every_state_a_run_reaches_restores_under_the_same_limits_and_only_those() -> None:
    b = wat(GROW)
    lim = StoreLimits(max_memory_pages=40)
    store, run = _at(b, "grow", [30], 1, lim)
    finish(store, run)
    state = checkpoint(store, run)  # a finished run holding 32 pages
    blob = encode(state)
    store2, run2 = restore(decode(blob, lim), _mods(b), limits=lim)
    assert run2 is not None and run2.thread.results == [2]
    with pytest.raises(SnapshotError, match=r"32 pages .* limit of 16 pages \(--max-memory-pages\)"):
        restore(decode(blob, StoreLimits(max_memory_pages=16)), _mods(b), limits=StoreLimits(max_memory_pages=16))


def test_the_limits_a_snapshot_records_play_no_part() -> None:
    """A snapshot cannot raise the limits (allocation) nor lower them (a correct run would trap)."""
    b = wat(GROW)
    lim = StoreLimits()
    store, run = _at(b, "deep", [50], 3, lim)
    state = checkpoint(store, run)
    state.config = dict(state.config, max_call_depth=2, max_memory_pages=1 << 40)
    store2, run2 = restore(decode(encode(state)), _mods(b), limits=lim)
    assert run2 is not None
    assert finish(store2, run2).results == [("i32", 50)]
    assert store2.limits == lim


def test_a_frame_stack_deeper_than_the_restorers_call_depth_is_refused() -> None:
    b = wat(GROW)
    store, run = _at(b, "deep", [50], 200, StoreLimits())
    blob = encode(checkpoint(store, run))
    with pytest.raises(SnapshotError, match=r"thread.frames: 29 frames.*limit of 10 \(--max-call-depth\)"):
        restore(decode(blob), _mods(b), limits=StoreLimits(max_call_depth=10))


def test_decompression_stops_at_the_readers_bound() -> None:
    """A zlib bomb (100 MiB of zeros in ~100 KB) is refused once the body exceeds what a state within
    the reader's limits can need, not after inflating all of it."""
    lim = StoreLimits(max_memory_pages=1, max_table_elements=1, max_heap_fields=1, max_fs_bytes=1)
    assert lim.snapshot_body_bound() < 100 << 20
    bomb = codec.pack(bytes(100 << 20))
    assert len(bomb) < 200_000
    with pytest.raises(SnapshotError, match="larger than"):
        decode(bomb, lim)


def test_limits_travel_to_child_processes_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    lim = StoreLimits(max_memory_pages=7, max_table_elements=8, max_call_depth=9)
    assert StoreLimits.from_env(lim.to_env()) == lim
    with pytest.raises(ValueError, match=ENV):
        StoreLimits.from_env("max_memory_pages=lots")
    with pytest.raises(ValueError):
        StoreLimits(max_call_depth=0)


def test_cli_flags_bound_run_and_restore(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    m = tmp_path / "m.wasm"
    m.write_bytes(wat("(module (memory 20) (func (export \"f\") (result i32) (i32.const 7)))"))
    assert cli.main(["run", str(m), "--invoke", "f"]) == 0
    snap = tmp_path / "s.snap"
    assert cli.main(["run", str(m), "--invoke", "f", "--checkpoint-at", "0", "--snapshot", str(snap)]) == 0
    capsys.readouterr()
    assert cli.main(["run", str(m), "--invoke", "f", "--max-memory-pages", "10"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--max-memory-pages" in err and "Traceback" not in err
    assert cli.main(["restore", str(snap), "--module", str(m), "--max-memory-pages", "10"]) == 2
    err = capsys.readouterr().err
    assert "20 pages" in err and "--max-memory-pages" in err
    assert current() == StoreLimits()  # the command's flags do not outlive it


def test_out_of_memory_is_one_line_exit_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    def boom(args: Any) -> int:
        raise MemoryError

    parser = cli.build_parser()
    args = parser.parse_args(["targets"])
    monkeypatch.setattr(cli, "build_parser", lambda: _Fixed(parser, args, boom))
    assert cli.main(["targets"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wcr: out of memory") and err.count("\n") == 1


class _Fixed:
    def __init__(self, parser: Any, args: Any, run: Any):
        self.parser, self.args = parser, args
        args._run = run

    def parse_args(self, argv: Any) -> Any:
        return self.args

    def print_help(self, f: Any) -> None:  # pragma: no cover
        pass


@settings(deadline=None, max_examples=200)
@given(size=st.integers(1, 400), d=st.integers(0, 400), s=st.integers(0, 400), n=st.integers(0, 400),
       byte=st.integers(0, 255), chunk=st.integers(1, 50))
def test_bulk_operations_in_chunks_equal_plain_slices(size: int, d: int, s: int, n: int, byte: int,
                                                     chunk: int) -> None:
    """fill/copy (overlapping both ways) in pieces of ``chunk`` bytes give exactly what one slice gives."""
    old = memdata.CHUNK
    memdata.CHUNK = chunk
    try:
        mem = memdata.zeroed(((size + memdata.PAGE_SIZE - 1) // memdata.PAGE_SIZE) * memdata.PAGE_SIZE)
        for i in range(size):
            mem[i] = (i * 7 + 3) & 0xFF
        ref = bytearray(mem[:])
        if d + n <= size and s + n <= size:
            memdata.copy_bytes(mem, d, mem, s, n)  # same mapping: memmove
            ref[d:d + n] = ref[s:s + n]
            assert mem[:] == bytes(ref)
            other = bytearray(mem[:])
            memdata.copy_bytes(other, d, other, s, n)  # same bytearray, chunked, overlap-aware
            ref[d:d + n] = ref[s:s + n]
            assert other == ref
            memdata.fill_bytes(mem, d, n, byte)
            ref2 = bytearray(mem[:])
            assert ref2[d:d + n] == bytes([byte]) * n
    finally:
        memdata.CHUNK = old


def test_memory_is_lazily_zeroed_and_grows_in_place() -> None:
    m = memdata.zeroed(3 * memdata.PAGE_SIZE)
    m[5] = 1
    m = memdata.resize(m, 5 * memdata.PAGE_SIZE)
    assert len(m) == 5 * memdata.PAGE_SIZE and m[5] == 1 and m[-1] == 0
    assert memdata.zeroed(0) == bytearray()
    assert bytes(memdata.resize(bytearray(), memdata.PAGE_SIZE)) == bytes(memdata.PAGE_SIZE)


def test_snapshot_of_a_large_memory_compresses_page_by_page() -> None:
    """The writer keeps pages by reference (no whole-body copy); the format is unchanged."""
    b = wat("(module (memory 40) (func (export \"f\") (memory.fill (i32.const 0) (i32.const 9) "
            "(i32.const 2621440))))")
    store, run = _at(b, "f", [], 4, StoreLimits())
    state = checkpoint(store, run)
    blob = encode(state)
    assert zlib.decompress(blob[codec.HEADER_SIZE:]) == codec.encode_body(state)
    assert decode(blob) == state
    assert replace(state, names={}) is not state


def test_memory_bench_reports_peaks_and_ratios() -> None:
    """`wcr bench`'s memory figures come from real child processes (no timing or size assertion here:
    the figures belong to the benchmark, not to a test on a shared machine)."""
    from suite.bench.memory_bench import bench_memory

    out = bench_memory(1)
    assert out["guest_mib"] == 1
    for step in ("run", "run_checkpoint", "restore"):
        d = out[step]
        assert isinstance(d, dict) and d["peak_mib"] > 0 and d["constant_mib"] > 0


def test_child_hosts_restore_under_the_commands_limits(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A python:PATH host gets the command's store limits (WCR_LIMITS), and a child started under other
    limits is replaced, not reused."""
    import sys

    from runners.hosts import PythonHost
    from vm.runtime.limits import configure

    b = wat(GROW)
    lim = StoreLimits(max_memory_pages=40)
    store, run = _at(b, "grow", [30], 1, lim)
    finish(store, run)
    blob = encode(checkpoint(store, run))  # 32 pages
    host = PythonHost(sys.executable, timeout=60)
    before = current()
    try:
        configure(lim)
        assert host.restore_and_finish(blob, _mods(b))["results"] == ["i32:2"]
        configure(StoreLimits(max_memory_pages=16))
        with pytest.raises(Exception, match="--max-memory-pages"):
            host.restore_and_finish(blob, _mods(b))
        assert host.starts == 2
    finally:
        configure(before)
        host.close()


def test_heap_field_flag_bounds_gc_allocation(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``--max-heap-fields`` (issue 12): a module whose constant expressions allocate more GC fields than
    the flag allows is refused with one line naming the flag (exit 2); the flag itself is checked."""
    m = tmp_path / "gc.wasm"
    m.write_bytes(wat("(module (type $t (struct (field i32) (field i32) (field i32)))"
                      " (global (ref $t) (struct.new_default $t))"
                      " (func (export \"f\") (result i32) (i32.const 7)))"))
    assert cli.main(["run", str(m), "--invoke", "f"]) == 0
    capsys.readouterr()
    assert cli.main(["run", str(m), "--invoke", "f", "--max-heap-fields", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--max-heap-fields" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as e:
        cli.main(["run", str(m), "--invoke", "f", "--max-heap-fields", "0"])
    assert e.value.code == 2
    lim = StoreLimits(max_heap_fields=5)
    assert StoreLimits.from_env(lim.to_env()) == lim
    assert current() == StoreLimits()
