"""Reading and writing the program's memory for the WASI host functions.

A pointer (or a range) outside the bound memory is a trap, ``out of bounds memory access``, not an errno:
that is what wasmtime 50 does (its preview-1 layer traps with "Pointer out of bounds"; checked by
``suite/tests/test_wasi_wasmtime.py``), and an errno would let the run go on differently from there.
The memory's bytes are re-read at every access (``memory.grow`` may replace them).
"""

from __future__ import annotations

import struct
from typing import Any, List, Tuple

from ...errors import Trap
from .constants import IOVEC_SIZE


def _oob() -> Trap:
    return Trap("out of bounds memory access")


class Guest:
    """The memory a WASI state is bound to (``WasiState.memory``, a :class:`vm.runtime.MemInst`)."""

    __slots__ = ("mem",)

    def __init__(self, mem: Any):
        if mem is None:
            raise _oob()
        self.mem = mem

    def check(self, ptr: int, n: int) -> None:
        """Trap unless ``[ptr, ptr + n)`` lies in memory (checked before a call changes any state, so a
        bad result pointer leaves nothing half done)."""
        self._check(ptr, n)

    def _check(self, ptr: int, n: int) -> Any:
        data = self.mem.data
        if ptr + n > len(data):
            raise _oob()
        return data

    def read(self, ptr: int, n: int) -> bytes:
        data = self._check(ptr, n)
        return bytes(data[ptr:ptr + n])

    def write(self, ptr: int, b: bytes) -> None:
        data = self._check(ptr, len(b))
        data[ptr:ptr + len(b)] = b

    def u8(self, ptr: int, v: int) -> None:
        self.write(ptr, bytes((v & 0xFF,)))

    def u16(self, ptr: int, v: int) -> None:
        self.write(ptr, struct.pack("<H", v & 0xFFFF))

    def u32(self, ptr: int, v: int) -> None:
        self.write(ptr, struct.pack("<I", v & 0xFFFFFFFF))

    def u64(self, ptr: int, v: int) -> None:
        self.write(ptr, struct.pack("<Q", v & 0xFFFFFFFFFFFFFFFF))

    def get_u16(self, ptr: int) -> int:
        return int(struct.unpack("<H", self.read(ptr, 2))[0])

    def get_u32(self, ptr: int) -> int:
        return int(struct.unpack("<I", self.read(ptr, 4))[0])

    def get_u64(self, ptr: int) -> int:
        return int(struct.unpack("<Q", self.read(ptr, 8))[0])

    def iovecs(self, ptr: int, n: int) -> List[Tuple[int, int]]:
        """The (buffer, length) pairs of an iovec array, each buffer checked to lie in memory."""
        raw = self.read(ptr, n * IOVEC_SIZE)
        out = []
        for i in range(n):
            buf, length = struct.unpack_from("<II", raw, i * IOVEC_SIZE)
            self._check(buf, length)
            out.append((buf, length))
        return out

    def gather(self, ptr: int, n: int) -> bytes:
        """The bytes an iovec array names, concatenated (``fd_write``)."""
        return b"".join(self.read(buf, length) for buf, length in self.iovecs(ptr, n))

    def scatter(self, iovs: List[Tuple[int, int]], data: bytes) -> int:
        """Spread ``data`` over the buffers (``fd_read``): bytes placed."""
        done = 0
        for buf, length in iovs:
            if done >= len(data):
                break
            chunk = data[done:done + length]
            self.write(buf, chunk)
            done += len(chunk)
        return done


def signed64(v: int) -> int:
    """An i64 argument (runtime: unsigned) as the signed number WASI means (``filedelta``)."""
    return v - (1 << 64) if v >= 1 << 63 else v
