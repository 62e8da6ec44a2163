"""The bytes of a Wasm memory, and the bulk operations on them that must not copy.

A memory's bytes are an anonymous mapping: the kernel provides zero pages on first write, so a
memory declared large costs only the pages a run touches, and growing remaps instead of copying.
Bulk operations (``memory.fill``/``copy``/``init``, data segments) work through bounded chunks or
the mapping's own ``move``, because a Python slice of a large range is a full temporary copy (a
``memory.fill`` of 1 GiB would otherwise need 3 GiB).
"""

from __future__ import annotations

import mmap
from typing import Union

from ..errors import ResourceLimit

__all__ = ["CHUNK", "PAGE_SIZE", "MemoryData", "copy_bytes", "fill_bytes", "resize", "zeroed"]

PAGE_SIZE = 65536
_PRIVATE = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_ANONYMOUS", 0) if hasattr(mmap, "MAP_PRIVATE") else 0
#: the largest temporary a bulk operation makes
CHUNK = 1 << 20

#: a memory's bytes: an anonymous mapping (zero pages are not resident until written), or an empty
#: bytearray for a memory of 0 pages (a mapping cannot be empty)
MemoryData = Union[mmap.mmap, bytearray]


def zeroed(nbytes: int) -> MemoryData:
    """``nbytes`` zero bytes, not resident until written."""
    if nbytes == 0:
        return bytearray()
    try:
        # private: a shared anonymous mapping cannot grow in place (its new pages would fault)
        return mmap.mmap(-1, nbytes, flags=_PRIVATE) if _PRIVATE else mmap.mmap(-1, nbytes)
    except (OSError, OverflowError, ValueError) as e:
        raise ResourceLimit(f"cannot map {nbytes} bytes of memory: {e}") from None


def resize(data: MemoryData, nbytes: int) -> MemoryData:
    """``data`` grown to ``nbytes`` (new bytes zero): in place where the platform can remap an
    anonymous mapping, else a new mapping with the old bytes copied.  Raises ResourceLimit when the
    host cannot provide the memory."""
    old = len(data)
    if nbytes == old:
        return data
    if isinstance(data, mmap.mmap):
        try:
            data.resize(nbytes)
            return data
        except (OSError, SystemError, ValueError, TypeError):
            pass  # no mremap on this platform: copy below
    new = zeroed(nbytes)
    keep = min(old, nbytes)
    if keep:
        with memoryview(data) as src:
            new[0:keep] = src[0:keep]
    return new


def fill_bytes(data: MemoryData, d: int, n: int, byte: int) -> None:
    """``data[d:d+n] = byte`` (bounds already checked) with at most :data:`CHUNK` bytes of temporary."""
    pattern = bytes([byte]) * min(n, CHUNK)
    end = d + n
    while d < end:
        k = min(CHUNK, end - d)
        data[d:d + k] = pattern if k == len(pattern) else pattern[:k]
        d += k


def copy_bytes(dst: MemoryData, d: int, src: object, s: int, n: int) -> None:
    """``dst[d:d+n] = src[s:s+n]`` (bounds checked; ranges of the same object may overlap), in
    chunks, or with the mapping's own memmove when both are the same mapping."""
    if src is dst and isinstance(dst, mmap.mmap):
        dst.move(d, s, n)
        return
    with memoryview(src) as sv:  # type: ignore[arg-type]  # bytes, bytearray or a mapping
        if src is dst and s < d < s + n:  # overlapping, forwards: copy from the end
            off = n
            while off > 0:
                k = min(CHUNK, off)
                off -= k
                dst[d + off:d + off + k] = bytes(sv[s + off:s + off + k])
            return
        off = 0
        while off < n:
            k = min(CHUNK, n - off)
            dst[d + off:d + off + k] = bytes(sv[s + off:s + off + k])
            off += k
