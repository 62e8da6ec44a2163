"""Runtime objects of the store: function, table, memory, global and tag instances, module instances.

They are deliberately plain: every piece of execution state is an attribute that the snapshot code
can read and rebuild, and nothing refers to Python-level execution state (no generators, no closures
holding values).  Compiled code (``FuncInst.code``) is a cache derived from the module and is never part
of a snapshot.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from ..errors import ResourceLimit, Trap
from ..types import FuncType, GlobalType, MemType, TableType
from .limits import Quota, current
from .memdata import PAGE_SIZE, resize, zeroed


class ValueRef:
    """A reference without identity of its own: equal (``ref.eq``, the script's expected values) when it
    is of the same class and wraps an equal value.  One base for :class:`ExternRef` and the
    ``i31``/``host`` references of :mod:`vm.runtime.heap`."""

    __slots__ = ("value",)
    kind = ""

    def __init__(self, value: Any):
        self.value = value

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.value == self.value

    def __hash__(self) -> int:
        return hash((self.kind, self.value))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.value!r})"


class ExternRef(ValueRef):
    """A host reference (``ref.extern N`` in the spec scripts), or an internal reference wrapped by
    ``extern.convert_any`` (:mod:`vm.runtime.heap`).  Equal when the wrapped values are."""

    __slots__ = ()
    kind = "extern"


class FuncInst:
    """A function: either defined by a module instance (``module``/``index``/``func``) or a host
    function (``host`` is a callable taking a list of argument values and returning a list)."""

    __slots__ = ("type", "canon", "module", "index", "func", "info", "code", "host", "name", "defaults")
    kind = "func"

    def __init__(
        self,
        type: FuncType,
        canon: Any,
        module: Optional[ModuleInst] = None,
        index: int = -1,
        func: Any = None,
        info: Any = None,
        host: Optional[Callable[[List[Any]], List[Any]]] = None,
        name: str = "",
    ):
        self.type = type
        self.canon = canon  # canonical type key: call_indirect compares these across modules
        self.module = module
        self.index = index  # index in the defining module's function index space
        self.func = func  # vm.module.Func for defined functions
        self.info = info  # vm.valid FuncInfo
        self.code: Optional[list] = None  # compiled form, built by the engine
        self.host = host
        self.name = name
        self.defaults: list = []  # initial values of the declared (non-parameter) locals

    def __repr__(self) -> str:
        if self.host is not None:
            return f"<host func {self.name}>"
        return f"<func {self.index}>"


class TableInst:
    """A table.  Its elements are charged to the store's :class:`~vm.runtime.limits.Quota` when it is
    allocated and when it grows."""

    __slots__ = ("type", "elements", "owner", "quota")
    kind = "table"

    def __init__(self, type: TableType, init: Any = None, owner: Any = None, quota: Optional[Quota] = None,
                 what: str = "table"):
        self.type = type
        self.owner = owner  # defining ModuleInst (its canonical type keys interpret type indices)
        self.quota = quota if quota is not None else Quota(current())
        self.quota.take_elements(type.limits.min, what)
        self.elements: List[Any] = [init] * type.limits.min

    def grow(self, n: int, init: Any) -> int:
        """Returns the old size, or -1 when the table cannot grow (the spec lets grow fail; so does
        the store's limit)."""
        old = len(self.elements)
        new = old + n
        mx = self.type.limits.max
        cap = (1 << 64) - 1 if self.type.is64 else 0xFFFFFFFF
        if new > cap or (mx is not None and new > mx) or not self.quota.can_take_elements(n):
            return -1
        self.quota.take_elements(n, "table.grow")
        self.elements.extend([init] * n)
        return old

    def resize_to(self, n: int, what: str) -> None:
        """Restore: make the table ``n`` elements long (null), charging the growth."""
        old = len(self.elements)
        if n > old:
            self.quota.take_elements(n - old, what)
        self.elements = [None] * n


class MemInst:
    """A memory.  Its bytes are a lazily zeroed mapping (:func:`~vm.runtime.limits.zeroed`), so a
    large declared memory costs only the pages a run writes; its pages are charged to the store's
    :class:`~vm.runtime.limits.Quota`.  ``max_pages`` is the type's own bound (declared maximum, or
    the index type's); the store's limit is the quota's."""

    __slots__ = ("type", "data", "max_pages", "quota")
    kind = "memory"

    def __init__(self, type: MemType, quota: Optional[Quota] = None, what: str = "memory"):
        self.type = type
        self.quota = quota if quota is not None else Quota(current())
        hard = 1 << 48 if type.is64 else 65536
        mx = type.limits.max if type.limits.max is not None else hard
        self.max_pages = min(mx, hard)
        self.quota.take_pages(type.limits.min, what)
        self.data = zeroed(type.limits.min * PAGE_SIZE)

    @property
    def pages(self) -> int:
        return len(self.data) // PAGE_SIZE

    def grow(self, n: int) -> int:
        old = len(self.data) // PAGE_SIZE
        if old + n > self.max_pages or not self.quota.can_take_pages(n):
            return -1
        if n:
            try:
                self.data = resize(self.data, (old + n) * PAGE_SIZE)
            except (ResourceLimit, MemoryError):  # no host memory for it: grow fails, as the spec allows
                return -1
            self.quota.take_pages(n, "memory.grow")
        return old

    def resize_to(self, pages: int, what: str) -> None:
        """Restore: a zeroed memory of ``pages`` pages, charging the growth."""
        old = len(self.data) // PAGE_SIZE
        if pages > old:
            self.quota.take_pages(pages - old, what)
        self.data = zeroed(pages * PAGE_SIZE)


class GlobalInst:
    __slots__ = ("type", "value", "owner")
    kind = "global"

    def __init__(self, type: GlobalType, value: Any, owner: Any = None):
        self.type = type
        self.value = value
        self.owner = owner


class TagInst:
    __slots__ = ("type", "canon")
    kind = "tag"

    def __init__(self, type: FuncType, canon: Any):
        self.type = type
        self.canon = canon


class ModuleInst:
    """An instantiated module: its index spaces resolved to store objects."""

    def __init__(self, module: Any, info: Any, sha256: str = ""):
        self.module = module
        self.info = info
        self.sha256 = sha256
        self.canon: List[Any] = []  # canonical key of each type index
        self.funcs: List[FuncInst] = []
        self.tables: List[TableInst] = []
        self.mems: List[MemInst] = []
        self.globals: List[GlobalInst] = []
        self.tags: List[TagInst] = []
        self.elems: List[List[Any]] = []  # element segments' references; [] once dropped
        self.datas: List[bytes] = []  # data segments' bytes; b"" once dropped
        self.elem_dropped: List[bool] = []
        self.data_dropped: List[bool] = []
        self.exports: Dict[str, Any] = {}
        self.name: Optional[str] = None  # registered name, when the spec script registers it

    def drop_elem(self, i: int) -> None:
        self.elems[i] = []
        self.elem_dropped[i] = True

    def drop_data(self, i: int) -> None:
        self.datas[i] = b""
        self.data_dropped[i] = True


def trap(kind: str) -> Trap:
    return Trap(kind)
