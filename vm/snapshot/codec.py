"""The snapshot container: ``encode(State) -> bytes`` and ``decode(bytes) -> State``.

The layout is documented field by field in docs/snapshot-format.md; keep the two in sync.  Nothing in
a snapshot is ever executed or evaluated: the reader only parses integers, byte strings and UTF-8
names with bounds checks, and every failure (corruption, truncation, foreign version, limits) raises
:class:`SnapshotError`.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from typing import Dict, List, Optional, Tuple

from ..binary.leb128 import encode_u
from ..runtime.limits import StoreLimits, current
from ..runtime.memdata import PAGE_SIZE
from . import faults as _faults
from .model import (
    HEAP_KINDS,
    KINDS,
    STATUSES,
    FrameState,
    HeapObject,
    HostObject,
    InstanceState,
    Label,
    MemoryState,
    SnapshotError,
    State,
    ThreadState,
    Value,
)
from .wasi_codec import decode_wasi, encode_wasi

MAGIC = b"WCRSNAP\x00"
#: version 2 (issue 12): heap and segments sections, GC/exception value tags, caught exceptions per frame;
#: version 1 snapshots (no frame has a caught list) are still read
VERSION = 2
READABLE_VERSIONS = (1, 2)
FLAG_ZLIB = 1
_HEADER = struct.Struct("<8sIIQ32s")  # magic, version, flags, body length, sha256(body)
HEADER_SIZE = _HEADER.size  # 56

#: decompression works in pieces of this size, checking the reader's bound after each
_PIECE = 1 << 22

# section ids (< 0x80: required, >= 0x80: optional, skipped by readers that do not know them)
SEC_META = 1
SEC_MODULES = 2
SEC_ADDRS = 3
SEC_HOSTS = 4
SEC_INSTANCES = 5
SEC_TABLES = 6
SEC_MEMORIES = 7
SEC_GLOBALS = 8
SEC_HOSTLOG = 9
SEC_THREAD = 10
SEC_HEAP = 11  # GC and exception objects (present when there are any)
SEC_SEGMENTS = 12  # items of element segments that hold heap objects (present when there are any)
SEC_WASI = 13  # the WASI state (present when the store runs a WASI program; vm/snapshot/wasi_codec.py)
SEC_NAMES = 0x80
REQUIRED = (SEC_META, SEC_MODULES, SEC_ADDRS, SEC_HOSTS, SEC_INSTANCES, SEC_TABLES, SEC_MEMORIES,
            SEC_GLOBALS, SEC_HOSTLOG)

# value tags (Wasm valtype bytes where one exists)
T_I32, T_I64, T_F32, T_F64, T_V128 = 0x7F, 0x7E, 0x7D, 0x7C, 0x7B
T_NULL, T_FUNC, T_EXTERN, T_INT = 0xD0, 0x70, 0x6F, 0x01
# GC and exception references (the abstract heap type's byte; payload: u value, u n or u heap id), and an
# internal reference made external by extern.convert_any (payload: the wrapped value)
T_I31, T_HOST, T_STRUCT, T_ARRAY, T_EXN, T_EXTERN_OF = 0x6C, 0x6E, 0x6B, 0x6A, 0x69, 0x02
_U_TAGS = {"ref.func": T_FUNC, "ref.i31": T_I31, "ref.host": T_HOST, "ref.struct": T_STRUCT,
           "ref.array": T_ARRAY, "ref.exn": T_EXN, "int": T_INT}
_U_BY_CODE = {code: tag for tag, code in _U_TAGS.items()}
#: what ``extern.convert_any`` can wrap
_WRAPPABLE = (T_I31, T_STRUCT, T_ARRAY)
_HEAP_CODE = {k: i for i, k in enumerate(HEAP_KINDS)}
_NUM = {"i32": (T_I32, 4), "i64": (T_I64, 8), "f32": (T_F32, 4), "f64": (T_F64, 8), "v128": (T_V128, 16)}
_NUM_BY_TAG = {tag: (name, size) for name, (tag, size) in _NUM.items()}
_KIND_CODE = {k: i for i, k in enumerate(KINDS)}
_STATUS_CODE = {s: i for i, s in enumerate(STATUSES)}


# ------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------

class _W:
    """A body being written: small fields accumulate in ``buf``; large byte strings (memory pages)
    are kept by reference in ``chunks`` so that writing a snapshot never copies guest memory."""

    __slots__ = ("buf", "chunks", "size")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.chunks: List[bytes] = []
        self.size = 0  # bytes in chunks

    def total(self) -> int:
        return self.size + len(self.buf)

    def flush(self) -> None:
        if self.buf:
            self.chunks.append(bytes(self.buf))
            self.size += len(self.buf)
            self.buf = bytearray()

    def pieces(self) -> List[bytes]:
        """The body so far, in order (``buf`` flushed)."""
        self.flush()
        return self.chunks

    def append(self, w: _W) -> None:
        """Append another writer's bytes without copying its large chunks."""
        self.flush()
        for c in w.pieces():
            self.chunks.append(c)
            self.size += len(c)

    def u(self, n: int) -> None:
        if n < 0:
            raise SnapshotError(f"cannot encode negative number {n}")
        self.buf += encode_u(n)

    def s(self, n: int) -> None:  # signed, zigzag
        self.u((n << 1) if n >= 0 else ((-n << 1) - 1))

    def byte(self, b: int) -> None:
        self.buf.append(b)

    def raw(self, b: bytes) -> None:
        if len(b) >= PAGE_SIZE:
            self.flush()
            self.chunks.append(b)
            self.size += len(b)
        else:
            self.buf += b

    def bytes_(self, b: bytes) -> None:
        self.u(len(b))
        self.buf += b

    def str_(self, s: str) -> None:
        self.bytes_(s.encode("utf-8"))

    def opt_str(self, s: Optional[str]) -> None:
        if s is None:
            self.byte(0)
        else:
            self.byte(1)
            self.str_(s)

    def value(self, v: Value) -> None:
        tag, x = v
        num = _NUM.get(tag)
        if num is not None:
            code, size = num
            if type(x) is not int or not 0 <= x < (1 << (8 * size)):
                raise SnapshotError(f"bad {tag} value {x!r}")
            self.byte(code)
            self.raw(x.to_bytes(size, "little"))
        elif tag == "ref.null":
            self.byte(T_NULL)
        elif tag in _U_TAGS:
            self.byte(_U_TAGS[tag])
            self.u(x)
        elif tag == "ref.extern" and isinstance(x, tuple):
            if _U_TAGS.get(x[0]) not in _WRAPPABLE:
                raise SnapshotError(f"cannot encode ref.extern of {x[0]!r}")
            self.byte(T_EXTERN_OF)
            self.value(x)
        elif tag == "ref.extern":
            self.byte(T_EXTERN)
            self.u(x)
        else:
            raise SnapshotError(f"cannot encode value tag {tag!r}")

    def values(self, vs: List[Value]) -> None:
        self.u(len(vs))
        for v in vs:
            self.value(v)

    def bools(self, bs: List[bool]) -> None:
        self.u(len(bs))
        self.raw(bytes(1 if b else 0 for b in bs))


def _section(out: _W, sid: int, w: _W) -> None:
    out.byte(sid)
    out.u(w.total())
    out.append(w)


def encode_store_sections(state: State, out: _W, digest_only: bool = False) -> None:
    """The store part of the body.  With ``digest_only`` only what the state digest covers is
    written (no module identities, names, configuration): the canonical input of ``state_digest``."""
    if not digest_only:
        w = _W()
        cfg = state.config
        w.str_("wcr")
        w.u(int(cfg.get("max_call_depth", 1000)))
        w.u(int(cfg.get("max_memory_pages", 16384)))
        w.str_(str(cfg.get("engine", "reference")))
        _section(out, SEC_META, w)
        w = _W()
        w.u(len(state.modules))
        for sha in state.modules:
            try:
                raw = bytes.fromhex(sha)
            except ValueError:
                raw = b""
            if len(raw) != 32:
                raise SnapshotError(f"module sha256 {sha!r} is not 64 hex digits")
            w.raw(raw)
        _section(out, SEC_MODULES, w)
    w = _W()
    for k in KINDS:
        w.u(state.counts[k])
    _section(out, SEC_ADDRS, w)
    if not digest_only:
        w = _W()
        w.u(len(state.hosts))
        for h in state.hosts:
            w.byte(_KIND_CODE[h.kind])
            w.u(h.addr)
            w.str_(h.module)
            w.str_(h.name)
        _section(out, SEC_HOSTS, w)
    w = _W()
    w.u(len(state.instances))
    for ist in state.instances:
        if not digest_only:
            w.u(ist.module)
            w.opt_str(ist.name)
            for k in KINDS:
                sp = ist.space(k)
                w.u(len(sp))
                for a in sp:
                    w.u(a)
        w.bools(ist.elem_dropped)
        w.bools(ist.data_dropped)
    _section(out, SEC_INSTANCES, w)
    w = _W()
    w.u(len(state.tables))
    for elems in state.tables:
        # run-length: (repeat, value) pairs, so large null tables stay small
        runs: List[Tuple[int, Value]] = []
        for v in elems:
            if runs and runs[-1][1] == v:
                runs[-1] = (runs[-1][0] + 1, v)
            else:
                runs.append((1, v))
        w.u(len(elems))
        w.u(len(runs))
        for n, v in runs:
            w.u(n)
            w.value(v)
    _section(out, SEC_TABLES, w)
    w = _W()
    w.u(len(state.mems))
    for ms in state.mems:
        w.u(ms.pages)
        w.u(len(ms.nonzero))
        for p in sorted(ms.nonzero):
            data = ms.nonzero[p]
            if len(data) != PAGE_SIZE:
                raise SnapshotError(f"memory page {p} is not {PAGE_SIZE} bytes")
            w.u(p)
            w.raw(data)
    _section(out, SEC_MEMORIES, w)
    w = _W()
    w.values(state.globals)
    _section(out, SEC_GLOBALS, w)
    w = _W()
    w.u(len(state.host_log))
    for name, vals in state.host_log:
        w.str_(name)
        w.values(vals)
    _section(out, SEC_HOSTLOG, w)


def _encode_heap(state: State, out: _W) -> None:
    """Sections 11 and 12, each only when it has entries (so a state without heap objects encodes as
    before), and 13 when the state has WASI state."""
    if state.heap:
        w = _W()
        w.u(len(state.heap))
        for ob in state.heap:
            if ob.kind not in _HEAP_CODE:
                raise SnapshotError(f"unknown heap object kind {ob.kind!r}")
            w.byte(_HEAP_CODE[ob.kind])
            if ob.kind == "exn":
                if ob.tag is None:
                    raise SnapshotError("exception object without a tag")
                w.u(ob.tag)
            else:
                if ob.type is None:
                    raise SnapshotError(f"{ob.kind} object without a type")
                w.u(ob.type[0])
                w.u(ob.type[1])
            w.values(ob.fields)
        _section(out, SEC_HEAP, w)
    if state.segments:
        w = _W()
        w.u(len(state.segments))
        for n, i, items in state.segments:
            w.u(n)
            w.u(i)
            w.values(items)
        _section(out, SEC_SEGMENTS, w)
    if state.wasi is not None:
        w = _W()
        encode_wasi(state.wasi, w)
        _section(out, SEC_WASI, w)


def _encode_thread(ts: ThreadState) -> _W:
    w = _W()
    if ts.status not in _STATUS_CODE:
        raise SnapshotError(f"unknown thread status {ts.status!r}")
    w.byte(_STATUS_CODE[ts.status])
    w.u(ts.count)
    w.u(ts.entry)
    w.values(ts.args)
    w.values(ts.results)
    w.opt_str(ts.trap)
    w.u(len(ts.frames))
    for fr in ts.frames:
        w.u(fr.func)
        w.u(fr.pc)
        w.values(fr.locals)
        w.values(fr.stack)
        w.u(len(fr.labels))
        for lb in fr.labels:
            w.str_(lb.kind)
            w.s(lb.start)
            w.u(lb.nparams)
            w.u(lb.nresults)
            w.u(lb.height)
        w.u(len(fr.caught))
        for offset, v in fr.caught:
            w.u(offset)
            w.value(v)
    w.byte(0 if ts.exception is None else 1)
    if ts.exception is not None:
        w.value(ts.exception)
    return w


def encode_body(state: State) -> bytes:
    """The uncompressed body: the sections in order."""
    return b"".join(_body_pieces(state))


def _body_pieces(state: State) -> List[bytes]:
    out = _W()
    encode_store_sections(state, out)
    if state.thread is not None:
        _section(out, SEC_THREAD, _encode_thread(state.thread))
    _encode_heap(state, out)
    if state.names:
        w = _W()
        w.u(len(state.names))
        for a in sorted(state.names):
            w.u(a)
            w.str_(state.names[a])
        _section(out, SEC_NAMES, w)
    return out.pieces()


def digest_body_pieces(state: State) -> List[bytes]:
    """D of docs/snapshot-format.md, "State digest", in pieces: the digest form of the store
    sections, uncompressed (so zlib versions do not matter)."""
    out = _W()
    encode_store_sections(state, out, digest_only=True)
    _encode_heap(state, out)
    return out.pieces()


def pack(body: bytes, compress: bool = True, version: int = VERSION) -> bytes:
    """Wrap a body in the container (header + optional zlib); exposed for tests that craft bodies."""
    stored = zlib.compress(body, 6) if compress else body
    flags = FLAG_ZLIB if compress else 0
    return _HEADER.pack(MAGIC, version, flags, len(stored), hashlib.sha256(stored).digest()) + stored


def encode(state: State, compress: bool = True) -> bytes:
    """State → snapshot bytes.  The body is compressed piece by piece: memory pages are never
    copied into one uncompressed body."""
    if not compress:
        return pack(encode_body(state), False)
    z = zlib.compressobj(6)
    stored = bytearray()
    for piece in _body_pieces(state):
        stored += z.compress(piece)
    stored += z.flush()
    return _HEADER.pack(MAGIC, VERSION, FLAG_ZLIB, len(stored), hashlib.sha256(stored).digest()) + stored


# ------------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------------

class _R:
    __slots__ = ("data", "pos", "end", "what")

    def __init__(self, data: bytes, what: str, pos: int = 0, end: Optional[int] = None):
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end
        self.what = what

    def fail(self, msg: str) -> SnapshotError:
        return SnapshotError(f"corrupt snapshot: {self.what}: {msg} (at body offset {self.pos})")

    def byte(self) -> int:
        if self.pos >= self.end:
            raise self.fail("unexpected end")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def u(self, limit: int = 1 << 64) -> int:
        r = shift = 0
        while True:
            b = self.byte()
            r |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
            if shift > 70:
                raise self.fail("integer too long")
        if r > limit:
            raise self.fail(f"number {r} exceeds {limit}")
        return r

    def s(self) -> int:
        z = self.u()
        return (z >> 1) if not z & 1 else -((z + 1) >> 1)

    def count(self, min_item_size: int = 1) -> int:
        """A vector length: each item takes at least ``min_item_size`` bytes, so a length larger
        than what is left is corrupt (and never makes us allocate)."""
        n = self.u()
        if n * min_item_size > self.end - self.pos:
            raise self.fail(f"count {n} exceeds the remaining bytes")
        return n

    def raw(self, n: int) -> bytes:
        if n > self.end - self.pos:
            raise self.fail("unexpected end")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def bytes_(self) -> bytes:
        return self.raw(self.count())

    def str_(self) -> str:
        b = self.bytes_()
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail("invalid UTF-8") from None

    def opt_str(self) -> Optional[str]:
        flag = self.byte()
        if flag == 0:
            return None
        if flag != 1:
            raise self.fail("bad option flag")
        return self.str_()

    def value(self) -> Value:
        tag = self.byte()
        num = _NUM_BY_TAG.get(tag)
        if num is not None:
            name, size = num
            return (name, int.from_bytes(self.raw(size), "little"))
        if tag == T_NULL:
            return ("ref.null", None)
        u_tag = _U_BY_CODE.get(tag)
        if u_tag is not None:
            return (u_tag, self.u())
        if tag == T_EXTERN:
            return ("ref.extern", self.u())
        if tag == T_EXTERN_OF:
            if self.pos >= self.end or self.data[self.pos] not in _WRAPPABLE:
                raise self.fail("ref.extern can wrap only an i31, struct or array reference")
            return ("ref.extern", self.value())
        raise self.fail(f"unknown value tag 0x{tag:02x}")

    def values(self) -> List[Value]:
        return [self.value() for _ in range(self.count())]

    def bools(self) -> List[bool]:
        raw = self.raw(self.count())
        if any(b > 1 for b in raw):
            raise self.fail("bad flag byte")
        return [b == 1 for b in raw]

    def done(self) -> None:
        if self.pos != self.end:
            raise self.fail(f"{self.end - self.pos} unexpected trailing bytes")


def unpack(data: bytes, limits: Optional[StoreLimits] = None) -> bytes:
    """Check the container and return the (decompressed) body.  Decompression is streamed and stops
    as soon as the body exceeds what a state within the reader's ``limits`` can need
    (:meth:`~vm.runtime.limits.StoreLimits.snapshot_body_bound`): a decompression bomb costs at most that."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise SnapshotError("snapshot must be bytes")
    view = memoryview(data).cast("B")
    if len(view) < HEADER_SIZE:
        if not MAGIC.startswith(bytes(view[:len(MAGIC)])):
            raise SnapshotError("not a wcr snapshot (bad magic)")
        raise SnapshotError(f"truncated snapshot: {len(view)} bytes, the header alone is {HEADER_SIZE}")
    magic, version, flags, length, digest = _HEADER.unpack_from(view, 0)
    if magic != MAGIC:
        raise SnapshotError("not a wcr snapshot (bad magic)")
    if version not in READABLE_VERSIONS:
        raise SnapshotError(f"unsupported snapshot format version {version} (this wcr reads versions "
                            f"{', '.join(map(str, READABLE_VERSIONS))})")
    if flags & ~FLAG_ZLIB:
        raise SnapshotError(f"unknown snapshot flags 0x{flags:x}")
    stored = view[HEADER_SIZE:]  # a view: no copy of a large snapshot
    if len(stored) != length:
        what = "truncated" if len(stored) < length else "trailing bytes after"
        raise SnapshotError(f"{what} snapshot: body is {len(stored)} bytes, header says {length}")
    if hashlib.sha256(stored).digest() != digest:
        raise SnapshotError("corrupt snapshot: sha256 of the body does not match the header")
    if not flags & FLAG_ZLIB:
        return bytes(stored)
    return _inflate(stored, (limits if limits is not None else current()).snapshot_body_bound())


def _inflate(stored: memoryview, bound: int) -> bytes:
    body = bytearray()
    try:
        d = zlib.decompressobj()
        rest: object = stored
        while True:
            body += d.decompress(rest, _PIECE)  # type: ignore[arg-type]
            if len(body) > bound:
                raise SnapshotError(f"snapshot body larger than {bound} bytes, more than a state within "
                                    "this reader's limits can need (--max-memory-pages, "
                                    "--max-table-elements)")
            rest = d.unconsumed_tail
            if d.eof or not rest:
                break
        if not d.eof or d.unused_data:
            raise SnapshotError("corrupt snapshot: bad compressed body")
    except zlib.error as e:
        raise SnapshotError(f"corrupt snapshot: bad compressed body ({e})") from None
    return body  # type: ignore[return-value]  # a bytearray reads like bytes here


def decode(data: bytes, limits: Optional[StoreLimits] = None) -> State:
    """Snapshot bytes → State.  Raises SnapshotError, and nothing else, on any bad input.  ``limits``
    are the reader's (they bound decompression and the sizes read; restore checks them again)."""
    lim = limits if limits is not None else current()
    body = unpack(data, lim)
    version = _HEADER.unpack_from(memoryview(data).cast("B"), 0)[1]
    try:
        state = _decode_body(body, lim, version)
        if _faults.ACTIVE:  # deliberate bugs for `wcr selftest` only (vm/snapshot/faults.py)
            _faults.after_decode(state)
        return state
    except SnapshotError:
        raise
    except (ValueError, KeyError, IndexError, OverflowError, MemoryError) as e:  # defensive
        raise SnapshotError(f"corrupt snapshot: {type(e).__name__}: {e}") from None


def _decode_body(body: bytes, limits: StoreLimits, version: int = VERSION) -> State:
    r = _R(body, "body")
    sections: Dict[int, _R] = {}
    order: List[int] = []
    while r.pos < r.end:
        sid = r.byte()
        size = r.count()
        start = r.pos
        r.pos += size
        if sid in sections:
            raise r.fail(f"duplicate section {sid}")
        if order and sid < 0x80 and order[-1] < 0x80 and sid < order[-1]:
            raise r.fail(f"section {sid} out of order")
        if sid < 0x80 and sid not in REQUIRED and sid not in (SEC_THREAD, SEC_HEAP, SEC_SEGMENTS, SEC_WASI):
            raise r.fail(f"unknown required section {sid} (written by a newer wcr?)")
        order.append(sid)
        sections[sid] = _R(body, f"section {sid}", start, start + size)
    for sid in REQUIRED:
        if sid not in sections:
            raise SnapshotError(f"corrupt snapshot: missing section {sid}")

    s = sections[SEC_META]
    if s.str_() != "wcr":
        raise s.fail("unknown producer")
    config = {"max_call_depth": s.u(1 << 32), "max_memory_pages": s.u(1 << 48), "engine": s.str_()}
    s.done()

    s = sections[SEC_MODULES]
    modules = [s.raw(32).hex() for _ in range(s.count(32))]
    s.done()

    s = sections[SEC_ADDRS]
    counts = {k: s.u(1 << 32) for k in KINDS}
    s.done()

    s = sections[SEC_HOSTS]
    hosts = []
    for _ in range(s.count(4)):
        code = s.byte()
        if code >= len(KINDS):
            raise s.fail("bad kind")
        kind = KINDS[code]
        addr = s.u(counts[kind])
        hosts.append(HostObject(kind, addr, s.str_(), s.str_()))
    s.done()

    s = sections[SEC_INSTANCES]
    instances = []
    for _ in range(s.count(3)):
        ist = InstanceState(s.u(len(modules)), s.opt_str())
        for k in KINDS:
            sp = ist.space(k)
            for _ in range(s.count()):
                a = s.u()
                if a >= counts[k]:
                    raise s.fail(f"{k} address {a} out of range")
                sp.append(a)
        ist.elem_dropped = s.bools()
        ist.data_dropped = s.bools()
        instances.append(ist)
    s.done()

    s = sections[SEC_TABLES]
    tables = []
    total = 0
    for _ in range(s.count(2)):
        size = s.u(limits.max_table_elements)
        total += size
        if total > limits.max_table_elements:
            raise s.fail(f"tables hold more than this reader's limit of {limits.max_table_elements} "
                         "elements (--max-table-elements)")
        elems: List[Value] = []
        for _ in range(s.count(2)):
            n = s.u(size - len(elems))
            elems.extend([s.value()] * n)
        if len(elems) != size:
            raise s.fail("table runs do not add up to its size")
        tables.append(elems)
    s.done()

    s = sections[SEC_MEMORIES]
    mems = []
    for _ in range(s.count(2)):
        ms = MemoryState(s.u(1 << 48))
        last = -1
        for _ in range(s.count(PAGE_SIZE + 1)):
            if not ms.pages:
                raise s.fail("page of an empty memory")
            p = s.u(ms.pages - 1)
            if p <= last:
                raise s.fail("memory pages out of order")
            last = p
            ms.nonzero[p] = bytes(s.raw(PAGE_SIZE))
        mems.append(ms)
    s.done()

    s = sections[SEC_GLOBALS]
    globs = s.values()
    s.done()

    s = sections[SEC_HOSTLOG]
    log = []
    for _ in range(s.count(2)):
        name = s.str_()
        log.append((name, s.values()))
    s.done()

    thread: Optional[ThreadState] = None
    ts = sections.get(SEC_THREAD)
    if ts is not None:
        code = ts.byte()
        if code >= len(STATUSES):
            raise ts.fail("bad thread status")
        thread = ThreadState(STATUSES[code], ts.u(), ts.u(1 << 32))
        thread.args = ts.values()
        thread.results = ts.values()
        thread.trap = ts.opt_str()
        for _ in range(ts.count(5)):
            fr = FrameState(ts.u(1 << 32), ts.u(1 << 32))
            fr.locals = ts.values()
            fr.stack = ts.values()
            for _ in range(ts.count(5)):
                fr.labels.append(Label(ts.str_(), ts.s(), ts.u(1 << 32), ts.u(1 << 32), ts.u(1 << 32)))
            if version >= 2:
                for _ in range(ts.count(2)):
                    fr.caught.append((ts.u(1 << 32), ts.value()))
            thread.frames.append(fr)
        if version >= 2:
            has = ts.byte()
            if has > 1:
                raise ts.fail("bad exception flag")
            if has:
                thread.exception = ts.value()
        ts.done()

    names: Dict[int, str] = {}
    ns = sections.get(SEC_NAMES)
    if ns is not None:
        for _ in range(ns.count(2)):
            a = ns.u()
            names[a] = ns.str_()
        ns.done()

    state = State(config, modules, counts, hosts, instances, tables, mems, globs, log, thread, names)
    state.heap = _decode_heap(sections.get(SEC_HEAP), counts, limits)
    state.segments = _decode_segments(sections.get(SEC_SEGMENTS), len(instances))
    ws = sections.get(SEC_WASI)
    if ws is not None:
        state.wasi = decode_wasi(ws, limits)
    if len(tables) != counts["table"] or len(mems) != counts["memory"] or len(globs) != counts["global"]:
        raise SnapshotError("corrupt snapshot: tables/memories/globals disagree with the address counts")
    return state


def _decode_heap(s: Optional[_R], counts: Dict[str, int], limits: StoreLimits) -> List[HeapObject]:
    """Section 11.  The objects' fields together (each object at least 1, as :class:`Quota` charges them)
    are bounded by the reader's ``max_heap_fields``, checked before each object's fields are read."""
    heap: List[HeapObject] = []
    if s is None:
        return heap
    total = 0
    for _ in range(s.count(3)):
        code = s.byte()
        if code >= len(HEAP_KINDS):
            raise s.fail(f"heap[{len(heap)}]: bad object kind {code}")
        ob = HeapObject(HEAP_KINDS[code])
        if ob.kind == "exn":
            ob.tag = s.u(max(counts["tag"] - 1, 0))
        else:
            ob.type = (s.u(1 << 32), s.u(1 << 32))
        n = s.count()
        total += max(n, 1)
        if total > limits.max_heap_fields:
            raise s.fail(f"heap[{len(heap)}]: the heap objects hold more than this reader's limit of "
                         f"{limits.max_heap_fields} fields (--max-heap-fields)")
        ob.fields = [s.value() for _ in range(n)]
        heap.append(ob)
    s.done()
    return heap


def _decode_segments(s: Optional[_R], ninstances: int) -> List[Tuple[int, int, List[Value]]]:
    """Section 12."""
    out: List[Tuple[int, int, List[Value]]] = []
    if s is None:
        return out
    for _ in range(s.count(3)):
        out.append((s.u(max(ninstances - 1, 0)), s.u(1 << 32), s.values()))
    s.done()
    return out
