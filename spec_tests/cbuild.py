"""Compiling C to WebAssembly with ``zig cc`` (PyPI ``ziglang``), cached by content.

Why ziglang: one pip-installable package brings clang, wasm-ld and wasi-libc for every platform, so a
fresh machine builds the workloads with no system toolchain and the same compiler version everywhere
(the version is part of the cache key, so a new ziglang rebuilds).

Cache: ``$WCR_CACHE_DIR/cbuild/<key>/<name>.wasm`` where ``key`` is the sha256 of the compiler's
version, the flags, and every source's name and bytes (include directories count by the files in
them that the build names).  A build writes to a temporary file and renames it, so a cache entry is
either complete or absent.  Zig's own cache (``ZIG_GLOBAL_CACHE_DIR``, where the first build compiles
wasi-libc, ~40 s) lives under the same root unless the caller set it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from generators.workloads import BASE_FLAGS, Workload

from .sqlite_src import amalgamation_dir
from .testsuite import cache_dir

#: a compiler command other than ``python -m ziglang`` (tests use a stub; e.g. ``zig`` on PATH)
COMPILER_ENV = "WCR_ZIG"
BUILD_TIMEOUT = 900.0


class BuildUnavailable(Exception):
    """No compiler: ziglang is not installed (a clear message, commands exit 2 / tests skip)."""


class BuildFailed(Exception):
    """The compiler ran and failed (its message names the workload and quotes the compiler's error)."""


def compiler_command() -> List[str]:
    """The ``zig`` command: ``$WCR_ZIG`` (split on spaces) or ``python -m ziglang``."""
    env = os.environ.get(COMPILER_ENV)
    if env:
        return env.split()
    if importlib.util.find_spec("ziglang") is None:
        raise BuildUnavailable("ziglang is not installed: pip install 'wcr[workloads]' (or ziglang), or set "
                               f"{COMPILER_ENV} to a zig command")
    return [sys.executable, "-m", "ziglang"]


def _env(root: Path) -> Dict[str, str]:
    env = dict(os.environ)
    env.setdefault("ZIG_GLOBAL_CACHE_DIR", str(root / "zig-global"))
    env.setdefault("ZIG_LOCAL_CACHE_DIR", str(root / "zig-local"))
    return env


def compiler_version(cmd: Sequence[str], root: Path) -> str:
    """``zig version`` (part of every cache key)."""
    try:
        proc = subprocess.run([*cmd, "version"], capture_output=True, timeout=120, env=_env(root))
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BuildUnavailable(f"cannot run {' '.join(cmd)}: {exc}") from None
    if proc.returncode != 0:
        raise BuildUnavailable(f"{' '.join(cmd)} version failed: {proc.stderr.decode(errors='replace')[:300]}")
    return proc.stdout.decode(errors="replace").strip()


def cache_key(version: str, flags: Sequence[str], sources: Sequence[Path]) -> str:
    """sha256 over the compiler version, the flags in order and each source's file name and bytes."""
    h = hashlib.sha256()
    for part in (version, *flags):
        h.update(part.encode() + b"\0")
    for src in sources:
        data = src.read_bytes()
        h.update(f"{src.name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def build(name: str, sources: Sequence[Path], flags: Sequence[str], include_dirs: Sequence[Path] = (),
          root: Optional[Path] = None) -> Path:
    """``name.wasm`` compiled from ``sources`` with ``flags``, from the cache when the key matches.
    Headers in ``include_dirs`` count in the key (``*.h`` there)."""
    root = (root or cache_dir()) / "cbuild"
    cmd = compiler_command()
    root.mkdir(parents=True, exist_ok=True)
    headers = sorted(p for d in include_dirs for p in Path(d).glob("*.h"))
    inc_flags = [f"-I{d}" for d in include_dirs]
    key = cache_key(compiler_version(cmd, root), [*flags, *(p.name for p in include_dirs)],
                    [*sources, *headers])
    out = root / key[:32] / f"{name}.wasm"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{name}.{os.getpid()}.wasm")
    argv = [*cmd, "cc", *inc_flags, *map(str, sources), *flags, "-o", str(tmp)]
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=BUILD_TIMEOUT, env=_env(root))
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BuildFailed(f"{name}: cannot run the compiler: {exc}") from None
    if proc.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise BuildFailed(f"{name}: zig cc exited {proc.returncode}: {' | '.join(err[:5])[:500]}")
    os.replace(tmp, out)
    return out


def build_workload(w: Workload, root: Optional[Path] = None) -> Path:
    """The workload's ``.wasm`` (SQLite: the pinned amalgamation is fetched first, see
    :mod:`.sqlite_src`; its errors pass through)."""
    sources = list(w.source_paths())
    include: List[Path] = []
    if w.sqlite:
        amal = amalgamation_dir(root=root)
        sources.append(amal / "sqlite3.c")
        include.append(amal)
    return build(w.name, sources, [*BASE_FLAGS, *w.flags], include, root)
