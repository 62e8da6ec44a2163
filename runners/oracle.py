"""How a native runtime's outcome is compared with the uninterrupted run (ARCHITECTURE.md, "Comparison
rules", native-runtime column).  One home for the rules, as small pure functions, so that the restorer
(:mod:`runners.native.restorer`), the CLI and the tests apply exactly the same ones.

Hosts (our own VM) are compared bit-exactly by :func:`vm.snapshot.cr.compare_outcomes`; targets differ
in three ways, and only these:

* **NaN payloads.**  The spec lets float *arithmetic* return any arithmetic (quiet) NaN, sign included,
  so x86 runtimes legitimately produce ``0xffc00000`` where our VM produced ``0x7fc00000``.  A NaN that
  is expected is therefore matched by a NaN when both are quiet (the value may come from arithmetic),
  or by any NaN when the target is not ``nan_exact`` (its floats went through host floats, which may
  quiet signalling NaNs).  A *signalling* expected NaN can only come from bit-preserving operations
  (const, load, reinterpret, abs/neg/copysign), so a nan_exact target must reproduce it exactly.  The
  same rule applies to the 4/8-byte float words of memories (a differing word that is a quiet NaN on
  both sides, at the same aligned position, is accepted; anything else is not).
* **Traps by kind only**, and a runtime's coarse report (``trap_candidates``) is accepted when the
  expected kind is among the candidates.
* **Inconclusive** outcomes (native stack overflow, timeouts, crashes, a module the runtime refuses)
  and an expected "call stack exhausted" (a resource limit, not semantics) are neither pass nor
  mismatch: :func:`compare_native` says ``inconclusive`` and the caller counts them apart.

References cannot be identified across runtimes: a reference compares as null / non-null.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

Value = Tuple[str, Any]

F32_EXP = 0x7F800000
F32_FRAC = 0x007FFFFF
F32_QUIET = 0x00400000
F64_EXP = 0x7FF0000000000000
F64_FRAC = 0x000FFFFFFFFFFFFF
F64_QUIET = 0x0008000000000000


def parse_value(text: str) -> Value:
    """Inverse of :func:`vm.snapshot.model.format_value` for what outcomes contain (``i32:7``,
    ``f32:0x7fc00000``, ``ref.null``, ``ref.func:3``, ``ref.extern:1``)."""
    if text == "ref.null":
        return ("ref.null", None)
    tag, _, x = text.partition(":")
    if tag in ("i32", "i64", "int"):
        return (tag, int(x))
    if tag in ("f32", "f64", "v128"):
        return (tag, int(x, 16))
    if tag.startswith("ref"):
        return (tag, x)
    raise ValueError(f"not a value: {text!r}")


def is_nan(v: Value) -> bool:
    tag, x = v
    if tag == "f32":
        return (x & F32_EXP) == F32_EXP and (x & F32_FRAC) != 0
    if tag == "f64":
        return (x & F64_EXP) == F64_EXP and (x & F64_FRAC) != 0
    return False


def is_quiet_nan(v: Value) -> bool:
    tag, x = v
    return is_nan(v) and bool(x & (F32_QUIET if tag == "f32" else F64_QUIET))


def is_ref(v: Value) -> bool:
    return v[0].startswith("ref")


def values_agree(expected: Value, actual: Value, nan_exact: bool = True) -> bool:
    """One value, with the NaN rule and null/non-null reference identity (see the module docstring)."""
    if is_ref(expected) or is_ref(actual):
        return is_ref(expected) and is_ref(actual) and \
            (expected[0] == "ref.null") == (actual[0] == "ref.null")
    if expected[0] != actual[0]:
        return False
    if expected[1] == actual[1]:
        return True
    if is_nan(expected) and is_nan(actual):
        return not nan_exact or (is_quiet_nan(expected) and is_quiet_nan(actual))
    return False


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


def compare_native(reference: Dict[str, Any], prefix_log: Sequence[Tuple[str, Sequence[Value]]],
                   outcome: Any, final_state: Any = None, manifest: Any = None) -> Tuple[str, List[str]]:
    """The verdict on one native run: ``("match"|"mismatch"|"inconclusive", differences or reason)``.

    ``reference``: the uninterrupted run's outcome dict (text values); ``prefix_log``: the snapshot's
    ``host_log`` (prints before the checkpoint; the resume module prints only the rest)."""
    exp_trap = reference.get("trap")
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
    return ("mismatch" if diffs else "match"), diffs


def _fmt1(v: Value) -> str:
    from vm.snapshot.model import format_value

    if v[0] == "ref":
        return "ref"
    try:
        return format_value(v)
    except Exception:  # pragma: no cover - odd tags are shown raw
        return repr(v)


def _fmt(vs: Sequence[Value]) -> str:
    return "[" + ", ".join(_fmt1(v) for v in vs) + "]"


def _fmt_call(c: Tuple[str, Sequence[Value]]) -> str:
    return f"{c[0]}({', '.join(_fmt1(v) for v in c[1])})"
