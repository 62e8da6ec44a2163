"""The one text form of typed values, and the conversions between the three representations a value has.

Every layer that shows or reads a value goes through here: outcome JSON (``wcr run``/``restore``, hosts,
targets), the CLI's arguments, bug reports, the YAML snapshot view, the oracles' messages.  A new value
kind (GC references, exception references) is added here once.

* **tagged** (the canonical model, :mod:`vm.snapshot.model`): ``(tag, payload)`` — ``("i32", u)``,
  ``("i64", u)`` unsigned; ``("f32", bits)``, ``("f64", bits)``; ``("v128", u)`` lane 0 in the low
  bits; ``("ref.null", None)``; ``("ref.func", addr)``; ``("ref.extern", n)``; ``("int", u)`` (host data
  of unknown Wasm type); ``("ref", None)`` a non-null reference whose identity the observer cannot know
  (what a native runtime reports); GC and exception references (issue 12): ``("ref.i31", u)``,
  ``("ref.host", n)``, ``("ref.struct", id)``, ``("ref.array", id)``, ``("ref.exn", id)`` (``id`` an index
  into a snapshot's or outcome's heap section) and ``("ref.extern", v)`` with ``v`` a tagged internal
  reference (``extern.convert_any``).  ``("ref.struct", None)`` etc.: such an object whose id is unknown.
* **runtime** (:mod:`vm.runtime`): unsigned ints / bit patterns, ``None`` for null, ``ExternRef(n)``,
  ``FuncInst`` objects, :mod:`vm.runtime.heap`'s ``I31Ref``/``HostRef``/``StructInst``/``ArrayInst``/``ExnInst``.
* **text**: ``i32:7``, ``i64:18446744073709551615`` (unsigned decimal), ``f32:0x7fc00000``,
  ``f64:0x3ff0000000000000``, ``v128:0x<32 hex digits>``, ``ref.null``, ``ref.func:3``, ``ref.extern:1``,
  ``ref.func`` (a function whose address is not known), ``ref``, ``int:5``, ``ref.i31:5``, ``ref.host:3``,
  ``ref.struct:0``, ``ref.array:2``, ``ref.exn:1``, ``ref.extern:ref.struct:0`` (an externalized internal
  reference: the inner value's text after ``ref.extern:``).

:func:`parse_value` reads the canonical text and, for people typing arguments, friendlier spellings:
negative or ``0x`` integers, decimal floats and ``nan``/``inf``, ``externref:N`` / ``externref:null`` /
``funcref:null``.  Whatever it cannot read raises :class:`ValueTextError` naming the text and why.
Standard library only.
"""

from __future__ import annotations

import math
import struct
from typing import Any, Callable, Optional, Tuple, cast

from .exec.numerics import is_nan as _is_nan_bits
from .exec.numerics import is_quiet_nan as _is_quiet_nan_bits

Value = Tuple[str, Any]

#: widths of the number/vector tags
NUM_BITS = {"i32": 32, "i64": 64, "f32": 32, "f64": 64, "v128": 128}
_HEX_WIDTH = {"f32": 8, "f64": 16, "v128": 32}
#: reference type names a person may write before ``:null`` / ``:N``
_REF_NAMES = ("externref", "funcref", "anyref", "eqref", "i31ref", "structref", "arrayref", "exnref",
              "nullref", "nullfuncref", "nullexternref", "nullexnref", "ref")
_F32_MAX = 3.4028235677973366e38
#: tags of heap objects (payload: an id into a heap section); ``ref.extern`` may wrap these and ``ref.i31``
HEAP_TAGS = ("ref.struct", "ref.array", "ref.exn")
#: the internal references ``extern.convert_any`` can wrap (``ref.extern:<one of these>``)
_INTERNAL_TAGS = ("ref.i31", "ref.struct", "ref.array")
_I31_LIMIT = 1 << 31


class ValueTextError(ValueError):
    """A value's text cannot be read (the message quotes it and says what is wrong)."""


# ------------------------------------------------------------------------------------------ text
def format_value(v: Value) -> str:
    """Tagged value → canonical text (see the module docstring)."""
    tag, x = v
    if tag in ("i32", "i64", "int"):
        return f"{tag}:{x}"
    if tag in _HEX_WIDTH:
        return f"{tag}:0x{x:0{_HEX_WIDTH[tag]}x}"
    if tag == "ref.null" or x is None:
        return tag
    if isinstance(x, tuple):  # ref.extern of an internal reference
        return f"{tag}:{format_value(x)}"
    return f"{tag}:{x}"


def parse_value(text: str, expect: Optional[str] = None) -> Value:
    """Text → tagged value.  ``expect``: the Wasm type (``"i32"``, ``"externref"``, a RefType's text)
    the value must have; a number of another type is refused, any reference fits a reference type."""
    s = str(text).strip()
    tag, sep, body = s.partition(":")
    if expect is not None and tag in NUM_BITS and expect in NUM_BITS and tag != expect:
        raise ValueTextError(f"value {s!r} is not of type {expect}")
    if not sep:
        if tag in ("ref.null", "ref", "ref.func", "ref.extern", "ref.i31", "ref.host") + HEAP_TAGS:
            v: Value = (tag, None)
            return _check_ref(s, v, expect)
        raise ValueTextError(f"value {s!r}: expected TYPE:VALUE (e.g. i32:7, f64:1.5, ref.null)")
    if not body:
        raise ValueTextError(f"value {s!r}: nothing after {tag + ':'!r}")
    try:
        if tag in ("i32", "i64"):
            return tag, _parse_int(s, body, NUM_BITS[tag], signed_ok=True)
        if tag == "int":
            return tag, _parse_int(s, body, 64, signed_ok=False)
        if tag in ("f32", "f64"):
            return tag, _parse_float(s, tag, body)
        if tag == "v128":
            return tag, _parse_int(s, body, 128, signed_ok=False)
        if tag == "ref.extern" and body.startswith("ref."):
            try:
                inner = parse_value(body)
            except ValueTextError as e:
                raise ValueTextError(f"value {s!r}: bad wrapped reference ({e})") from None
            if inner[0] not in _INTERNAL_TAGS:
                raise ValueTextError(f"value {s!r}: ref.extern can wrap only {', '.join(_INTERNAL_TAGS)}")
            return _check_ref(s, (tag, inner), expect)
        if tag in ("ref.func", "ref.extern", "ref.host") + HEAP_TAGS:
            return _check_ref(s, (tag, _parse_int(s, body, 64, signed_ok=False)), expect)
        if tag == "ref.i31":
            return _check_ref(s, (tag, _parse_int(s, body, 31, signed_ok=False)), expect)
        if tag in _REF_NAMES:
            if body == "null":
                return _check_ref(s, ("ref.null", None), expect)
            if tag == "externref":
                return _check_ref(s, ("ref.extern", _parse_int(s, body, 64, signed_ok=False)), expect)
            raise ValueTextError(f"value {s!r}: only null can be written for {tag}")
    except ValueTextError:
        raise
    except ValueError:
        raise ValueTextError(f"value {s!r}: bad {tag} value {body!r}") from None
    raise ValueTextError(f"value {s!r}: unknown type {tag!r} (i32 i64 f32 f64 v128 externref funcref ref.null "
                         "ref.i31 ref.host ref.struct ref.array ref.exn)")


def _check_ref(text: str, v: Value, expect: Optional[str]) -> Value:
    if expect is not None and expect in NUM_BITS:
        raise ValueTextError(f"value {text!r} is a reference where {expect} is expected")
    return v


def _parse_int(text: str, body: str, bits: int, signed_ok: bool) -> int:
    n = int(body, 0)
    lo = -(1 << (bits - 1)) if signed_ok else 0
    if not lo <= n < (1 << bits):
        raise ValueTextError(f"value {text!r}: out of range for {bits} bits")
    return n & ((1 << bits) - 1)


def _parse_float(text: str, tag: str, body: str) -> int:
    bits = NUM_BITS[tag]
    low = body.lower()
    if low.lstrip("+-").startswith("0x") and "." not in low and "p" not in low:
        if low.startswith("-"):
            raise ValueTextError(f"value {text!r}: a bit pattern cannot be negative")
        n = int(body, 16)
        if not 0 <= n < (1 << bits):
            raise ValueTextError(f"value {text!r}: bit pattern out of range for {tag}")
        return n
    x = float(body)
    if tag == "f32":
        if math.isfinite(x) and abs(x) > _F32_MAX:
            raise ValueTextError(f"value {text!r}: out of range for f32")
        return int(struct.unpack("<I", struct.pack("<f", x))[0])
    return int(struct.unpack("<Q", struct.pack("<d", x))[0])


# --------------------------------------------------------------------------------- representations
def to_runtime(v: Value) -> Any:
    """Tagged → runtime value (numbers, host references and i31; a ``ref.func`` or a heap object needs
    a store's address table or heap section and is resolved by restore, not here)."""
    tag, x = v
    if tag in NUM_BITS or tag == "int":
        return x
    if tag == "ref.null":
        return None
    if tag == "ref.extern" and (type(x) is int or (isinstance(x, tuple) and x[0] == "ref.i31")):
        from .runtime.objects import ExternRef

        return ExternRef(x if type(x) is int else to_runtime(cast(Value, x)))
    if tag in ("ref.i31", "ref.host") and type(x) is int:
        from .runtime.heap import HostRef, I31Ref

        return I31Ref(x) if tag == "ref.i31" else HostRef(x)
    raise ValueTextError(f"{format_value(v)} has no runtime value outside a store")


def from_runtime(t: Any, x: Any, func_addr: Optional[Callable[[Any], Optional[int]]] = None) -> Value:
    """Runtime value of Wasm type ``t`` → tagged.  ``func_addr`` maps a function to its address where
    there is an address table (a checkpoint); without one a function is ``("ref.func", None)``.  An
    ``i31``/host reference is its value (``("ref.i31", u)``, ``("ref.host", n)``); a heap object without a
    heap table is ``("ref.struct", None)`` (``ref.array``, ``ref.exn``); an externalized internal reference
    is ``("ref.extern", <its tagged value>)``."""
    if x is None:
        return ("ref.null", None)
    if isinstance(t, str) and t in NUM_BITS:
        if type(x) is not int:
            raise ValueTextError(f"{t} value {x!r} is not a bit pattern")
        return (t, x)
    kind = getattr(x, "kind", None)
    if kind == "extern":
        inner = getattr(x, "value", None)
        if getattr(inner, "kind", None) is not None:  # extern.convert_any of an internal reference
            return ("ref.extern", from_runtime(None, inner, func_addr))
        return ("ref.extern", inner)
    if kind == "func" or type(x).__name__ == "FuncInst":
        return ("ref.func", func_addr(x) if func_addr is not None else None)
    if kind in ("i31", "host"):  # no identity: the value is the whole reference
        return (f"ref.{kind}", x.value)
    return (f"ref.{kind}", None) if isinstance(kind, str) else ("ref", None)


# ------------------------------------------------------------------------------------------- NaNs
def is_nan(v: Value) -> bool:
    """A tagged f32/f64 NaN (the bit predicates live in :mod:`vm.exec.numerics`)."""
    tag, x = v
    return tag in ("f32", "f64") and _is_nan_bits(x, NUM_BITS[tag])


def is_quiet_nan(v: Value) -> bool:
    tag, x = v
    return tag in ("f32", "f64") and _is_quiet_nan_bits(x, NUM_BITS[tag])


def is_ref(v: Value) -> bool:
    return v[0].startswith("ref")
