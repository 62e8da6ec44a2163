"""The ``spectest`` host module the official scripts import from.

Prints are recorded in ``store.host_log`` as ``(name, args)`` tuples (args in the runtime
representation, floats as bit patterns) instead of being written to stdout: the log is host state that
checkpoint/restore must carry and the oracle compares.

This file is the one declaration of the interface (:data:`PRINTS`, :data:`GLOBALS`, :data:`TABLES`,
:data:`MEMORIES`): our store builds it from these tables, and the native targets generate their
spectest shims and hosts from the same tables, so a change here reaches every runtime.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

from ..types import F32, F64, I32, I64, FuncType, GlobalType, Limits, RefType, TableType
from .objects import TableInst

#: print functions and their parameter types (no results)
PRINTS: Dict[str, Tuple[str, ...]] = {
    "print": (),
    "print_i32": (I32,),
    "print_i64": (I64,),
    "print_f32": (F32,),
    "print_f64": (F64,),
    "print_i32_f32": (I32, F32),
    "print_f64_f64": (F64, F64),
}
#: globals: name → (type, initial value as unsigned int / bit pattern, mutable).  The four immutable
#: ones are the official interface; ``global_mut_i32`` is a wcr extension (the official scripts never
#: import it, so conformance is unaffected): a mutable global the generated programs import and write,
#: so that host-owned global state is live at checkpoints.  Every place built from this table provides
#: it as a *mutable* global, created fresh (value 0) with each spectest instance.
GLOBALS: Dict[str, Tuple[str, int, bool]] = {
    "global_i32": (I32, 666, False),
    "global_i64": (I64, 666, False),
    "global_f32": (F32, 0x4426A666, False),  # 666.6f
    "global_f64": (F64, 0x4084D4CCCCCCCCCD, False),  # 666.6
    "global_mut_i32": (I32, 0, True),  # wcr extension
}
#: funcref tables: name → (min, max, 64-bit index type)
TABLES: Dict[str, Tuple[int, int, bool]] = {
    "table": (10, 20, False),
    "table64": (10, 20, True),
}
#: memories: name → (min pages, max pages)
MEMORIES: Dict[str, Tuple[int, int]] = {
    "memory": (1, 2),
}


def spectest_exports(store: Any) -> Dict[str, Any]:
    """Fresh spectest extern values bound to ``store`` (tables/memories are per store, as in the
    reference interpreter, which creates them once per script)."""
    out: Dict[str, Any] = {}
    for name, params in PRINTS.items():
        def fn(args, _name=name):
            store.host_log.append((_name, tuple(args)))
            return []

        out[name] = store.host_func(name, FuncType(params, ()), fn)
    for name, (t, value, mutable) in GLOBALS.items():
        out[name] = store.host_global(GlobalType(t, mutable), value)
    for name, (lo, hi, is64) in TABLES.items():
        ttype = TableType(RefType(True, "func"), Limits(lo, hi), is64)
        out[name] = TableInst(ttype, None, None, store.quota, f"spectest.{name}")
    for name, (lo, hi) in MEMORIES.items():
        out[name] = store.host_memory(Limits(lo, hi))
    return out
