"""Exception handling (``throw``, ``throw_ref``, ``try_table``; legacy ``try``/``catch``/``delegate``/
``rethrow``) for the reference engine.

Contract with :func:`vm.exec.engine.compile_function`: ``OPS[op](machine, inst, imm, i, branch)`` returns
the ``(handler, arg)`` pair of instruction ``i``.  A throwing handler raises
:class:`vm.errors.WasmException` carrying a :class:`vm.runtime.heap.ExnInst`; the engine's run loop
searches the handlers of the frames from the top (the validator's control metadata at each frame's pc)
and continues at the handler, or lets the exception escape the invocation.
"""

from __future__ import annotations

from typing import Any, Callable, Dict

OPS: Dict[str, Callable[..., Any]] = {}
