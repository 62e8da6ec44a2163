"""Tests of the validator (vm.valid).

(1) every ``assert_invalid`` module of a handful of testsuite files is rejected with the spec's message
(as a prefix, like the reference interpreter's runner); (2) every ``module`` of those files validates;
(3) the per-function metadata (heights, stack types, control stack, block ends) of hand-made functions;
(4) canonical type keys and the linker's matching helpers.

The testsuite modules come from a conversion this test makes itself (``wasm-tools json-from-wast`` into a
tmp dir), so it works on a clean checkout.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import pytest

from vm.errors import InvalidModule
from vm.module import Catch, Export, Func, Global, Import, ImportDesc, Instr, Module, Tag
from vm.types import FuncType, GlobalType, Limits, MemType, RefType, SubType, TableType
from vm.valid import (
    canonical_types,
    match_externtype,
    match_limits,
    match_valtype,
    validate_module,
)

from ._wast import converted_commands

WAST_FILES = [
    "unreached-invalid.wast", "br_table.wast", "block.wast", "loop.wast", "if.wast", "select.wast",
    "func.wast", "global.wast", "memory.wast", "table_copy.wast", "ref_func.wast",
    "call_indirect.wast", "local_set.wast", "local_init.wast", "type-subtyping.wast",
    "try_table.wast", "br_on_cast.wast", "memory64.wast",
]


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> List[Tuple[str, Dict, bytes]]:
    """``(file name, command, module bytes)`` for the module/assert_invalid commands of WAST_FILES."""
    out: List[Tuple[str, Dict, bytes]] = []
    for name, cmd, d in converted_commands(tmp_path_factory.mktemp("wast"), WAST_FILES):
        if cmd["type"] not in ("module", "assert_invalid"):
            continue
        fn = cmd.get("filename") if cmd.get("module_type") == "binary" else cmd.get("binary_filename")
        if fn and fn.endswith(".wasm"):
            out.append((name, cmd, (d / fn).read_bytes()))
    assert out
    return out


def test_assert_invalid_messages(converted):
    from vm.binary import decode_module

    checked = 0
    bad = []
    for name, cmd, data in converted:
        if cmd["type"] != "assert_invalid":
            continue
        checked += 1
        m = decode_module(data)
        try:
            validate_module(m)
        except InvalidModule as e:
            if not e.message.startswith(cmd["text"]):
                bad.append((name, cmd["line"], cmd["text"], e.message))
        else:
            bad.append((name, cmd["line"], cmd["text"], "validated"))
    assert checked > 300
    assert not bad, bad[:10]


def test_modules_validate(converted):
    from vm.binary import decode_module

    bad = []
    for name, cmd, data in converted:
        if cmd["type"] != "module":
            continue
        try:
            validate_module(decode_module(data))
        except InvalidModule as e:
            bad.append((name, cmd["line"], str(e)))
    assert not bad, bad[:10]


# -- hand-made functions: metadata ---------------------------------------------------------------

I = Instr  # noqa: E741


def _module(params, results, body, locals_=(), extra_types=(), **kw) -> Module:
    types = [SubType(True, (), FuncType(tuple(params), tuple(results)))] + list(extra_types)
    return Module(types=types, rec_sizes=[1] * len(types),
                  funcs=[Func(0, list(locals_), list(body))], **kw)


def test_heights_block_end_else():
    body = [I("block"), I("local.get", 0), I("if", "i32"), I("i32.const", 1), I("else"), I("br", 1),
            I("end"), I("drop"), I("end"), I("i32.const", 7), I("unreachable"), I("i32.add"), I("end")]
    fi = validate_module(_module(["i32"], ["i32"], body, [(1, "i64")])).funcs[0]
    assert fi.heights == [0, 0, 1, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0]
    assert fi.reachable == [True] * 6 + [False] + [True] * 4 + [False, False]
    assert fi.block_end == {0: 8, 2: 6}
    assert fi.block_else == {2: 4}
    assert fi.local_types == ["i32", "i64"]
    assert fi.stack_types[2] == ("i32",) and fi.stack_types[4] == ("i32",)
    assert fi.stack_types[11] == ()  # dead code: nothing known
    assert [c.kind for c in fi.controls[5]] == ["func", "block", "else"]
    assert fi.controls[3][-1].start == 2 and fi.controls[3][-1].results == ("i32",)
    # equal tuples are shared
    assert fi.controls[3] is fi.controls[4]


def test_multi_value_block_params_and_loop():
    ft = SubType(True, (), FuncType(("i32", "i64"), ("i64",)))
    body = [I("i32.const", 1), I("i64.const", 2), I("loop", 1), I("drop"), I("drop"),
            I("i64.const", 3), I("end"), I("drop"), I("end")]
    fi = validate_module(_module([], [], body, extra_types=[ft])).funcs[0]
    assert fi.heights == [0, 1, 2, 2, 1, 0, 1, 1, 0]
    loop = fi.controls[3][-1]
    assert (loop.kind, loop.start, loop.params, loop.results, loop.height) == (
        "loop", 2, ("i32", "i64"), ("i64",), 0)
    assert loop.label_types == ("i32", "i64")
    assert fi.block_end == {2: 6}


def test_unreachable_polymorphic_stack():
    body = [I("block", "i32"), I("unreachable"), I("select"), I("end"), I("drop"), I("end")]
    fi = validate_module(_module([], [], body)).funcs[0]
    assert fi.reachable == [True, True, False, False, True, True]
    assert fi.stack_types[3] == ("bot",)
    with pytest.raises(InvalidModule, match="^type mismatch"):
        validate_module(_module([], [], [I("unreachable"), I("i64.const", 0), I("i32.eqz"), I("end")]))


def test_error_location_and_messages():
    body = [I("i32.const", 0, offset=20), I("i64.eqz", None, offset=22), I("end", None, offset=23)]
    with pytest.raises(InvalidModule) as ei:
        validate_module(_module([], [], body))
    assert ei.value.message == "type mismatch: instruction requires [i64] but stack has [i32]"
    assert ei.value.offset == 22 and ei.value.func == 0
    with pytest.raises(InvalidModule) as ei:
        validate_module(_module([], [], [I("local.get", 3), I("drop"), I("end")]))
    assert ei.value.message == "unknown local 3"
    with pytest.raises(InvalidModule, match="^unknown label"):
        validate_module(_module([], [], [I("br", 1), I("end")]))


def test_non_nullable_locals_need_initialisation():
    ref = RefType(False, "func")
    ok = [I("ref.func", 0), I("local.set", 0), I("local.get", 0), I("drop"), I("end")]
    m = _module([], [], ok, [(1, ref)], exports=[Export("f", "func", 0)])
    validate_module(m)
    bad = [I("block"), I("ref.func", 0), I("local.set", 0), I("end"), I("local.get", 0), I("drop"),
           I("end")]
    with pytest.raises(InvalidModule, match="^uninitialized local"):
        validate_module(_module([], [], bad, [(1, ref)], exports=[Export("f", "func", 0)]))
    with pytest.raises(InvalidModule, match="^undeclared function reference"):
        validate_module(_module([], [], ok, [(1, ref)]))


def test_legacy_try_catch_metadata():
    tag_t = SubType(True, (), FuncType(("i32",), ()))
    body = [I("try", "i32"), I("i32.const", 1), I("catch", 0), I("catch_all"), I("i32.const", 2),
            I("end"), I("drop"), I("try"), I("nop"), I("delegate", 0), I("end")]
    m = _module([], [], body, extra_types=[tag_t])
    m.tags = [Tag(1)]
    # catch 0 refers to tag 0 of type 1 (i32 -> ())
    fi = validate_module(m).funcs[0]
    assert fi.block_end == {0: 5, 7: 9}
    assert fi.catches == {0: [2, 3]}
    assert fi.heights[3] == 1  # the caught i32 is on the stack
    assert [c.kind for c in fi.controls[4]] == ["func", "catch_all"]


def test_try_table_catch_label_types():
    tag_t = SubType(True, (), FuncType(("i32",), ()))
    body = [I("block", "i32"), I("try_table", (None, (Catch("catch", 0, 0),))), I("end"),
            I("i32.const", 0), I("end"), I("drop"), I("end")]
    m = _module([], [], body, extra_types=[tag_t])
    m.tags = [Tag(1)]
    fi = validate_module(m).funcs[0]
    assert fi.block_end == {0: 4, 1: 2}
    m.funcs[0].body[1] = I("try_table", (None, (Catch("catch_ref", 0, 0),)))
    with pytest.raises(InvalidModule, match="^type mismatch"):
        validate_module(m)


# -- canonical types and matching ------------------------------------------------------------------

def test_canonical_keys_iso_recursive():
    f = FuncType(("i32",), ())
    a = Module(types=[SubType(True, (), FuncType((), ())), SubType(True, (), f)], rec_sizes=[1, 1])
    b = Module(types=[SubType(True, (), f)], rec_sizes=[1])
    assert canonical_types(a)[1] == canonical_types(b)[0]
    assert canonical_types(a)[0] != canonical_types(b)[0]
    # a self-recursive type vs. the same shape in a bigger rec group: different
    rec = FuncType((RefType(True, 0),), ())
    c = Module(types=[SubType(True, (), rec)], rec_sizes=[1])
    d = Module(types=[SubType(True, (), rec), SubType(True, (), rec)], rec_sizes=[2])
    assert canonical_types(c)[0] != canonical_types(d)[0]
    e = Module(types=[SubType(True, (), FuncType((), ())), SubType(True, (), FuncType((RefType(True, 1),), ()))],
               rec_sizes=[1, 1])
    assert canonical_types(e)[1] == canonical_types(c)[0]


def test_match_helpers():
    sup = SubType(False, (), FuncType((), ()))
    sub = SubType(False, (0,), FuncType((), ()))
    m = Module(types=[sup, sub], rec_sizes=[1, 1])
    k = canonical_types(m)
    assert match_valtype(RefType(False, 1), RefType(True, 0), k)
    assert not match_valtype(RefType(False, 0), RefType(True, 1), k)
    assert match_valtype(RefType(False, 1), RefType(True, "func"), k)
    assert match_valtype(RefType(False, "nofunc"), RefType(False, 1), k)
    assert not match_valtype(RefType(True, "none"), RefType(True, "func"), k)
    assert match_valtype(RefType(False, "i31"), RefType(True, "eq"), k)
    assert match_externtype("func", 1, 0, k, k) and not match_externtype("func", 0, 1, k, k)
    assert match_limits(Limits(2, 5), Limits(1, 6)) and not match_limits(Limits(2, None), Limits(1, 6))
    assert match_externtype("global", GlobalType("i32", True), GlobalType("i32", True), k)
    assert not match_externtype("global", GlobalType(RefType(False, 1), True),
                                GlobalType(RefType(True, 0), True), k)
    assert match_externtype("global", GlobalType(RefType(False, 1), False),
                            GlobalType(RefType(True, 0), False), k)
    assert match_externtype("table", TableType(RefType(True, "func"), Limits(1, None)),
                            TableType(RefType(True, "func"), Limits(0, None)), k)
    assert not match_externtype("memory", MemType(Limits(1, None), is64=True), MemType(Limits(1, None)), k)


def test_module_level_checks():
    with pytest.raises(InvalidModule, match="^duplicate export name"):
        validate_module(Module(globals=[Global(GlobalType("i32", False), [I("i32.const", 0), I("end")])],
                               exports=[Export("a", "global", 0), Export("a", "global", 0)]))
    with pytest.raises(InvalidModule, match="^constant expression required"):
        validate_module(Module(globals=[Global(GlobalType("i32", False),
                                               [I("i32.const", 0), I("i32.eqz"), I("end")])]))
    with pytest.raises(InvalidModule, match="^unknown global 0"):
        validate_module(Module(globals=[Global(GlobalType("i32", False), [I("global.get", 0), I("end")])]))
    imp = Import("m", "g", ImportDesc("global", GlobalType("i32", False)))
    validate_module(Module(imports=[imp],
                           globals=[Global(GlobalType("i32", False),
                                           [I("global.get", 0), I("i32.const", 1), I("i32.add"),
                                            I("end")])]))
