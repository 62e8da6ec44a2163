"""The VM's front door: bytes → decoded, validated module → store → instance.

Everything above ``vm/`` creates stores here (:class:`Store`) and loads modules here
(:func:`load_module`), so there is one place that decides which engine a store runs and one module
cache."""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple, Optional, Sequence

from .binary import decode_module
from .module import Module
from .runtime import ModuleInst, Store
from .valid import validate_module


class LoadedModule(NamedTuple):
    module: Module
    info: Any  # vm.valid.ModuleInfo
    sha256: str
    data: bytes


def load_module(data: bytes) -> LoadedModule:
    """Decode and validate; raises MalformedModule / InvalidModule / Unsupported."""
    m = decode_module(data)
    info = validate_module(m)
    return LoadedModule(m, info, hashlib.sha256(data).hexdigest(), bytes(data))


def instantiate(store: Store, data: bytes, imports: Optional[Sequence[Any]] = None) -> ModuleInst:
    lm = load_module(data)
    return store.instantiate(lm.module, lm.info, list(imports or []), lm.sha256)


__all__ = ["LoadedModule", "Store", "instantiate", "load_module"]
