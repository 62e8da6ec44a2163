"""A long-lived Python host for fuzzing: ``PATH -m suite.fuzz.worker`` (standard library + vm/ only).

Why not ``runners.child``: that starts one interpreter per restore (~100 ms each), which would dominate a
campaign whose trials take milliseconds, and it can only *finish* a run, while a migration chain also
needs "restore, run to k, checkpoint again" on the foreign host.  This worker reads one JSON request per
line on stdin and answers one JSON line on stdout:

* ``{"op": "finish", "snapshot_b64": ..., "modules_b64": {sha: b64}}`` → ``{"outcome": {...}}``
* ``{"op": "step", "snapshot_b64": ..., "k": K, "modules_b64": ...}`` → ``{"snapshot_b64": ...}``
  (restore, run until K instructions have retired in total, checkpoint)
* errors: ``{"error": {"type": "SnapshotError"|..., "message": ...}}``

Module bytes are cached by sha256, so a request only carries modules the worker has not seen yet.
Faults for ``wcr selftest`` come through the ``WCR_FAULTS`` environment variable (vm/snapshot/faults.py).
"""

from __future__ import annotations

import base64
import json
import platform
import sys
from typing import Any, Dict


def handle(req: Dict[str, Any], modules: Dict[str, bytes]) -> Dict[str, Any]:
    from vm.snapshot import SnapshotError, advance, checkpoint, decode, encode, finish, restore

    for sha, b in (req.get("modules_b64") or {}).items():
        modules[sha] = base64.b64decode(b)
    snap = base64.b64decode(req["snapshot_b64"])
    try:
        store, run = restore(decode(snap), modules)
        if run is None:
            raise SnapshotError("snapshot has no thread to resume")
        if req.get("op") == "step":
            advance(store, run, int(req["k"]))
            return {"snapshot_b64": base64.b64encode(encode(checkpoint(store, run))).decode("ascii")}
        return {"outcome": finish(store, run).to_dict()}
    except SnapshotError as e:
        return {"error": {"type": "SnapshotError", "message": str(e)}}
    except Exception as e:  # noqa: BLE001 - any crash of the VM is a finding, reported to the caller
        return {"error": {"type": type(e).__name__, "message": str(e)}}


def main() -> int:
    modules: Dict[str, bytes] = {}
    out = sys.stdout
    out.write(json.dumps({"ready": f"{platform.python_version()} ({platform.python_implementation()})"}) + "\n")
    out.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            reply = handle(json.loads(line), modules)
        except Exception as e:  # noqa: BLE001 - malformed request: a protocol error, never a traceback
            reply = {"error": {"type": "Request", "message": f"{type(e).__name__}: {e}"}}
        out.write(json.dumps(reply) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
