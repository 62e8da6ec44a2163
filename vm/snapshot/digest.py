"""The final-state digest: one canonical hash of everything an invocation can change in a store.

Two digests live here, and they are deliberately *not* the same code:

* :func:`state_digest` (``store`` → ``"sha256:<hex>"``) is the **oracle's** digest: the final state of
  the uninterrupted run and of every restored run in our VM (``Outcome.state_digest``).  It walks the
  live store objects itself — instances in creation order, each instance's index spaces in index order,
  every memory's bytes, table's elements, global's value, the dropped flags, the host log, and the GC and
  exception objects reachable from them (and from an outcome's results), and the WASI state of a store
  that runs a WASI program (fd table, files by the canonical ``MemFS.digest``, output, clock, random
  stream, exit code) — with its own small encoding.  It imports nothing from the checkpoint path (``capture``, ``restore``, ``codec``):
  if it went through the capture code a checkpoint uses, a capture bug (a page treated as empty, a
  global not saved) would change the reference digest and the restored one alike and hide itself
  (ARCHITECTURE.md, "Comparison rules"; issue 9).  ``suite/tests/test_oracle_independence.py`` plants
  such capture bugs and fails if this digest stops seeing them.
* :func:`digest_of_state` (``State`` → ``"sha256:<hex>"``) hashes a *snapshot's* store sections in the
  codec's digest form (docs/snapshot-format.md, "State digest"); it is the snapshot view (what a
  snapshot file says), not an oracle, and its value differs from ``state_digest`` of the same store.

``state_digest`` is canonical: objects get addresses in walk order (Python ids are only used as
dictionary keys, never hashed), values are tagged bit patterns, integers are encoded whole (zigzag
LEB128, so an out-of-range runtime value is seen, not masked), and memories are streamed into the hash
page by page (all-zero pages are skipped with a ``startswith`` against a zero page: no copy of the
memory is made).  Module identities, registered names and the store configuration are not part of it
(they cannot change while running).  Heap objects get canonical ids in walk order (first met, fields
walked from a queue after the host log: no recursion, cycles and sharing encoded as ids) and are encoded
as kind, type (a hash of the canonical type key, or the tag's address) and field values, so a restore
that loses or changes a field, or splits a shared object in two, changes the digest.  :func:`instance_digest` is the same walk restricted to what one
instance can reach; the C/R session uses it to decide whether running the original invocation from
scratch is a valid baseline (the instance's state before the invocation equals a fresh instantiation).
"""

from __future__ import annotations

import hashlib
from typing import Any, Dict, List, Optional, Sequence

from ..binary.leb128 import encode_u
from ..exec.store import Store
from ..runtime.heap import ArrayInst, ExnInst, HostRef, I31Ref, StructInst
from ..runtime.objects import PAGE_SIZE, ExternRef, FuncInst, ModuleInst
from ..runtime.spectest import PRINTS
from ..values import NUM_BITS
from .model import State

__all__ = ["digest_of_state", "instance_digest", "state_digest"]

_ZERO_PAGE = bytes(PAGE_SIZE)
#: the index spaces walked, with their ModuleInst attribute (order is part of the encoding)
_SPACES = (("func", "funcs"), ("table", "tables"), ("memory", "mems"), ("global", "globals"), ("tag", "tags"))
#: one byte per value tag (the tag names are vm.values'; the byte values are this file's own)
_TAG = {"i32": 1, "i64": 2, "f32": 3, "f64": 4, "v128": 5, "ref.null": 6, "ref.func": 7, "ref.extern": 8,
        "int": 9, "foreign": 10, "other": 11, "i31": 12, "host": 13, "heap": 14, "extern-of": 15}
_HEAP_KIND = {StructInst: 1, ArrayInst: 2, ExnInst: 3}
#: section markers, so that two different shapes can never encode to the same stream
_SEC_INSTANCE, _SEC_TABLE, _SEC_MEMORY, _SEC_GLOBAL, _SEC_LOG, _SEC_END = b"I", b"T", b"M", b"G", b"L", b"E"
_SEC_ROOTS, _SEC_HEAP, _SEC_WASI = b"R", b"H", b"W"
#: id(canonical type key) -> (key, sha256 of its repr): a key is module-independent, its repr is stable
_TYPE_HASH: Dict[int, Any] = {}
_FLUSH = 1 << 16


class _Walk:
    """One canonical walk: the hash, a small write buffer, and the addresses of the objects met."""

    def __init__(self) -> None:
        self.h = hashlib.sha256()
        self.buf = bytearray()
        self.addr: Dict[str, Dict[int, int]] = {k: {} for k, _ in _SPACES}
        self.objs: Dict[str, List[Any]] = {k: [] for k, _ in _SPACES}
        self.heap_ids: Dict[int, int] = {}  # id(heap object) -> canonical id
        self.heap: List[Any] = []

    # -- encoding ------------------------------------------------------------------------------
    def u(self, n: int) -> None:
        """Zigzag LEB128 of any Python int (negative and huge values stay distinct)."""
        self.buf += encode_u((n << 1) if n >= 0 else ((-n << 1) - 1))

    def raw(self, data: Any) -> None:
        """Bytes (or a memoryview) straight into the hash, after what is buffered."""
        self.flush()
        self.h.update(data)

    def text(self, s: str) -> None:
        b = s.encode("utf-8", "surrogatepass")
        self.u(len(b))
        self.buf += b

    def flush(self) -> None:
        if self.buf:
            self.h.update(self.buf)
            self.buf = bytearray()

    def maybe_flush(self) -> None:
        if len(self.buf) >= _FLUSH:
            self.flush()

    # -- addresses -----------------------------------------------------------------------------
    def meet(self, kind: str, obj: Any) -> int:
        """The address of ``obj`` in its kind (the next free one the first time it is met)."""
        table = self.addr[kind]
        a = table.get(id(obj))
        if a is None:
            a = table[id(obj)] = len(self.objs[kind])
            self.objs[kind].append(obj)
        return a

    # -- values --------------------------------------------------------------------------------
    def value(self, t: Any, x: Any) -> None:
        """A runtime value of Wasm type ``t`` (``None`` when unknown): tag byte, then its bits."""
        if isinstance(t, str) and t in NUM_BITS and type(x) is int:
            self.buf.append(_TAG[t])
            self.u(x)
        else:
            self.ref(x)

    def ref(self, x: Any) -> None:
        buf = self.buf
        if x is None:
            buf.append(_TAG["ref.null"])
        elif isinstance(x, FuncInst):
            a = self.addr["func"].get(id(x))
            if a is None:  # a function outside the walked store: seen as such, never as an id
                buf.append(_TAG["foreign"])
                self.text(str(x.name or ""))
            else:
                buf.append(_TAG["ref.func"])
                self.u(a)
        elif isinstance(x, ExternRef):
            v = x.value
            if type(v) is int:
                buf.append(_TAG["ref.extern"])
                self.u(v)
            elif type(v) in _HEAP_KIND or type(v) is I31Ref:  # extern.convert_any of an internal reference
                buf.append(_TAG["extern-of"])
                self.ref(v)
            else:
                buf.append(_TAG["ref.extern"])
                self.text(type(v).__name__)
        elif type(x) in _HEAP_KIND:
            buf.append(_TAG["heap"])
            h = self.heap_ids.get(id(x))
            if h is None:
                h = self.heap_ids[id(x)] = len(self.heap)
                self.heap.append(x)
            self.u(h)
        elif type(x) in (I31Ref, HostRef):
            buf.append(_TAG["i31" if type(x) is I31Ref else "host"])
            self.value(None, x.value)
        elif type(x) is int:
            buf.append(_TAG["int"])
            self.u(x)
        else:  # a value kind this walk does not know yet (GC object, exception): its type, not its id
            buf.append(_TAG["other"])
            self.text(type(x).__name__)

    # -- store objects -------------------------------------------------------------------------
    def instance(self, inst: ModuleInst) -> None:
        """Index spaces (as addresses: sharing is part of the state) and dropped flags."""
        self.buf += _SEC_INSTANCE
        for kind, attr in _SPACES:
            space = getattr(inst, attr)
            self.u(len(space))
            for obj in space:
                self.u(self.meet(kind, obj))
        for flags in (inst.elem_dropped, inst.data_dropped):
            self.u(len(flags))
            self.buf += bytes(1 if f else 0 for f in flags)

    def objects(self) -> None:
        """Every table, memory and global met, in address order."""
        for t in self.objs["table"]:
            self.buf += _SEC_TABLE
            elems = t.elements
            self.u(len(elems))
            for x in elems:
                self.ref(x)
                self.maybe_flush()
        for m in self.objs["memory"]:
            self.memory(m.data)
        self.buf += _SEC_GLOBAL
        self.u(len(self.objs["global"]))
        for g in self.objs["global"]:
            self.value(g.type.type, g.value)
        self.u(len(self.objs["tag"]))

    def memory(self, data: bytearray) -> None:
        """Size, then (page number, page bytes) of each page that is not all zero; the bytes go into
        the hash through a memoryview (no copy)."""
        self.buf += _SEC_MEMORY
        n = len(data)
        self.u(n)
        with memoryview(data) as mv:
            for a in range(0, n, PAGE_SIZE):
                if data.find(_ZERO_PAGE, a, a + PAGE_SIZE) == a or (n - a < PAGE_SIZE and not any(mv[a:])):
                    continue
                self.u(a // PAGE_SIZE)
                self.raw(mv[a:a + PAGE_SIZE])
        self.u(n // PAGE_SIZE + 1)  # end marker: no page has this number

    def host_log(self, log: List[Any]) -> None:
        """Each print: its name and arguments, typed by the spectest declaration where there is one."""
        self.buf += _SEC_LOG
        self.u(len(log))
        for entry in log:
            name, args = str(entry[0]), entry[1]
            types = PRINTS.get(name)
            self.text(name)
            self.u(len(args))
            for i, x in enumerate(args):
                self.value(types[i] if types is not None and i < len(types) else None, x)
            self.maybe_flush()

    def roots(self, values: Sequence[Any]) -> None:
        """Extra values whose objects belong to the state (an outcome's results)."""
        if values:
            self.buf += _SEC_ROOTS
            self.u(len(values))
            for x in values:
                self.value(None, x)

    def heap_objects(self) -> None:
        """Every heap object met so far and every one its fields reach, in canonical id order (the list
        grows while it is walked: breadth-first, no recursion).  Nothing when there is none, so the
        digest of a store without GC objects is what it was before issue 12."""
        if not self.heap:
            return
        self.buf += _SEC_HEAP
        i = 0
        while i < len(self.heap):
            x = self.heap[i]
            i += 1
            self.buf.append(_HEAP_KIND[type(x)])
            if type(x) is ExnInst:
                self.u(self.addr["tag"].get(id(x.tag), -1))
                vals = x.payload
            else:
                self.buf += _type_hash(x.canon)
                vals = x.fields if type(x) is StructInst else x.elements
            self.u(len(vals))
            for v in vals:
                self.value(None, v)
            self.maybe_flush()
        self.u(len(self.heap))

    def wasi(self, ws: Any) -> None:
        """The WASI state of the store (``store.wasi``), read from the live object: args, env, the fd
        table, the files by the canonical ``MemFS.digest`` (by path: not inode numbers or times), the
        output and input so far, clock, random stream, exit code and the bound memory's address."""
        self.buf += _SEC_WASI
        for vec in (ws.args, ws.env):
            self.u(len(vec))
            for b in vec:
                self.u(len(b))
                self.buf += b
        self.u(len(ws.fds))
        for n in sorted(ws.fds):
            e = ws.fds[n]
            self.u(n)
            self.text(e.kind)
            for x in (e.ino, e.rights_base, e.rights_inheriting, e.flags, e.offset):
                self.u(x)
            self.text("" if e.preopen is None else "/" + e.preopen)  # "" and None stay distinct
        self.text(ws.fs.digest())
        for out in (ws.stdout, ws.stderr, ws.stdin):
            self.u(len(out))
            self.raw(bytes(out))
        for x in (ws.clock_ns, int(bool(ws.real_clock)), ws.seed, ws.random_counter,
                  -1 if ws.exit_code is None else ws.exit_code):
            self.u(x)
        mem = -1 if ws.memory is None else self.addr["memory"].get(id(ws.memory), -2)
        self.u(mem)

    def hexdigest(self) -> str:
        self.buf += _SEC_END
        self.flush()
        return "sha256:" + self.h.hexdigest()


def _type_hash(key: Any) -> bytes:
    """32 bytes naming a canonical type key (equal keys, equal bytes, in every process)."""
    got = _TYPE_HASH.get(id(key))
    if got is None or got[0] is not key:
        if len(_TYPE_HASH) > 100_000:
            _TYPE_HASH.clear()
        got = _TYPE_HASH[id(key)] = (key, hashlib.sha256(repr(key).encode("utf-8")).digest())
    return got[1]


def state_digest(store: Store, roots: Sequence[Any] = ()) -> str:
    """``"sha256:<hex>"`` over the live store (see the module docstring): what an invocation can change,
    walked independently of the checkpoint capture.  ``roots``: runtime values whose heap objects are part
    of what is compared (an outcome's results: a restore that rebuilt a result's object wrongly shows)."""
    w = _Walk()
    w.u(len(store.instances))
    for inst in store.instances:
        w.instance(inst)
    w.objects()
    w.host_log(store.host_log)
    w.roots(roots)
    w.heap_objects()
    ws = getattr(store, "wasi", None)
    if ws is not None:  # a store without WASI state digests as before
        w.wasi(ws)
    return w.hexdigest()


def instance_digest(inst: ModuleInst, log: Optional[List[Any]] = None) -> str:
    """The same walk over one instance and what its index spaces reach (imported objects included;
    a reference to a function of another instance is "foreign").  Two instances of the same module have
    equal digests exactly when running an export of either from the same arguments must do the same
    thing (given the same imported functions)."""
    w = _Walk()
    w.u(1)
    w.instance(inst)
    w.objects()
    w.host_log(log or [])
    w.heap_objects()
    return w.hexdigest()


def digest_of_state(state: State) -> str:
    """``"sha256:<hex>"`` over the store sections of a snapshot ``state`` in the codec's digest form
    (the snapshot view; its thread is ignored).  Not the oracle's digest: see the module docstring."""
    from .codec import digest_body_pieces  # the snapshot view only: state_digest never touches the codec

    h = hashlib.sha256()
    for piece in digest_body_pieces(state):
        h.update(piece)
    return "sha256:" + h.hexdigest()
