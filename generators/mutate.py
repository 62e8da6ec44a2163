"""Byte-level mutations of Wasm modules (and of any byte string) for robustness probes.

Why next to the Hypothesis strategies: these are generators too, of *mostly broken* inputs, driven by a
``random.Random`` so that a probe is reproducible from ``(seed, probe number)`` without a Hypothesis run.
The valid-module generators (:mod:`.modules`, :mod:`.smith`) give the seeds to mutate; the decoder and
validator must answer every mutant with one of their documented errors or accept it exactly when
``wasm-tools validate`` does (``suite/fuzz/robustness``).

::

    mutate_bytes(data, rng) -> (mutant, "how")    # one of MUTATIONS, chosen by rng
    random_module(rng) -> (bytes, "how")          # random bytes, mostly behind a valid header
    wasm_mutate(data, seed) -> bytes | None       # ``wasm-tools mutate`` (semantics-preserving edits)
    sections(data) -> [(id, start, end)]          # the section layout of a module (best effort)
"""

from __future__ import annotations

import os
import random
import subprocess
import tempfile
from typing import Callable, Dict, List, Optional, Tuple

from vm.binary.leb128 import encode_u

from .smith import wasm_tools_exe

__all__ = ["HEADER", "MUTATIONS", "mutate_bytes", "random_module", "sections", "wasm_mutate"]

HEADER = b"\x00asm\x01\x00\x00\x00"

#: LEB128 values that sit on the decoder's boundaries (u32/s32/s33 limits, 0, counts that overflow)
INTERESTING = (0, 1, 0x3F, 0x40, 0x7F, 0x80, 0xFF, 0x3FFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
               0x100000000, (1 << 63) - 1, 1 << 64)


def sections(data: bytes) -> List[Tuple[int, int, int]]:
    """``(id, start, end)`` of each section header+payload, as far as the layout parses (a mutant
    may stop parsing anywhere; the rest is ignored)."""
    out = []
    pos = len(HEADER) if data.startswith(HEADER) else 0
    while pos < len(data):
        start = pos
        sid = data[pos]
        pos += 1
        size = shift = 0
        while pos < len(data):
            b = data[pos]
            pos += 1
            size |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80 or shift > 35:
                break
        end = pos + size
        if end > len(data):
            break
        out.append((sid, start, end))
        pos = end
    return out


def _pos(rng: random.Random, data: bytes) -> int:
    return rng.randrange(len(data)) if data else 0


def _flip(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 4, 16))):
        if b:
            i = _pos(rng, b)
            b[i] ^= rng.choice((1 << rng.randrange(8), rng.randrange(1, 256)))
    return bytes(b)


def _set_byte(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    if b:
        b[_pos(rng, b)] = rng.choice((0x00, 0x01, 0x7F, 0x80, 0xFF, 0x0B, 0x40, 0x70, 0x6F, rng.randrange(256)))
    return bytes(b)


def _truncate(rng: random.Random, data: bytes) -> bytes:
    return data[:_pos(rng, data)]


def _insert(rng: random.Random, data: bytes) -> bytes:
    i = rng.randrange(len(data) + 1)
    return data[:i] + bytes(rng.randrange(256) for _ in range(rng.choice((1, 1, 2, 8)))) + data[i:]


def _delete(rng: random.Random, data: bytes) -> bytes:
    i = _pos(rng, data)
    return data[:i] + data[i + rng.choice((1, 1, 2, 8)):]


def _leb(rng: random.Random, data: bytes) -> bytes:
    """Replace the LEB128 number at a random position by a boundary value, an overlong encoding of
    the same value, or the same value +-1."""
    if not data:
        return data
    i = _pos(rng, data)
    j = i
    val = shift = 0
    while j < len(data) and j - i < 10:
        val |= (data[j] & 0x7F) << shift
        shift += 7
        j += 1
        if not data[j - 1] & 0x80:
            break
    how = rng.randrange(4)
    if how == 0:
        new = encode_u(rng.choice(INTERESTING))
    elif how == 1:  # overlong: same value, padded with 0x80 continuation bytes
        enc = bytearray(encode_u(val))
        enc[-1] |= 0x80
        new = bytes(enc) + b"\x80" * rng.randrange(0, 5) + b"\x00"
    else:
        new = encode_u(max(0, val + (1 if how == 2 else -1)))
    return data[:i] + new + data[j:]


def _section_edit(rng: random.Random, data: bytes) -> bytes:
    """Delete, duplicate, swap, re-id or re-size a section, or append a custom one."""
    secs = sections(data)
    if not secs:
        return _flip(rng, data)
    sid, s, e = rng.choice(secs)
    how = rng.randrange(6)
    if how == 0:
        return data[:s] + data[e:]
    if how == 1:
        return data[:e] + data[s:e] + data[e:]
    if how == 2:
        _sid2, s2, e2 = rng.choice(secs)
        if s2 < s:
            s, e, s2, e2 = s2, e2, s, e
        if e > s2:
            return data
        return data[:s] + data[s2:e2] + data[e:s2] + data[s:e] + data[e2:]
    if how == 3:
        return data[:s] + bytes([rng.choice((0, 12, 13, 14, 255, (sid + 1) % 14, rng.randrange(256)))]) + data[s + 1:]
    if how == 4:  # size field +-1 (payload unchanged)
        payload_start = s + 1
        while payload_start < e and data[payload_start] & 0x80:
            payload_start += 1
        payload_start += 1
        size = e - payload_start
        return data[:s + 1] + encode_u(max(0, size + rng.choice((-1, 1)))) + data[payload_start:]
    name = rng.choice((b"name", b"", b"\xff\xfe", b"metadata.code.branch_hint"))
    body = encode_u(len(name)) + name + bytes(rng.randrange(256) for _ in range(rng.randrange(8)))
    return data + b"\x00" + encode_u(len(body)) + body


def _splice(rng: random.Random, data: bytes) -> bytes:
    """Copy one section over another of the same module (sections out of order, or repeated)."""
    secs = sections(data)
    if len(secs) < 2:
        return _insert(rng, data)
    (_a, s1, e1), (_b, s2, e2) = rng.sample(secs, 2)
    return data[:s2] + data[s1:e1] + data[e2:] if s1 != s2 else data


MUTATIONS: Dict[str, Callable[[random.Random, bytes], bytes]] = {
    "flip": _flip, "byte": _set_byte, "truncate": _truncate, "insert": _insert, "delete": _delete,
    "leb": _leb, "section": _section_edit, "splice": _splice,
}


def mutate_bytes(data: bytes, rng: random.Random, rounds: int = 0) -> Tuple[bytes, str]:
    """One to three mutations of ``data`` (``rounds``: exactly that many); the mutant and their names."""
    names = []
    for _ in range(rounds or rng.choice((1, 1, 1, 2, 3))):
        name = rng.choice(sorted(MUTATIONS))
        data = MUTATIONS[name](rng, data)
        names.append(name)
    return data, "+".join(names)


def random_module(rng: random.Random) -> Tuple[bytes, str]:
    """Random bytes: pure noise, or a valid header followed by noise or by random section framing."""
    how = rng.randrange(3)
    n = rng.choice((0, 1, 4, 16, 64, 256))
    noise = bytes(rng.randrange(256) for _ in range(n))
    if how == 0:
        return noise, "random:noise"
    if how == 1:
        return HEADER + noise, "random:header+noise"
    out = bytearray(HEADER)
    for _ in range(rng.randrange(1, 6)):
        sid = rng.choice((0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, rng.randrange(256)))
        payload = bytes(rng.randrange(256) for _ in range(rng.choice((0, 1, 3, 8, 32))))
        out += bytes([sid]) + encode_u(len(payload)) + payload
    return bytes(out), "random:sections"


def wasm_mutate(data: bytes, seed: int, timeout: float = 30.0) -> Optional[bytes]:
    """``wasm-tools mutate`` of a valid module (its mutants stay valid unless it has a bug); None when
    it has no applicable mutation for this seed, rejects the input or does not finish in time."""
    with tempfile.TemporaryDirectory(prefix="wcr-mutate-") as d:
        inp = os.path.join(d, "in.wasm")
        out = os.path.join(d, "out.wasm")
        with open(inp, "wb") as fh:
            fh.write(data)
        try:
            p = subprocess.run([wasm_tools_exe(), "mutate", inp, "--seed", str(seed), "-o", out],
                               capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        if p.returncode != 0 or not os.path.exists(out):
            return None
        with open(out, "rb") as fh:
            return fh.read()
