"""What every phase of the resume-module generator shares: the error it raises, the manifest it
writes, and :class:`Builder` (the type section being extended and the constants it emits).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

from ...module import Instr, Module
from ...types import FuncType, RefType, SubType, ValType
from ...valid import ModuleInfo
from ..model import InstanceState, State, Value

RESUME_EXPORT = "resume"
PAGE = 65536
NUM_TAGS = ("i32", "i64", "f32", "f64", "v128")

#: every reason string :class:`NotConvertible` is raised with (stable: callers count them)
REASONS = (
    "no thread",                # a store-only state: nothing to resume
    "trapped",                  # the run had trapped with a kind that cannot be raised for certain here
    "multiple instances",       # an import from another Wasm instance that cannot be folded in
    "module missing",           # the module bytes of the snapshot were not given
    "module not decodable",     # the given bytes do not decode/validate
    "host externref",           # a host reference where its import cannot stand (a non-null constant)
    "unsupported value",        # unknown tags; heap objects that no Wasm code can rebuild (heap_part.py)
    "heap cycle",               # a cycle of heap objects through immutable or non-nullable fields only
    "unsupported type",         # e.g. a value slot of unknown type
    "legacy exceptions",        # a legacy catch whose exception cannot be rethrown by the rebuilt code
    "export name taken",        # the original already exports a `resume`
    "foreign function",         # a frame or reference to a function not in the instance
    "inconsistent state",       # the state does not fit the module (labels, heights, pcs)
    "memory shrink",            # an imported memory/table would have to be larger than the snapshot
    "wasi unlinked file",       # an open WASI fd whose inode has no path from a preopen (wasi_part.py)
    "wasi fd table",            # a WASI fd the target cannot have at that number (over a preopen, moved stdio)
    "wasi memory",              # no memory exported as `memory`, or too small for the prologue's scratch
)


class NotConvertible(Exception):
    """The state cannot be turned into a resume module.  ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason + (f": {detail}" if detail else ""))
        self.reason = reason
        self.detail = detail


@dataclass
class Manifest:
    """Where the oracle finds things in the resume module: export name of each memory/global/table
    index of the original index spaces, the entry export and the types ``resume`` returns."""

    entry: str = RESUME_EXPORT
    memories: Dict[int, str] = field(default_factory=dict)
    globals: Dict[int, str] = field(default_factory=dict)
    tables: Dict[int, str] = field(default_factory=dict)
    results: Tuple[ValType, ...] = ()
    imports: List[Tuple[str, str, str]] = field(default_factory=list)  # (module, name, kind)
    frames: int = 0  # number of specialized functions
    sha256: str = ""  # of the resume module bytes
    #: resume-module funcidx → original funcidx, only when functions of other instances were folded
    #: in (the index space is then renumbered); empty means "the same index"
    funcs: Dict[int, int] = field(default_factory=dict)
    #: for a program that imports WASI: what the target runs it with (:class:`.wasi_part.WasiRun`:
    #: the snapshot's files, preopens, args, env, the rest of stdin, the prologue's status export)
    wasi: Any = None


class ResumeModule(NamedTuple):
    bytes: bytes
    module: Module
    manifest: Manifest


def end() -> Instr:
    return Instr("end")


def const_offset(is64: bool, off: int) -> List[Instr]:
    """The constant offset expression of an active segment."""
    return [Instr("i64.const" if is64 else "i32.const", off), end()]


class Builder:
    """The module under construction: the original module ``m`` (after folding), its validation
    metadata, the thread's instance as the state sees it, the extended type section, and every function
    a ``ref.func`` in a function body names (the only ones that need a declaration: exports, globals and
    kept segments declare themselves)."""

    def __init__(self, state: State, m: Module, info: ModuleInfo, ist: InstanceState,
                 modules: Optional[Dict[str, bytes]] = None):
        self.state = state
        self.modules = modules or {}
        self.m = m
        self.info = info
        self.ist = ist
        self.types: List[SubType] = list(m.types)
        self.rec_sizes: List[int] = list(m.rec_sizes) if sum(m.rec_sizes) == len(m.types) else \
            [1] * len(m.types)
        self.nimp_funcs = len(m.imported("func"))
        self.fidx: Dict[int, int] = {}  # function address → function index in the instance
        for i, a in enumerate(self.ist.funcs):
            self.fidx.setdefault(a, i)
        self.refs: set = set()
        #: the heap part (:class:`.heap_part.HeapPart`, set by ``build``: it builds on this module)
        self.heap: Any = None
        #: the WASI part (:class:`.build._Wasi`) of a program that imports WASI, else None
        self.wasi: Any = None

    # -- types -----------------------------------------------------------------------------------
    def functype(self, params: Sequence[ValType], results: Sequence[ValType]) -> int:
        ft = FuncType(tuple(params), tuple(results))
        for i, st in enumerate(self.types):
            if st.comp == ft and st.final and not st.supers:
                return i
        self.types.append(SubType(True, (), ft))
        self.rec_sizes.append(1)
        return len(self.types) - 1

    def blocktype(self, params: Sequence[ValType], results: Sequence[ValType]) -> Any:
        if not params and not results:
            return None
        if not params and len(results) == 1:
            return results[0]
        return self.functype(params, results)

    # -- values ----------------------------------------------------------------------------------
    def value_code(self, v: Value, t: Any, in_const: bool = False) -> List[Instr]:
        """Instructions producing ``v`` (of static type ``t``): a constant, or for a heap object
        ``global.get`` of its helper global (:mod:`.heap_part`).  ``in_const``: the code is a constant
        expression (where an exception object cannot be read)."""
        tag, x = v
        if tag in NUM_TAGS:
            if t != tag:
                raise NotConvertible("inconsistent state", f"{tag} value where {t!r} is expected")
            return [Instr(f"{tag}.const", x)]
        if not isinstance(t, RefType):
            raise NotConvertible("unsupported type", repr(t))
        if tag == "ref.null":
            return [Instr("ref.null", t.heap)]
        if tag == "ref.func":
            i = self.fidx.get(x)
            if i is None:
                raise NotConvertible("foreign function", f"function address {x}")
            self.refs.add(i)
            return [Instr("ref.func", i)]
        code = self.heap.code(v, in_const, t.nullable)
        if code is None:
            raise NotConvertible("unsupported value", tag)
        return code

    def const_expr(self, v: Value, t: Any) -> List[Instr]:
        return self.value_code(v, t, in_const=True) + [end()]
