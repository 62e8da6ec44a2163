"""Store, instances and host modules."""

from .objects import ExternRef, FuncInst, GlobalInst, MemInst, ModuleInst, TableInst, TagInst
from .store import Store

__all__ = ["Store", "ExternRef", "FuncInst", "GlobalInst", "MemInst", "ModuleInst", "TableInst", "TagInst"]
