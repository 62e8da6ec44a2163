"""(being written: see vm/exec/simd/__init__.py for the contract)"""

from __future__ import annotations

from typing import Callable, Dict, Tuple

OPS: Dict[str, Tuple[int, Callable[..., int]]] = {}
LANE_OPS: Dict[str, Callable[[int], Tuple[int, Callable[..., int]]]] = {}
