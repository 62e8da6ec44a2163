"""Targets that run a WASI command from a command line (:class:`CommandTarget`): WAMR, and every
``cmd:`` target a user defines (:mod:`.cmdspec`).

Such a runtime is handed one file and runs its ``_start``; the resume module is wrapped for it by
:mod:`.command_wrap` (``_start`` calls ``resume`` and writes results, prints and the final state as
framed records to stdout; :func:`parse` takes them apart), so what it reports is read back exactly like
any other target's, and the comparison rules are the same (:func:`runners.oracle.compare_native`).

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
import struct
import tempfile
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from vm.errors import PROC_EXIT, TRAP_KINDS
from vm.runtime.spectest import PRINTS
from vm.snapshot.resume import Manifest
from vm.values import Value

from .command_wrap import EXIT_NO_SCRATCH, EXIT_WRITE_FAILED, WIDTH, Layout, wrap
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


@dataclass
class Parsed:
    """A wrapped module's stdout, taken apart.  ``ended``: the wrapper's ``E`` record was seen (the run
    finished or exited through ``proc_exit``, and the final state is complete)."""

    stdout: bytes = b""
    host_log: List[Tuple[str, Tuple[Value, ...]]] = field(default_factory=list)
    results: Optional[List[Value]] = None
    exit_code: Optional[int] = None
    globals: Dict[str, Value] = field(default_factory=dict)
    memories: Dict[str, bytes] = field(default_factory=dict)
    tables: Dict[str, List[str]] = field(default_factory=dict)
    ended: bool = False
    lost_print: bool = False


# ------------------------------------------------------------------------------------------ reading stdout
def parse(out: bytes, lay: Layout) -> Parsed:
    """Take a wrapped module's stdout apart; ``ValueError`` when a record is cut short or unknown (the
    process died while writing: the caller reports that as inconclusive)."""
    p = Parsed()
    prog = bytearray()
    pos = 0
    mem: Optional[bytearray] = None
    mems: Dict[str, bytearray] = {}
    while True:
        k = out.find(lay.nonce, pos)
        if k < 0:
            prog += out[pos:]
            break
        prog += out[pos:k]
        h = k + len(lay.nonce)
        if h + 5 > len(out):
            raise ValueError("a record header is cut short")
        kind, (n,) = chr(out[h]), struct.unpack_from("<I", out, h + 1)
        body = out[h + 5:h + 5 + n]
        if len(body) < n:
            raise ValueError(f"record {kind!r} is cut short ({len(body)} of {n} bytes)")
        pos = h + 5 + n
        mem = _record(p, lay, kind, _Reader(body), mem, mems)
    p.stdout = bytes(prog)
    p.memories = {k: bytes(v) for k, v in mems.items()}
    return p


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> int:
        if self.pos + n > len(self.data):
            raise ValueError("a record is shorter than its contents")
        v = int.from_bytes(self.data[self.pos:self.pos + n], "little")
        self.pos += n
        return v

    def value(self, kind: str) -> Value:
        if kind == "ref":
            return ("ref.null", None) if self.take(4) else ("ref", None)
        return (kind, self.take(WIDTH[kind]))


def _record(p: Parsed, lay: Layout, kind: str, r: _Reader, mem: Optional[bytearray],
            mems: Dict[str, bytearray]) -> Optional[bytearray]:
    """Apply one record to ``p``; returns the memory W/D records now write into."""
    if kind == "P":
        tag = r.take(1)
        if tag >= len(PRINTS):
            raise ValueError(f"print record with an unknown tag {tag}")
        name = list(PRINTS)[tag]
        p.host_log.append((name, tuple(r.value(t) for t in PRINTS[name])))
    elif kind == "R":
        p.results = [r.value(k) for k in lay.results]
    elif kind == "G":
        p.globals = {n: r.value(k) for n, k in lay.globals}
    elif kind == "M":
        name = _named(lay.memories, r.take(4), "memory")
        mem = mems[name] = bytearray(r.take(4) * 65536)
    elif kind in "DW" and mem is None:
        raise ValueError(f"record {kind!r} before any memory record")
    elif kind == "D" and mem is not None:
        if len(r.data) != len(mem):
            raise ValueError(f"memory bytes: {len(r.data)} for a memory of {len(mem)}")
        mem[:] = r.data
    elif kind == "W" and mem is not None:
        a = r.take(4)
        mem[a:a + 8] = r.take(8).to_bytes(8, "little")
    elif kind == "T":
        name = _named(lay.tables, r.take(4), "table")
        p.tables[name] = ["null" if r.take(1) else "ref" for _ in range(r.take(4))]
    elif kind == "X":
        p.exit_code = r.take(4)
    elif kind == "E":
        p.lost_print, p.ended = bool(r.take(4)), True
    else:
        raise ValueError(f"unknown record kind {kind!r}")
    return mem


def _named(names: Sequence[str], pos: int, what: str) -> str:
    if pos >= len(names):
        raise ValueError(f"{what} record for position {pos} of {len(names)}")
    return names[pos]
