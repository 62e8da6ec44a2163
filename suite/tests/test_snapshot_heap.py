"""Checkpoints of stores that hold GC and exception objects (issue 12): the heap section, its codec, its
consistency rules (docs/snapshot-format.md, rules 18-23), the segments section, caught exceptions, the
value text codec of the new references, and the oracle's digest over heap objects.

The objects are built by hand (a module whose globals, tables and frames are filled from Python with
:mod:`vm.runtime.heap` objects), so these tests do not depend on the engine's GC instructions; the spec
files of GC and exception handling exercise the whole path through ``wcr spec --cr``.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any, Dict, List, Tuple

import pytest

wasmtime = pytest.importorskip("wasmtime")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from vm.api import Store, instantiate  # noqa: E402
from vm.runtime.heap import ArrayInst, ExnInst, HostRef, I31Ref, StructInst  # noqa: E402
from vm.runtime.limits import StoreLimits  # noqa: E402
from vm.runtime.objects import ExternRef  # noqa: E402
from vm.snapshot import (  # noqa: E402
    SnapshotError,
    checkpoint,
    codec,
    decode,
    encode,
    finish,
    restore,
    run_to,
    show,
    state_digest,
)
from vm.snapshot.model import State  # noqa: E402
from vm.values import ValueTextError, format_value, from_runtime, parse_value, to_runtime  # noqa: E402

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

WAT = """
(module
  (type $node (struct (field $v (mut i32)) (field $next (mut (ref null $node)))))
  (type $pk (struct (field i8) (field (mut i16))))
  (type $arr (array (mut (ref null $node))))
  (type $frozen (struct (field (ref null $frozen))))
  (tag $e (param i32 (ref null $node)))
  (global $g0 (mut (ref null $node)) (ref.null $node))
  (global $g1 (mut anyref) (ref.null any))
  (global $g2 (mut (ref null $arr)) (ref.null $arr))
  (global $g3 (mut exnref) (ref.null exn))
  (global $g4 (mut externref) (ref.null extern))
  (global $g5 (mut (ref null $frozen)) (ref.null $frozen))
  (table $t 4 (ref null $node))
  (elem $seg (ref null $node) (ref.null $node) (ref.null $node))
  (func (export "run") (param i32) (result i32) (local (ref null $node))
    (block $b (loop $l (br_if $b (i32.eqz (local.get 0)))
      (local.set 0 (i32.sub (local.get 0) (i32.const 1))) (br $l)))
    (i32.const 7))
)
"""

_CACHE: Dict[str, Tuple[bytes, Dict[str, bytes]]] = {}


def module() -> Tuple[bytes, Dict[str, bytes]]:
    if WAT not in _CACHE:
        data = bytes(wasmtime.wat2wasm(WAT))
        _CACHE[WAT] = (data, {hashlib.sha256(data).hexdigest(): data})
    return _CACHE[WAT]


def fresh() -> Tuple[Store, Any]:
    store = Store()
    return store, instantiate(store, module()[0])


def graph_store(edges: List[int], arrays: List[List[int]], slots: List[int]) -> Tuple[Store, Any, Any]:
    """A store whose nodes are linked by ``edges`` (node i's next is node edges[i], -1 null), arrays of
    nodes, and ``slots``: which node each of global 0, table elements 0-3, the segment's items and the
    frame's local holds (-1 null).  Returns (store, instance, run stopped inside the loop)."""
    store, inst = fresh()
    c = inst.canon
    nodes = [StructInst(c[0], [i, None]) for i in range(len(edges))]
    for i, e in enumerate(edges):
        nodes[i].fields[1] = nodes[e] if e >= 0 else None

    def node(k: int) -> Any:
        return nodes[k % len(nodes)] if k >= 0 and nodes else None

    inst.globals[0].value = node(slots[0])
    inst.globals[1].value = StructInst(c[1], [255, 65535])
    if arrays:
        inst.globals[2].value = ArrayInst(c[2], [node(k) for k in arrays[0]])
    inst.globals[3].value = ExnInst(inst.tags[0], [5, node(slots[1])])
    inst.globals[4].value = ExternRef(node(slots[2])) if node(slots[2]) is not None else ExternRef(3)
    inst.globals[5].value = StructInst(c[3], [StructInst(c[3], [None])])
    for i in range(4):
        inst.tables[0].elements[i] = node(slots[3 + i])
    inst.elems[0] = [node(slots[7]), node(slots[8])]
    run = run_to(store, inst.exports["run"], [3], 4)
    run.thread.frames[-1].locals[1] = node(slots[9])
    return store, inst, run


graphs = st.integers(1, 12).flatmap(lambda n: st.tuples(
    st.lists(st.integers(-1, n - 1), min_size=n, max_size=n),
    st.lists(st.lists(st.integers(-1, n - 1), max_size=6), max_size=1),
    st.lists(st.integers(-1, n - 1), min_size=10, max_size=10)))


def round_trip(state: State, limits: Any = None) -> Tuple[Store, Any]:
    return restore(decode(encode(state), limits), module()[1], limits=limits)


@SETTINGS
@given(graphs)
def test_heap_round_trip_preserves_identity_cycles_and_sharing(g: Any) -> None:
    store, inst, run = graph_store(*g)
    state = checkpoint(store, run)
    store2, run2 = round_trip(state)
    again = checkpoint(store2, run2)
    assert again == state
    assert state_digest(store2) == state_digest(store)
    assert finish(store2, run2).to_dict() == finish(store, run).to_dict()


def test_sharing_survives_between_slots_and_segment_items() -> None:
    store, inst, run = graph_store([1, 0], [[0, 1, 0]], [0, 1, 0, 0, 1, -1, -1, 0, 1, 0])
    store2, run2 = round_trip(checkpoint(store, run))
    inst2 = store2.instances[0]
    a = inst2.globals[0].value
    assert inst2.tables[0].elements[0] is a and inst2.elems[0][0] is a  # the segment holds the same object
    assert run2.thread.frames[-1].locals[1] is a and a.fields[1].fields[1] is a  # a cycle
    assert inst2.globals[4].value.value is a  # extern.convert_any of it
    assert inst2.globals[3].value.payload[1] is a.fields[1]


def test_deep_chain_needs_no_recursion() -> None:
    """100 000 linked structs: capture, codec, checks, restore and the digest walk them iteratively."""
    n = 100_000
    store, inst, run = graph_store([i + 1 for i in range(n - 1)] + [-1], [], [0] + [-1] * 9)
    state = checkpoint(store, run)
    assert len(state.heap) == n + 4
    store2, run2 = round_trip(state)
    assert state_digest(store2) == state_digest(store)


# ------------------------------------------------------------------------------------------- values
@pytest.mark.parametrize("text", ["ref.i31:5", "ref.host:3", "ref.struct:0", "ref.array:2", "ref.exn:1",
                                  "ref.extern:ref.struct:0", "ref.extern:ref.i31:7", "ref.struct"])
def test_value_text_round_trip(text: str) -> None:
    assert format_value(parse_value(text)) == text


@pytest.mark.parametrize("text", ["ref.i31:-1", "ref.i31:2147483648", "ref.extern:ref.exn:1", "ref.struct:x",
                                  "ref.extern:ref.bogus:1", "ref.exn:"])
def test_value_text_errors(text: str) -> None:
    with pytest.raises(ValueTextError, match="value"):
        parse_value(text)


def test_runtime_conversions() -> None:
    assert to_runtime(parse_value("ref.i31:7")) == I31Ref(7)
    assert to_runtime(parse_value("ref.host:3")) == HostRef(3)
    assert to_runtime(parse_value("ref.extern:ref.i31:7")).value == I31Ref(7)
    assert from_runtime(None, I31Ref(9)) == ("ref.i31", 9)
    assert from_runtime(None, ExternRef(I31Ref(9))) == ("ref.extern", ("ref.i31", 9))
    with pytest.raises(ValueTextError):
        to_runtime(parse_value("ref.struct:0"))  # an object needs a heap section


# ---------------------------------------------------------------------------------- hostile states
def _base() -> Tuple[State, Dict[str, bytes]]:
    store, inst, run = graph_store([1, 0], [[0, 1]], [0, 1, 0, 0, 1, -1, -1, 0, 1, 0])
    return checkpoint(store, run), module()[1]


def _refused(state: State, field: str, limits: Any = None) -> str:
    """Restore refuses ``state`` (the decoded form of a crafted file) naming ``field`` first."""
    with pytest.raises(SnapshotError) as e:
        restore(state, module()[1], limits=limits)
    assert e.value.message.startswith(field), e.value.message
    return e.value.message


def _find(state: State, kind: str, type_index: int) -> int:
    return next(i for i, ob in enumerate(state.heap) if ob.kind == kind and (ob.type or (0, -1))[1] == type_index)


def test_wrong_type_index_and_kind() -> None:
    state, _ = _base()
    i = _find(state, "struct", 0)
    state.heap[i].type = (0, 2)  # an array type
    _refused(state, f"heap[{i}].type")
    state.heap[i].type = (0, 99)
    _refused(state, f"heap[{i}].type")
    state.heap[i].type = (5, 0)
    _refused(state, f"heap[{i}].type: instance 5")


def test_field_count_packed_range_and_field_types() -> None:
    state, _ = _base()
    i = _find(state, "struct", 0)
    s2 = copy.deepcopy(state)
    s2.heap[i].fields.append(("i32", 1))
    _refused(s2, f"heap[{i}].fields: 3 fields")
    p = _find(state, "struct", 1)
    s2 = copy.deepcopy(state)
    s2.heap[p].fields[0] = ("i32", 300)
    assert "packed i8" in _refused(s2, f"heap[{p}].fields[0]")
    s2 = copy.deepcopy(state)
    s2.heap[i].fields[1] = ("ref.struct", p)  # a $pk where a $node is expected
    _refused(s2, f"heap[{i}].fields[1]")
    s2 = copy.deepcopy(state)
    s2.heap[i].fields[0] = ("i64", 1)
    _refused(s2, f"heap[{i}].fields[0]: i64 where i32")


def test_ids_out_of_range_and_of_the_wrong_kind() -> None:
    state, _ = _base()
    s2 = copy.deepcopy(state)
    s2.globals[0] = ("ref.struct", len(state.heap))
    assert "out of range" in _refused(s2, "globals[0]")
    s2 = copy.deepcopy(state)
    s2.globals[0] = ("ref.array", _find(state, "struct", 0))
    _refused(s2, "globals[0]")
    s2 = copy.deepcopy(state)
    s2.thread.frames[0].locals[1] = ("ref.exn", len(state.heap) - 1)  # type: ignore[union-attr]
    _refused(s2, "thread.frames[0].locals[1]")


def test_exception_tag_and_payload() -> None:
    state, _ = _base()
    e = next(i for i, ob in enumerate(state.heap) if ob.kind == "exn")
    s2 = copy.deepcopy(state)
    s2.heap[e].tag = 7
    _refused(s2, f"heap[{e}].tag")
    s2 = copy.deepcopy(state)
    s2.heap[e].fields = s2.heap[e].fields[:1]
    _refused(s2, f"heap[{e}].fields: 1 fields")


def test_cycle_through_immutable_fields_is_unreachable() -> None:
    state, _ = _base()
    f = [i for i, ob in enumerate(state.heap) if ob.type == (0, 3)]
    state.heap[f[1]].fields[0] = ("ref.struct", f[0])  # f0 -> f1 -> f0, both immutable
    assert "cycle" in _refused(state, "heap[")


def test_segment_items_checked() -> None:
    state, _ = _base()
    assert state.segments and state.segments[0][:2] == (0, 0)
    s2 = copy.deepcopy(state)
    s2.segments[0] = (0, 0, s2.segments[0][2][:1])
    _refused(s2, "segments[0].items: 1 items")
    s2 = copy.deepcopy(state)
    s2.segments[0] = (0, 0, [("i32", 1), ("ref.null", None)])
    _refused(s2, "segments[0].items[0]")
    s2 = copy.deepcopy(state)
    s2.instances[0].elem_dropped[0] = True
    _refused(s2, "segments[0]")


def test_heap_limits_refuse_before_allocating() -> None:
    state, _ = _base()
    small = StoreLimits(max_heap_fields=3)
    with pytest.raises(SnapshotError, match="max-heap-fields"):
        decode(encode(state), small)
    with pytest.raises(SnapshotError, match="^heap: .*max-heap-fields"):
        restore(state, module()[1], limits=small)


def test_hostile_counts_fail_cleanly() -> None:
    """A heap section claiming 2**40 objects or fields is refused by the count check, not allocated."""
    w = codec._W()
    w.u(1 << 40)
    body = _body_with(codec.SEC_HEAP, w)
    with pytest.raises(SnapshotError, match="section 11: count"):
        decode(codec.pack(body))
    w = codec._W()
    w.u(1)
    w.byte(0)
    w.u(0)
    w.u(0)
    w.u(1 << 40)
    with pytest.raises(SnapshotError, match="section 11: count"):
        decode(codec.pack(_body_with(codec.SEC_HEAP, w)))


def _body_with(sid: int, w: Any) -> bytes:
    state, _ = _base()
    state.heap = []
    state.segments = []
    state.thread = None
    state.globals = [("ref.null", None)] * len(state.globals)
    state.tables = [[("ref.null", None)] * len(t) for t in state.tables]
    out = codec._W()
    codec.encode_store_sections(state, out)
    codec._section(out, sid, w)
    return b"".join(out.pieces())


def test_version_1_snapshots_still_read() -> None:
    """A version-1 body (no caught list per frame) decodes, with empty caught lists."""
    store, inst = fresh()
    run = run_to(store, inst.exports["run"], [3], 4)
    state = checkpoint(store, run)
    body = codec.encode_body(state)
    v2 = decode(codec.pack(body))
    assert v2 == state
    # the version-1 thread section is the same minus one `u 0` per frame (the last frame's is the byte
    # before the exception flag) and minus that flag (byte 0: no escaped exception)
    th = codec._encode_thread(state.thread)  # type: ignore[arg-type]
    assert len(state.thread.frames) == 1  # type: ignore[union-attr]
    old = b"".join(th.pieces())[:-2]
    out = codec._W()
    codec.encode_store_sections(state, out)
    w = codec._W()
    w.raw(old)
    codec._section(out, codec.SEC_THREAD, w)
    v1 = decode(codec.pack(b"".join(out.pieces()), version=1))
    assert v1.thread == state.thread


# ------------------------------------------------------------------------------------------ oracle
def test_digest_sees_a_changed_or_split_object() -> None:
    store, inst, run = graph_store([1, 0], [[0, 1]], [0, 1, 0, 0, 1, -1, -1, 0, 1, 0])
    before = state_digest(store)
    inst.globals[0].value.fields[0] = 99
    assert state_digest(store) != before
    inst.globals[0].value.fields[0] = 0
    assert state_digest(store) == before
    a = inst.globals[0].value
    inst.tables[0].elements[0] = StructInst(a.canon, list(a.fields))  # equal content, not the same object
    assert state_digest(store) != before


def test_outcome_digest_covers_result_objects() -> None:
    store, inst = fresh()
    x = StructInst(inst.canon[0], [1, None])
    y = StructInst(inst.canon[0], [2, None])
    assert state_digest(store, [x]) != state_digest(store, [y])
    assert state_digest(store, [x]) == state_digest(store, [StructInst(inst.canon[0], [1, None])])


def test_show_lists_the_heap() -> None:
    state, _ = _base()
    text = show(encode(state))
    assert "heap:" in text and 'kind: "exn"' in text and "segments:" in text
    assert '"ref.extern:ref.struct:' in text


# ------------------------------------------------------------------------ legacy caught exceptions
LEGACY = """
(module
  (tag $e (param i32))
  (func (export "run") (param i32) (result i32)
    try nop catch $e drop try nop catch_all nop nop end end
    (i32.const 7))
)
"""


def _legacy(tmp_path: Any, monkeypatch: Any) -> Tuple[Store, Any, Dict[str, bytes]]:
    """A run stopped inside a ``catch_all`` nested in a ``catch`` (the frame built by hand: this test
    does not need the engine's exception handling, only that the functions compile)."""
    import subprocess

    from suite.tests._wast import wasm_tools
    from vm.exec import eh
    from vm.snapshot import start

    exe = wasm_tools()
    if exe is None:
        pytest.skip("wasm-tools is not installed")
    (tmp_path / "m.wat").write_text(LEGACY)
    subprocess.run([exe, "parse", str(tmp_path / "m.wat"), "-o", str(tmp_path / "m.wasm")], check=True)
    data = (tmp_path / "m.wasm").read_bytes()
    for op in ("try", "catch", "catch_all"):
        if op not in eh.OPS:
            monkeypatch.setitem(eh.OPS, op, lambda *a: (None, None))
    store = Store()
    inst = instantiate(store, data)
    run = start(store, inst.exports["run"], [3])
    fr = run.thread.frames[-1]
    fr.pc = 7  # the first nop of the catch_all block
    fr.caught = {0: ExnInst(inst.tags[0], [1]), 4: ExnInst(inst.tags[0], [2]), 99: None}  # 99: stale
    run.thread.count = 5
    return store, run, {hashlib.sha256(data).hexdigest(): data}


def test_caught_exceptions_round_trip_and_checks(tmp_path: Any, monkeypatch: Any) -> None:
    store, run, mods = _legacy(tmp_path, monkeypatch)
    state = checkpoint(store, run)
    fs = state.thread.frames[0]  # type: ignore[union-attr]
    assert [off for off, _ in fs.caught] == [1, 7] and [ob.fields for ob in state.heap] == [[("i32", 1)], [("i32", 2)]]
    store2, run2 = restore(decode(encode(state)), mods)
    caught = run2.thread.frames[0].caught  # type: ignore[union-attr]
    assert sorted(caught) == [0, 4] and caught[4].payload == [2]
    assert checkpoint(store2, run2) == state  # type: ignore[arg-type]
    for bad, msg in ((fs.caught[:1], "do not match"), ([(1, fs.caught[0][1]), (5, fs.caught[1][1])], "do not match"),
                     ([fs.caught[0], (7, ("i32", 1))], "caught[1]"), ([fs.caught[0], (7, ("ref.exn", 9))], "caught[1]")):
        s2 = copy.deepcopy(state)
        s2.thread.frames[0].caught = bad  # type: ignore[union-attr]
        with pytest.raises(SnapshotError, match=r"^thread\.frames\[0\]\.caught") as e:
            restore(s2, mods)
        assert msg in e.value.message
    run.thread.frames[-1].caught = None
    with pytest.raises(SnapshotError, match="no caught exception"):
        checkpoint(store, run)


# --------------------------------------------------------------- end to end, with the engine's GC/EH
E2E = """
(module
  (type $node (struct (field $v (mut i32)) (field $next (mut (ref null $node)))))
  (type $bytes (array (mut i8)))
  (tag $t (param (ref null $node)))
  (global $head (mut (ref null $node)) (ref.null $node))
  (table $tab 2 (ref null $node))
  (elem $seg (ref null $node) (struct.new $node (i32.const 42) (ref.null $node)))
  (func (export "run") (param $n i32) (result i32 i32)
    (local $i i32) (local $b (ref $bytes))
    (local.set $b (array.new $bytes (i32.const 255) (i32.const 4)))
    (table.init $tab $seg (i32.const 0) (i32.const 0) (i32.const 1))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (global.set $head (struct.new $node (local.get $i) (global.get $head)))
        (array.set $bytes (local.get $b) (i32.and (local.get $i) (i32.const 3)) (i32.const 300))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (table.init $tab $seg (i32.const 1) (i32.const 0) (i32.const 1))
    (block $h (result (ref null $node))
      (try_table (catch $t $h) (throw $t (global.get $head)))
      (ref.null $node))
    (struct.get $node $v)
    (ref.eq (table.get $tab (i32.const 0)) (table.get $tab (i32.const 1))))
)
"""


def test_checkpoint_at_every_instruction_of_a_gc_and_eh_run() -> None:
    """With the engine's GC and exception instructions: a checkpoint after every instruction restores
    to the uninterrupted outcome (results, count, digest), including ``ref.eq`` of two ``table.init``s
    of a segment holding a struct (one before the checkpoint, one after)."""
    from vm.exec import eh, gc
    from vm.snapshot import start

    if "struct.new" not in gc.OPS or "try_table" not in eh.OPS:
        pytest.skip("the engine has no GC/EH instructions yet")
    data = bytes(wasmtime.wat2wasm(E2E))
    mods = {hashlib.sha256(data).hexdigest(): data}
    store = Store()
    inst = instantiate(store, data)
    ref = finish(store, start(store, inst.exports["run"], [5]))
    assert ref.results == [("i32", 4), ("i32", 1)]
    for k in range(ref.instructions + 1):
        store = Store()
        inst = instantiate(store, data)
        run = run_to(store, inst.exports["run"], [5], k)
        store2, run2 = restore(decode(encode(checkpoint(store, run))), mods)
        assert finish(store2, run2).to_dict() == ref.to_dict(), k

