"""The store that runs code: the engine-free store state of :mod:`vm.runtime.store` plus an engine.

``vm.api.Store`` is this class.  It adds what needs the engine: compiling functions when a module is
instantiated (an unsupported instruction makes the whole module unsupported), the start function, and
invocations.  The snapshot code drives the same engine through ``store.machine`` (start a thread, run it
to an instruction count, compile a restored frame's function).
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence

from ..module import Module
from ..runtime.limits import StoreLimits
from ..runtime.objects import FuncInst, ModuleInst
from ..runtime.store import BaseStore
from .budget import Budget
from .engine import Machine

__all__ = ["Store"]


class Store(BaseStore):
    """A set of instances sharing one engine (``reference``: :class:`vm.exec.engine.Machine`)."""

    def __init__(self, max_call_depth: Optional[int] = None, max_memory_pages: Optional[int] = None,
                 engine: str = "reference", limits: Optional[StoreLimits] = None):
        super().__init__(max_call_depth, max_memory_pages, engine, limits)
        self.machine = Machine(self)
        #: the limits of what this store runs by itself (:meth:`invoke`, start functions): None, or a
        #: running :class:`vm.exec.budget.Budget` a runner sets per command (``wcr spec``)
        self.budget: Optional[Budget] = None

    def prepare(self, funcs: Sequence[FuncInst]) -> None:
        """Compile eagerly (see :meth:`BaseStore.allocate`)."""
        for f in funcs:
            self.machine.ensure_compiled(f)

    def instantiate(self, module: Module, info: Any, imports: Sequence[Any], sha256: str = "",
                    allocated: Optional[Callable[[ModuleInst], None]] = None) -> ModuleInst:
        """Instantiate ``module`` (already validated; ``info`` is its ModuleInfo) with ``imports`` given
        as extern values in the order of ``module.imports``: allocate, run the active/declarative
        segments, then the start function.  ``allocated`` is called with the new instance before the
        segments run (WASI binds its memory there, so a start function can already call WASI)."""
        inst = self.allocate(module, info, imports, sha256)
        if allocated is not None:
            allocated(inst)
        self.initialize(inst)
        if module.start is not None:
            self.invoke(inst.funcs[module.start], [])
        return inst

    def invoke(self, func: FuncInst, args: Sequence[Any]) -> List[Any]:
        """Call ``func`` with ``args`` (runtime representation) and return its results.  Under a
        :attr:`budget` a run it stops raises :class:`vm.errors.Stopped` (never a trap)."""
        th = self.machine.start(func, list(args))
        try:
            if th.done:
                pass
            elif self.budget is None:
                self.machine.run(th)
            else:
                stop = self.budget.run(self.machine, th)
                if stop is not None:
                    raise self.budget.stopped(stop, th.count)
        finally:
            self.instructions = th.count
        return th.results or []
