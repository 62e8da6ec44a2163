"""The one protocol between wcr and its long-lived children: Python hosts (``python -m runners.child
--serve``) and native servers (node for v8, the wasm3 child).

A frame is a 4-byte **big-endian** length followed by that many bytes of UTF-8 JSON, in both directions;
one request frame gets one reply frame.  :class:`FramedChild` is the parent's side: it starts the child
in its own process group (so a kill takes the child's children too) and bound to die with this process
(:mod:`runners.lifetime`), writes without blocking (a large
snapshot must not deadlock against a child that is writing), reads with a deadline, and turns a crash or
a timeout into :class:`ChildCrashed` / :class:`ChildTimeout` after which the next request starts a fresh
process.  :func:`serve` is the child's side (standard library only: bare interpreters run it).
"""

from __future__ import annotations

import json
import os
import select
import struct
import subprocess
import sys
import tempfile
import time
from typing import Any, BinaryIO, Callable, Dict, Optional, Sequence

from .lifetime import popen_kwargs

_HEAD = struct.Struct(">I")
#: refuse a reply frame larger than this (a broken child must not make us allocate without bound)
MAX_FRAME = 1 << 31


class ChildError(Exception):
    """The child failed; ``kind`` is "crash", "timeout" or "protocol"."""

    kind = "crash"


class ChildCrashed(ChildError):
    kind = "crash"


class ChildTimeout(ChildError):
    kind = "timeout"


class ChildProtocolError(ChildError):
    kind = "protocol"


def encode_frame(obj: Any) -> bytes:
    data = json.dumps(obj).encode("utf-8")
    return _HEAD.pack(len(data)) + data


def read_frame(f: BinaryIO) -> Optional[Any]:
    """One frame from a blocking stream; None at a clean end of input."""
    head = _read_exact(f, 4)
    if head is None:
        return None
    body = _read_exact(f, _HEAD.unpack(head)[0])
    if body is None:
        return None
    return json.loads(body.decode("utf-8"))


def write_frame(f: BinaryIO, obj: Any) -> None:
    f.write(encode_frame(obj))
    f.flush()


def _read_exact(f: BinaryIO, n: int) -> Optional[bytes]:
    buf = b""
    while len(buf) < n:
        chunk = f.read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def serve(handle: Callable[[Any], Any]) -> int:
    """The child's loop: a reply frame for every request frame on stdin, until end of input.  A request
    that is not JSON gets an ``error`` reply; ``handle`` itself must not raise."""
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    while True:
        try:
            req = read_frame(inp)
        except (ValueError, UnicodeDecodeError) as e:
            write_frame(out, {"error": {"type": "Request", "message": f"malformed frame: {e}"}})
            continue
        if req is None:
            return 0
        write_frame(out, handle(req))


class FramedChild:
    """A long-lived child process speaking the frame protocol (the parent's side)."""

    def __init__(self, cmd: Sequence[str], cwd: Optional[str] = None, env: Optional[Dict[str, str]] = None,
                 name: str = ""):
        self.cmd = list(cmd)
        self.cwd = cwd
        self.env = env
        self.name = name or os.path.basename(self.cmd[0])
        self.proc: Optional[subprocess.Popen] = None
        self._err: Any = None
        self.starts = 0  # processes started (tests and benchmarks look at it)

    # -- life cycle -------------------------------------------------------------------------------
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> subprocess.Popen:
        if self.alive():
            assert self.proc is not None
            return self.proc
        self.close()
        # stderr to a file, not a pipe: a chatty child must never block on a full pipe
        self._err = tempfile.TemporaryFile()
        try:
            proc = subprocess.Popen(self.cmd, cwd=self.cwd, env=self.env, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=self._err, **popen_kwargs())
        except OSError as e:
            raise ChildCrashed(f"{self.name} cannot start: {e}") from None
        assert proc.stdin is not None
        os.set_blocking(proc.stdin.fileno(), False)
        self.proc = proc
        self.starts += 1
        return proc

    def close(self) -> None:
        """Kill the child and its process group (it also exits by itself when its stdin closes)."""
        p, self.proc = self.proc, None
        if p is None:
            return
        if p.poll() is None:
            try:
                os.killpg(p.pid, 9)
            except OSError:
                try:
                    p.kill()
                except OSError:
                    pass
        for f in (p.stdin, p.stdout):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - killed processes exit
            pass

    def __del__(self) -> None:  # pragma: no cover - best effort at interpreter exit
        try:
            self.close()
        except Exception:
            pass

    # -- one exchange -----------------------------------------------------------------------------
    def request(self, obj: Any, timeout: float) -> Any:
        """Send one request, return the decoded reply.  On a crash, timeout or malformed reply the
        child is killed (the next request starts a new one) and a :class:`ChildError` raised."""
        proc = self.start()
        try:
            body = self._exchange(proc, encode_frame(obj), timeout)
        except ChildError:
            self.close()
            raise
        try:
            return json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            self.close()
            raise ChildProtocolError(f"{self.name} sent a malformed reply") from None

    def _exchange(self, proc: subprocess.Popen, out: bytes, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        assert proc.stdin is not None and proc.stdout is not None
        wfd, rfd = proc.stdin.fileno(), proc.stdout.fileno()
        inbuf = bytearray()
        need = -1  # whole frame length once the header is in
        pos = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChildTimeout(f"{self.name} did not answer within {timeout:g} s")
            r, w, _ = select.select([rfd], [wfd] if pos < len(out) else [], [], left)
            if w:
                try:
                    pos += os.write(wfd, out[pos:pos + (1 << 16)])
                except BlockingIOError:
                    pass
                except OSError:  # broken pipe: the child is gone; read what it left, then report
                    pos = len(out)
            if not r:
                continue
            chunk = os.read(rfd, 1 << 16)
            if not chunk:
                try:
                    rc: Optional[int] = proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    rc = None
                raise ChildCrashed(f"{self.name} exited with status {rc} without a reply: {self.stderr_tail()}")
            inbuf += chunk
            if need < 0 and len(inbuf) >= 4:
                need = 4 + _HEAD.unpack(bytes(inbuf[:4]))[0]
                if need > MAX_FRAME:
                    raise ChildProtocolError(f"{self.name} announced a {need}-byte reply")
            if 0 <= need <= len(inbuf):
                return bytes(inbuf[4:need])

    def stderr_tail(self, lines: int = 5) -> str:
        f = self._err
        if f is None:
            return "no output"
        try:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 8192))
            tail = f.read().decode("utf-8", "replace").strip().splitlines()[-lines:]
        except (OSError, ValueError):
            tail = []
        return " / ".join(tail) or "no output"
