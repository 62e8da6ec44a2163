"""The ``wamr`` target: WAMR from PyPI (``wamr-bin`` + ``wamrc-bin``, in the ``native`` extra), an AOT-only
build for x86-64 Linux that runs WASI commands: ``wamrc compile in.wasm -o out.cwasm``, then
``wamr run [--map-dir HOST::GUEST] [--env K=V] out.cwasm [args]`` (options before the file).

It has no ``--invoke`` and nothing to read state back with, so it is a :class:`.command.CommandTarget`:
the resume module is wrapped (``_start`` → ``resume`` → records on stdout).  Features (probed with
:mod:`.probes` on 3.0.0-dev.14; ``test_command_targets`` checks the declaration against the probes):
MVP, mutable globals, sign extension, saturating truncation, multi-value, bulk memory, reference types,
tail calls, extended constants, typed function references, exception tags (``throw``; an uncaught one
is a trap without a kind here).  Not supported: SIMD (``wamrc``:
UnsupportedV128), relaxed SIMD, multi-memory and memory64 (trap at run time), exceptions, GC.

Traps: this build reports most traps as ``error.WasmTrap`` without a kind, which maps to nothing:
those restores are *inconclusive* with its words (never a guessed kind).  Out-of-bounds memory access is
named; a stack overflow kills the process (SIGSEGV: inconclusive).
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
from typing import List, Optional, Tuple

from .command import CommandTarget, Invocation, expand
from .process import Unrunnable, run_proc
from .target import TrapTable

#: the command line of a run (:func:`.command.expand`); the first word is replaced by the binary's path
COMMAND = ["wamr", "run", "[--map-dir", "{dir}::{guest}]", "[--env", "{env}]", "{wasm}", "{args}"]


def tool(name: str) -> Optional[str]:
    """``wamr``/``wamrc``: next to this Python (pip puts them in the environment's ``bin/``), else PATH."""
    here = os.path.join(os.path.dirname(sys.executable), name)
    return here if os.access(here, os.X_OK) else shutil.which(name)


class WamrTarget(CommandTarget):
    name = "wamr"
    features = frozenset({
        "mvp", "mutable-globals", "sign-ext", "sat-trunc", "multi-value", "bulk-memory", "reference-types",
        "tail-call", "extended-const", "function-references", "exception-tags",
    })
    trap_table: TrapTable = (
        ("outofboundsmemoryaccess", "out of bounds memory access", ()),
        ("out of bounds memory access", "out of bounds memory access", ()),
    )

    def _available(self) -> Tuple[bool, str]:
        if sys.platform != "linux" or platform.machine().lower() not in ("x86_64", "amd64"):
            return False, "wamr-bin/wamrc-bin ship x86-64 Linux binaries only"
        missing = [n for n in ("wamr", "wamrc") if tool(n) is None]
        if missing:
            return False, f"{' and '.join(missing)} not found: pip install 'wcr[native]' (wamr-bin, wamrc-bin)"
        return True, ""

    def version(self) -> str:
        p = run_proc([tool("wamr") or "wamr", "version"], 10)
        return p.stdout.decode("utf-8", "replace").strip() + " (AOT)"

    def prepare(self, path: str, workdir: str, timeout: float) -> str:
        out = os.path.join(workdir, "resume.cwasm")
        p = run_proc([tool("wamrc") or "wamrc", "compile", path, "-o", out], timeout, cwd=workdir)
        if p.returncode != 0:
            text = (p.stderr or p.stdout).decode("utf-8", "replace").strip().splitlines()
            raise Unrunnable(f"wamrc: {text[-1] if text else f'exit status {p.returncode}'}")
        return out

    def command(self, path: str, inv: Invocation) -> List[str]:
        return [tool("wamr") or "wamr"] + expand(COMMAND[1:], path, inv)
