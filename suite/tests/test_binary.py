"""Tests of vm.binary: the decoder against the testsuite's malformed binaries, decode/encode
round-trips (testsuite modules and Hypothesis-generated ones), and LEB128 edge cases.

The testsuite modules come from a conversion this test makes itself (``wasm-tools json-from-wast`` on a
few representative ``.wast`` files into a tmp dir), so it runs on a clean checkout.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import pytest

from vm.binary import (
    decode_module,
    decode_s,
    decode_u,
    encode_instr,
    encode_module,
    encode_s,
    encode_u,
    opcodes,
    read_s,
    read_u,
)
from vm.errors import MalformedModule
from vm.module import (
    Catch,
    Custom,
    Data,
    Elem,
    Export,
    Func,
    Global,
    Import,
    ImportDesc,
    Instr,
    MemArg,
    Memory,
    Module,
    Table,
    Tag,
)
from vm.types import (
    ArrayType,
    FieldType,
    FuncType,
    GlobalType,
    Limits,
    MemType,
    RefType,
    StructType,
    SubType,
    TableType,
)

from ._wast import converted_commands

# Every file with `module binary` assert_malformed commands, plus representative feature files.
WAST_FILES = [
    "binary.wast", "binary0.wast", "binary-leb128.wast", "binary_leb128_64.wast", "binary-gc.wast",
    "custom.wast", "align.wast", "global.wast", "utf8-custom-section-id.wast",
    "utf8-import-field.wast", "utf8-import-module.wast",
    "i32.wast", "memory.wast", "table_copy.wast", "elem.wast", "data.wast", "type-rec.wast",
    "struct.wast", "simd_const.wast", "try_table.wast", "memory64.wast", "br_on_cast.wast",
    "simd_lane.wast", "relaxed_laneselect.wast", "memory-multi.wast", "table.wast",
]


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> List[Tuple[str, Dict, bytes]]:
    """``(file name, command, module bytes)`` for every .wasm module of the converted files."""
    out: List[Tuple[str, Dict, bytes]] = []
    for name, cmd, d in converted_commands(tmp_path_factory.mktemp("wast"), WAST_FILES):
        fn = cmd.get("filename")
        if fn and fn.endswith(".wasm"):
            out.append((name, cmd, (d / fn).read_bytes()))
    assert out
    return out


# -- (1) malformed binaries ---------------------------------------------------------------------------
def test_malformed_binaries_have_spec_messages(converted):
    checked = 0
    wrong = []
    for name, cmd, data in converted:
        if cmd["type"] != "assert_malformed" or cmd.get("module_type") != "binary":
            continue
        checked += 1
        try:
            decode_module(data)
            wrong.append((name, cmd["line"], cmd["text"], "decoded"))
        except MalformedModule as e:
            if not e.message.startswith(cmd["text"]):
                wrong.append((name, cmd["line"], cmd["text"], e.message))
    assert checked > 600
    assert not wrong, wrong[:20]


# -- (2) everything else decodes -------------------------------------------------------------------
def test_other_modules_decode(converted):
    failed = []
    for name, cmd, data in converted:
        if cmd["type"] == "assert_malformed":
            continue
        try:
            decode_module(data)
        except MalformedModule as e:  # assert_invalid modules are well-formed in the testsuite
            failed.append((name, cmd["line"], cmd["type"], str(e)))
    assert not failed, failed[:20]


# -- (3) round trips ------------------------------------------------------------------------------------
def test_testsuite_round_trip(converted):
    n = 0
    for name, cmd, data in converted:
        if cmd["type"] == "assert_malformed":
            continue
        m = decode_module(data)
        enc = encode_module(m)
        m2 = decode_module(enc)
        assert m2 == m, (name, cmd["line"])
        assert encode_module(m2) == enc, (name, cmd["line"])  # canonical: a fixed point
        n += 1
    assert n > 500


def test_offsets_and_body_positions(converted):
    """Instruction offsets are absolute and point at the opcode; the pc of the first instruction is
    just past the locals."""
    for _name, cmd, data in converted[:400]:
        if cmd["type"] != "module":
            continue
        m = decode_module(data)
        for f in m.funcs:
            assert f.body_offset > 0 and f.body_size > 0
            assert f.body[-1].op == "end"
            assert f.body[-1].offset == f.body_offset + f.body_size - 1
            for ins in f.body:
                op = data[ins.offset]
                pre, code, _ = opcodes.BY_NAME[ins.op]
                if ins.op == "select" and ins.imm is not None:
                    assert op == 0x1C
                elif pre is None:
                    assert op == code
                else:
                    assert op == pre


# -- hand-made modules for features the converted files do not reach --------------------------------------
HDR = b"\x00asm\x01\x00\x00\x00"


def _sec(sid: int, body: bytes) -> bytes:
    return bytes([sid]) + encode_u(len(body)) + body


def _mod_with_body(body: bytes, extra: bytes = b"", types: bytes = b"\x01\x60\x00\x00") -> bytes:
    code = encode_u(len(body) + 1) + b"\x00" + body
    return HDR + _sec(1, types) + _sec(3, b"\x01\x00") + extra + _sec(10, b"\x01" + code)


def test_legacy_exceptions_decode_and_round_trip():
    tag = _sec(13, b"\x01\x00\x00")
    body = (b"\x06\x40"            # try
            b"\x08\x00"            # throw 0
            b"\x07\x00"            # catch 0
            b"\x19"                # catch_all
            b"\x09\x00"            # rethrow 0
            b"\x0b"                # end
            b"\x06\x40\x01\x18\x00"  # try nop delegate 0
            b"\x0b")
    data = HDR + _sec(1, b"\x01\x60\x00\x00") + _sec(3, b"\x01\x00") + tag + \
        _sec(10, b"\x01" + encode_u(len(body) + 1) + b"\x00" + body)
    m = decode_module(data)
    assert [i.op for i in m.funcs[0].body] == [
        "try", "throw", "catch", "catch_all", "rethrow", "end", "try", "nop", "delegate", "end"]
    assert decode_module(encode_module(m)) == m


def test_gc_and_misc_immediates_round_trip():
    body = (b"\xd0\x70\x1a"                         # ref.null func; drop
            b"\xd0\x00\x1a"                         # ref.null 0; drop
            b"\xfb\x15\x6e\xfb\x17\x00\x1a"         # ref.test (ref null any); ref.cast (ref null 0); drop
            b"\x02\x40\xd0\x6e\xfb\x18\x01\x00\x6e\x6c\x1a\x0b"  # block br_on_cast 0 anyref (ref i31)
            b"\x41\x00\x28\x42\x01\x08\x1a"          # i32.const 0; i32.load memidx=1 offset=8
            b"\x1f\x40\x02\x00\x00\x00\x02\x00\x0b"  # try_table (catch 0 0) (catch_all 0) end
            b"\x41\x7f\x42\x80\x7f\x1a\x1a")
    mems = _sec(5, b"\x02\x00\x01\x05\x01\x02")  # memory 1; memory64 (i64) min 1 max 2
    tag = _sec(13, b"\x01\x00\x00")
    data = HDR + _sec(1, b"\x01\x60\x00\x00") + _sec(3, b"\x01\x00") + mems + tag + \
        _sec(10, b"\x01" + encode_u(len(body) + 1 + 1) + b"\x00" + body + b"\x0b")
    m = decode_module(data)
    ops = {i.op: i.imm for i in m.funcs[0].body}
    assert ops["ref.test"] == RefType(True, "any")
    assert ops["ref.cast"] == RefType(True, 0)
    assert ops["br_on_cast"] == (0, RefType(True, "any"), RefType(False, "i31"))
    assert ops["i32.load"] == MemArg(2, 8, 1)
    assert ops["try_table"] == (None, (Catch("catch", 0, 0), Catch("catch_all", None, 0)))
    assert ops["i32.const"] == 0xFFFFFFFF
    assert ops["i64.const"] == 2**64 - 128
    assert m.memories[1].type == MemType(Limits(1, 2), is64=True)
    assert decode_module(encode_module(m)) == m
    assert encode_module(m) == data  # the input was canonical


def test_data_count_required_for_array_new_data():
    body = b"\x41\x00\x41\x00\xfb\x09\x00\x00\x1a\x0b"  # array.new_data 0 0; drop
    code = encode_u(len(body) + 1) + b"\x00" + body
    data = (HDR + _sec(1, b"\x02\x5e\x78\x00\x60\x00\x00") + _sec(3, b"\x01\x01")
            + _sec(10, b"\x01" + code) + _sec(11, b"\x01\x01\x00"))
    with pytest.raises(MalformedModule, match="data count section required"):
        decode_module(data)


def test_custom_section_position_kept():
    data = HDR + _sec(0, b"\x01a") + _sec(1, b"\x00") + _sec(0, b"\x01bxy")
    m = decode_module(data)
    assert m.customs == [Custom("a", b"", 0), Custom("b", b"xy", 1)]
    assert encode_module(m) == data


def test_unknown_opcodes():
    with pytest.raises(MalformedModule, match="^illegal opcode ff"):
        decode_module(_mod_with_body(b"\xff\x0b"))
    with pytest.raises(MalformedModule, match="^illegal opcode fc 7f"):
        decode_module(_mod_with_body(b"\xfc\x7f\x0b"))


def test_every_opcode_table_entry_encodes_and_decodes():
    """Each table entry survives encode_instr -> decode through a function body."""
    samples = {
        opcodes.K_NONE: None, opcodes.K_BLOCK: None, opcodes.K_LABEL: 0, opcodes.K_FUNC: 0,
        opcodes.K_TYPE: 0, opcodes.K_LOCAL: 0, opcodes.K_GLOBAL: 0, opcodes.K_TABLE: 0,
        opcodes.K_ELEM: 0, opcodes.K_DATA: 0, opcodes.K_TAG: 0, opcodes.K_MEM: 0,
        opcodes.K_MEMARG: MemArg(0, 3, 0), opcodes.K_MEMARG_LANE: (MemArg(0, 0, 1), 1),
        opcodes.K_I32: 5, opcodes.K_I64: 2**63, opcodes.K_F32: 0x7FA00001,
        opcodes.K_F64: 0x7FF4000000000001, opcodes.K_V128: 2**127 + 3, opcodes.K_LANE: 3,
        opcodes.K_SHUFFLE: tuple(range(16)), opcodes.K_HEAPTYPE: "exn",
        opcodes.K_CAST: RefType(True, 3), opcodes.K_BR_TABLE: ((0, 1), 2),
        opcodes.K_BR_ON_CAST: (0, RefType(True, "any"), RefType(False, 2)),
        opcodes.K_CALL_INDIRECT: (1, 2), opcodes.K_SELECT_T: ("i32",),
        opcodes.K_TRY_TABLE: ("i32", (Catch("catch_ref", 1, 0),)),
        opcodes.K_MEM2: (1, 0), opcodes.K_MEM_INIT: (1, 2), opcodes.K_TABLE2: (2, 3),
        opcodes.K_TABLE_INIT: (1, 4), opcodes.K_TYPE_FIELD: (1, 2), opcodes.K_TYPE_N: (1, 7),
        opcodes.K_TYPE_DATA: (1, 2), opcodes.K_TYPE_ELEM: (1, 2), opcodes.K_TYPE2: (1, 2),
        opcodes.K_ZERO: None,
    }
    entries = [(n, k) for n, k in opcodes.PRIMARY.values()]
    for tbl in opcodes.PREFIXED.values():
        entries.extend(tbl.values())
    structural = {"else", "end", "catch", "catch_all", "delegate", "block", "loop", "if", "try",
                  "try_table"}
    for name, kind in entries:
        if name in structural:
            continue
        ins = Instr(name, samples[kind])
        body = encode_instr(ins)
        # a data count section, so that data-segment instructions are well-formed
        full = _mod_with_body(body + b"\x0b", extra=_sec(12, b"\x00"))
        got = decode_module(full).funcs[0].body[0]
        assert got == ins, (name, got)


# -- (3b) Hypothesis: generated modules round-trip ----------------------------------------------------
hyp = pytest.importorskip("hypothesis")
st = pytest.importorskip("hypothesis.strategies")
from hypothesis import HealthCheck, given, settings  # noqa: E402

_heap = st.one_of(st.sampled_from(["func", "extern", "any", "eq", "i31", "struct", "array", "none",
                                   "nofunc", "noextern", "exn", "noexn"]), st.integers(0, 300))
_ref = st.builds(RefType, st.booleans(), _heap)
_val = st.one_of(st.sampled_from(["i32", "i64", "f32", "f64", "v128"]), _ref)
_field = st.builds(FieldType, st.one_of(_val, st.sampled_from(["i8", "i16"])), st.booleans())
_comp = st.one_of(
    st.builds(FuncType, st.tuples(*[_val] * 2), st.lists(_val, max_size=2).map(tuple)),
    st.builds(StructType, st.lists(_field, max_size=3).map(tuple)),
    st.builds(ArrayType, _field),
)
_sub = st.builds(SubType, st.booleans(), st.lists(st.integers(0, 2**32 - 1), max_size=2).map(tuple), _comp)
_u32 = st.integers(0, 2**32 - 1)
_lim = st.builds(Limits, st.integers(0, 2**64 - 1), st.one_of(st.none(), st.integers(0, 2**64 - 1)))
_const = st.one_of(
    st.builds(Instr, st.just("i32.const"), _u32),
    st.builds(Instr, st.just("i64.const"), st.integers(0, 2**64 - 1)),
    st.builds(Instr, st.just("f32.const"), _u32),
    st.builds(Instr, st.just("ref.null"), _heap),
    st.builds(Instr, st.just("global.get"), _u32),
)
_expr = st.lists(_const, min_size=1, max_size=3).map(lambda xs: xs + [Instr("end")])
_plain = st.sampled_from(sorted(
    n for n, v in opcodes.BY_NAME.items() if v[2] == "none" and n not in ("else", "end", "catch_all")))
_simple_instr = st.one_of(
    _const,
    st.builds(Instr, _plain),
    st.builds(Instr, st.sampled_from(["local.get", "br", "call", "throw", "table.get"]), _u32),
    st.builds(Instr, st.sampled_from(["i32.load", "v128.store", "i64.atomic.rmw.add"]),
              st.builds(MemArg, st.integers(0, 63), st.integers(0, 2**64 - 1), _u32)),
    st.builds(Instr, st.just("v128.const"), st.integers(0, 2**128 - 1)),
    st.builds(Instr, st.just("select"), st.tuples(_val)),
    st.builds(Instr, st.just("ref.cast"), _ref),
)


@st.composite
def _body(draw):
    out = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["block", "loop", "if", "try_table", None, None]))
        bt = draw(st.one_of(st.none(), _val, st.integers(0, 2**32 - 1)))  # s33: indices < 2^32
        if kind is None:
            out.extend(draw(st.lists(_simple_instr, max_size=4)))
            continue
        imm = (bt, (Catch("catch_all_ref", None, 0),)) if kind == "try_table" else bt
        out.append(Instr(kind, imm))
        out.extend(draw(st.lists(_simple_instr, max_size=3)))
        if kind == "if" and draw(st.booleans()):
            out.append(Instr("else"))
            out.extend(draw(st.lists(_simple_instr, max_size=3)))
        out.append(Instr("end"))
    return out + [Instr("end")]


@st.composite
def _module(draw):
    types = draw(st.lists(_sub, max_size=4))
    sizes: List[int] = []
    left = len(types)
    while left:
        k = draw(st.integers(1, left))
        sizes.append(k)
        left -= k
    if draw(st.booleans()):
        sizes.append(0)  # an empty rec group
    imports = draw(st.lists(st.builds(Import, st.text(max_size=4), st.text(max_size=4), st.one_of(
        st.builds(ImportDesc, st.just("func"), _u32),
        st.builds(ImportDesc, st.just("tag"), _u32),
        st.builds(ImportDesc, st.just("global"), st.builds(GlobalType, _val, st.booleans())),
        st.builds(ImportDesc, st.just("memory"), st.builds(MemType, _lim, st.booleans(), st.booleans(), st.just(16))),
        st.builds(ImportDesc, st.just("table"), st.builds(TableType, _ref, _lim, st.booleans())),
    )), max_size=3))
    funcs = draw(st.lists(st.builds(Func, _u32, st.lists(st.tuples(st.integers(0, 5), _val), max_size=2),
                                    _body()), max_size=3))
    funcref_elems = st.lists(_u32, max_size=3).map(lambda xs: [[Instr("ref.func", x), Instr("end")]
                                                               for x in xs])
    elems = draw(st.lists(st.one_of(
        st.builds(Elem, st.sampled_from(["passive", "declarative"]), st.just(RefType(False, "func")),
                  funcref_elems),
        st.builds(Elem, st.just("active"), st.just(RefType(False, "func")), funcref_elems, _u32, _expr),
        st.builds(Elem, st.sampled_from(["passive", "declarative"]), _ref, st.lists(_expr, max_size=2)),
        st.builds(Elem, st.just("active"), _ref, st.lists(_expr, max_size=2), _u32, _expr),
    ), max_size=3))
    datas = draw(st.lists(st.one_of(
        st.builds(Data, st.just("passive"), st.binary(max_size=8)),
        st.builds(Data, st.just("active"), st.binary(max_size=8), _u32, _expr),
    ), max_size=2))
    return Module(
        types=types, rec_sizes=sizes, imports=imports, funcs=funcs,
        tables=draw(st.lists(st.builds(Table, st.builds(TableType, _ref, _lim, st.booleans()),
                                       st.one_of(st.none(), _expr)), max_size=2)),
        memories=draw(st.lists(st.builds(Memory, st.builds(MemType, _lim, st.booleans(), st.booleans(), st.just(16))),
                               max_size=2)),
        globals=draw(st.lists(st.builds(Global, st.builds(GlobalType, _val, st.booleans()), _expr),
                              max_size=2)),
        tags=draw(st.lists(st.builds(Tag, _u32), max_size=2)),
        exports=draw(st.lists(st.builds(Export, st.text(max_size=5),
                                        st.sampled_from(["func", "table", "memory", "global", "tag"]),
                                        _u32), max_size=3)),
        start=draw(st.one_of(st.none(), _u32)),
        elems=elems, datas=datas,
        data_count=len(datas) if draw(st.booleans()) else None,
        customs=[Custom(draw(st.text(max_size=4)), draw(st.binary(max_size=4)), 0)],
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_module())
def test_generated_modules_round_trip(m):
    enc = encode_module(m)
    m2 = decode_module(enc)
    assert m2 == m
    assert encode_module(m2) == enc


# -- (4) LEB128 ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [0, 1, 63, 64, 127, 128, 2**32 - 1, 2**63, 2**64 - 1])
def test_leb_unsigned_round_trip(value):
    assert decode_u(encode_u(value), 64) == value


@pytest.mark.parametrize("value", [0, -1, 63, -64, 64, -65, 2**31 - 1, -2**31, 2**63 - 1, -2**63])
def test_leb_signed_round_trip(value):
    assert decode_s(encode_s(value), 64) == value


def test_leb_minimal_and_known_encodings():
    assert encode_u(624485) == b"\xe5\x8e\x26"
    assert encode_s(-123456) == b"\xc0\xbb\x78"
    assert encode_s(64) == b"\xc0\x00" and encode_s(-65) == b"\xbf\x7f"
    assert encode_u(2**32 - 1) == b"\xff\xff\xff\xff\x0f"


@pytest.mark.parametrize("data,bits,signed,result", [
    (b"\x80\x80\x80\x80\x00", 32, False, 0),                # non-minimal but 5 bytes: fine
    (b"\xff\xff\xff\xff\x0f", 32, False, 2**32 - 1),
    (b"\xff\xff\xff\xff\x7f", 32, True, -1),
    (b"\x80\x80\x80\x80\x78", 32, True, -2**31),
    (b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 64, False, 2**64 - 1),
    (b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 64, True, -1),
    (b"\x80\x80\x80\x80\x70", 33, True, -2**32),
])
def test_leb_boundaries_ok(data, bits, signed, result):
    assert (read_s if signed else read_u)(data, 0, bits) == (result, len(data))


@pytest.mark.parametrize("data,bits,signed,msg", [
    (b"\x80\x80\x80\x80\x80\x00", 32, False, "integer representation too long"),
    (b"\xff\xff\xff\xff\x1f", 32, False, "integer too large"),
    (b"\xff\xff\xff\xff\x4f", 32, True, "integer too large"),
    (b"\x80\x80\x80\x80\x08", 32, True, "integer too large"),
    (b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", 64, False, "integer too large"),
    (b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x3f", 64, True, "integer too large"),
    (b"\x80\x80", 32, False, "unexpected end"),
    (b"", 32, True, "unexpected end"),
    (b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00", 64, False, "integer representation too long"),
])
def test_leb_malformed(data, bits, signed, msg):
    with pytest.raises(MalformedModule) as ei:
        (read_s if signed else read_u)(data, 0, bits)
    assert ei.value.message.startswith(msg)


@given(st.integers(-2**63, 2**63 - 1))
def test_leb_signed_property(v):
    enc = encode_s(v)
    assert read_s(enc, 0, 64) == (v, len(enc))
    assert len(enc) <= 10


@given(st.integers(0, 2**64 - 1))
def test_leb_unsigned_property(v):
    enc = encode_u(v)
    assert read_u(enc, 0, 64) == (v, len(enc))
