"""One-call checkpoint/restore comparisons (the oracle's input) for the spec runner and generators.

* :func:`cr_check` builds two fresh stores with ``setup``, runs the invocation uninterrupted in one,
  stops the other at ``k``, snapshots it and resumes the snapshot on every host.
* :func:`cr_check_store` works on a live store (the spec runner's): it snapshots the store before the
  invocation, runs the invocation on the live store (that *is* the uninterrupted run, and it leaves the
  store exactly as a plain invoke would), then replays from the pre-invocation snapshot to ``k`` in a
  scratch store, snapshots again and resumes on every host.
* :func:`cr_chain` migrates repeatedly: run to k1, checkpoint → encode → decode → restore, run to k2, …

A host is any object with ``name`` and ``restore_and_finish(snapshot_bytes, modules) -> dict`` (see
``runners.hosts``); without hosts the in-process restore is used.  Outcomes compare as dicts
(:meth:`Outcome.to_dict`): results, trap kind, instruction count, host log and final-state digest must be
identical.
"""

from __future__ import annotations

import hashlib
import weakref
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from .checkpoint import Outcome, Run, advance, checkpoint, finish, restore, run_to, start
from .codec import decode, encode
from .model import SnapshotError

_HOSTS: weakref.WeakKeyDictionary[Any, Dict[str, Any]] = weakref.WeakKeyDictionary()

FIELDS = ("results", "trap", "instructions", "host_log", "state_digest")


def instantiate_bytes(store: Any, data: bytes, name: Optional[str] = None,
                      imports: Optional[Sequence[Any]] = None) -> Any:
    """Decode, validate and instantiate module bytes with ``ModuleInst.sha256`` set (what checkpoint
    needs).  Without ``imports``, imports resolve against instances registered under a name (``name``
    registers this one) and the store's ``spectest`` host module."""
    from ..binary import decode_module
    from ..runtime.spectest import spectest_exports
    from ..valid import validate_module

    module = decode_module(data)
    info = validate_module(module)
    if imports is None:
        imports = []
        for imp in module.imports:
            src = None
            for inst in reversed(store.instances):
                if inst.name == imp.module:
                    src = inst.exports
                    break
            if src is None and imp.module == "spectest":
                src = _HOSTS.get(store)
                if src is None:
                    src = _HOSTS[store] = spectest_exports(store)
            if src is None or imp.name not in src:
                from ..errors import LinkError

                raise LinkError(f"unknown import {imp.module}.{imp.name}")
            imports.append(src[imp.name])
    inst = store.instantiate(module, info, list(imports), hashlib.sha256(bytes(data)).hexdigest())
    if name is not None:
        inst.name = name
    return inst


def restore_bytes(data: bytes, modules: Dict[str, bytes]) -> Any:
    """decode + restore: ``(store, run)``."""
    return restore(decode(data), modules)


def compare_outcomes(expected: Dict[str, Any], actual: Dict[str, Any]) -> List[str]:
    """Differences between two outcome dicts, one line per field ("" list = identical)."""
    out = []
    for f in FIELDS:
        a, b = expected.get(f), actual.get(f)
        if a != b:
            if f == "host_log" and isinstance(a, list) and isinstance(b, list):
                i = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
                out.append(f"host_log differs at entry {i}: expected {a[i:i + 1]}, got {b[i:i + 1]} "
                           f"(lengths {len(a)} / {len(b)})")
            else:
                out.append(f"{f}: expected {a!r}, got {b!r}")
    return out


class CrResult:
    """The comparison: ``ok``; ``k``; the reference outcome dict; per host ``{"outcome": dict|None,
    "error": str|None, "error_kind": str|None, "diffs": [str]}``; the snapshot size in bytes."""

    def __init__(self, k: int, reference: Dict[str, Any], snapshot: bytes):
        self.k = k
        self.reference = reference
        self.snapshot = snapshot
        self.hosts: Dict[str, Dict[str, Any]] = {}

    @property
    def ok(self) -> bool:
        return all(not h["error"] and not h["diffs"] for h in self.hosts.values())

    def summary(self) -> str:
        if self.ok:
            return f"k={self.k}: {len(self.hosts)} host(s) agree"
        bad = []
        for name, h in self.hosts.items():
            if h["error"]:
                bad.append(f"{name}: {h['error']}")
            elif h["diffs"]:
                bad.append(f"{name}: {'; '.join(h['diffs'])}")
        return f"k={self.k}: " + " | ".join(bad)

    def to_dict(self) -> Dict[str, Any]:
        return {"ok": self.ok, "k": self.k, "reference": self.reference, "hosts": self.hosts,
                "snapshot_size": len(self.snapshot)}


class _InProc:
    name = "inproc"

    def restore_and_finish(self, data: bytes, modules: Dict[str, bytes]) -> Dict[str, Any]:
        store, run = restore(decode(data), modules)
        if run is None:
            raise SnapshotError("snapshot has no thread to resume")
        return finish(store, run).to_dict()


def _resume_on_hosts(res: CrResult, data: bytes, modules: Dict[str, bytes], hosts: Optional[Sequence[Any]]):
    for h in (hosts if hosts else [_InProc()]):
        entry: Dict[str, Any] = {"outcome": None, "error": None, "error_kind": None, "diffs": []}
        try:
            got = h.restore_and_finish(data, modules)
            entry["outcome"] = got
            entry["diffs"] = compare_outcomes(res.reference, got)
        except SnapshotError as e:
            entry["error"] = f"snapshot error: {e}"
            entry["error_kind"] = "snapshot"
        except Exception as e:  # HostError (crash/timeout) and anything a host raises is a finding
            entry["error"] = f"{type(e).__name__}: {e}"
            entry["error_kind"] = getattr(e, "kind", "error")
        res.hosts[getattr(h, "name", type(h).__name__)] = entry
    return res


def _resolve(target: Any, func_name: str) -> Any:
    from ..runtime.objects import FuncInst

    if isinstance(target, FuncInst):
        return target
    f = target.exports.get(func_name)
    if not isinstance(f, FuncInst):
        raise KeyError(f"no exported function {func_name!r}")
    return f


KSpec = Union[int, Callable[[int], int]]


def _pick_k(k: KSpec, total: int) -> int:
    return int(k(total)) if callable(k) else int(k)


def cr_check(modules: Dict[str, bytes], setup: Callable[[Any], Any], func_name: str, args: Sequence[Any],
             k: KSpec, hosts: Optional[Sequence[Any]] = None, store_factory: Optional[Callable] = None
             ) -> CrResult:
    """``setup(store)`` instantiates the modules in a fresh store (e.g. with :func:`instantiate_bytes`)
    and returns the instance exporting ``func_name`` (or the function).  ``k`` is an int or a function
    of the uninterrupted run's instruction total (e.g. ``lambda n: rng.randint(0, n)``)."""
    from ..runtime.store import Store

    mk = store_factory or Store
    ref_store = mk()
    func = _resolve(setup(ref_store), func_name)
    reference = finish(ref_store, start(ref_store, func, args)).to_dict()
    kk = _pick_k(k, reference["instructions"])
    store = mk()
    func = _resolve(setup(store), func_name)
    run = run_to(store, func, args, kk)
    data = encode(checkpoint(store, run))
    return _resume_on_hosts(CrResult(kk, reference, data), data, modules, hosts)


def cr_check_store(store: Any, func: Any, args: Sequence[Any], k: KSpec, modules: Dict[str, bytes],
                   hosts: Optional[Sequence[Any]] = None) -> CrResult:
    """C/R check on a live store; afterwards ``store`` is as after a plain ``store.invoke`` and
    ``result.reference`` holds the invocation's outcome (results/trap) for the runner's own assertion.
    Every instance of ``store`` must have ``sha256`` set and its bytes in ``modules``."""
    run0 = start(store, func, args)
    pre = encode(checkpoint(store, run0))
    reference = finish(store, run0).to_dict()
    kk = _pick_k(k, reference["instructions"])
    scratch, run = restore(decode(pre), modules)
    assert run is not None
    advance(scratch, run, kk)
    data = encode(checkpoint(scratch, run))
    return _resume_on_hosts(CrResult(kk, reference, data), data, modules, hosts)


def cr_chain(store: Any, run: Run, ks: Sequence[int], modules: Dict[str, bytes]) -> Outcome:
    """Migrate at every k of ``ks`` (increasing): checkpoint → encode → decode → restore → continue;
    returns the final outcome of the last store."""
    for k in ks:
        advance(store, run, k)
        store, run = restore(decode(encode(checkpoint(store, run))), modules)
    return finish(store, run)
