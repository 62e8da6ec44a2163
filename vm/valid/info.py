"""What validation records about a module: the per-function metadata the engines and C/R rely on."""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Tuple

from ..types import FuncType, ValType


class ControlInfo(NamedTuple):
    """One entry of the control stack (the spec's control frame, minus the mutable bits).

    ``kind``: ``func``, ``block``, ``loop``, ``if``, ``else``, ``try_table``, ``try``, ``catch``,
    ``catch_all``.  ``start`` is the index of the opening instruction (-1 for the function frame).
    ``height`` is the operand height at entry *below* the params.
    """

    kind: str
    start: int
    params: Tuple[ValType, ...]
    results: Tuple[ValType, ...]
    height: int

    @property
    def label_types(self) -> Tuple[ValType, ...]:
        """Types a branch to this label carries (loops take their params)."""
        return self.params if self.kind == "loop" else self.results


class FuncInfo:
    """Validation metadata of one defined function; lists are indexed like ``func.body``.

    * ``heights[i]``: operand-stack height (values of this frame) before ``body[i]``; in dead
      (stack-polymorphic) code the height of the current control frame's base instead.
    * ``stack_types[i]``: operand types before ``body[i]``, bottom to top; ``"bot"`` marks an unknown
      type, which only occurs in dead code.  Equal tuples are shared.
    * ``reachable[i]``: False in dead code (after ``unreachable``/``br``/``return``/``throw``... up to
      the end of the enclosing block).
    * ``controls[i]``: the control stack before ``body[i]``, outermost (the function) first; shared.
    * ``block_end``: ``block``/``loop``/``if``/``try_table``/``try`` index -> its ``end`` (for a legacy
      ``try ... delegate`` the ``delegate``); ``block_else``: ``if`` index -> its ``else``;
      ``catches``: legacy ``try`` index -> its ``catch``/``catch_all`` indices.
    * ``max_height``: the largest operand height reached.
    """

    __slots__ = ("type", "local_types", "heights", "stack_types", "reachable", "controls",
                 "block_end", "block_else", "catches", "max_height")

    def __init__(self, type: FuncType, local_types: List[ValType]):
        self.type = type
        self.local_types = local_types
        self.heights: List[int] = []
        self.stack_types: List[tuple] = []
        self.reachable: List[bool] = []
        self.controls: List[Tuple[ControlInfo, ...]] = []
        self.block_end: Dict[int, int] = {}
        self.block_else: Dict[int, int] = {}
        #: legacy ``try`` index -> indices of its ``catch``/``catch_all`` instructions, in order
        self.catches: Dict[int, List[int]] = {}
        self.max_height = 0


class ModuleInfo:
    """Result of :func:`vm.valid.validate_module`.

    ``funcs``: one :class:`FuncInfo` per *defined* function.  ``type_keys``: canonical key of each
    type index (see :mod:`vm.valid.canon`).  ``refs``: function indices declared for ``ref.func``.
    """

    def __init__(self, funcs: List[FuncInfo], type_keys: list, refs: frozenset):
        self.funcs = funcs
        self.type_keys = type_keys
        self.refs = refs
