"""Entry point of the ``python:PATH`` host: ``python -m runners.child``.

Reads one JSON request on stdin::

    {"snapshot_b64": "...", "modules_b64": {"<sha256 hex>": "..."}}
    (or "snapshot": PATH and "modules": {"<sha256 hex>": PATH})

restores it into a fresh store, runs it to the end and writes one JSON reply on stdout:
``{"outcome": {...}, "python": "3.12.1 (CPython)"}``, or ``{"error": {"type": ..., "message": ...}}``
with exit status 2 for a bad snapshot and 1 for anything else.  Standard library only.
"""

from __future__ import annotations

import base64
import json
import platform
import sys


def main() -> int:
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
    from vm.snapshot import SnapshotError, decode, finish, restore

    try:
        store, run = restore(decode(snap), modules)
        if run is None:
            raise SnapshotError("snapshot has no thread to resume")
        out = finish(store, run).to_dict()
    except SnapshotError as e:
        json.dump({"error": {"type": "SnapshotError", "message": str(e)}}, sys.stdout)
        return 2
    except Exception as e:
        json.dump({"error": {"type": type(e).__name__, "message": str(e)}}, sys.stdout)
        return 1
    py = f"{platform.python_version()} ({platform.python_implementation()})"
    json.dump({"outcome": out, "python": py}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
