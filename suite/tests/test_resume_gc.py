"""Resume modules of states with GC objects and exceptions (vm/snapshot/resume/heap_part.py, the
legacy ``try``/``catch`` rebuild of frames.py), on hand-built states: the snapshot model is plain data,
so a state with a shared object, a cycle, a long chain, ``i31``, an ``exnref`` or a frame inside a
handler is written down directly.  Every resume module must pass both validators; the ones a target
can run are run there (wasmtime: GC + exnref; node's V8: legacy exceptions) and their results checked
against the value the rest of the program computes by hand."""

from __future__ import annotations

import hashlib
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pytest
import wasmtime

from runners.native.features import module_features
from runners.native.registry import get_target
from runners.native.validate import check_module
from vm.binary import decode_module
from vm.snapshot.model import FrameState, HeapObject, InstanceState, Label, State, ThreadState, Value
from vm.snapshot.resume import REASONS, NotConvertible, ResumeModule, make_resume_module
from vm.valid import validate_module


def hand_state(data: bytes, idx: int, locals_: Sequence[Value] = (), stack: Sequence[Value] = (),
               globals_: Sequence[Value] = (), heap: Sequence[HeapObject] = (),
               caught: Sequence[Tuple[int, Value]] = ()) -> State:
    """A running state of the one instance of ``data``: function 0 (exported ``main``) stopped before
    ``body[idx]``, labels from the validator; unset locals are their defaults."""
    m = decode_module(data)
    info = validate_module(m)
    f, fi = m.funcs[0], info.funcs[0]
    pc = f.body[idx].offset - f.body_offset
    labels = [Label(c.kind, -1 if c.start < 0 else f.body[c.start].offset - f.body_offset,
                    len(c.params), len(c.results), c.height) for c in fi.controls[idx]]
    locs = list(locals_) + [(t, 0) if isinstance(t, str) else ("ref.null", None)
                            for t in fi.local_types[len(locals_):]]
    ng, nt = len(m.global_types()), len(m.table_types())
    ist = InstanceState(0, None, funcs=list(range(len(m.funcs))), globals=list(range(ng)),
                        tables=list(range(nt)), tags=list(range(len(m.tags))),
                        elem_dropped=[False] * len(m.elems), data_dropped=[False] * len(m.datas))
    th = ThreadState("running", 1, 0, frames=[FrameState(0, pc, locs, list(stack), labels, list(caught))])
    return State({}, [hashlib.sha256(data).hexdigest()],
                 {"func": len(m.funcs), "table": nt, "memory": 0, "global": ng, "tag": len(m.tags)},
                 [], [ist], [[] for _ in range(nt)], [], list(globals_), [], th, heap=list(heap))


def index_of(data: bytes, op: str, nth: int = 0) -> int:
    """Index in main's body of the ``nth`` instruction ``op`` (the checkpoint is *before* it)."""
    body = decode_module(data).funcs[0].body
    return [i for i, ins in enumerate(body) if ins.op == op][nth]


def convert(data: bytes, st: State) -> ResumeModule:
    rm = make_resume_module(st, {hashlib.sha256(data).hexdigest(): data})
    assert check_module(rm.bytes) is None, check_module(rm.bytes)  # ours and wasm-tools
    return rm


def run_on(target: str, rm: ResumeModule) -> Tuple[List[Value], Optional[str], Dict[str, Any]]:
    t = get_target(target)
    ok, why = t.available()
    if not ok:
        pytest.skip(why)
    missing = module_features(rm.module) - set(t.features)
    assert not missing, missing
    out = t.run_many([(rm.bytes, rm.manifest)])[0]
    assert out is not None and not out.inconclusive, out and out.inconclusive
    return out.results, out.trap, out.globals


def reason(data: bytes, st: State) -> str:
    with pytest.raises(NotConvertible) as ei:
        make_resume_module(st, {hashlib.sha256(data).hexdigest(): data})
    assert ei.value.reason in REASONS
    return ei.value.reason


# ------------------------------------------------------------------------------------------ GC objects
SHARED = wasmtime.wat2wasm("""
(module
  (type $s (struct (field (mut i32)) (field (mut (ref null $s)))))
  (global $g (mut (ref null $s)) (ref.null $s))
  (func (export "main") (result i32) (local $x (ref null $s))
    nop
    (i32.add (i32.add (struct.get $s 0 (local.get $x))
                      (i32.mul (i32.const 10) (struct.get $s 0 (struct.get $s 1 (local.get $x)))))
      (i32.add (i32.mul (i32.const 100) (ref.eq (local.get $x) (global.get $g)))
               (i32.mul (i32.const 1000)
                        (ref.eq (local.get $x) (struct.get $s 1 (struct.get $s 1 (local.get $x)))))))))
""")


def test_shared_object_and_cycle_keep_their_identity():
    """x and $g name the same object, and x.next.next is x again: 5 + 10*7 + 100 + 1000."""
    st = hand_state(SHARED, 1, locals_=[("ref.struct", 0)], globals_=[("ref.struct", 0)],
                    heap=[HeapObject("struct", [("i32", 5), ("ref.struct", 1)], type=(0, 0)),
                          HeapObject("struct", [("i32", 7), ("ref.struct", 0)], type=(0, 0))])
    rm = convert(SHARED, st)
    assert sum(1 for g in rm.module.globals if not g.type.mutable) == 2  # one helper per object
    assert any(i.op == "struct.set" for i in rm.module.funcs[-1].body)  # the cycle's second phase
    res, trap, globs = run_on("wasmtime", rm)
    assert (res, trap) == ([("i32", 1175)], None)
    assert list(globs.values()) == [("ref", None)]  # a non-null reference, read through its null probe


def test_cycle_through_immutable_fields_is_refused():
    data = wasmtime.wat2wasm("""
    (module (rec (type $s (struct (field i32) (field (ref null $s)))))
      (func (export "main") (result i32) (local $x (ref null $s)) nop (struct.get $s 0 (local.get $x))))""")
    st = hand_state(data, 1, locals_=[("ref.struct", 0)],
                    heap=[HeapObject("struct", [("i32", 1), ("ref.struct", 0)], type=(0, 0))])
    assert reason(data, st) == "heap cycle"


CHAIN = wasmtime.wat2wasm("""
(module
  (type $n (struct (field i32) (field (ref null $n))))
  (func (export "main") (result i32) (local $x (ref null $n)) (local $sum i32)
    nop
    (block $done (loop $l
      (br_if $done (ref.is_null (local.get $x)))
      (local.set $sum (i32.add (local.get $sum) (struct.get $n 0 (local.get $x))))
      (local.set $x (struct.get $n 1 (local.get $x)))
      (br $l)))
    (local.get $sum)))
""")


def test_deep_chain_is_built_without_recursion():
    n = 3000
    heap = [HeapObject("struct", [("i32", k), ("ref.struct", k + 1) if k + 1 < n else ("ref.null", None)],
                       type=(0, 0)) for k in range(n)]
    rm = convert(CHAIN, hand_state(CHAIN, 1, locals_=[("ref.struct", 0)], heap=heap))
    assert run_on("wasmtime", rm)[:2] == ([("i32", n * (n - 1) // 2)], None)


ARRAYS = wasmtime.wat2wasm("""
(module
  (type $a (array (mut i32)))
  (type $b (array (mut i8)))
  (func (export "main") (result i32) (local $x (ref null $a)) (local $y (ref null $b))
    nop
    (i32.add (i32.add (array.len (local.get $x)) (array.get $a (local.get $x) (i32.const 10003)))
             (i32.add (array.get $a (local.get $x) (i32.const 7)) (array.get_u $b (local.get $y) (i32.const 1))))))
""")


def test_long_array_and_packed_elements():
    n = 10005  # above MAX_FIXED: array.new_default, then array.set of the non-default elements
    elems: List[Value] = [("i32", 0)] * n
    elems[7], elems[10003] = ("i32", 100), ("i32", 2000)
    st = hand_state(ARRAYS, 1, locals_=[("ref.array", 0), ("ref.array", 1)],
                    heap=[HeapObject("array", elems, type=(0, 0)),
                          HeapObject("array", [("i32", 1), ("i32", 255)], type=(0, 1))])
    rm = convert(ARRAYS, st)
    assert run_on("wasmtime", rm)[:2] == ([("i32", n + 2000 + 100 + 255)], None)


I31_EXTERN = wasmtime.wat2wasm("""
(module
  (type $s (struct (field i32)))
  (global $e (mut externref) (ref.null extern))
  (global $k externref (ref.null extern))
  (func (export "main") (result i32 anyref) (local $a anyref)
    nop
    (i32.add (i31.get_u (ref.cast i31ref (local.get $a)))
             (struct.get $s 0 (ref.cast (ref $s) (any.convert_extern (global.get $e)))))
    (local.get $a)))
""")


def test_i31_and_externalized_struct():
    st = hand_state(I31_EXTERN, 1, locals_=[("ref.i31", 41)],
                    globals_=[("ref.extern", ("ref.struct", 0)), ("ref.null", None)],
                    heap=[HeapObject("struct", [("i32", 1000)], type=(0, 0))])
    rm = convert(I31_EXTERN, st)
    assert run_on("wasmtime", rm)[:2] == ([("i32", 1041), ("ref", None)], None)


HOSTS = wasmtime.wat2wasm("""
(module
  (global $e (mut externref) (ref.null extern))
  (global $k externref (ref.null extern))
  (func (export "main") (result i32 externref anyref) (local $a anyref)
    nop
    (i32.add (ref.is_null (global.get $e)) (i32.mul (i32.const 10) (ref.test i31ref (local.get $a))))
    (global.get $k)
    (local.get $a)))
""")


def test_host_references_arrive_as_imports():
    """ref.extern n / ref.host n of a state: an imported externref global per distinct n (the
    adapter gives a non-null host value), any.convert_extern for the any-hierarchy view."""
    st = hand_state(HOSTS, 1, locals_=[("ref.host", 3)],
                    globals_=[("ref.extern", ("ref.host", 3)), ("ref.extern", 4)])
    rm = convert(HOSTS, st)
    assert [(i.module, i.name) for i in rm.module.imports] == [("wcr_host", "extern 3"), ("wcr_host", "extern 4")]
    assert "host-references" in module_features(rm.module)
    for target in ("wasmtime", "v8"):
        if target == "v8":  # anyref needs GC on V8
            assert "gc" in module_features(rm.module)
            continue
        res, trap, globs = run_on(target, rm)
        assert (res, trap) == ([("i32", 0), ("ref", None), ("ref", None)], None)
        assert sorted(globs.values()) == [("ref", None)] * 2
    from vm.snapshot.resume import run_resume_on_vm

    out = run_resume_on_vm(rm)
    assert (out.results[0], out.trap) == (("i32", 0), None)
    assert out.results[1] == ("ref.extern", 4)


def test_host_reference_on_node():
    data = wasmtime.wat2wasm('(module (global $e (mut externref) (ref.null extern))'
                             ' (func (export "main") (result i32) nop (ref.is_null (global.get $e))))')
    rm = convert(data, hand_state(data, 1, globals_=[("ref.extern", 9)]))
    assert run_on("v8", rm)[:2] == ([("i32", 0)], None)


def test_host_reference_in_a_non_null_constant_is_refused():
    data = wasmtime.wat2wasm('(module (global $e (ref extern) (ref.i31 (i32.const 1)) (extern.convert_any))'
                             ' (func (export "main") (result i32) nop (i32.const 0)))')
    assert reason(data, hand_state(data, 1, globals_=[("ref.extern", 9)])) == "host externref"


def test_heap_value_of_a_missing_object_is_inconsistent():
    st = hand_state(SHARED, 1, locals_=[("ref.struct", 4)], globals_=[("ref.null", None)])
    assert reason(SHARED, st) == "inconsistent state"


# ------------------------------------------------------------------------------------------ exceptions
EXNREF = wasmtime.wat2wasm("""
(module
  (tag $e (param i32 (ref null $s)))
  (type $s (struct (field i32)))
  (func (export "main") (result i32) (local $x exnref)
    nop
    (block $h (result i32 (ref null $s))
      (try_table (catch $e $h) (throw_ref (local.get $x)))
      (i32.const -1) (ref.null $s))
    (struct.get $s 0)
    (i32.add)))
""")


def test_exnref_is_rebuilt_with_its_payload():
    """The exception is thrown and caught by the prologue into a helper global; its payload holds a
    struct (a helper of its own)."""
    st = hand_state(EXNREF, 1, locals_=[("ref.exn", 0)],
                    heap=[HeapObject("exn", [("i32", 42), ("ref.struct", 1)], tag=0),
                          HeapObject("struct", [("i32", 100)], type=(0, 0))])
    rm = convert(EXNREF, st)
    assert run_on("wasmtime", rm)[:2] == ([("i32", 142)], None)


def test_exnref_in_a_constant_expression_is_refused():
    data = wasmtime.wat2wasm("""
    (module (tag $e) (global $g exnref (ref.null exn))
      (func (export "main") (result i32) nop (ref.is_null (global.get $g))))""")
    st = hand_state(data, 1, globals_=[("ref.exn", 0)], heap=[HeapObject("exn", [], tag=0)])
    assert reason(data, st) == "unsupported value"


TRY_TABLE = wasmtime.wat2wasm("""
(module
  (tag $e (param i32))
  (func (export "main") (result i32)
    (block $h (result i32)
      (try_table (catch $e $h)
        (nop)
        (throw $e (i32.const 7)))
      (i32.const -1))
    (i32.const 10) (i32.add)))
""")


def test_checkpoint_inside_try_table_keeps_its_handler():
    st = hand_state(TRY_TABLE, index_of(TRY_TABLE, "i32.const"))
    rm = convert(TRY_TABLE, st)
    assert run_on("wasmtime", rm)[:2] == ([("i32", 17)], None)


def _parse_cli(text: str) -> bytes:
    import subprocess

    from runners.native.validate import wasm_tools_exe

    exe = wasm_tools_exe()
    if not exe:
        pytest.skip("wasm-tools not found")
    return subprocess.run([exe, "parse", "-"], input=text.encode(), capture_output=True, check=True).stdout


IN_CATCH = """
(module
  (tag $e (param i32))
  (func (export "main") (result i32)
    try (result i32)
      try (result i32)
        i32.const 9
        throw $e
      catch $e
        nop
        drop
        rethrow 0
      end
    catch $e
      i32.const 100
      i32.add
    end))
"""


def test_checkpoint_inside_a_legacy_catch_rethrows_what_it_caught():
    data = _parse_cli(IN_CATCH)
    m = decode_module(data)
    body = m.funcs[0].body
    inner_try = [i for i, ins in enumerate(body) if ins.op == "try"][1]
    off = body[inner_try].offset - m.funcs[0].body_offset
    st = hand_state(data, index_of(data, "nop"), stack=[("i32", 9)], caught=[(off, ("ref.exn", 0))],
                    heap=[HeapObject("exn", [("i32", 9)], tag=0)])
    rm = convert(data, st)
    feats = module_features(rm.module)
    assert "legacy-exceptions" in feats and "exceptions" not in feats  # node's V8 runs it
    assert not any(i.op == "rethrow" for i in rm.module.funcs[-1].body)
    assert run_on("v8", rm)[:2] == ([("i32", 109)], None)
    st.thread.frames[0].caught = []
    assert reason(data, st) == "legacy exceptions"


IN_TRY = """
(module
  (tag $e (param i32))
  (func (export "main") (result i32)
    try (result i32)
      try (result i32)
        nop
        i32.const 3
        throw $e
      delegate 0
    catch $e
      i32.const 10
      i32.add
    end))
"""


def test_checkpoint_inside_a_legacy_try_keeps_catch_and_delegate():
    data = _parse_cli(IN_TRY)
    rm = convert(data, hand_state(data, index_of(data, "i32.const")))
    assert [i.op for i in rm.module.funcs[-1].body].count("try") == 2
    assert run_on("v8", rm)[:2] == ([("i32", 13)], None)


def test_targets_declare_what_they_run():
    """wasm3/wabt/wasm2c run neither GC nor exceptions (their GC/EH modules are not applicable);
    wasmtime has no legacy exceptions; node 20's V8 has only the legacy form."""
    from runners.native.v8 import v8_features

    for name in ("wasm3", "wabt", "wasm2c"):
        assert not {"gc", "exceptions", "exception-tags", "legacy-exceptions"} & set(get_target(name).features)
    assert {"gc", "exceptions"} <= get_target("wasmtime").features
    assert "legacy-exceptions" not in get_target("wasmtime").features
    node20 = v8_features("20.20.2 / V8 11.3.244.8-node.38")
    assert "legacy-exceptions" in node20 and not {"gc", "exceptions"} & node20
    assert {"gc", "exceptions", "legacy-exceptions"} <= v8_features("24.1.0 / V8 13.7.152.9-node.17")


def test_an_exception_leaving_resume_is_an_uncaught_exception_on_both_targets():
    data = wasmtime.wat2wasm('(module (tag $e (param i32)) (func (export "main") (result i32)'
                             ' nop (throw $e (i32.const 1))))')
    rm = convert(data, hand_state(data, 1))
    assert "exceptions" not in module_features(rm.module)  # tags and throw only: node 20 runs it too
    for target in ("wasmtime", "v8"):
        assert run_on(target, rm)[:2] == ([], "uncaught exception"), target


@pytest.mark.parametrize("name", ["shared", "chain", "arrays", "i31", "exnref", "try_table"])
def test_self_check_on_our_vm_agrees(name):
    """The same resume modules on our own VM (the self-check): results as the target's."""
    from vm.snapshot.resume import run_resume_on_vm

    n = 50
    cases = {
        "shared": (SHARED, hand_state(SHARED, 1, locals_=[("ref.struct", 0)], globals_=[("ref.struct", 0)],
                                      heap=[HeapObject("struct", [("i32", 5), ("ref.struct", 1)], type=(0, 0)),
                                            HeapObject("struct", [("i32", 7), ("ref.struct", 0)], type=(0, 0))]),
                   [("i32", 1175)]),
        "chain": (CHAIN, hand_state(CHAIN, 1, locals_=[("ref.struct", 0)], heap=[
            HeapObject("struct", [("i32", k), ("ref.struct", k + 1) if k + 1 < n else ("ref.null", None)],
                       type=(0, 0)) for k in range(n)]), [("i32", n * (n - 1) // 2)]),
        "arrays": (ARRAYS, hand_state(ARRAYS, 1, locals_=[("ref.array", 0), ("ref.array", 1)], heap=[
            HeapObject("array", [("i32", 0)] * 10003 + [("i32", 5), ("i32", 0)], type=(0, 0)),
            HeapObject("array", [("i32", 1), ("i32", 255)], type=(0, 1))]), [("i32", 10005 + 5 + 255)]),
        "i31": (I31_EXTERN, hand_state(I31_EXTERN, 1, locals_=[("ref.i31", 41)],
                                       globals_=[("ref.extern", ("ref.struct", 0)), ("ref.null", None)],
                                       heap=[HeapObject("struct", [("i32", 1000)], type=(0, 0))]),
                [("i32", 1041), ("ref.i31", 41)]),
        "exnref": (EXNREF, hand_state(EXNREF, 1, locals_=[("ref.exn", 0)], heap=[
            HeapObject("exn", [("i32", 42), ("ref.struct", 1)], tag=0),
            HeapObject("struct", [("i32", 100)], type=(0, 0))]), [("i32", 142)]),
        "try_table": (TRY_TABLE, hand_state(TRY_TABLE, index_of(TRY_TABLE, "i32.const")), [("i32", 17)]),
    }
    data, st, expected = cases[name]
    from vm.errors import Unsupported

    try:
        out = run_resume_on_vm(convert(data, st))
    except Unsupported as e:  # exception handling before the eh branch is merged
        pytest.skip(str(e))
    assert (out.results, out.trap) == (expected, None)
