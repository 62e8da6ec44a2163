"""The WASI part of a resume module: a program that imports ``wasi_snapshot_preview1`` keeps those
imports (the target provides WASI: wasmtime's, node's ``wasi``, or our VM's), and a *WASI prologue*
recreates the snapshot's fd table on the target before the frames resume.

What the target is given (the host side, ``runners/native/sandbox.py``, from :class:`WasiRun`): the
snapshot's files copied into a fresh directory per preopen (in ``State.wasi.roots`` order, so the
target preopens them as fds 3, 4, …), the args and env, and what is left of stdin.  What the prologue
(:func:`prologue_function`, called first by ``resume``) then does:

* every open file/directory fd of the snapshot, in ascending fd order, is reopened with ``path_open``
  relative to the preopen of its root (the path is computed from the inode graph: parents up to the
  root), with no create/truncate flags, the snapshot's fdflags and its rights masked by the
  directory's inheriting rights (``fd_fdstat_get``: what wasi-libc does too, so a target whose preopens
  grant fewer rights still opens the file; a directory also without :data:`DIR_WRITE_RIGHTS`).  So
  the rights ``fd_fdstat_get`` reports after a restore are the target's, not necessarily the snapshot's;
* runtimes hand out the lowest free fd (wasmtime and node do; measured): an open that comes back
  *below* the wanted number is a filler and stays open until the end; one that comes back *above* it
  is moved with ``fd_renumber``; anything else fails (below);
* a file fd is ``fd_seek``-ed to its offset;
* then the fillers, the preopens and the standard streams the snapshot had closed are closed.

Scratch memory: ``path_open`` needs the path in the program's memory and ``fd_seek``/``path_open``
write their results there.  The prologue *borrows* the first bytes of the memory WASI is bound to and
puts the snapshot's bytes back with constant stores when it is done (no bulk memory, no second memory:
every target that runs the program runs this).  A prologue that fails stores a status
(:func:`describe_status`) into the exported global ``wcr:wasi:status`` and executes ``unreachable``,
so the target can say which fd failed and why instead of reporting a trap; 1 means it completed.

A snapshot taken after ``proc_exit`` resumes as ``proc_exit`` of the same code (the oracle compares
exit codes, :data:`vm.errors.PROC_EXIT`).

Not convertible (:class:`NotConvertible`, reasons in :data:`.common.REASONS`): an open fd whose inode
is not reachable from a root (``wasi unlinked file``), a file or directory fd at the number of a
preopen, or a standard stream moved to another number (``wasi fd table``: the target preopens fixed
numbers), no memory exported as ``memory`` or one smaller than the scratch area (``wasi memory``).

Clocks and random: a native target reads its real clock and random source; the virtual clock and the
seeded stream of our VM cannot be carried into it.  The output of a program that reads them is not
comparable, so :attr:`WasiRun.nondeterministic` lists the imports that read them and the oracle calls a
mismatch of such a program inconclusive (a match stands).  ``real_clock`` snapshots are treated the same.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ...module import Export, Func, Global, Import, ImportDesc, Instr, MemArg, Module
from ...runtime.wasi import WASI_MODULE
from ...runtime.wasi.constants import O_DIRECTORY, RIGHTS, RIGHTS_ALL, WHENCE_SET
from ...types import FuncType, GlobalType, SubType
from ..model import InstanceState, State, WasiSnapshot
from .common import NotConvertible, end
from .fold import _remap_expr

#: the export the prologue reports through (0 = not finished, 1 = done, else :func:`describe_status`)
STATUS_EXPORT = "wcr:wasi:status"
#: the first preopen's fd
FIRST_PREOPEN = 3
#: rights that ask for write access (fd_datasync, fd_write, fd_allocate, fd_filestat_set_size): node's
#: uvwasi opens a directory requested with any of them for writing, which fails with EISDIR, so a
#: directory is reopened without them (they mean nothing for a directory; only ``fd_fdstat_get`` shows it)
DIR_WRITE_RIGHTS = RIGHTS["FD_DATASYNC"] | RIGHTS["FD_WRITE"] | RIGHTS["FD_ALLOCATE"] | RIGHTS["FD_FILESTAT_SET_SIZE"]
#: imports whose results a native target takes from its real clock / random source
NONDETERMINISTIC = ("clock_time_get", "clock_res_get", "poll_oneoff", "random_get")

_I32, _I64 = "i32", "i64"
#: the functions the prologue calls, with their preview-1 types
PROLOGUE_FUNCS: Dict[str, Tuple[Tuple[str, ...], Tuple[str, ...]]] = {
    "path_open": ((_I32, _I32, _I32, _I32, _I32, _I64, _I64, _I32, _I32), (_I32,)),
    "fd_fdstat_get": ((_I32, _I32), (_I32,)),
    "fd_renumber": ((_I32, _I32), (_I32,)),
    "fd_seek": ((_I32, _I64, _I32, _I32), (_I32,)),
    "fd_close": ((_I32,), (_I32,)),
    "proc_exit": ((_I32,), ()),
}
#: scratch layout: [0, 8) a result (fd or new offset), [8, 32) an fdstat, [32, …) the path
_RESULT, _FDSTAT, _PATH = 0, 8, 32
#: the stages a failure status names
STAGES = {1: "fd_fdstat_get of the directory", 2: "path_open", 3: "fd_renumber", 4: "fd_seek"}


@dataclass
class Reopen:
    """One fd the prologue recreates: opened relative to preopen ``dirfd`` at ``path``."""

    fd: int
    dirfd: int
    path: bytes
    directory: bool
    rights_base: int
    rights_inheriting: int
    flags: int
    offset: int


@dataclass
class WasiRun:
    """What a target needs to run the resume module of a WASI program (``Manifest.wasi``): the
    snapshot's WASI state (the sandbox is materialized from its files), the preopens in fd order, args,
    env, the unread rest of stdin, the export of the prologue's status (empty: no prologue, the
    original module run from the start, :func:`fresh_run`), and the imports that read a
    clock or random source (:data:`NONDETERMINISTIC`)."""

    snapshot: WasiSnapshot
    roots: List[str]
    args: List[bytes]
    env: List[bytes]
    stdin: bytes
    status_export: str = STATUS_EXPORT
    nondeterministic: List[str] = field(default_factory=list)


@dataclass
class WasiPlan:
    """The fd table to recreate: reopens (ascending fd), fds to close at the end, the scratch size."""

    run: WasiRun
    reopen: List[Reopen]
    close: List[int]
    memidx: int
    scratch: int


def fresh_run(config: Any, m: Module, limits: Any = None) -> WasiRun:
    """The :class:`WasiRun` of a program *started* from ``config`` (a :class:`vm.runtime.wasi.WasiConfig`),
    for the blame baseline of a native target (the original module run from the start, no prologue:
    ``status_export`` is empty): the sandbox holds the config's directories as a fresh start loads them
    (host directories copied, in-memory ones empty), preopened in the config's order (fds 3, 4, …, as
    the program sees them on our VM)."""
    from ...runtime.wasi import WasiState
    from ..wasi_state import capture_wasi

    snap = capture_wasi(WasiState.start(config, limits), lambda _mem: None)
    order = {g: i for i, (g, _h) in enumerate(config.dirs)}
    snap = dataclasses.replace(snap, roots=sorted(snap.roots, key=lambda r: order.get(r[0], len(order))))
    nondet = sorted({imp.name for imp in m.imports if imp.module == WASI_MODULE and imp.name in NONDETERMINISTIC})
    return WasiRun(snap, [g for g, _ in snap.roots], list(snap.args), list(snap.env), bytes(snap.stdin), "", nondet)


def uses_wasi(m: Module) -> bool:
    return any(imp.module == WASI_MODULE for imp in m.imports)


def plan(state: State, ist: InstanceState, m: Module) -> Optional[WasiPlan]:
    """The WASI plan of ``state`` (None when the program does not use WASI).  Raises
    :class:`NotConvertible` for what cannot be recreated on a target (module docstring)."""
    ws = state.wasi
    if not uses_wasi(m):
        return None
    if ws is None:
        raise NotConvertible("inconsistent state", "the module imports WASI but the snapshot has no WASI state")
    roots = [g for g, _ in ws.roots]
    fds = {f.fd: f for f in ws.fds}
    _check_streams(fds)
    parents = _parents(ws)
    root_of = {ino: i for i, (_, ino) in enumerate(ws.roots)}
    nroots = len(roots)
    reopen: List[Reopen] = []
    for n in sorted(fds):
        f = fds[n]
        if f.preopen is not None:
            if n - FIRST_PREOPEN >= nroots or n < FIRST_PREOPEN or roots[n - FIRST_PREOPEN] != f.preopen:
                raise NotConvertible("wasi fd table", f"preopen {f.preopen!r} at fd {n}: the target preopens "
                                     "the roots in order from fd 3")
            continue
        if f.kind not in ("file", "dir"):
            continue
        if n < FIRST_PREOPEN + nroots:
            raise NotConvertible("wasi fd table", f"fd {n} ({f.kind}) is at the number of a preopen")
        ri, path = _path(f.ino, parents, root_of)
        is_dir = f.kind == "dir"
        # a directory asks for every right its root passes on (but write access): its rights are what
        # *our* WASI granted, which follows wasmtime's set; node's uvwasi wants more of a directory (e.g.
        # path_filestat_set_size for an O_TRUNC open under it), so the snapshot's set would refuse later opens
        base = RIGHTS_ALL & ~DIR_WRITE_RIGHTS if is_dir else f.rights_base
        inheriting = RIGHTS_ALL if is_dir else f.rights_inheriting
        reopen.append(Reopen(n, FIRST_PREOPEN + ri, path, is_dir, base, inheriting, f.flags,
                             0 if is_dir else f.offset))
    top = max([r.fd for r in reopen], default=0)
    close = [n for n in range(0, max(top, FIRST_PREOPEN + nroots)) if n not in fds]
    stdin_f = fds.get(0)
    rest = ws.stdin[stdin_f.offset:] if stdin_f is not None else b""
    nondet = sorted({imp.name for imp in m.imports if imp.module == WASI_MODULE and imp.name in NONDETERMINISTIC})
    run = WasiRun(ws, roots, list(ws.args), list(ws.env), bytes(rest), STATUS_EXPORT, nondet)
    memidx = _memory(state, ist, m, ws)
    scratch = _PATH + max([len(r.path) for r in reopen], default=0)
    scratch = (scratch + 7) // 8 * 8
    pages = state.mems[ist.mems[memidx]].pages
    if reopen and pages * 65536 < scratch:
        raise NotConvertible("wasi memory", f"memory of {pages} pages is smaller than the {scratch}-byte scratch area")
    return WasiPlan(run, reopen, close, memidx, scratch if reopen else 0)


def _check_streams(fds: Dict[int, Any]) -> None:
    for n, f in fds.items():
        want = {"stdin": 0, "stdout": 1, "stderr": 2}.get(f.kind)
        if want is not None and n != want:
            raise NotConvertible("wasi fd table", f"{f.kind} moved to fd {n}")
        if n < 3 and f.kind != ("stdin", "stdout", "stderr")[n]:
            raise NotConvertible("wasi fd table", f"fd {n} is a {f.kind}, not {('stdin', 'stdout', 'stderr')[n]}")


def _parents(ws: WasiSnapshot) -> Dict[int, Tuple[int, str]]:
    """inode → (directory, name) for every entry of every directory (the first one for a hard link)."""
    out: Dict[int, Tuple[int, str]] = {}
    for node in ws.inodes:
        if node.kind == "dir":
            for name, child in node.entries:
                if name not in (".", "..") and child != node.ino:
                    out.setdefault(child, (node.ino, name))
    return out


def _path(ino: int, parents: Dict[int, Tuple[int, str]], root_of: Dict[int, int]) -> Tuple[int, bytes]:
    """(root index, path relative to that root) of ``ino``; ``.`` for a root itself."""
    names: List[str] = []
    seen = set()
    while ino not in root_of:
        if ino in seen or ino not in parents:
            raise NotConvertible("wasi unlinked file", f"inode {ino} is open but has no path from a preopen")
        seen.add(ino)
        ino, name = parents[ino]
        names.append(name)
    path = "/".join(reversed(names)) or "."
    return root_of[ino], path.encode("utf-8", "surrogateescape")


def _memory(state: State, ist: InstanceState, m: Module, ws: WasiSnapshot) -> int:
    """Index of the memory WASI is bound to; it must be exported as ``memory`` (targets bind that)."""
    exported = {e.index for e in m.exports if e.kind == "memory" and e.name == "memory"}
    if not exported:
        raise NotConvertible("wasi memory", "no memory exported as 'memory' for the target's WASI")
    idx = next(iter(exported))
    if ws.memory is not None and ist.mems[idx] != ws.memory:
        raise NotConvertible("wasi memory", "WASI is bound to a memory that is not the exported 'memory'")
    if idx < len(m.imported("memory")) or m.mem_types()[idx].is64:
        raise NotConvertible("wasi memory", "WASI memory is imported or 64-bit")
    return idx


# --------------------------------------------------------------------------------------- imports
def add_imports(m: Module, ist: InstanceState, orig_of: Dict[int, int]
                ) -> Tuple[Module, InstanceState, Dict[int, int], Dict[str, int]]:
    """``m`` importing every function of :data:`PROLOGUE_FUNCS` from WASI (a missing one is appended
    after the function imports, so the defined functions are renumbered everywhere, like a fold), the
    instance view with a placeholder address (negative: no state refers to it) per added import, the
    resume → original function index map composed with ``orig_of``, and name → function index."""
    types: List[SubType] = list(m.types)
    rec_sizes = list(m.rec_sizes) if sum(m.rec_sizes) == len(m.types) else [1] * len(m.types)

    def functype(params: Tuple[str, ...], results: Tuple[str, ...]) -> int:
        ft = FuncType(params, results)
        for i, st in enumerate(types):
            if st.comp == ft and st.final and not st.supers:
                return i
        types.append(SubType(True, (), ft))
        rec_sizes.append(1)
        return len(types) - 1

    have: Dict[str, int] = {}
    k = 0
    for imp in m.imports:
        if imp.desc.kind != "func":
            continue
        if imp.module == WASI_MODULE and imp.name in PROLOGUE_FUNCS:
            ft = m.types[imp.desc.type].comp
            want = PROLOGUE_FUNCS[imp.name]
            if not isinstance(ft, FuncType) or (tuple(ft.params), tuple(ft.results)) != want:
                raise NotConvertible("inconsistent state", f"WASI import {imp.name} has type {ft!r}")
            have[imp.name] = k
        k += 1
    nimp = k
    missing = [n for n in PROLOGUE_FUNCS if n not in have]
    if not missing:
        return m, ist, orig_of, have
    add = len(missing)
    new_imports = [Import(WASI_MODULE, n, ImportDesc("func", functype(*PROLOGUE_FUNCS[n]))) for n in missing]
    for j, n in enumerate(missing):
        have[n] = nimp + j
    total = nimp + len(m.funcs)
    fmap = {i: (i if i < nimp else i + add) for i in range(total)}
    funcs = [dataclasses.replace(f, body=_remap_expr(f.body, fmap)) for f in m.funcs]
    globs = [dataclasses.replace(g, init=_remap_expr(g.init, fmap)) for g in m.globals]
    tables = [dataclasses.replace(t, init=None if t.init is None else _remap_expr(t.init, fmap)) for t in m.tables]
    elems = [dataclasses.replace(e, init=[_remap_expr(x, fmap) for x in e.init]) for e in m.elems]
    exports = [e._replace(index=fmap[e.index]) if e.kind == "func" else e for e in m.exports]
    out = dataclasses.replace(
        m, types=types, rec_sizes=rec_sizes, imports=list(m.imports) + new_imports, funcs=funcs, tables=tables,
        globals=globs, elems=elems, exports=exports, start=None if m.start is None else fmap[m.start])
    addrs = list(ist.funcs[:nimp]) + [-1 - j for j in range(add)] + list(ist.funcs[nimp:])
    composed = {fmap[i]: orig_of.get(i, i) for i in range(total)}
    return out, dataclasses.replace(ist, funcs=addrs), composed, have


# ---------------------------------------------------------------------------------------- prologue
def status_global() -> Global:
    """The mutable i32 global the prologue reports through (exported as :data:`STATUS_EXPORT`)."""
    return Global(GlobalType("i32", True), [Instr("i32.const", 0), end()])


def describe_status(value: int) -> Optional[str]:
    """What a status value says: None when the prologue completed (1), else the failure in words."""
    v = value & 0xFFFFFFFF
    if v == 1:
        return None
    if v == 0:
        return "the WASI prologue did not complete"
    stage, fd, errno = (v >> 24) & 0x7F, (v >> 8) & 0xFFFF, v & 0xFF
    return f"the WASI prologue failed: {STAGES.get(stage, f'stage {stage}')} for fd {fd} returned errno {errno}"


def exit_code(p: WasiPlan, funcs: Dict[str, int], code: int) -> List[Instr]:
    """``proc_exit(code)`` (a snapshot taken after the program exited resumes as its exit)."""
    return [Instr("i32.const", code & 0xFFFFFFFF), Instr("call", funcs["proc_exit"])]


def prologue_function(p: WasiPlan, funcs: Dict[str, int], status: int, memory: bytes, typeidx: int) -> Func:
    """The prologue (module docstring) as a function ``[] -> []`` with locals errno, fd, rights.
    ``status``: the index of the status global; ``memory``: the snapshot's bytes of the scratch area."""
    e, r, inh = 0, 1, 2
    mi = p.memidx
    code: List[Instr] = []

    def fail(stage: int, fd: int) -> List[Instr]:
        return [Instr("local.get", e), Instr("if", None),
                Instr("i32.const", 0x80000000 | (stage << 24) | ((fd & 0xFFFF) << 8)),
                Instr("local.get", e), Instr("i32.const", 0xFF), Instr("i32.and"), Instr("i32.or"),
                Instr("global.set", status), Instr("unreachable"), end()]

    for ro in p.reopen:
        for j, byte in enumerate(ro.path):
            code += [Instr("i32.const", _PATH + j), Instr("i32.const", byte), Instr("i32.store8", MemArg(0, 0, mi))]
        code += [Instr("i32.const", ro.dirfd), Instr("i32.const", _FDSTAT), Instr("call", funcs["fd_fdstat_get"]),
                 Instr("local.set", e), *fail(1, ro.dirfd),
                 Instr("i32.const", _FDSTAT + 16), Instr("i64.load", MemArg(3, 0, mi)), Instr("local.set", inh)]
        code += [Instr("block", None), Instr("loop", None),
                 Instr("i32.const", ro.dirfd), Instr("i32.const", 0), Instr("i32.const", _PATH),
                 Instr("i32.const", len(ro.path)), Instr("i32.const", O_DIRECTORY if ro.directory else 0),
                 Instr("i64.const", ro.rights_base), Instr("local.get", inh), Instr("i64.and"),
                 Instr("i64.const", ro.rights_inheriting), Instr("local.get", inh), Instr("i64.and"),
                 Instr("i32.const", ro.flags), Instr("i32.const", _RESULT), Instr("call", funcs["path_open"]),
                 Instr("local.set", e), *fail(2, ro.fd),
                 Instr("i32.const", _RESULT), Instr("i32.load", MemArg(2, 0, mi)), Instr("local.set", r),
                 Instr("local.get", r), Instr("i32.const", ro.fd), Instr("i32.eq"), Instr("br_if", 1),
                 Instr("local.get", r), Instr("i32.const", ro.fd), Instr("i32.lt_u"), Instr("br_if", 0),
                 Instr("local.get", r), Instr("i32.const", ro.fd), Instr("call", funcs["fd_renumber"]),
                 Instr("local.set", e), *fail(3, ro.fd), end(), end()]
        if ro.offset:
            code += [Instr("i32.const", ro.fd), Instr("i64.const", ro.offset), Instr("i32.const", WHENCE_SET),
                     Instr("i32.const", _RESULT), Instr("call", funcs["fd_seek"]), Instr("local.set", e),
                     *fail(4, ro.fd)]
    for n in p.close:
        code += [Instr("i32.const", n), Instr("call", funcs["fd_close"]), Instr("drop")]
    for a in range(0, p.scratch, 8):  # the borrowed bytes back as the snapshot has them
        code += [Instr("i32.const", a), Instr("i64.const", int.from_bytes(memory[a:a + 8], "little")),
                 Instr("i64.store", MemArg(3, 0, mi))]
    code += [Instr("i32.const", 1), Instr("global.set", status), end()]
    return Func(typeidx, [(2, "i32"), (1, "i64")], code)


def scratch_bytes(state: State, ist: InstanceState, p: WasiPlan) -> bytes:
    """The snapshot's bytes of the scratch area (what the prologue puts back)."""
    ms = state.mems[ist.mems[p.memidx]]
    page0 = ms.nonzero.get(0, b"")
    return bytes(page0[:p.scratch]).ljust(p.scratch, b"\0")


def status_export(index: int) -> Export:
    return Export(STATUS_EXPORT, "global", index)


class WasiPart:
    """The WASI part while a resume module is built: the plan, the WASI function indices, and the index
    of the status global once the store part has placed it (``build`` sets it)."""

    def __init__(self, p: WasiPlan, funcs: Dict[str, int]):
        self.plan = p
        self.funcs = funcs
        self.status = -1

    def exit_code(self) -> List[Instr]:
        code = self.plan.run.snapshot.exit_code
        if code is None:
            raise NotConvertible("inconsistent state", "the run ended with proc_exit but the WASI state has no exit code")
        return exit_code(self.plan, self.funcs, code)


def fresh_wasi_state(run: WasiRun, limits: Any = None) -> Any:
    """The WASI state our VM runs a resume module with (the self-check): what a target gets — the
    snapshot's files under the same preopens (fds 3, 4, …), args, env, the rest of stdin, fds 0–2 — and
    nothing of its fd table or output (the prologue reopens the fds; the output so far is the snapshot's
    prefix).  The virtual clock and the random stream continue where the snapshot left them."""
    from ...runtime.wasi import WasiConfig, WasiState
    from ..wasi_state import restore_wasi

    ws = run.snapshot
    env = [e.decode("utf-8", "surrogateescape").partition("=") for e in run.env]
    cfg = WasiConfig(args=[a.decode("utf-8", "surrogateescape") for a in run.args],
                     env=[(k, v) for k, _, v in env],
                     dirs=[(g, None) for g in run.roots], stdin=run.stdin, real_clock=ws.real_clock, seed=ws.seed)
    st = WasiState.start(cfg, limits)
    old = restore_wasi(ws, limits)
    st.fs = old.fs
    for n, g in enumerate(run.roots):
        st.fds[FIRST_PREOPEN + n].ino = st.fs.roots[g]
    st.clock_ns, st.random_counter = ws.clock_ns, ws.random_counter
    return st
