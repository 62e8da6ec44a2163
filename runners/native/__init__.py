"""Native targets: real WebAssembly runtimes that run a *resume module* and report what happened.

A resume module (made by :mod:`vm.snapshot.resume`) is a plain Wasm module that imports what the original
module imported (in practice the ``spectest`` host module) and exports ``resume``, a function without
parameters whose results are the rest of the execution's results, plus the memories/globals/tables a
:class:`ResumeManifest` names, so that the final state can be read back.  Each :class:`Target` runs such
a module on one runtime and returns a :class:`NativeOutcome` in wcr's own representation, which the
oracle compares against the uninterrupted run.

Values are the canonical model's tagged tuples (see :mod:`vm.snapshot.model`): ``("i32", u)``,
``("i64", u)`` unsigned, ``("f32", bits)``, ``("f64", bits)``, ``("v128", u)``; references are
``("ref.null", None)`` or ``("ref", None)`` (a native runtime cannot tell us *which* function a
reference denotes, only whether it is null).

Why bit-exactness needs care: runtimes hand floats to their host language as native floats, and some
conversions quiet signalling NaNs (wasmtime-py does it for f32, JS may too).  The wasmtime, v8 and
wabt targets therefore never let a float cross into the host: a small *shim* module in front of the
resume module turns every print's float arguments into integers (``i32.reinterpret_f32``), and a
*reader* module behind it calls ``resume`` and returns/prints results and globals as integer bits.
The wasm2c harness reads bits with ``memcpy``.  Only wasm3 (no module linking) reads f32/f64 through
Python floats: its outcomes say ``nan_exact=False`` so the oracle applies the NaN rule.

Public API: :class:`Target`, :class:`NativeOutcome`, :class:`ResumeManifest`, :data:`TRAP_KINDS`,
:func:`all_targets`, :func:`get_target`, :func:`describe`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

Value = Tuple[str, Any]

#: the spec's trap kinds (the reference interpreter's messages), the only values ``NativeOutcome.trap`` takes
TRAP_KINDS = (
    "unreachable",
    "integer divide by zero",
    "integer overflow",
    "invalid conversion to integer",
    "out of bounds memory access",
    "out of bounds table access",
    "undefined element",
    "uninitialized element",
    "indirect call type mismatch",
    "call stack exhausted",
    "null function reference",
)

#: the spectest print functions and their parameter types (what every target provides)
SPECTEST_PRINTS: Dict[str, Tuple[str, ...]] = {
    "print": (),
    "print_i32": ("i32",),
    "print_i64": ("i64",),
    "print_f32": ("f32",),
    "print_f64": ("f64",),
    "print_i32_f32": ("i32", "f32"),
    "print_f64_f64": ("f64", "f64"),
}
SPECTEST_GLOBALS: Dict[str, Value] = {
    "global_i32": ("i32", 666),
    "global_i64": ("i64", 666),
    "global_f32": ("f32", 0x4426A666),
    "global_f64": ("f64", 0x4084D4CCCCCCCCCD),
}

#: default wall-clock limit of one run (seconds); every subprocess is also bounded by it
DEFAULT_TIMEOUT = 20.0

@dataclass
class ResumeManifest:
    """What to read back after ``resume``: export names of memories, globals and tables, and the
    expected result types (checked against the module's own ``resume`` type when given).

    The targets take the exports' actual types from the module itself, so the manifest only has to
    *name* things.  :meth:`coerce` also accepts a plain dict with the same keys (what a JSON manifest
    or the resume generator may hand over) or ``None`` (read back everything named ``wcr:*``)."""

    memories: Tuple[str, ...] = ()
    globals: Tuple[str, ...] = ()
    tables: Tuple[str, ...] = ()
    results: Optional[Tuple[str, ...]] = None
    entry: str = "resume"

    @classmethod
    def coerce(cls, obj: Any, export_names: Sequence[Tuple[str, str]] = ()) -> ResumeManifest:
        """``obj``: a manifest, a dict, or None; ``export_names``: (name, kind) pairs of the module, used
        for None (every export called ``wcr:mem:*``/``wcr:global:*``/``wcr:table:*``)."""
        if isinstance(obj, ResumeManifest):
            return obj
        if obj is None:
            by_kind: Dict[str, List[str]] = {"memory": [], "global": [], "table": []}
            for name, kind in export_names:
                if name.startswith("wcr:") and kind in by_kind:
                    by_kind[kind].append(name)
            return cls(tuple(by_kind["memory"]), tuple(by_kind["global"]), tuple(by_kind["table"]))
        if isinstance(obj, Mapping):
            def names(key: str, alt: str) -> Tuple[str, ...]:
                v = obj.get(key, obj.get(alt, ()))
                if isinstance(v, Mapping):  # {index or name: export name} or {export name: type}
                    vals = list(v.values())
                    v = vals if all(isinstance(x, str) and ":" in x for x in vals) else list(v.keys())
                return tuple(str(x) for x in v)

            res = obj.get("results", obj.get("result_types"))
            return cls(names("memories", "mems"), names("globals", "global"), names("tables", "table"),
                       None if res is None else tuple(str(t) for t in res), str(obj.get("entry", "resume")))
        raise TypeError(f"not a resume manifest: {obj!r}")

@dataclass
class NativeOutcome:
    """What one native run produced, in wcr's representation.

    ``trap`` is the spec trap kind (one of :data:`TRAP_KINDS`) or None; when the runtime's report is
    coarser than the spec's kinds (wasm2c says "invalid call_indirect" for three different spec traps)
    ``trap_candidates`` lists every kind it is consistent with (the oracle should accept any of them);
    otherwise it is ``{trap}``.  ``trap_message`` is the runtime's own words.  ``inconclusive`` is set
    (with the reason) when the run says nothing about conformance: native stack overflow that is not a
    spec trap, timeout, a crash, a module the runtime cannot take.  ``nan_exact`` is False when float
    bits went through host floats (NaN payloads may have been quieted)."""

    target: str
    results: List[Value] = field(default_factory=list)
    trap: Optional[str] = None
    trap_candidates: FrozenSet[str] = frozenset()
    trap_message: Optional[str] = None
    host_log: List[Tuple[str, Tuple[Value, ...]]] = field(default_factory=list)
    memories: Dict[str, bytes] = field(default_factory=dict)
    globals: Dict[str, Value] = field(default_factory=dict)
    tables: Dict[str, List[str]] = field(default_factory=dict)
    inconclusive: Optional[str] = None
    nan_exact: bool = True
    seconds: float = 0.0
    details: Dict[str, Any] = field(default_factory=dict)

    def set_trap(self, kind: Optional[str], message: str, candidates: Sequence[str] = ()) -> None:
        """Record a trap; an unmappable message makes the outcome inconclusive rather than guessed."""
        self.trap_message = message
        cands = frozenset(candidates) if candidates else (frozenset([kind]) if kind else frozenset())
        if kind is None and not cands:
            self.inconclusive = f"unrecognised trap: {message}"
            return
        self.trap = kind if kind is not None else sorted(cands)[0]
        self.trap_candidates = cands
        if self.trap == "call stack exhausted":
            # Stack depth is a resource limit, not semantics: report it, but it is not a verdict.
            self.inconclusive = "call stack exhausted in the native runtime"

    def summary(self) -> Dict[str, Any]:
        """A JSON-friendly view (for reports and ``wcr targets``-style output)."""
        return {
            "target": self.target, "results": [list(v) for v in self.results], "trap": self.trap,
            "trap_candidates": sorted(self.trap_candidates), "trap_message": self.trap_message,
            "host_log": [[n, [list(a) for a in args]] for n, args in self.host_log],
            "memories": {k: len(v) for k, v in self.memories.items()},
            "globals": {k: list(v) for k, v in self.globals.items()}, "tables": self.tables,
            "inconclusive": self.inconclusive, "nan_exact": self.nan_exact, "seconds": self.seconds,
        }

class Target:
    """One native runtime.  Subclasses set ``name`` and ``features`` and implement ``_available``,
    ``version`` and ``_run``.  ``features`` uses wcr's feature names: mvp, mutable-globals, sign-ext,
    sat-trunc, multi-value, bulk-memory, reference-types, simd, relaxed-simd, tail-call,
    extended-const, multi-memory, memory64, function-references, gc, exceptions."""

    name: str = "?"
    features: FrozenSet[str] = frozenset()
    #: True when float bits never go through host floats in this target
    nan_exact: bool = True

    def available(self) -> Tuple[bool, str]:
        """(usable, reason): reason says what is missing (and how to install it) when not usable."""
        try:
            return self._available()
        except Exception as exc:  # a broken install must read as "missing", never crash a listing
            return False, f"{type(exc).__name__}: {exc}"

    def _available(self) -> Tuple[bool, str]:
        raise NotImplementedError

    def version(self) -> str:
        raise NotImplementedError

    def supports(self, needed: Sequence[str]) -> bool:
        """Whether every feature in ``needed`` is one this target declares."""
        return set(needed) <= set(self.features)

    def run(self, wasm: bytes, manifest: Any = None, timeout: float = DEFAULT_TIMEOUT) -> NativeOutcome:
        """Run ``resume`` of ``wasm`` and read back what ``manifest`` names.  Never raises for anything
        the module does: problems of the runtime or the module become ``inconclusive``."""
        import time

        from . import _common

        t0 = time.perf_counter()
        out = NativeOutcome(self.name, nan_exact=self.nan_exact)
        try:
            info = _common.ModuleInfo.from_wasm(bytes(wasm))
            man = ResumeManifest.coerce(manifest, [(e.name, e.kind) for e in info.exports])
            problem = info.check(man)
            if problem:
                out.inconclusive = f"not runnable: {problem}"
            else:
                self._run(bytes(wasm), info, man, out, timeout)
        except _common.Unrunnable as exc:
            out.inconclusive = f"{self.name} cannot run this module: {exc}"
        except _common.Timeout as exc:
            out.inconclusive = f"timeout: {exc}"
        out.seconds = time.perf_counter() - t0
        return out

    def _run(self, wasm: bytes, info: Any, man: ResumeManifest, out: NativeOutcome, timeout: float) -> None:
        raise NotImplementedError

    def run_many(self, jobs: Sequence[Tuple[bytes, Any]], timeout: float = DEFAULT_TIMEOUT) -> List[NativeOutcome]:
        """:meth:`run` for each ``(wasm, manifest)``, in order.  Targets with a per-run start-up cost
        (a node process, a gcc compile) override this to amortise it over the batch; the timeout stays
        per module."""
        return [self.run(w, m, timeout) for w, m in jobs]

    def __repr__(self) -> str:
        return f"<native target {self.name}>"

def all_targets() -> List[Target]:
    """Every native target wcr knows, available or not (ask each with :meth:`Target.available`)."""
    from .v8 import V8Target
    from .wabt import WabtTarget
    from .wasm2c import Wasm2cTarget
    from .wasm3 import Wasm3Target
    from .wasmtime import WasmtimeTarget

    return [WasmtimeTarget(), V8Target(), Wasm3Target(), WabtTarget(), Wasm2cTarget()]

def get_target(name: str) -> Target:
    for t in all_targets():
        if t.name == name:
            return t
    raise KeyError(f"unknown native target {name!r}; known: {', '.join(t.name for t in all_targets())}")

def describe() -> List[Dict[str, Any]]:
    """One row per target: name, available, reason (why missing), version, features; for ``wcr targets``."""
    rows = []
    for t in all_targets():
        ok, reason = t.available()
        try:
            ver = t.version() if ok else ""
        except Exception as exc:
            ver = f"? ({exc})"
        rows.append({"name": t.name, "available": ok, "reason": reason, "version": ver,
                     "features": sorted(t.features), "nan_exact": t.nan_exact})
    return rows

def format_describe(rows: Optional[List[Dict[str, Any]]] = None) -> str:
    """``describe()`` as a small text table."""
    rows = describe() if rows is None else rows
    lines = []
    for r in rows:
        status = "available" if r["available"] else "missing"
        lines.append(f"{r['name']:<9} {status:<9} {r['version'] or '-':<28} {r['reason']}")
        lines.append(f"{'':<9} features: {', '.join(r['features'])}")
    return "\n".join(lines)
