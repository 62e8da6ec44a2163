"""The VM's front door: bytes → decoded, validated module (cached) → store → instance.

Everything above ``vm/`` creates stores here (:class:`Store`), loads modules here (:func:`load_module`)
and instantiates them here (:func:`instantiate`), so there is one place that decides which engine a
store runs and one module cache.  ``vm.snapshot.restore`` loads through the same cache, so restoring the
same module again and again (the spec runner checks every invocation of a file against the same few
modules; a fuzz trial restores one module at many k) decodes and validates it once.
"""

from __future__ import annotations

import hashlib
import weakref
from collections import OrderedDict
from typing import Any, Dict, NamedTuple, Optional, Sequence, Union

from .binary import decode_module
from .errors import LinkError
from .exec.store import Store
from .module import Module
from .runtime import DEFAULT_LIMITS, ModuleInst, StoreLimits
from .runtime.spectest import spectest_exports
from .runtime.wasi import WASI_MODULE
from .runtime.wasi.preview1 import wasi_exports
from .valid import ModuleInfo, validate_module

__all__ = ["DEFAULT_LIMITS", "LoadedModule", "StoreLimits", "Store", "instantiate", "load_module"]

#: how many decoded modules :func:`load_module` keeps (least recently used ones are dropped)
CACHE_SIZE = 256


class LoadedModule(NamedTuple):
    """A decoded and validated module.  Shared between callers through the cache: the AST and the
    validator's metadata are never mutated by instantiation or execution, so sharing is safe."""

    module: Module
    info: ModuleInfo
    sha256: str
    data: bytes


_CACHE: OrderedDict[str, LoadedModule] = OrderedDict()


def load_module(data: bytes) -> LoadedModule:
    """Decode and validate ``data``, or return the cached result for the same sha256.  Raises the
    VM's errors unchanged (``MalformedModule`` / ``InvalidModule`` / ``Unsupported``); a module that
    fails is not cached."""
    data = bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    hit = _CACHE.get(sha)
    if hit is not None:
        _CACHE.move_to_end(sha)
        return hit
    m = decode_module(data)
    lm = LoadedModule(m, validate_module(m), sha, data)
    _CACHE[sha] = lm
    if len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return lm


# The spectest host module of each store, created on first use (its tables and memories are per store,
# as in the reference interpreter, which creates them once per script).
_SPECTEST: weakref.WeakKeyDictionary[Any, Dict[str, Any]] = weakref.WeakKeyDictionary()
# The WASI host functions of each store (they read ``store.wasi`` at each call).
_WASI: weakref.WeakKeyDictionary[Any, Dict[str, Any]] = weakref.WeakKeyDictionary()


def instantiate(store: Store, module: Union[bytes, LoadedModule], imports: Optional[Sequence[Any]] = None,
                name: Optional[str] = None) -> ModuleInst:
    """Instantiate module bytes (or a :class:`LoadedModule`) in ``store`` with ``ModuleInst.sha256``
    set (what a checkpoint needs).  ``imports`` are extern values in the order of the module's imports;
    without them each import resolves against the latest instance registered under its module name and
    the store's ``spectest`` host module, and ``wasi_snapshot_preview1`` imports against the store's
    WASI state (``store.wasi``; ``LinkError`` when none of them has it).  ``name`` registers the new
    instance under that name.  An instance that imports WASI becomes the one the WASI functions read and
    write the memory of (:meth:`vm.runtime.wasi.WasiState.bind`), before its start function runs."""
    lm = module if isinstance(module, LoadedModule) else load_module(module)
    if imports is None:
        imports = [_resolve_import(store, imp.module, imp.name) for imp in lm.module.imports]
    wasi = store.wasi is not None and any(imp.module == WASI_MODULE for imp in lm.module.imports)
    inst = store.instantiate(lm.module, lm.info, list(imports), lm.sha256, store.wasi.bind if wasi else None)
    if name is not None:
        inst.name = name
    return inst


def _resolve_import(store: Store, module: str, name: str) -> Any:
    src: Optional[Dict[str, Any]] = None
    for inst in reversed(store.instances):
        if inst.name == module:
            src = inst.exports
            break
    if src is None and module == "spectest":
        src = _SPECTEST.get(store)
        if src is None:
            src = _SPECTEST[store] = spectest_exports(store)
    if src is None and module == WASI_MODULE:
        if store.wasi is None:
            raise LinkError(f"unknown import {module}.{name} (a WASI program: run it with WASI, "
                            f"e.g. `wcr run PROGRAM.wasm --wasi`)")
        src = _WASI.get(store)
        if src is None:
            src = _WASI[store] = wasi_exports(store)
    if src is None or name not in src:
        raise LinkError(f"unknown import {module}.{name}")
    return src[name]
