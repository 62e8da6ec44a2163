"""WebAssembly 3.0 binary format: decoder, canonical encoder, LEB128 and the shared opcode table."""

from __future__ import annotations

from .decode import SECTION_ORDER, Reader, decode_module
from .encode import (
    encode_blocktype,
    encode_expr,
    encode_func_body,
    encode_globaltype,
    encode_heaptype,
    encode_instr,
    encode_memtype,
    encode_module,
    encode_name,
    encode_reftype,
    encode_subtype,
    encode_tabletype,
    encode_valtype,
)
from .leb128 import decode_s, decode_u, encode_s, encode_u, read_s, read_u
from .opcodes import BY_NAME, PREFIXED, PRIMARY, feature_of, kind_of, opcode_of

__all__ = [
    "BY_NAME", "PREFIXED", "PRIMARY", "SECTION_ORDER", "Reader", "decode_module", "decode_s",
    "decode_u", "encode_blocktype", "encode_expr", "encode_func_body", "encode_globaltype",
    "encode_heaptype", "encode_instr", "encode_memtype", "encode_module", "encode_name",
    "encode_reftype", "encode_s", "encode_subtype", "encode_tabletype", "encode_u",
    "encode_valtype", "feature_of", "kind_of", "opcode_of", "read_s", "read_u",
]
