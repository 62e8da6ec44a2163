"""Store state, instances and host modules (no engine: ``vm.exec.store.Store`` runs code)."""

from .objects import ExternRef, FuncInst, GlobalInst, MemInst, ModuleInst, TableInst, TagInst
from .store import BaseStore

__all__ = ["BaseStore", "ExternRef", "FuncInst", "GlobalInst", "MemInst", "ModuleInst", "TableInst", "TagInst"]
