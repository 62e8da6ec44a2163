"""How a native runtime's outcome is compared with the uninterrupted run (ARCHITECTURE.md, "Comparison
rules", native-runtime column).  One home for the rules, as small pure functions, so that the restorer
(:mod:`runners.native.restorer`), the CLI and the tests apply exactly the same ones.

Hosts (our own VM) are compared bit-exactly (:func:`compare_outcomes`); targets differ in three ways,
and only these:

* **NaN payloads.**  The spec lets float *arithmetic* return any arithmetic (quiet) NaN, sign included,
  so x86 runtimes legitimately produce ``0xffc00000`` where our VM produced ``0x7fc00000``.  A NaN that
  is expected is therefore matched by a NaN when both are quiet (the value may come from arithmetic),
  or by any NaN when the target is not ``nan_exact`` (its floats went through host floats, which may
  quiet signalling NaNs).  A *signalling* expected NaN can only come from bit-preserving operations
  (const, load, reinterpret, abs/neg/copysign), so a nan_exact target must reproduce it exactly.  The
  same rule applies to the 4/8-byte float words of memories (a differing word that is a quiet NaN on
  both sides, at the same aligned position, is accepted; anything else is not), and to the 32-/64-bit
  lanes of a v128 (:func:`v128_lanes_agree`: a bare v128 does not say whether it is f32x4 or f64x2).
* **Traps by kind only**, and a runtime's coarse report (``trap_candidates``) is accepted when the
  expected kind is among the candidates.
* **Inconclusive** outcomes (native stack overflow, timeouts, crashes of the runtime's process, an
  uninterrupted run stopped by ``--fuel``/``--timeout``) and an
  expected "call stack exhausted" (a resource limit, not semantics) are neither pass nor mismatch:
  :func:`compare_native` says ``inconclusive`` and the caller counts them apart.  A module the runtime
  cannot take is ``not-applicable``; a module *we* made wrong (invalid, not fitting its manifest) is
  ``error``, never inconclusive.
* **Relaxed SIMD.**  The spec lets each implementation fix its own result of a relaxed SIMD op (fused or
  unfused ``madd``, what an out-of-range swizzle index or a NaN truncation gives, ...); our VM computes
  the spec's deterministic profile (docs/execution-model.md, "Relaxed SIMD"), an x86 target often
  another allowed one.  Such a result can flow anywhere (a lane extracted into an i32, a store, a
  branch), so when the module the target ran contains relaxed SIMD instructions a difference is
  ``inconclusive`` with the differences listed, never a mismatch (:func:`relaxed_simd_verdict`).
  Recomputing the allowed set would need our VM to run every combination of the targets' choices, and
  would still miss the mixed case: a run checkpointed between two evaluations of the same relaxed op
  and resumed on a target has one result of each environment (the spec promises one fixed choice per
  environment, not across a migration).  A match, an error and not-applicable are unaffected.

References cannot be identified across runtimes: a reference compares as null / non-null.
"""

from __future__ import annotations

import base64
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from vm.snapshot import faults as _faults
from vm.values import Value, format_value, is_nan, is_quiet_nan, is_ref, parse_value

#: the fields of an outcome dict (``vm.snapshot.Outcome.to_dict``) that hosts must reproduce exactly
#: (``stopped`` too: callers judge a stopped side first, :func:`compare_stopped`, but a bare comparison
#: must never call a stopped run equal to a finished one)
OUTCOME_FIELDS = ("results", "trap", "instructions", "host_log", "state_digest", "stopped", "wasi")
#: the fields of a WASI outcome (``Outcome.wasi``, :meth:`vm.runtime.wasi.WasiState.summary`), in report order
WASI_FIELDS = ("exit_code", "stdout", "stderr", "files")


# --------------------------------------------------------------------------- stopped runs (any side)
def compare_stopped(expected: Dict[str, Any], actual: Dict[str, Any]) -> Optional[Tuple[str, str]]:
    """The verdict when a limit stopped either side (outcome field ``stopped``, :data:`vm.errors.STOP_KINDS`),
    or None when neither was stopped (compare them as usual).

    A stopped run did not finish, so it says nothing about the result: ``("inconclusive", why)``.  One
    case is decided all the same, because both runs are deterministic: a side that was stopped after
    retiring **more** instructions than the other side's whole finished run has already gone somewhere
    the other never went (``("mismatch", difference)``).  That is how a restore that loops forever (a
    corrupted loop counter) is a divergence that replays: its fuel is more than the reference needed
    (:func:`runners.hosts.instruction_cap`), and the rule holds for ``timeout`` too."""
    stops = [(name, o) for name, o in (("reference", expected), ("restored", actual)) if o.get("stopped")]
    if not stops:
        return None
    if len(stops) == 1:
        name, o = stops[0]
        other = actual if o is expected else expected
        n, total = o.get("instructions"), other.get("instructions")
        if isinstance(n, int) and isinstance(total, int) and n > total:
            return "mismatch", (f"instructions: the {name} run retired {n} without ending ({o['stopped']}), "
                                f"the other ended after {total}")
    why = ", ".join(f"the {name} run was stopped ({o['stopped']} after {o.get('instructions')} instructions)"
                    for name, o in stops)
    return "inconclusive", why


# ------------------------------------------------------------------------------------- hosts: bit-exact
def compare_outcomes(expected: Dict[str, Any], actual: Dict[str, Any]) -> List[str]:
    """Our own VM restored anywhere (another engine, another Python) must give the uninterrupted run's
    outcome to the bit: results, trap, instruction count, host log and final-state digest.  One line per
    differing field (empty: identical)."""
    out = []
    fields = OUTCOME_FIELDS
    if _faults.ACTIVE:  # deliberate bugs for `wcr selftest` only (vm/snapshot/faults.py)
        fields = _faults.oracle_fields(fields)
    for f in fields:
        a, b = expected.get(f), actual.get(f)
        if a == b:
            continue
        if f == "wasi" and isinstance(a, dict) and isinstance(b, dict):
            out += compare_wasi_outcomes(a, b)
        elif f == "host_log" and isinstance(a, list) and isinstance(b, list):
            i = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            out.append(f"host_log differs at entry {i}: expected {a[i:i + 1]}, got {b[i:i + 1]} "
                       f"(lengths {len(a)} / {len(b)})")
        else:
            out.append(f"{f}: expected {a!r}, got {b!r}")
    return out


# ------------------------------------------------------------------------------------- WASI programs
def compare_wasi_outcomes(expected: Dict[str, Any], actual: Dict[str, Any]) -> List[str]:
    """Two WASI outcomes (``Outcome.wasi`` dicts: exit code, stdout/stderr base64, files digest), to the
    bit: one line per differing field, output by its first differing byte."""
    out = []
    for f in WASI_FIELDS:
        a, b = expected.get(f), actual.get(f)
        if a == b:
            continue
        if f in ("stdout", "stderr") and isinstance(a, str) and isinstance(b, str):
            out.append(first_byte_diff(f"wasi.{f}", _b64(a), _b64(b)))
        else:
            out.append(f"wasi.{f}: expected {a!r}, got {b!r}")
    return out


def first_byte_diff(what: str, expected: bytes, actual: bytes) -> str:
    """``what`` differs at its first differing byte (or in length), with a few bytes of each side."""
    i = next((i for i, (x, y) in enumerate(zip(expected, actual)) if x != y), min(len(expected), len(actual)))
    return (f"{what} differs at byte {i}: expected {expected[i:i + 16]!r}, got {actual[i:i + 16]!r} "
            f"(lengths {len(expected)} / {len(actual)})")


def compare_wasi(reference: Optional[Dict[str, Any]], prefix: Any, got: Optional[Dict[str, Any]]) -> List[str]:
    """A WASI program resumed on a native target: ``reference`` is the uninterrupted run's
    ``Outcome.wasi``; ``prefix`` the snapshot's WASI state (``State.wasi``: its ``stdout``/``stderr``
    bytes are what the program wrote before the checkpoint; None: nothing); ``got`` the target's own
    ``{"exit_code", "stdout", "stderr" (base64, only what it wrote after the restore), "files"}``.
    Equal when the exit codes agree, stdout/stderr equal the prefix followed by the target's output,
    and the files digests agree (one line per difference; empty: equal).  A target that reports no
    WASI outcome for a WASI reference is a difference, not a pass."""
    if reference is None:
        return [] if got is None else ["wasi: the reference is not a WASI program, the target reports WASI state"]
    if got is None:
        return ["wasi: the target reports no WASI outcome (exit code, output, files)"]
    return compare_wasi_outcomes(reference, wasi_with_prefix(prefix, got))


def wasi_with_prefix(prefix: Any, got: Dict[str, Any]) -> Dict[str, Any]:
    """A target's WASI outcome as the whole program's: ``prefix`` (``State.wasi`` of the snapshot it
    resumed, or None) supplies what was written to stdout/stderr before the checkpoint."""
    full = dict(got)
    for f in ("stdout", "stderr"):
        before = bytes(getattr(prefix, f, b"") or b"") if prefix is not None else b""
        full[f] = base64.b64encode(before + _b64(str(got.get(f) or ""))).decode("ascii")
    return full


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        return text.encode("utf-8", "backslashreplace")


# ------------------------------------------------------------------------ targets: the native rules
def values_agree(expected: Value, actual: Value, nan_exact: bool = True) -> bool:
    """One value, with the NaN rule and null/non-null reference identity (see the module docstring)."""
    if is_ref(expected) or is_ref(actual):
        return is_ref(expected) and is_ref(actual) and \
            (expected[0] == "ref.null") == (actual[0] == "ref.null")
    if expected[0] != actual[0]:
        return False
    if expected[1] == actual[1]:
        return True
    if expected[0] == "v128":
        return v128_lanes_agree(expected[1], actual[1], nan_exact)
    if is_nan(expected) and is_nan(actual):
        return not nan_exact or (is_quiet_nan(expected) and is_quiet_nan(actual))
    return False


def v128_lanes_agree(expected: int, actual: int, nan_exact: bool = True) -> bool:
    """The NaN rule per lane for a v128 (lane 0 in the low bits).  A bare v128 does not say its lane
    shape, so the rule is the one for memory words (:func:`compare_memory`): every differing byte must
    lie in an aligned 4-byte (f32x4) or 8-byte (f64x2) lane that is a NaN on both sides and agrees by
    :func:`values_agree`.  Sound in the direction that matters: a float lane's legitimate arithmetic NaN
    is never a mismatch; the price is that an integer lane whose wrong value happens to be a quiet-NaN
    pattern where a quiet-NaN pattern was expected goes unnoticed (both sides hold bits in 0x7fc00000 ..
    0xffffffff of the same lane, which no integer bug tends to produce by chance)."""
    return compare_memory("v128", expected.to_bytes(16, "little"), actual.to_bytes(16, "little"),
                          nan_exact) is None


def compare_values(what: str, expected: Sequence[Value], actual: Sequence[Value],
                   nan_exact: bool = True) -> Optional[str]:
    """First difference between two value lists, or None."""
    if len(expected) != len(actual):
        return f"{what}: expected {_fmt(expected)}, got {_fmt(actual)}"
    for i, (e, a) in enumerate(zip(expected, actual)):
        if not values_agree(e, a, nan_exact):
            return f"{what}[{i}]: expected {_fmt1(e)}, got {_fmt1(a)}"
    return None


def compare_trap(expected: Optional[str], actual: Optional[str], candidates: Iterable[str] = ()) -> Optional[str]:
    """Trap by kind; ``candidates`` are the kinds a coarse runtime report stands for."""
    if expected is None and actual is None:
        return None
    if expected is None or actual is None:
        return f"trap: expected {expected!r}, got {actual!r}"
    cands = set(candidates) or {actual}
    # our VM, like the reference interpreter, may append details ("uninitialized element 0"): the kind
    # is the message's prefix, as in assert_trap
    if any(expected == c or expected.startswith(c + " ") for c in cands):
        return None
    return f"trap: expected {expected!r}, got {actual!r}" + \
        (f" (stands for {sorted(cands)})" if len(cands) > 1 else "")


def compare_host_log(expected: Sequence[Tuple[str, Sequence[Value]]],
                     actual: Sequence[Tuple[str, Sequence[Value]]], nan_exact: bool = True) -> Optional[str]:
    """Print calls in order: same names, arguments by :func:`values_agree`."""
    for i, (e, a) in enumerate(zip(expected, actual)):
        if e[0] != a[0] or compare_values("args", list(e[1]), list(a[1]), nan_exact) is not None:
            return f"host_log differs at entry {i}: expected {_fmt_call(e)}, got {_fmt_call(a)}"
    if len(expected) != len(actual):
        i = min(len(expected), len(actual))
        nxt = expected[i] if len(expected) > i else actual[i]
        return f"host_log lengths {len(expected)} / {len(actual)} (first extra: {_fmt_call(nxt)})"
    return None


def compare_memory(what: str, expected: bytes, actual: bytes, nan_exact: bool = True) -> Optional[str]:
    """Bytes identical, except aligned 4-/8-byte words that are quiet NaNs on both sides (or any NaNs
    on a non-nan_exact target): float arithmetic stored to memory may carry any arithmetic NaN."""
    if expected == actual:
        return None
    if len(expected) != len(actual):
        return f"{what}: size {len(expected)} expected, got {len(actual)}"
    i = 0
    n = len(expected)
    while i < n:
        if expected[i] == actual[i]:
            i += 1
            continue
        if not _nan_word_ok(expected, actual, i, nan_exact):
            lo = i & ~7
            return (f"{what}: byte {i} differs (expected {expected[lo:lo + 8].hex()}, "
                    f"got {actual[lo:lo + 8].hex()} at {lo})")
        i += 1
    return None


def _nan_word_ok(e: bytes, a: bytes, i: int, nan_exact: bool) -> bool:
    for size, tag in ((4, "f32"), (8, "f64")):
        lo = i - i % size
        if lo + size > len(e):
            continue
        ve = (tag, int.from_bytes(e[lo:lo + size], "little"))
        va = (tag, int.from_bytes(a[lo:lo + size], "little"))
        if is_nan(ve) and is_nan(va) and values_agree(ve, va, nan_exact):
            return True
    return False


def compare_table(what: str, expected: Sequence[Value], actual: Sequence[str]) -> Optional[str]:
    """A table as null/non-null marks (``"null"``/``"ref"``, what targets can observe)."""
    marks = ["null" if v[0] == "ref.null" else "ref" for v in expected]
    if len(marks) != len(actual):
        return f"{what}: {len(marks)} elements expected, got {len(actual)}"
    for i, (e, a) in enumerate(zip(marks, actual)):
        if e != a:
            return f"{what}[{i}]: expected {e}, got {a}"
    return None


def compare_final_state(expected: Any, manifest: Any, outcome: Any) -> List[str]:
    """Final memories/globals/tables.  ``expected``: a :class:`vm.snapshot.resume.ResumeOutcome` (index
    keyed) or None (nothing to compare); ``manifest``: the resume manifest (index → export name);
    ``outcome``: the :class:`runners.native.NativeOutcome`.  Whatever a target cannot read back (wasm3:
    tables; a memory it did not report) is skipped, never guessed."""
    if expected is None:
        return []
    out: List[str] = []
    for i, data in sorted(expected.memories.items()):
        name = manifest.memories.get(i)
        if name is None or name not in outcome.memories:
            continue
        d = compare_memory(f"memory {i}", data, outcome.memories[name], outcome.nan_exact)
        if d:
            out.append(d)
    for i, v in sorted(expected.globals.items()):
        name = manifest.globals.get(i)
        if name is None or name not in outcome.globals:
            continue
        if not values_agree(v, outcome.globals[name], outcome.nan_exact):
            out.append(f"global {i}: expected {_fmt1(v)}, got {_fmt1(outcome.globals[name])}")
    for i, elems in sorted(expected.tables.items()):
        name = manifest.tables.get(i)
        if name is None or name not in outcome.tables:
            continue
        d = compare_table(f"table {i}", elems, outcome.tables[name])
        if d:
            out.append(d)
    return out


def relaxed_simd_verdict(verdict: str, diffs: List[str], relaxed_simd: bool) -> Tuple[str, List[str]]:
    """A target's ``mismatch`` on a module with relaxed SIMD instructions (``relaxed_simd``: e.g.
    ``"relaxed-simd" in runners.native.features.module_features(module)``) is ``inconclusive``: the
    target may have chosen another result the spec allows (see the module docstring).  Every other
    verdict stands."""
    if not relaxed_simd or verdict != "mismatch":
        return verdict, diffs
    return "inconclusive", ["relaxed SIMD: the module runs relaxed SIMD instructions, whose results a target "
                            "may choose differently from our deterministic profile; differences: "
                            + "; ".join(diffs)]


def compare_native(reference: Dict[str, Any], prefix_log: Sequence[Tuple[str, Sequence[Value]]],
                   outcome: Any, final_state: Any = None, manifest: Any = None,
                   relaxed_simd: bool = False) -> Tuple[str, List[str]]:
    """The verdict on one native run: ``("match"|"mismatch"|"inconclusive"|"error"|"not-applicable",
    differences or reason)`` (``error``: the outcome says the module we handed over was wrong;
    ``not-applicable``: the runtime could not take it; ``inconclusive``: a resource limit).

    ``reference``: the uninterrupted run's outcome dict (text values); ``prefix_log``: the snapshot's
    ``host_log`` (prints before the checkpoint; the resume module prints only the rest);
    ``relaxed_simd``: the module the target ran contains relaxed SIMD instructions
    (:func:`relaxed_simd_verdict`)."""
    exp_trap = reference.get("trap")
    if getattr(outcome, "error", None):  # the module or manifest we handed over is wrong: our error
        return "error", [outcome.error]
    if getattr(outcome, "unsupported", None):  # the runtime cannot take the module: not applicable
        return "not-applicable", [outcome.unsupported]
    if reference.get("stopped"):  # the uninterrupted run did not finish: nothing to compare with
        return "inconclusive", [f"the uninterrupted run was stopped ({reference['stopped']})"]
    if outcome.inconclusive:
        return "inconclusive", [outcome.inconclusive]
    if exp_trap == "call stack exhausted":
        return "inconclusive", ["the uninterrupted run exhausted the call stack (a resource limit)"]
    diffs: List[str] = []
    d = compare_trap(exp_trap, outcome.trap, outcome.trap_candidates)
    if d:
        diffs.append(d)
    if exp_trap is None and outcome.trap is None:
        d = compare_values("results", [parse_value(x) for x in reference.get("results", [])],
                           list(outcome.results), outcome.nan_exact)
        if d:
            diffs.append(d)
    exp_log = [(n, [parse_value(x) for x in args]) for n, args in reference.get("host_log", [])]
    got_log = [(n, list(a)) for n, a in prefix_log] + [(n, list(a)) for n, a in outcome.host_log]
    d = compare_host_log(exp_log, got_log, outcome.nan_exact)
    if d:
        diffs.append(d)
    if manifest is not None:
        diffs += compare_final_state(final_state, manifest, outcome)
    return relaxed_simd_verdict("mismatch" if diffs else "match", diffs, relaxed_simd)


def _fmt1(v: Value) -> str:
    try:
        return format_value(v)
    except Exception:  # pragma: no cover - odd tags are shown raw
        return repr(v)


def _fmt(vs: Sequence[Value]) -> str:
    return "[" + ", ".join(_fmt1(v) for v in vs) + "]"


def _fmt_call(c: Tuple[str, Sequence[Value]]) -> str:
    return f"{c[0]}({', '.join(_fmt1(v) for v in c[1])})"


# ----------------------------------------------------------------- conformance: VM vs wasmtime, no C/R
def _conformant(e: Value, a: Value, deterministic: bool) -> bool:
    """One value of the conformance run.  wasmtime-py quiets f32 NaN payloads when floats cross into
    Python, so an f32 NaN compares by NaN-ness only; an f64 NaN keeps its bits and must match exactly
    when the case is deterministic (its NaNs canonicalised), else by NaN-ness."""
    if is_ref(e) or is_ref(a):
        return values_agree(e, a)
    if e[0] != a[0]:
        return False
    if is_nan(e) and is_nan(a):
        return e[1] == a[1] if (deterministic and e[0] == "f64") else True
    return e[1] == a[1]


def compare_conformance(vm: Any, wt: Any, deterministic: bool = True) -> Optional[str]:
    """The verdict on one conformance run (:class:`runners.conformance.RunOutcome` of our VM and of
    wasmtime): None when they agree, else the first difference.  Traps by kind (:func:`compare_trap`);
    the memory byte for byte (no float arithmetic result reaches memory unobserved in a conformance
    run: both engines ran the same code from the same state)."""
    if (vm.trap is None) != (wt.trap is None):
        return f"vm: {vm.trap or _fmt(vm.results or [])} / wasmtime: {wt.trap or _fmt(wt.results or [])}"
    if vm.trap is not None:
        d = compare_trap(vm.trap, wt.trap, wt.trap_candidates)
        if d:
            return d
    else:
        for i, (e, a) in enumerate(zip(vm.results, wt.results)):
            if not _conformant(e, a, deterministic):
                return f"result {i}: vm {_fmt1(e)} / wasmtime {_fmt1(a)}"
    if len(vm.log) != len(wt.log):
        return f"host log length: vm {len(vm.log)} / wasmtime {len(wt.log)}"
    for i, ((n1, a1), (n2, a2)) in enumerate(zip(vm.log, wt.log)):
        if n1 != n2 or len(a1) != len(a2) or not all(_conformant(x, y, deterministic) for x, y in zip(a1, a2)):
            return f"host log entry {i}: vm {_fmt_call((n1, a1))} / wasmtime {_fmt_call((n2, a2))}"
    for name, v in vm.globals.items():
        if name in wt.globals and not _conformant(v, wt.globals[name], deterministic):
            return f"global {name}: vm {_fmt1(v)} / wasmtime {_fmt1(wt.globals[name])}"
    if vm.memory is not None and wt.memory is not None and vm.memory != wt.memory:
        if len(vm.memory) != len(wt.memory):
            return f"memory size: vm {len(vm.memory)} / wasmtime {len(wt.memory)}"
        i = next(i for i in range(len(vm.memory)) if vm.memory[i] != wt.memory[i])
        return f"memory byte {i:#x}: vm {vm.memory[i]:#x} / wasmtime {wt.memory[i]:#x}"
    return _wasi_conformance(getattr(vm, "wasi", None), getattr(wt, "wasi", None))


def _wasi_conformance(vm: Optional[Dict[str, Any]], wt: Optional[Dict[str, Any]]) -> Optional[str]:
    """A WASI program's end on both sides (exit code, stdout, stderr, files digest): the first
    difference, or None."""
    if vm is None and wt is None:
        return None
    vm, wt = vm or {}, wt or {}
    for key in ("exit_code", "stdout", "stderr", "files"):
        if vm.get(key) != wt.get(key):
            a, b = vm.get(key), wt.get(key)
            if key in ("stdout", "stderr"):
                import base64

                a, b = (base64.b64decode(x or "")[:120] for x in (a, b))
            return f"wasi {key}: vm {a!r} / wasmtime {b!r}"
    return None
