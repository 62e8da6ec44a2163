"""The target interface: what a native runtime adapter implements (:class:`Target`) and what it returns
(:class:`NativeOutcome`), plus the one helper the adapters share to map their runtime's trap reports into
the closed vocabulary :data:`vm.errors.TRAP_KINDS` (:func:`classify`).

A target takes the converter's own manifest (:class:`vm.snapshot.resume.Manifest`: index → export name
of the memories, globals and tables to read back, the entry and its result types), so there is one
description of a resume module, made where the module is made.

Values are the canonical model's tagged tuples (:mod:`vm.values`): ``("i32", u)``, ``("i64", u)``
unsigned, ``("f32", bits)``, ``("f64", bits)``, ``("v128", u)``; references are ``("ref.null", None)``
or ``("ref", None)`` (a native runtime cannot tell us *which* function a reference denotes, only whether
it is null).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, List, Optional, Sequence, Tuple

from vm.errors import TIMEOUT, TRAP_KINDS
from vm.snapshot.resume import Manifest
from vm.values import Value

from .introspect import ModuleInfo
from .process import InvalidModule, Timeout, Unrunnable
from .validate import check_module

#: default wall-clock limit of one run (seconds); every subprocess is also bounded by it
DEFAULT_TIMEOUT = 20.0

#: how an adapter maps its runtime's trap messages: (substring, primary kind, every kind it may stand
#: for).  First match wins, so the more specific patterns come first.
TrapTable = Sequence[Tuple[str, str, Tuple[str, ...]]]


def classify(message: str, table: TrapTable) -> Tuple[Optional[str], Tuple[str, ...]]:
    """Spec trap kind (and alternatives) for a runtime's trap message by ``table``; (None, ()) when no
    entry matches (the outcome is then inconclusive, never a guessed kind)."""
    low = message.lower()
    for needle, kind, cands in table:
        if needle in low:
            return kind, cands
    return None, ()


@dataclass
class NativeOutcome:
    """What one native run produced, in wcr's representation.

    ``trap`` is the spec trap kind (one of :data:`vm.errors.TRAP_KINDS`) or None; when the runtime's
    report is coarser than the spec's kinds (wasm2c says "invalid call_indirect" for three different spec traps)
    ``trap_candidates`` lists every kind it is consistent with (the oracle should accept any of them);
    otherwise it is ``{trap}``.  ``trap_message`` is the runtime's own words.  Three reasons why a run
    says nothing about conformance, kept apart because they mean different things: ``inconclusive`` (a
    nondeterministic resource failure: native stack overflow that is not a spec trap, timeout, a crash
    of the runtime's process), ``unsupported`` (the runtime cannot take this module: a feature or a
    readback it lacks; not applicable) and ``error`` (the module or manifest *we* handed over is wrong:
    invalid, or not fitting its manifest; an error of wcr's).  ``nan_exact`` is False when float bits
    went through host floats (NaN payloads may have been quieted)."""

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
    unsupported: Optional[str] = None
    error: Optional[str] = None
    nan_exact: bool = True
    seconds: float = 0.0
    details: Dict[str, Any] = field(default_factory=dict)
    #: a WASI program's end on the target, shaped like :attr:`vm.snapshot.Outcome.wasi` (exit code, this
    #: run's stdout/stderr in base64, the sandbox's files digest: :class:`.sandbox.Sandbox`), else None
    wasi: Optional[Dict[str, Any]] = None

    @property
    def stopped(self) -> Optional[str]:
        """``"timeout"`` when the wall-clock limit ended the run (every adapter words that inconclusive
        reason ``"timeout..."``), else None.  Fuel does not translate to native engines: they are bounded
        by the clock only."""
        return TIMEOUT if (self.inconclusive or "").startswith("timeout") else None

    def set_trap(self, kind: Optional[str], message: str, candidates: Sequence[str] = ()) -> None:
        """Record a trap; an unmappable message makes the outcome inconclusive rather than guessed.  A
        kind outside :data:`vm.errors.TRAP_KINDS` is an adapter bug and raises ``ValueError``."""
        self.trap_message = message
        cands = frozenset(candidates) if candidates else (frozenset([kind]) if kind else frozenset())
        unknown = sorted((cands | ({kind} if kind else set())) - set(TRAP_KINDS))
        if unknown:
            raise ValueError(f"trap kinds outside vm.errors.TRAP_KINDS: {unknown}")
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
            "inconclusive": self.inconclusive, "unsupported": self.unsupported, "error": self.error,
            "nan_exact": self.nan_exact, "seconds": self.seconds,
            **({"wasi": self.wasi} if self.wasi is not None else {}),
        }

class Target:
    """One native runtime.  Subclasses set ``name`` and ``features`` and implement ``_available``,
    ``version`` and ``_run``.  ``features`` uses wcr's feature names: mvp, mutable-globals, sign-ext,
    sat-trunc, multi-value, bulk-memory, reference-types, simd, relaxed-simd, tail-call,
    extended-const, multi-memory, memory64, function-references, gc, exception-tags (tags, ``throw``),
    exceptions (``try_table``, ``throw_ref``, ``exnref``), legacy-exceptions (``try``/``catch``/
    ``delegate``/``rethrow``), host-references (host references of a state imported from ``wcr_host``),
    wasi (``wasi_snapshot_preview1`` imports, run in a :class:`.sandbox.Sandbox`)."""

    name: str = "?"
    features: FrozenSet[str] = frozenset()
    #: True when float bits never go through host floats in this target
    nan_exact: bool = True
    #: False when the target cannot run an original module from the start (:meth:`run_original`)
    baseline: bool = True
    #: True when the target runs a WASI program's original module from the start under its own WASI
    #: (a :class:`.sandbox.Sandbox` from a manifest whose ``wasi`` has no prologue status export)
    wasi_baseline: bool = False

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

    def run(self, wasm: bytes, manifest: Manifest, timeout: float = DEFAULT_TIMEOUT) -> NativeOutcome:
        """Run ``resume`` of ``wasm`` and read back what ``manifest`` names.  Never raises for anything
        the module does: an invalid module or a manifest that does not fit it is our ``error``, what
        the runtime cannot take is ``unsupported``, a timeout is ``inconclusive`` (see
        :class:`NativeOutcome`)."""
        t0 = time.perf_counter()
        out = NativeOutcome(self.name, nan_exact=self.nan_exact)
        try:
            info = ModuleInfo.from_wasm(bytes(wasm))
            problem = info.check(manifest)
            if problem:
                raise InvalidModule(f"module and manifest do not fit: {problem}")
            self._run(bytes(wasm), info, manifest, out, timeout)
        except InvalidModule as exc:
            out.error = f"wcr handed {self.name} a bad module: {exc}"
        except Unrunnable as exc:
            out.unsupported = f"{self.name} cannot run this module: {exc}"
        except Timeout as exc:
            out.inconclusive = f"timeout: {exc}"
        out.seconds = time.perf_counter() - t0
        return out

    def run_original(self, wasm: bytes, export: str, args: Sequence[Value],
                     timeout: float = DEFAULT_TIMEOUT) -> Optional[NativeOutcome]:
        """The blame baseline: instantiate the *original* module (spectest imports) and invoke ``export``
        with ``args`` from the start — no snapshot, nothing of the state converted.  ``None`` means "no
        baseline" (this target cannot give one; a mismatch then stays a C/R mismatch)."""
        outs = self.run_original_many([(wasm, export, args)], timeout)
        return outs[0]

    def run_original_many(self, jobs: Sequence[Tuple[Any, ...]],
                          timeout: float = DEFAULT_TIMEOUT) -> List[Optional[NativeOutcome]]:
        """:meth:`run_original` for a batch.  The default runs, through :meth:`run_many` (so a target's
        batching applies), the original module plus an appended zero-parameter export that calls
        ``export`` with ``args`` as constants and exports of its memories/globals/tables for reading
        back (:func:`.rewrite.with_entry`): the original code and initial state are the runtime's own
        to run.  Targets that cannot run it set ``baseline = False``.  A job may carry a fourth element,
        the :class:`vm.runtime.wasi.WasiConfig` of a WASI program (:attr:`runners.restore.Origin.wasi`):
        a target with ``wasi_baseline`` then runs it under its own WASI in a fresh sandbox made from that
        config (:func:`vm.snapshot.resume.wasi_part.fresh_run`) and fills ``.wasi``; any other target,
        or a WASI module without a config, gives an ``unsupported`` outcome saying why (no baseline)."""
        if not self.baseline:
            return [None] * len(jobs)
        from .rewrite import with_entry

        out: List[Optional[NativeOutcome]] = [None] * len(jobs)
        runs: List[Tuple[int, bytes, Manifest]] = []
        for i, (wasm, export, args, *rest) in enumerate(jobs):
            try:
                info = ModuleInfo.from_wasm(bytes(wasm))
                assert info.module is not None
                data, man = with_entry(info.module, export, args)
            except Unrunnable:  # an argument or an export we cannot express: no baseline
                continue
            try:
                man = self._wasi_manifest(man, info.module, rest[0] if rest else None)
            except Unrunnable as exc:  # no baseline, and the report says why
                out[i] = NativeOutcome(self.name, nan_exact=self.nan_exact, unsupported=str(exc))
                continue
            bad = check_module(data)
            if bad is not None:  # the wrapper is ours: an invalid one is our error, not the target's
                out[i] = NativeOutcome(self.name, nan_exact=self.nan_exact,
                                       error=f"invalid baseline wrapper: {bad[0]}: {bad[1]}")
                continue
            runs.append((i, data, man))
        if runs:
            for (i, _d, m), o in zip(runs, self.run_many([(d, m) for _i, d, m in runs], timeout)):
                o.details["manifest"] = m
                out[i] = o
        return out

    def _wasi_manifest(self, man: Manifest, module: Any, config: Any) -> Manifest:
        """The baseline manifest of a WASI program: ``wasi`` set to the fresh start of ``config``."""
        from vm.snapshot.resume.wasi_part import fresh_run, uses_wasi

        if not uses_wasi(module):
            return man
        if config is None:
            raise Unrunnable("a WASI program without its start configuration has no from-scratch run")
        if not self.wasi_baseline or "wasi" not in self.features:
            raise Unrunnable(f"{self.name} cannot run a WASI program's original module from the start "
                             "(only resume modules)")
        try:
            run = fresh_run(config, module)
        except Exception as exc:  # noqa: BLE001 - e.g. a host directory that cannot be read: no baseline
            raise Unrunnable(f"the WASI start: {type(exc).__name__}: {exc}") from exc
        return dataclasses.replace(man, wasi=run)

    def _run(self, wasm: bytes, info: ModuleInfo, man: Manifest, out: NativeOutcome, timeout: float) -> None:
        raise NotImplementedError

    def run_many(self, jobs: Sequence[Tuple[bytes, Manifest]], timeout: float = DEFAULT_TIMEOUT) -> List[NativeOutcome]:
        """:meth:`run` for each ``(wasm, manifest)``, in order.  Targets with a per-run start-up cost
        (a node process, a gcc compile) override this to amortise it over the batch; the timeout stays
        per module."""
        return [self.run(w, m, timeout) for w, m in jobs]

    def __repr__(self) -> str:
        return f"<native target {self.name}>"
