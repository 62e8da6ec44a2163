"""Store state, instances and host modules (no engine: ``vm.exec.store.Store`` runs code)."""

from .heap import ArrayInst, ExnInst, HostRef, I31Ref, StructInst
from .limits import DEFAULT_LIMITS, StoreLimits
from .objects import ExternRef, FuncInst, GlobalInst, MemInst, ModuleInst, TableInst, TagInst
from .store import BaseStore

__all__ = ["DEFAULT_LIMITS", "StoreLimits", "BaseStore", "ArrayInst", "ExnInst", "ExternRef", "FuncInst",
           "GlobalInst", "HostRef", "I31Ref", "MemInst", "ModuleInst", "StructInst", "TableInst", "TagInst"]
