"""GC instructions (structs, arrays, i31, casts, extern conversions) for the reference engine.

Contract with :func:`vm.exec.engine.compile_function`: ``OPS[op](machine, inst, imm, i, branch)`` returns
the ``(handler, arg)`` pair of instruction ``i`` (``imm`` its immediate, ``inst`` the ModuleInst,
``branch(i, depth)`` the pair of a branch to label ``depth`` for ``br_on_cast``/``br_on_cast_fail``).
Handlers have the engine's signature ``handler(stack, locals, arg, pc) -> next_pc``.  Heap objects are
:mod:`vm.runtime.heap`'s.
"""

from __future__ import annotations

from typing import Any, Callable, Dict

OPS: Dict[str, Callable[..., Any]] = {}
