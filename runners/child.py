"""Entry point of the ``python:PATH`` host: ``python -m runners.child``.

Reads one JSON request on stdin::

    {"op": "finish", "snapshot_b64": "...", "modules_b64": {"<sha256 hex>": "..."}}
    (or "snapshot": PATH and "modules": {"<sha256 hex>": PATH})

restores it into a fresh store and answers one JSON reply on stdout.  The operations (the same as
:class:`runners.hosts.Host`'s):

* ``"op": "finish"`` (the default) — run to the end: ``{"outcome": {...}, "python": "3.12.1 (CPython)"}``;
* ``"op": "step", "k": K`` — run until K instructions have retired in total and checkpoint again:
  ``{"snapshot_b64": "...", "python": ...}`` (one hop of a migration chain, ``wcr fuzz``);

or ``{"error": {"type": ..., "message": ...}}`` with exit status 2 for a bad snapshot and 1 for anything
else.  Standard library only.  Faults for ``wcr selftest`` come in through ``WCR_FAULTS``
(read by :mod:`vm.snapshot.faults` at import; the parent sets it from its active faults).

``python -m runners.child --serve`` answers many requests on one process (what :class:`runners.hosts.
PythonHost` uses): each request and reply is a 4-byte big-endian length followed by that many bytes of
JSON.  A request may omit the bytes of modules sent earlier (``module_shas`` lists the ones it needs;
``modules_b64`` carries only new ones): they are kept by sha256 for the life of the process.  The
process exits on end of input.
"""

from __future__ import annotations

import base64
import json
import platform
import sys


def _run(req: dict, snap: bytes, modules: dict) -> dict:
    """Do the request's operation; every failure becomes an ``error`` reply (never a traceback)."""
    from vm.snapshot import SnapshotError, advance, checkpoint, decode, encode, finish, restore

    op = req.get("op", "finish")
    try:
        if op not in ("finish", "step"):
            return {"error": {"type": "Request", "message": f"unknown op {op!r}"}}
        k = int(req["k"]) if op == "step" else 0
        store, run = restore(decode(snap), modules)
        if run is None:
            raise SnapshotError("snapshot has no thread to resume")
        if op == "step":
            advance(store, run, k)
            out = {"snapshot_b64": base64.b64encode(encode(checkpoint(store, run))).decode("ascii")}
        else:
            out = {"outcome": finish(store, run).to_dict()}
    except SnapshotError as e:
        return {"error": {"type": "SnapshotError", "message": str(e)}}
    except RecursionError as e:
        return {"error": {"type": "RecursionError", "message": str(e)}}
    except Exception as e:  # any crash of the VM is reported to the caller (a finding for the fuzzer)
        return {"error": {"type": type(e).__name__, "message": str(e)}}
    out["python"] = f"{platform.python_version()} ({platform.python_implementation()})"
    return out


def _read_exact(f, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = f.read(n - len(buf))
        if not chunk:
            return b""
        buf += chunk
    return buf


def serve() -> int:
    """The long-lived mode: framed requests on stdin until end of input."""
    import struct

    inp, out = sys.stdin.buffer, sys.stdout.buffer
    cache: dict = {}
    while True:
        head = _read_exact(inp, 4)
        if len(head) < 4:
            return 0
        body = _read_exact(inp, struct.unpack(">I", head)[0])
        try:
            req = json.loads(body.decode("utf-8"))
            for sha, b in (req.get("modules_b64") or {}).items():
                cache[sha] = base64.b64decode(b)
            missing = [sha for sha in req.get("module_shas", []) if sha not in cache]
            if missing:
                raise KeyError(f"module {missing[0]} was never sent")
            modules = {sha: cache[sha] for sha in req.get("module_shas", [])}
            reply = _run(req, base64.b64decode(req["snapshot_b64"]), modules)
        except Exception as e:  # malformed request: reported, the loop goes on
            reply = {"error": {"type": "Request", "message": f"{type(e).__name__}: {e}"}}
        data = json.dumps(reply).encode("utf-8")
        out.write(struct.pack(">I", len(data)) + data)
        out.flush()


def main() -> int:
    if "--serve" in sys.argv[1:]:
        return serve()
    try:
        req = json.loads(sys.stdin.read())
        if "snapshot_b64" in req:
            snap = base64.b64decode(req["snapshot_b64"])
        else:
            with open(req["snapshot"], "rb") as f:
                snap = f.read()
        modules = {}
        for sha, b in (req.get("modules_b64") or {}).items():
            modules[sha] = base64.b64decode(b)
        for sha, path in (req.get("modules") or {}).items():
            with open(path, "rb") as f:
                modules[sha] = f.read()
    except Exception as e:  # a malformed request is a protocol error, reported, never a traceback
        json.dump({"error": {"type": "Request", "message": f"{type(e).__name__}: {e}"}}, sys.stdout)
        return 1
    reply = _run(req, snap, modules)
    json.dump(reply, sys.stdout)
    err = reply.get("error")
    if err:
        return 2 if err.get("type") == "SnapshotError" else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
