"""The resource limits of a store, and what a store has allocated against them.

The limits belong to whoever runs or restores, never to a snapshot: a snapshot is a file from a
stranger, and limits read from it could make the restorer allocate gigabytes (or make a correct run
trap).  The same :class:`StoreLimits` bound instantiation, ``memory.grow``/``table.grow``, the call stack and
restore, so every state a run can reach under them also restores under them, and a snapshot that
exceeds them is refused with a message naming the limit.

The memory and table limits are *per store* (all memories together, all tables together): that is
what bounds the host's memory use, however many instances or memories a module or a snapshot has.
Memory pages are allocated lazily, so pages a run never touches cost address space,
not resident memory (:mod:`vm.runtime.memdata`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Optional

from ..errors import ResourceLimit
from .memdata import PAGE_SIZE

__all__ = ["DEFAULT_LIMITS", "ENV", "StoreLimits", "Quota", "configure", "current"]

#: the environment variable that carries this process's limits to the child processes it starts
#: (``python:PATH`` hosts restore under the same settings as the command that started them)
ENV = "WCR_LIMITS"


@dataclass(frozen=True)
class StoreLimits:
    """What a store may hold.  ``max_memory_pages``: 64 KiB pages of all its memories together
    (default 16384 = 1 GiB); ``max_table_elements``: elements of all its tables together;
    ``max_call_depth``: Wasm frames of one invocation ("call stack exhausted" beyond);
    ``max_heap_fields``: fields of all GC objects and exception payloads of a store together (a struct
    counts its fields, an array its length, each at least 1; :mod:`vm.runtime.heap`);
    ``max_fs_bytes``: bytes of all files of a store's WASI filesystem together (:mod:`vm.runtime.wasi`:
    a write or ``fd_filestat_set_size`` beyond it fails with ``ENOSPC``/``EFBIG``; loading a host
    directory or restoring a snapshot whose files are larger is refused)."""

    max_memory_pages: int = 16384
    max_table_elements: int = 10_000_000
    max_call_depth: int = 1000
    max_heap_fields: int = 10_000_000
    max_fs_bytes: int = 256 << 20

    def __post_init__(self) -> None:
        for name in ("max_memory_pages", "max_table_elements", "max_call_depth", "max_heap_fields",
                     "max_fs_bytes"):
            v = getattr(self, name)
            if type(v) is not int or v < 0 or (name == "max_call_depth" and v < 1):
                raise ValueError(f"{name} must be a {'positive' if name == 'max_call_depth' else 'non-negative'} "
                                 f"integer, not {v!r}")

    def snapshot_body_bound(self) -> int:
        """The largest decompressed snapshot body a state within these limits can need: every page
        (with its page number), every table element (tag, address and run count), every heap field
        (a tagged value, 24 bytes at most but a v128), every WASI file byte, plus 64 MiB for everything else (frames, globals,
        names, the host log).  Decompression stops beyond it."""
        return (self.max_memory_pages * (PAGE_SIZE + 8) + self.max_table_elements * 16
                + self.max_heap_fields * 24 + self.max_fs_bytes + (64 << 20))


    def to_env(self) -> str:
        return ",".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self))

    @classmethod
    def from_env(cls, text: str) -> StoreLimits:
        """Parse :meth:`to_env`'s form; a malformed value is a ValueError naming it."""
        kw = {}
        names = {f.name for f in fields(cls)}
        for item in filter(None, text.split(",")):
            name, _, value = item.partition("=")
            if name not in names or not value.isdigit():
                raise ValueError(f"{ENV}: bad item {item!r} (expected name=number, names: {sorted(names)})")
            kw[name] = int(value)
        return cls(**kw)


DEFAULT_LIMITS = StoreLimits()
_current: Optional[StoreLimits] = None


def current() -> StoreLimits:
    """This process's limits: the ones :func:`configure` set, else :data:`ENV` (set by the process
    that started this one), else :data:`DEFAULT_LIMITS`.  Stores and restores made without explicit
    limits use them, so a command's flags reach every store it creates, also in its child hosts."""
    global _current
    if _current is None:
        text = os.environ.get(ENV)
        _current = StoreLimits.from_env(text) if text else DEFAULT_LIMITS
    return _current


def configure(limits: StoreLimits) -> None:
    """Set this process's limits and pass them on to the child processes it will start."""
    global _current
    _current = limits
    os.environ[ENV] = limits.to_env()


class Quota:
    """The memory pages and table elements one store has allocated, against its :class:`StoreLimits`.
    Every allocation and growth of a memory or table goes through it (instantiation, ``*.grow``,
    restore); the totals never shrink (the store never frees an object)."""

    __slots__ = ("limits", "pages", "elements", "fields")

    def __init__(self, limits: StoreLimits = DEFAULT_LIMITS):
        self.limits = limits
        self.pages = 0
        self.elements = 0
        self.fields = 0

    def can_take_pages(self, n: int) -> bool:
        return self.pages + n <= self.limits.max_memory_pages

    def can_take_elements(self, n: int) -> bool:
        return self.elements + n <= self.limits.max_table_elements

    def take_pages(self, n: int, what: str) -> None:
        """Charge ``n`` pages, or raise :class:`ResourceLimit` naming ``what`` and the limit."""
        if not self.can_take_pages(n):
            raise ResourceLimit(f"{what}: {n} pages of memory exceed the store's limit of "
                                f"{self.limits.max_memory_pages} pages for all memories together "
                                f"({self.pages} in use; --max-memory-pages)")
        self.pages += n

    def take_elements(self, n: int, what: str) -> None:
        """Charge ``n`` table elements, or raise :class:`ResourceLimit`."""
        if not self.can_take_elements(n):
            raise ResourceLimit(f"{what}: {n} table elements exceed the store's limit of "
                                f"{self.limits.max_table_elements} for all tables together "
                                f"({self.elements} in use; --max-table-elements)")
        self.elements += n

    def can_take_fields(self, n: int) -> bool:
        return self.fields + n <= self.limits.max_heap_fields

    def take_fields(self, n: int, what: str) -> None:
        """Charge ``n`` heap fields (a GC object or an exception payload), or raise :class:`ResourceLimit`
        (the engine turns it into the trap ``out of memory`` when a running program allocates)."""
        if not self.can_take_fields(n):
            raise ResourceLimit(f"{what}: {n} heap fields exceed the store's limit of "
                                f"{self.limits.max_heap_fields} for all GC objects together "
                                f"({self.fields} in use; --max-heap-fields)")
        self.fields += n
