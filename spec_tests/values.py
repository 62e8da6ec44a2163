"""Script values: JSON (wast2json layout) → runtime values, strict result matching, and display.

Runtime value representation (the contract with ``vm.runtime``): i32/i64 unsigned ints, f32/f64 raw
bit patterns, v128 a 128-bit int with lane 0 in the low bits, null = ``None``, funcref = a FuncInst,
externref = ``ExternRef(n)``, other references = objects with a ``.kind`` (``"struct"``, ``"array"``,
``"i31"``, ``"host"``, ``"exn"``, ...).

Matching is *exact*: ints and floats bit for bit; NaN patterns only where the script says
``nan:canonical`` / ``nan:arithmetic`` (per lane for v128); reference patterns as in the reference
interpreter's ``(ref.func)``, ``(ref.extern)``, ``(ref.null)`` ... patterns.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

from vm.exec.numerics import is_arithmetic_nan, is_canonical_nan
from vm.values import format_value as vm_format_value
from vm.values import from_runtime

LANES = {"i8": (16, 8), "i16": (8, 16), "i32": (4, 32), "i64": (2, 64), "f32": (4, 32), "f64": (2, 64)}

# Reference-type names as wast2json spells them → (heap kind, null-only?)
REF_TYPES = {
    "funcref": "func", "externref": "extern", "anyref": "any", "eqref": "eq", "i31ref": "i31",
    "structref": "struct", "arrayref": "array", "exnref": "exn",
    "nullref": "none", "nullfuncref": "nofunc", "nullexternref": "noextern", "nullexnref": "noexn",
    "refnull": None,
}


class ScriptValueError(Exception):
    """A value in the script that the runner does not understand (a runner-side failure)."""


class Hooks:
    """What value conversion needs from the engine: how to build extern/host refs, what a func is."""

    def __init__(
        self,
        extern_ref: Callable[[int], Any],
        host_ref: Callable[[int], Any],
        is_func: Callable[[Any], bool],
    ):
        self.extern_ref = extern_ref
        self.host_ref = host_ref
        self.is_func = is_func


def _int(s: str, bits: int) -> int:
    return int(s, 10) & ((1 << bits) - 1)


def parse_value(v: Dict[str, Any], hooks: Hooks) -> Any:
    """An argument value (no patterns allowed)."""
    t = v["type"]
    val = v.get("value")
    if t in ("i32", "f32"):
        return _int(val, 32)
    if t in ("i64", "f64"):
        return _int(val, 64)
    if t == "v128":
        n, bits = LANES[v["lane_type"]]
        out = 0
        for i, lane in enumerate(val):
            out |= _int(lane, bits) << (i * bits)
        return out
    if t in REF_TYPES:
        if val is None or val == "null":
            if val is None and t not in ("nullref", "nullfuncref", "nullexternref", "nullexnref", "refnull"):
                raise ScriptValueError(f"argument of type {t} without a value")
            return None
        n = int(val, 10)
        if t == "externref":
            return hooks.extern_ref(n)
        if t == "anyref":
            return hooks.host_ref(n)
        raise ScriptValueError(f"argument {t} {val} not supported")
    raise ScriptValueError(f"unknown value type {t!r}")


def _match_float(expected: str, actual: Any, width: int) -> bool:
    if not isinstance(actual, int) or isinstance(actual, bool):
        return False
    if expected == "nan:canonical":
        return is_canonical_nan(actual, width)
    if expected == "nan:arithmetic":
        return is_arithmetic_nan(actual, width)
    return actual == _int(expected, width)


def _kind(x: Any) -> Optional[str]:
    return getattr(x, "kind", None)


def match_value(exp: Dict[str, Any], actual: Any, hooks: Hooks) -> bool:
    """Whether one result matches one expected value/pattern."""
    t = exp["type"]
    val = exp.get("value")
    if t == "either":
        return any(match_value(alt, actual, hooks) for alt in exp["values"])
    if t in ("i32", "i64"):
        return isinstance(actual, int) and not isinstance(actual, bool) and actual == _int(val, 32 if t == "i32" else 64)
    if t in ("f32", "f64"):
        return _match_float(val, actual, 32 if t == "f32" else 64)
    if t == "v128":
        if not isinstance(actual, int) or isinstance(actual, bool) or not 0 <= actual < (1 << 128):
            return False
        lt = exp["lane_type"]
        n, bits = LANES[lt]
        mask = (1 << bits) - 1
        for i, lane in enumerate(val):
            a = (actual >> (i * bits)) & mask
            if lt in ("f32", "f64"):
                if not _match_float(lane, a, bits):
                    return False
            elif a != _int(lane, bits):
                return False
        return True
    if t in REF_TYPES:
        return _match_ref(t, val, actual, hooks)
    raise ScriptValueError(f"unknown expected type {t!r}")


_NULL_ONLY = ("nullref", "nullfuncref", "nullexternref", "nullexnref", "refnull")


def _match_ref(t: str, val: Optional[str], actual: Any, hooks: Hooks) -> bool:
    if isinstance(actual, (int, float)):  # a number where a reference was expected
        return False
    if val == "null" or t in _NULL_ONLY:
        return actual is None
    if actual is None:
        return False
    if val is not None:  # a specific host reference
        n = int(val, 10)
        if t == "externref":
            return actual == hooks.extern_ref(n)
        if t == "anyref":
            return actual == hooks.host_ref(n)
        if t == "funcref":
            return hooks.is_func(actual)
        raise ScriptValueError(f"expected {t} {val} not supported")
    # patterns: (ref.func), (ref.extern), (ref.any), (ref.eq), (ref.i31), (ref.struct), (ref.array) ...
    k = _kind(actual)
    if t == "funcref":
        return hooks.is_func(actual)
    if t == "externref":
        return k == "extern"  # any non-null extern reference, including externalized internal ones
    if t == "anyref":
        return k in ("struct", "array", "i31", "host")
    if t == "eqref":
        return k in ("struct", "array", "i31")
    if t in ("i31ref", "structref", "arrayref", "exnref"):
        return k == t[:-3]
    return False


def match_results(expected: List[Dict[str, Any]], actual: List[Any], hooks: Hooks) -> Tuple[bool, str]:
    """All results match, and there are exactly as many as expected.  Second item: why not."""
    if len(actual) != len(expected):
        return False, f"expected {len(expected)} results, got {len(actual)}"
    for i, (e, a) in enumerate(zip(expected, actual)):
        if not match_value(e, a, hooks):
            return False, f"result {i} mismatch"
    return True, ""


# -- display ----------------------------------------------------------------------------------------
def format_expected(v: Dict[str, Any]) -> str:
    t = v["type"]
    if t == "either":
        return "either(" + ", ".join(format_expected(x) for x in v["values"]) + ")"
    val = v.get("value")
    if t == "v128":
        return f"v128:{v['lane_type']}x[{' '.join(val)}]"
    if t in ("f32", "f64") and val.startswith("nan:"):
        return f"{t}:{val}"  # a pattern, not a value
    if t in ("i32", "i64", "f32", "f64"):
        return vm_format_value((t, _int(val, 32 if t in ("i32", "f32") else 64)))
    if val is None:
        return f"{t}:{'null' if t in _NULL_ONLY else 'non-null'}"
    return f"{t}:{val}"


def format_value(x: Any, typ: Any = None) -> str:
    """A runtime value in the one text form (:mod:`vm.values`); ``typ`` is its Wasm type when known
    (without it an int is shown as a plain number: the runner then does not know what it is)."""
    if typ is None and isinstance(x, int) and not isinstance(x, bool):
        return str(x)
    if isinstance(x, bool) or isinstance(x, float):
        return repr(x)
    try:
        return vm_format_value(from_runtime(typ, x))
    except ValueError:
        return repr(x)
