"""SIMD semantics (fixed-width ``v128`` and relaxed SIMD): the one numerics home of every v128 op.

A v128 value is a Python ``int`` in ``0 .. 2**128 - 1`` with lane 0 in the low bits (the snapshot
model's and the value codec's representation too), so the engine's operand stack, locals, globals and
snapshots need nothing new.  Lane helpers are shared (:mod:`.lanes`); the op tables are split by
concept — integer and bitwise lanes (:mod:`.ints`), float lanes and conversions (:mod:`.floats`),
relaxed SIMD (:mod:`.relaxed`) — and merged here into the tables the engine compiles from:

- :data:`OPS`: ``op -> (arity, fn)``; ``fn`` takes ``arity`` operands (v128 ints, or the scalar for
  ``splat`` and the shift count) and returns the result, like :data:`vm.exec.numerics.OPS`;
- :data:`LANE_OPS`: ``op -> make(lane) -> (arity, fn)`` for the ops with a lane immediate
  (``extract_lane``, ``replace_lane``);
- ``i8x16.shuffle`` takes its 16 lane indices as immediate: :func:`.ints.shuffle`.

Memory forms (``v128.load*``, lane loads/stores) are engine handlers (they need the memory).
"""

from __future__ import annotations

from typing import Callable, Dict, Tuple

__all__ = ["LANE_OPS", "OPS"]

Fn = Callable[..., int]
OPS: Dict[str, Tuple[int, Fn]] = {}
LANE_OPS: Dict[str, Callable[[int], Tuple[int, Fn]]] = {}


def _collect() -> None:
    from . import floats, ints, relaxed

    for mod in (ints, floats, relaxed):
        for name, entry in getattr(mod, "OPS", {}).items():
            if name in OPS:
                raise RuntimeError(f"SIMD op {name} defined twice ({mod.__name__})")
            OPS[name] = entry
        for name, make in getattr(mod, "LANE_OPS", {}).items():
            if name in LANE_OPS:
                raise RuntimeError(f"SIMD lane op {name} defined twice ({mod.__name__})")
            LANE_OPS[name] = make


_collect()
