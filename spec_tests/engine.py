"""The runner's view of a WebAssembly engine.

The command interpreter talks to the VM only through this small interface, so tests can hand it a fake
engine (or wrap the real one and break an instruction on purpose), and other engines (a faster tier, a
native runtime) can be run against the same scripts later.

Error contract (what the interpreter expects to be raised):

* ``decode``       → ``vm.errors.MalformedModule``
* ``validate``     → ``vm.errors.InvalidModule``
* ``instantiate``  → ``vm.errors.LinkError`` / ``vm.errors.Trap``
* ``invoke``       → ``vm.errors.Trap`` (``Exhaustion``), ``vm.errors.WasmException``
* ``instantiate``, ``invoke`` → ``vm.errors.Stopped`` when the command's limits (``start_command``:
  ``--fuel`` / ``--timeout``) stopped the code it ran: a failure of that command, never a trap
* any step         → ``vm.errors.Unsupported(feature)`` = skipped, never passed
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional


class Engine:
    """Interface (and documentation) of an engine; :class:`VmEngine` is wcr's own."""

    name = "abstract"

    def decode(self, data: bytes) -> Any:
        raise NotImplementedError

    def validate(self, module: Any) -> Any:
        raise NotImplementedError

    def validate_custom(self, module: Any) -> None:
        """Check the custom sections the engine understands (``assert_*_custom``); default: none."""
        raise NotImplementedError

    def new_store(self) -> Any:
        raise NotImplementedError

    def start_command(self, store: Any) -> None:
        """A script command begins: the clock and fuel of what it runs in ``store`` start now (default:
        no limits)."""

    def spectest(self, store: Any) -> Dict[str, Any]:
        """Exports of the ``spectest`` host module for this store."""
        raise NotImplementedError

    def instantiate(self, store: Any, module: Any, info: Any, imports: List[Any],
                    sha256: Optional[str] = None) -> Any:
        """A module instance with an ``exports`` dict.  ``sha256`` (hex of the module bytes) is passed in
        C/R mode: snapshots name each instance's module by it."""
        raise NotImplementedError

    def invoke(self, store: Any, func: Any, args: List[Any]) -> List[Any]:
        raise NotImplementedError

    def global_value(self, glob: Any) -> Any:
        return glob.value

    def is_func(self, x: Any) -> bool:
        raise NotImplementedError

    def extern_ref(self, n: int) -> Any:
        raise NotImplementedError

    def host_ref(self, n: int) -> Any:
        """``(ref.host n)``: a host reference inside the ``any`` hierarchy."""
        raise NotImplementedError

    def result_types(self, func: Any) -> List[Any]:
        """Result types of a function (for display only); empty if unknown."""
        ft = getattr(func, "type", None)
        return list(getattr(ft, "results", ()) or ())

    def instructions(self, store: Any) -> int:
        return int(getattr(store, "instructions", 0) or 0)


class VmEngine(Engine):
    """wcr's VM (``vm.binary`` → ``vm.valid`` → ``vm.runtime``), imported lazily so that the runner can
    be imported (and tested with a fake engine) before every component exists."""

    name = "wcr"

    def __init__(self, max_call_depth: Optional[int] = None, limits: Any = None):
        from vm.exec.budget import RunLimits

        self.max_call_depth = max_call_depth  # None: the process's store limits (vm.runtime.limits.current)
        self.limits = limits if limits is not None else RunLimits()

    def decode(self, data: bytes) -> Any:
        from vm.binary import decode_module

        return decode_module(data)

    def validate(self, module: Any) -> Any:
        from vm.valid import validate_module

        return validate_module(module)

    def validate_custom(self, module: Any) -> None:
        from vm.valid.custom import validate_custom_sections

        validate_custom_sections(module)

    def new_store(self) -> Any:
        from vm.api import Store

        return Store(max_call_depth=self.max_call_depth)

    def start_command(self, store: Any) -> None:
        """Every invocation of the command (and a module's start function) runs within ``limits``, one
        fuel count per invocation and one clock per command (:class:`vm.exec.budget.RunLimits`)."""
        store.budget = self.limits.start()

    def spectest(self, store: Any) -> Dict[str, Any]:
        from vm.runtime.spectest import spectest_exports

        return spectest_exports(store)

    def instantiate(self, store: Any, module: Any, info: Any, imports: List[Any],
                    sha256: Optional[str] = None) -> Any:
        return store.instantiate(module, info, imports, sha256)

    def invoke(self, store: Any, func: Any, args: List[Any]) -> List[Any]:
        return store.invoke(func, args)

    def is_func(self, x: Any) -> bool:
        from vm.runtime import FuncInst

        return isinstance(x, FuncInst)

    def extern_ref(self, n: int) -> Any:
        from vm.runtime import ExternRef

        return ExternRef(n)

    def host_ref(self, n: int) -> Any:
        import vm.runtime as rt

        ctor = getattr(rt, "HostRef", None)
        if ctor is None:
            from vm.errors import Unsupported

            raise Unsupported("gc", "ref.host values (vm.runtime.HostRef)")
        return ctor(n)
