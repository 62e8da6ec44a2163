"""LEB128 integers, decoded exactly like the reference interpreter so that malformed encodings get
the spec's messages ("integer representation too long", "integer too large", "unexpected end of
section or function").

``read_u(data, pos, bits)`` / ``read_s(data, pos, bits)`` return ``(value, new_pos)``; signed values
come back as Python ints (negative allowed).  The encoders produce the minimal encoding.
"""

from __future__ import annotations

from typing import Tuple

from ..errors import MalformedModule

EOF_MSG = "unexpected end of section or function"


def read_u(data: bytes, pos: int, bits: int) -> Tuple[int, int]:
    """Unsigned LEB128 of at most ``bits`` bits starting at ``pos``."""
    n = len(data)
    if pos < n:
        b = data[pos]
        if b < 0x80:  # one byte: always fits (bits >= 7 everywhere we use this)
            return b, pos + 1
    result = 0
    shift = 0
    while True:
        if bits <= 0:
            raise MalformedModule("integer representation too long", pos)
        if pos >= n:
            raise MalformedModule(EOF_MSG, n)
        b = data[pos]
        pos += 1
        if bits < 7 and (b & 0x7F) >= (1 << bits):
            raise MalformedModule("integer too large", pos - 1)
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        bits -= 7


def read_s(data: bytes, pos: int, bits: int) -> Tuple[int, int]:
    """Signed LEB128 of at most ``bits`` bits starting at ``pos``."""
    n = len(data)
    if pos < n:
        b = data[pos]
        if b < 0x80 and bits >= 7:
            return (b - 0x80 if b & 0x40 else b), pos + 1
    result = 0
    shift = 0
    while True:
        if bits <= 0:
            raise MalformedModule("integer representation too long", pos)
        if pos >= n:
            raise MalformedModule(EOF_MSG, n)
        b = data[pos]
        pos += 1
        if bits < 7:
            mask = (-1 << (bits - 1)) & 0x7F
            if (b & mask) != 0 and (b & mask) != mask:
                raise MalformedModule("integer too large", pos - 1)
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            if b & 0x40:
                result -= 1 << shift
            return result, pos
        bits -= 7


def encode_u(value: int) -> bytes:
    """Minimal unsigned LEB128."""
    if value < 0:
        raise ValueError(f"negative value {value} for unsigned LEB128")
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode_s(value: int) -> bytes:
    """Minimal signed LEB128."""
    if -0x40 <= value < 0x40:
        return bytes((value & 0x7F,))
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if (value == 0 and not b & 0x40) or (value == -1 and b & 0x40):
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)


def decode_u(data: bytes, bits: int = 32) -> int:
    """Decode a whole byte string as one unsigned LEB128 (trailing bytes are an error)."""
    v, p = read_u(data, 0, bits)
    if p != len(data):
        raise MalformedModule("trailing bytes after LEB128", p)
    return v


def decode_s(data: bytes, bits: int = 32) -> int:
    """Decode a whole byte string as one signed LEB128 (trailing bytes are an error)."""
    v, p = read_s(data, 0, bits)
    if p != len(data):
        raise MalformedModule("trailing bytes after LEB128", p)
    return v
