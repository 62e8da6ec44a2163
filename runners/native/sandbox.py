"""The host side of running a WASI program's resume module on a native target: the *sandbox*.

One fresh temporary directory per restore holds a copy of the snapshot's files, one subdirectory per
preopen (``root0``, ``root1``, … in ``State.wasi.roots`` order, which the target preopens as fds 3, 4,
…; the resume module's prologue reopens the open fds in them, :mod:`vm.snapshot.resume.wasi_part`),
what is left of stdin, and the files the target's stdout and stderr go to.  After the run the
directories are read back into a :class:`vm.runtime.wasi.MemFS` (``load_dir``) and compared by its
canonical ``digest()``, so a target's files are judged exactly like our VM's.

Every target that runs WASI (wasmtime, V8, the command-line targets) uses this one home: nothing here
knows a runtime.  The snapshot is a file from a stranger: an entry name that could leave its
directory (``/``, NUL, ``.``, ``..``, empty) is refused with :class:`SandboxError` before anything is
written.
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from typing import Any, Callable, Dict, List, Optional, Tuple

from vm.snapshot.model import WasiInode
from vm.snapshot.resume.wasi_part import WasiRun

from .process import InvalidModule, Unrunnable

__all__ = ["Sandbox", "SandboxError", "text_args", "env_pairs"]


class SandboxError(ValueError):
    """The snapshot's files cannot be materialized (an unsafe name, an inode that is missing)."""


class Sandbox:
    """A materialized sandbox (a context manager: the directory is removed on exit).

    ``preopens``: (guest path, host directory) in fd order; ``stdin``/``stdout``/``stderr``: host file
    paths for the target's standard streams."""

    def __init__(self, run: WasiRun):
        self.run = run
        self.dir = tempfile.mkdtemp(prefix="wcr-wasi-")
        self.preopens: List[Tuple[str, str]] = []
        self.stdin = os.path.join(self.dir, "stdin")
        self.stdout = os.path.join(self.dir, "stdout")
        self.stderr = os.path.join(self.dir, "stderr")
        try:
            self._materialize()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def _materialize(self) -> None:
        inodes = {n.ino: n for n in self.run.snapshot.inodes}
        self._files: Dict[int, str] = {}  # file inode → its first host path (further names: hard links)
        for i, (guest, ino) in enumerate(self.run.snapshot.roots):
            host = os.path.join(self.dir, f"root{i}")
            os.mkdir(host)
            self._write_dir(inodes, ino, host, {ino})
            self.preopens.append((guest, host))
        for path, data in ((self.stdin, self.run.stdin), (self.stdout, b""), (self.stderr, b"")):
            with open(path, "wb") as f:
                f.write(data)

    def _write_dir(self, inodes: Dict[int, WasiInode], ino: int, host: str, seen: set) -> None:
        node = _inode(inodes, ino)
        if node.kind != "dir":
            raise SandboxError(f"WASI root inode {ino} is a {node.kind}, not a directory")
        for name, child in node.entries:
            if name in ("", ".", "..") or "/" in name or "\0" in name:
                raise SandboxError(f"WASI directory inode {ino} has an unsafe entry name {name!r}")
            c = _inode(inodes, child)
            path = os.path.join(host, name)
            if c.kind == "dir":
                if child in seen:
                    raise SandboxError(f"WASI directory inode {child} is reachable twice (a cycle)")
                seen.add(child)
                os.mkdir(path)
                self._write_dir(inodes, child, path, seen)
            elif c.kind == "symlink":
                os.symlink(c.target, path)
            elif child in self._files:  # one file under several names: a write through one shows in all
                os.link(self._files[child], path)
            else:
                with open(path, "wb") as f:
                    f.write(c.data)
                self._files[child] = path

    def outcome(self, exit_code: Optional[int]) -> Dict[str, Any]:
        """The run's WASI end in the shape of :attr:`vm.snapshot.Outcome.wasi` (stdout/stderr of this
        run only: the oracle puts the snapshot's part in front)."""
        return {"exit_code": exit_code, "stdout": _b64(_read(self.stdout)), "stderr": _b64(_read(self.stderr)),
                "files": self.files_digest()}

    def files_digest(self) -> str:
        """The canonical digest of the preopened directories as they are now (read back into a MemFS)."""
        from vm.runtime.wasi import MemFS

        fs = MemFS()
        for guest, host in self.preopens:
            fs.load_dir(host, guest)
        return fs.digest()


def _inode(inodes: Dict[int, WasiInode], ino: int) -> WasiInode:
    node = inodes.get(ino)
    if node is None:
        raise SandboxError(f"WASI inode {ino} is referenced but missing")
    return node


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def text_args(run: WasiRun) -> List[str]:
    """The args as text (runtimes' APIs take strings); non-UTF-8 args raise :class:`SandboxError`."""
    try:
        return [a.decode("utf-8") for a in run.args]
    except UnicodeDecodeError as exc:
        raise SandboxError(f"a WASI argument is not UTF-8: {exc}") from None


def env_pairs(run: WasiRun) -> List[Tuple[str, str]]:
    """The environment as (name, value) pairs, split at the first ``=``."""
    out = []
    for e in run.env:
        try:
            k, _, v = e.decode("utf-8").partition("=")
        except UnicodeDecodeError as exc:
            raise SandboxError(f"a WASI environment variable is not UTF-8: {exc}") from None
        out.append((k, v))
    return out


def wasi_outcome(out: Any, man: Any, sb: Sandbox, exit_code: Optional[int], status: int) -> None:
    """Fill ``out.wasi`` (a :class:`.target.NativeOutcome`) after a run in ``sb``; when the WASI
    prologue did not complete (``status``, :func:`vm.snapshot.resume.wasi_part.describe_status`) the
    run says nothing about the program: ``error`` when the sandbox lacked a file it should hold, else
    ``unsupported`` (the target's WASI refused the reopen): a reopen that does not find its file in the
    sandbox is wcr's fault (the copy is wrong), any other refusal is the target's WASI not taking it."""
    from vm.runtime.wasi.constants import ENOENT
    from vm.snapshot.resume.wasi_part import describe_status

    problem = describe_status(status) if man.wasi.status_export else None  # no prologue: a baseline run
    if problem is not None and out.error is None and out.unsupported is None:
        if (status & 0xFF) == ENOENT and (status >> 24) & 0x7F == 2:
            out.error = f"wcr's sandbox lacks a file the snapshot has open: {problem}"
        else:
            out.unsupported = f"{out.target}'s WASI refused to recreate the fd table: {problem}"
        return
    out.wasi = sb.outcome(exit_code)


def run_sandboxed(man: Any, out: Any, run_in: Callable[[Optional[Sandbox]], None]) -> None:
    """How an in-process target (wasmtime, V8) runs a resume or baseline module: ``run_in(None)`` for a
    program without WASI; for a WASI program ``run_in(sandbox)`` in a fresh copy of the snapshot's files,
    then ``out.wasi`` from what it left (:func:`wasi_outcome`).  Files we cannot lay out are our invalid
    input; args/env the runtime's API cannot take make the run impossible there, not wrong."""
    if man.wasi is None:
        run_in(None)
        return
    try:
        sb = Sandbox(man.wasi)
    except SandboxError as exc:
        raise InvalidModule(f"the snapshot's WASI files: {exc}") from exc
    with sb:
        try:
            run_in(sb)
        except SandboxError as exc:  # args/env the runtime's API cannot take
            raise Unrunnable(str(exc)) from exc
        if out.inconclusive is None:
            wasi_outcome(out, man, sb, out.details.pop("exit_code", None), out.details.pop("wasi_status", 0))
