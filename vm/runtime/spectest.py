"""The ``spectest`` host module the official scripts import from.

Prints are recorded in ``store.host_log`` as ``(name, args)`` tuples (args in the runtime
representation, floats as bit patterns) instead of being written to stdout: the log is host state that
checkpoint/restore must carry and the oracle compares.
"""

from __future__ import annotations

from typing import Any, Dict

from ..types import F32, F64, FUNCREF, I32, I64, FuncType, GlobalType, Limits, RefType, TableType
from .objects import TableInst

_PRINTS = {
    "print": (),
    "print_i32": (I32,),
    "print_i64": (I64,),
    "print_f32": (F32,),
    "print_f64": (F64,),
    "print_i32_f32": (I32, F32),
    "print_f64_f64": (F64, F64),
}


def spectest_exports(store: Any) -> Dict[str, Any]:
    """Fresh spectest extern values bound to ``store`` (tables/memories are per store, as in the
    reference interpreter, which creates them once per script)."""
    out: Dict[str, Any] = {}
    for name, params in _PRINTS.items():
        def fn(args, _name=name):
            store.host_log.append((_name, tuple(args)))
            return []

        out[name] = store.host_func(name, FuncType(params, ()), fn)
    out["global_i32"] = store.host_global(GlobalType(I32, False), 666)
    out["global_i64"] = store.host_global(GlobalType(I64, False), 666)
    out["global_f32"] = store.host_global(GlobalType(F32, False), 0x4426A666)  # 666.6f
    out["global_f64"] = store.host_global(GlobalType(F64, False), 0x4084D4CCCCCCCCCD)  # 666.6
    out["table"] = store.host_table(FUNCREF, Limits(10, 20))
    out["table64"] = TableInst(TableType(RefType(True, "func"), Limits(10, 20), True), None)
    out["memory"] = store.host_memory(Limits(1, 2))
    return out
