"""Store state, instances and host modules (no engine: ``vm.exec.store.Store`` runs code)."""

from .limits import DEFAULT_LIMITS, StoreLimits
from .objects import ExternRef, FuncInst, GlobalInst, MemInst, ModuleInst, TableInst, TagInst
from .store import BaseStore

__all__ = ["DEFAULT_LIMITS", "StoreLimits", "BaseStore", "ExternRef", "FuncInst", "GlobalInst", "MemInst", "ModuleInst", "TableInst", "TagInst"]
