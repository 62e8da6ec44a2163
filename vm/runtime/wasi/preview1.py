"""The ``wasi_snapshot_preview1`` host functions (helper wasi fills this in)."""
from __future__ import annotations

from typing import Any, Dict


def wasi_exports(store: Any) -> Dict[str, Any]:
    """The host-module factory: every preview-1 function bound to ``store.wasi``."""
    raise NotImplementedError
