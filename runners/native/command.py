"""Targets that run a WASI command from a command line (:class:`CommandTarget`): WAMR, and every
``cmd:`` target a user defines (:mod:`.cmdspec`).

Such a runtime is handed one file and runs its ``_start``; the resume module is wrapped for it by
:mod:`.command_wrap` (``_start`` calls ``resume`` and writes results, prints and the final state as
framed records to stdout), so what it reports is read back exactly like any other target's, and the
comparison rules are the same (:func:`runners.oracle.compare_native`).

Outcomes: the wrapper's end record → results (or ``proc_exit``: the trap kind ``exit`` with the code in
``details["exit_code"]``) and the final state; no end record and a non-zero exit status → a trap, its
kind read from the runtime's stderr through the target's :attr:`CommandTarget.trap_table` (``cmd:``
targets: :data:`SPEC_WORDS`, the spec's own words for its traps); a message the
table does not know → *inconclusive* with the runtime's words, never a guessed kind; a signal, a record
cut short, exit 0 without an end record → inconclusive.  The program's own stdout (every byte outside the
records) and stderr are kept in ``details``.

Command templates (:func:`expand`): shell-like words (``shlex``, no shell runs them) with placeholders
``{wasm}`` (the file to run: the wrapped resume module, or what :meth:`CommandTarget.prepare` made of
it), ``{args}`` (a whole word: the program's arguments, one word each), ``{dir}``/``{guest}`` (a
preopened host directory and its guest path) and ``{env}`` (``KEY=VALUE``).  Words in square brackets
form a group that is repeated once per preopen (when it names ``{dir}``/``{guest}``) or per environment
variable (``{env}``) and left out when there is none: ``wasmtime run [--dir {dir}::{guest}] [--env {env}]
{wasm} {args}``.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import tempfile
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from vm.errors import PROC_EXIT, TRAP_KINDS
from vm.snapshot.resume import Manifest

from .command_wrap import EXIT_NO_SCRATCH, EXIT_WRITE_FAILED, Layout, parse, wrap
from .introspect import ModuleInfo
from .process import run_proc
from .target import NativeOutcome, Target, TrapTable, classify

PLACEHOLDERS = ("wasm", "args", "dir", "guest", "env")

#: the trap table of a runtime that names traps in the spec's words ("integer divide by zero", as
#: wasmtime and WAMR's C build print them): the default of ``cmd:`` targets.  Longest first, so "out of
#: bounds table access" is not read as a shorter kind; ``exit`` is never read from stderr (the wrapper's
#: record says it)
SPEC_WORDS: TrapTable = tuple((k, k, ()) for k in sorted(TRAP_KINDS, key=len, reverse=True) if k != PROC_EXIT)
_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class Invocation:
    """The WASI side of one run: the program's arguments, environment and preopened directories
    (host path, guest path).  Empty for spec-test and fuzz modules."""

    args: List[str] = field(default_factory=list)
    env: List[Tuple[str, str]] = field(default_factory=list)
    preopens: List[Tuple[str, str]] = field(default_factory=list)


def check_template(command: str) -> List[str]:
    """The words of a command template; ``ValueError`` naming what is wrong (not splittable, no
    ``{wasm}``, an unknown placeholder, ``{args}`` inside a word, an unclosed ``[`` group)."""
    try:
        words = shlex.split(command)
    except ValueError as e:
        raise ValueError(f"command {command!r}: {e}") from None
    if not words:
        raise ValueError("empty command")
    names = [n for w in words for n in _FIELD.findall(w)]
    unknown = sorted(set(names) - set(PLACEHOLDERS))
    if unknown:
        raise ValueError(f"command {command!r}: unknown placeholder {{{unknown[0]}}} "
                         f"(known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)})")
    if "wasm" not in names:
        raise ValueError(f"command {command!r} does not name the module: put {{wasm}} where the file goes")
    if any("{args}" in w and w != "{args}" for w in words):
        raise ValueError(f"command {command!r}: {{args}} must be a word of its own")
    _groups(words, command)
    return words


def _groups(words: Sequence[str], command: str) -> List[Tuple[bool, List[str]]]:
    """(is a [group], words) runs of a template."""
    out: List[Tuple[bool, List[str]]] = []
    cur: Optional[List[str]] = None
    for w in words:
        if cur is None and w.startswith("["):
            cur, w = [], w[1:]
        if cur is not None:
            end = w.endswith("]")
            cur.append(w[:-1] if end else w)
            if end:
                out.append((True, [x for x in cur if x]))
                cur = None
        else:
            out.append((False, [w]))
    if cur is not None:
        raise ValueError(f"command {command!r}: a '[' group is not closed")
    return out


def expand(words: Sequence[str], wasm: str, inv: Invocation) -> List[str]:
    """The argv of one run (see the module docstring).  ``ValueError`` when a plain word names
    ``{dir}``/``{guest}``/``{env}`` and the run does not have exactly one of them."""
    argv: List[str] = []
    for group, ws in _groups(words, " ".join(words)):
        text = " ".join(ws)
        items: List[Dict[str, str]] = [{}]
        if "{dir}" in text or "{guest}" in text:
            items = [{"dir": h, "guest": g} for h, g in inv.preopens]
        elif "{env}" in text:
            items = [{"env": f"{k}={v}"} for k, v in inv.env]
        if not group and len(items) != 1:
            raise ValueError(f"{text!r} needs exactly one preopen/variable (this run has {len(items)}); "
                             "put it in a [...] group to repeat it")
        for item in items:
            for w in ws:
                if w == "{args}":
                    argv += inv.args
                    continue
                argv.append(_subst(w, dict(item, wasm=wasm)))
    return argv


def _subst(word: str, values: Dict[str, str]) -> str:
    return _FIELD.sub(lambda m: values.get(m.group(1), ""), word)


class CommandTarget(Target):
    """A runtime run from a command line.  Subclasses give :meth:`command` (the argv of one run) and
    may override :meth:`prepare` (e.g. an AOT compile step); :attr:`trap_table` maps their stderr."""

    trap_table: TrapTable = ()

    def __init__(self) -> None:
        #: the WASI side of the runs (arguments, environment, preopens)
        self.invocation = Invocation()

    def command(self, path: str, inv: Invocation) -> List[str]:
        raise NotImplementedError

    def prepare(self, path: str, workdir: str, timeout: float) -> str:
        """The file the command runs, made from the wrapped module at ``path`` (default: itself)."""
        return path

    def _run(self, wasm: bytes, info: ModuleInfo, man: Manifest, out: NativeOutcome, timeout: float) -> None:
        assert info.module is not None
        data, lay = wrap(info.module, man, tables="reference-types" in self.features)
        with tempfile.TemporaryDirectory(prefix="wcr-cmd-") as d:
            path = os.path.join(d, "resume.wasm")
            with open(path, "wb") as f:
                f.write(data)
            path = self.prepare(path, d, timeout)
            p = run_proc(self.command(path, self.invocation), timeout, cwd=d)
        read_outcome(out, lay, p.returncode, p.stdout, p.stderr, self.trap_table)


def read_outcome(out: NativeOutcome, lay: Layout, status: int, stdout: bytes, stderr: bytes,
                 table: TrapTable) -> None:
    """Fill ``out`` from one run's exit status and output (see the module docstring)."""
    err = stderr.decode("utf-8", "replace")
    out.details.update(exit_status=status, stderr=err)
    try:
        r = parse(stdout, lay)
    except ValueError as e:
        out.inconclusive = f"could not read the wrapper's records: {e} (exit status {status}: {_last(err)})"
        return
    out.details["stdout"] = r.stdout
    out.host_log = r.host_log
    if r.ended:
        if r.lost_print:
            out.inconclusive = "a print came while memory 0 had no pages: the wrapper could not write it"
            return
        out.globals, out.memories, out.tables = r.globals, r.memories, r.tables
        if r.exit_code is not None:
            out.details["exit_code"] = r.exit_code
            out.set_trap(PROC_EXIT, f"proc_exit({r.exit_code})")
        elif status != 0:
            out.inconclusive = f"exit status {status} after the wrapper finished: {_last(err)}"
        else:
            out.results = list(r.results or [])
        return
    if status < 0:
        out.inconclusive = f"the runtime was killed by signal {_signame(-status)}: {_last(err)}"
    elif status == 0:
        out.inconclusive = "the runtime exited 0 without the wrapper's end record"
    elif status in (EXIT_WRITE_FAILED, EXIT_NO_SCRATCH) and not err.strip():
        out.inconclusive = f"the wrapper could not write its records (exit {status})"
    else:
        kind, cands = classify(err, table)
        out.set_trap(kind, _last(err) or f"exit status {status}", cands)


def _last(err: str) -> str:
    lines = [ln.strip() for ln in err.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _signame(n: int) -> str:
    try:
        return signal.Signals(n).name
    except ValueError:
        return str(n)
