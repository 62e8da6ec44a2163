"""The canonical state model of a checkpoint: plain data, independent of the engine's Python objects.

A :class:`State` is what a snapshot file holds.  It describes the store the way the spec does, as
*address tables*: every function, table, memory, global and tag reachable from the store's instances
gets an address (its position in the table of its kind, in order of first appearance while walking
``store.instances`` in creation order and each instance's index spaces in index order).  An instance is
then just the addresses of its index spaces, so an imported object is the *same address* as the
exporting instance's (sharing survives restore), and a reference value is an address, never a Python
object id.

Values are tagged tuples ``(tag, payload)`` (:data:`vm.values.Value`; their text form is
:func:`vm.values.format_value`) so that every value is self-describing and bit-exact:

======================  =================================================================
``("i32", u)``          unsigned 32-bit int
``("i64", u)``          unsigned 64-bit int
``("f32", bits)``       IEEE bit pattern (NaN payloads survive: never a Python float)
``("f64", bits)``       IEEE bit pattern
``("v128", u)``         128-bit unsigned int, lane 0 in the low bits
``("ref.null", None)``  a null reference (of any type: the type comes from the context)
``("ref.func", addr)``  function address
``("ref.extern", n)``   host reference ``ref.extern n`` (n: unsigned int)
``("int", u)``          an untyped unsigned int (host data whose Wasm type is unknown)
``("ref.i31", u)``      ``ref.i31`` of the unsigned 31-bit value u
``("ref.host", n)``     host reference inside the ``any`` hierarchy (``ref.host n`` of the scripts)
``("ref.struct", id)``  struct object: index into :attr:`State.heap`
``("ref.array", id)``   array object: index into :attr:`State.heap`
``("ref.exn", id)``     exception object: index into :attr:`State.heap`
``("ref.extern", v)``   ``extern.convert_any`` of the internal reference ``v`` (a tagged value)
======================  =================================================================

Heap objects have identity, so a value never holds one: it holds the object's id, and the heap section
(:class:`HeapObject`, only objects reachable from the store, the thread and the host log) holds each
object once, so sharing and cycles survive a restore.  Later proposals add tags (WASI state) and
sections; the codec keeps unknown *optional* sections skippable and refuses unknown *required* ones, so
old readers fail clearly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ..errors import WasmError
from ..values import NUM_BITS, Value

__all__ = [
    "DONE", "HEAP_KINDS", "KINDS", "NUM_BITS", "NUM_TAGS", "RUNNING", "STATUSES", "TRAPPED", "FrameState",
    "HeapObject", "HostObject", "WasiFd", "WasiInode", "WasiSnapshot",
    "InstanceState", "Label", "MemoryState", "SnapshotError", "State", "ThreadState", "Value",
]

#: the kinds of store objects, in the order address tables are listed everywhere
KINDS = ("func", "table", "memory", "global", "tag")
NUM_TAGS = ("i32", "i64", "f32", "f64", "v128")

#: the kinds of heap objects (:class:`HeapObject`), as in the value tags ``ref.struct``/``ref.array``/``ref.exn``
HEAP_KINDS = ("struct", "array", "exn")

RUNNING = "running"
DONE = "done"
TRAPPED = "trapped"
STATUSES = (RUNNING, DONE, TRAPPED)


class SnapshotError(WasmError):
    """A snapshot cannot be decoded or restored (corrupt, truncated, foreign version, wrong module,
    inconsistent with the module's validation metadata).  The CLI maps it to exit status 2."""


@dataclass
class HostObject:
    """A store object provided by a host module (e.g. ``spectest.memory``), re-created on restore by
    the host module's factory and looked up by ``(module, name)``."""

    kind: str
    addr: int
    module: str
    name: str


@dataclass
class InstanceState:
    """One module instance: which module (index into ``State.modules``), its registered name, the
    address of every entry of its index spaces (imports first, as in the module), and the dropped flags
    of its element and data segments."""

    module: int
    name: Optional[str]
    funcs: List[int] = field(default_factory=list)
    tables: List[int] = field(default_factory=list)
    mems: List[int] = field(default_factory=list)
    globals: List[int] = field(default_factory=list)
    tags: List[int] = field(default_factory=list)
    elem_dropped: List[bool] = field(default_factory=list)
    data_dropped: List[bool] = field(default_factory=list)

    def space(self, kind: str) -> List[int]:
        return {"func": self.funcs, "table": self.tables, "memory": self.mems,
                "global": self.globals, "tag": self.tags}[kind]


@dataclass
class MemoryState:
    """A memory: its size in pages and the contents of its non-zero pages only (page index → 64 KiB)."""

    pages: int
    nonzero: Dict[int, bytes] = field(default_factory=dict)


@dataclass
class HeapObject:
    """One object of the heap section (its id is its position in :attr:`State.heap`).

    ``kind`` ``struct``/``array``: ``type`` = (instance index, type index) naming its defined type (any
    instance whose module's type has the object's canonical type; restore checks that the type is a
    struct/array type and every field's value against the field's storage type); ``fields`` the field
    values or array elements, packed ``i8``/``i16`` as ``("i32", u)`` with u below 2**8 / 2**16.
    ``kind`` ``exn``: ``tag`` = tag address, ``fields`` the payload typed by the tag's parameters."""

    kind: str
    fields: List[Value] = field(default_factory=list)
    type: Optional[Tuple[int, int]] = None
    tag: Optional[int] = None


@dataclass
class Label:
    """One entry of a frame's label stack (outermost first).  ``start`` is the byte offset (like a pc)
    of the opening instruction, -1 for the function's own label; ``height`` is the operand height below
    the label's parameters.  Restore checks these against the validator's metadata at the pc."""

    kind: str
    start: int
    nparams: int
    nresults: int
    height: int


@dataclass
class FrameState:
    """One activation: function address, ``pc`` as the byte offset of the next instruction in the
    function's code entry (for a non-top frame: its pending call), locals, operand stack, labels, and
    ``caught``: for each legacy ``catch``/``catch_all`` block that encloses ``pc`` (outermost first), the
    byte offset of its ``try`` and the exception it caught (``("ref.exn", id)``: what ``rethrow`` throws).
    Which blocks enclose ``pc`` follows from the pc and the validator's metadata; restore checks it."""

    func: int
    pc: int
    locals: List[Value] = field(default_factory=list)
    stack: List[Value] = field(default_factory=list)
    labels: List[Label] = field(default_factory=list)
    caught: List[Tuple[int, Value]] = field(default_factory=list)


@dataclass
class ThreadState:
    """The invocation: status (``running``/``done``/``trapped``), the exact retired-instruction count,
    the entry function and arguments, frames bottom→top (running), results (done) or trap kind."""

    status: str
    count: int
    entry: int
    args: List[Value] = field(default_factory=list)
    frames: List[FrameState] = field(default_factory=list)
    results: List[Value] = field(default_factory=list)
    trap: Optional[str] = None
    #: trapped with ``uncaught exception``: the exception that escaped (``("ref.exn", id)``), else None
    exception: Optional[Value] = None


@dataclass
class WasiFd:
    """One open WASI file descriptor (:class:`vm.runtime.wasi.FdEntry`): number, kind (``stdin``/
    ``stdout``/``stderr``/``dir``/``file``), inode (-1 for the streams), preopen guest path or None,
    rights, fdflags and offset."""

    fd: int
    kind: str
    ino: int = -1
    preopen: Optional[str] = None
    rights_base: int = 0
    rights_inheriting: int = 0
    flags: int = 0
    offset: int = 0


@dataclass
class WasiInode:
    """One inode of the WASI filesystem (:class:`vm.runtime.wasi.Inode`), by number: ``file`` (data),
    ``dir`` (entries: (name, inode) sorted by name; parent) or ``symlink`` (target), and timestamps."""

    ino: int
    kind: str
    data: bytes = b""
    entries: List[Tuple[str, int]] = field(default_factory=list)
    target: str = ""
    parent: int = -1
    atim: int = 0
    mtim: int = 0
    ctim: int = 0


@dataclass
class WasiSnapshot:
    """The WASI state of the store (:class:`vm.runtime.wasi.WasiState`): args and env as bytes, the fd
    table, the filesystem (every inode; ``roots``: preopen guest path → inode), what was written to
    stdout/stderr so far, stdin and how much of it was read (the stdin fd's offset), the virtual clock,
    the random stream (seed, blocks used), the exit code once ``proc_exit`` ran, and ``memory``: the
    address of the memory the host functions are bound to (None before binding)."""

    args: List[bytes] = field(default_factory=list)
    env: List[bytes] = field(default_factory=list)
    fds: List[WasiFd] = field(default_factory=list)
    inodes: List[WasiInode] = field(default_factory=list)
    roots: List[Tuple[str, int]] = field(default_factory=list)
    next_ino: int = 1
    stdout: bytes = b""
    stderr: bytes = b""
    stdin: bytes = b""
    clock_ns: int = 0
    real_clock: bool = False
    seed: int = 0
    random_counter: int = 0
    exit_code: Optional[int] = None
    memory: Optional[int] = None


@dataclass
class State:
    """A whole checkpoint: store configuration, modules by sha256, address tables, host state, thread."""

    config: Dict[str, Any]
    modules: List[str]  # sha256 hex of each distinct module, referenced by InstanceState.module
    counts: Dict[str, int]  # number of addresses of each kind (KINDS)
    hosts: List[HostObject]
    instances: List[InstanceState]
    tables: List[List[Value]]  # elements of table address i
    mems: List[MemoryState]
    globals: List[Value]
    host_log: List[Tuple[str, List[Value]]]
    thread: Optional[ThreadState] = None
    #: optional debug info: function address → name (name section or export), for ``snapshot show``
    names: Dict[int, str] = field(default_factory=dict)
    #: GC and exception objects reachable from the store, the thread and the host log (ids = positions)
    heap: List[HeapObject] = field(default_factory=list)
    #: (instance index, element segment index, items) of every element segment that is not dropped and
    #: holds a heap object: restore uses these items instead of re-evaluating the segment's constant
    #: expressions, so ``table.init`` after a restore copies the very objects it copied before (``ref.eq``)
    segments: List[Tuple[int, int, List[Value]]] = field(default_factory=list)
    #: the WASI state of a store that runs a WASI program (codec section 13), else None
    wasi: Optional[WasiSnapshot] = None
