"""``wcr workloads [NAMES] [--json PATH] [--build-only] [--no-checkpoint]``: real C programs (and SQLite)
built to WASI commands, run on our VM and on wasmtime, compared.

Each workload (:data:`generators.workloads.WORKLOADS`) is built with ``zig cc`` (cached by content,
:mod:`spec_tests.cbuild`; SQLite's amalgamation comes from a pinned, sha256-verified npm tarball,
:mod:`spec_tests.sqlite_src`), then run to its end with a fresh, empty sandbox preopened as ``/data``
on our VM and on wasmtime (:mod:`runners.wasi_command`): stdout, stderr, exit code and the files digest
must be equal.  Then, unless ``--no-checkpoint``, the run is checkpointed at its middle instruction,
the snapshot encoded, decoded, restored here and finished; the resumed end must be equal too, and the
snapshot's size and the restore time are the figures the README compares with other C/R systems.

Statuses: ``agree``, ``differ`` (exit 1), ``skipped`` (SQLite when the tarball cannot be downloaded:
the reason starts with ``skipped: cannot download``), ``built`` (``--build-only``).  No ziglang, or a
downloaded tarball that is not the pinned one, is bad input (one line, exit 2).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

from generators.workloads import GUEST_DIR, WORKLOADS, Workload
from runners.wasi_command import CommandResult, checkpoint_at, run_ours, run_wasmtime
from spec_tests.cbuild import BuildFailed, BuildUnavailable, build_workload
from spec_tests.sqlite_src import SourceInvalid, SourceUnavailable
from suite.commands import EXIT_FAIL, EXIT_OK, UsageError
from suite.commands._io import write_output
from vm.snapshot import SnapshotError

#: the fields of a run's end that must be equal everywhere
COMPARED = ("exit_code", "stdout", "stderr", "trap", "files")


def _add(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", metavar="NAME", help=f"workloads (default all: {', '.join(WORKLOADS)})")
    p.add_argument("--json", metavar="PATH", help="write the results (figures included) as JSON")
    p.add_argument("--build-only", action="store_true", help="build (or find in the cache) and stop")
    p.add_argument("--no-checkpoint", action="store_true",
                   help="skip the mid-run checkpoint/restore (its size and restore time)")


def _selected(names: List[str]) -> List[Workload]:
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        raise UsageError(f"unknown workload {unknown[0]!r} (known: {', '.join(WORKLOADS)})")
    return [WORKLOADS[n] for n in (names or list(WORKLOADS))]


def _end(r: CommandResult) -> Dict[str, Any]:
    """A run's end as JSON: the compared fields (stdout/stderr as text, or their sha256 when long)."""
    def text(b: bytes) -> Any:
        return b.decode("utf-8", "replace") if len(b) <= 4096 else {"sha256": hashlib.sha256(b).hexdigest(),
                                                                    "bytes": len(b)}
    return {"exit_code": r.exit_code, "stdout": text(r.stdout), "stderr": text(r.stderr), "trap": r.trap,
            "files": r.files, "seconds": round(r.seconds, 4), "instructions": r.instructions}


def _differences(a: CommandResult, b: CommandResult) -> List[str]:
    return [f for f in COMPARED if getattr(a, f) != getattr(b, f)]


def _checkpoint(w: Workload, wasm: bytes, argv: List[str], sandbox: Path, ref: CommandResult) -> Dict[str, Any]:
    """The mid-run checkpoint of ``w``: figures, and whether the resumed end equals ``ref``."""
    k = (ref.instructions or 0) // 2
    try:
        f = checkpoint_at(wasm, argv, [(GUEST_DIR, sandbox)], k)
    except SnapshotError as exc:
        return {"k": k, "error": str(exc), "differences": ["checkpoint"]}
    return {"k": k, "snapshot_bytes": f.snapshot_bytes, "checkpoint_seconds": round(f.checkpoint_seconds, 4),
            "restore_seconds": round(f.restore_seconds, 4), "resumed_seconds": round(f.resumed.seconds, 3),
            "differences": _differences(f.resumed, ref)}


def _run_one(w: Workload, wasm: bytes, checkpoint: bool) -> Dict[str, Any]:
    argv = [w.name, *w.args]
    with tempfile.TemporaryDirectory(prefix="wcr-sandbox-") as tmp:
        sandbox = Path(tmp)  # empty; ours loads it, wasmtime gets a copy: neither writes it
        ours = run_ours(wasm, argv, [(GUEST_DIR, sandbox)])
        theirs = run_wasmtime(wasm, argv, [(GUEST_DIR, sandbox)])
        row: Dict[str, Any] = {"instructions": ours.instructions, "vm_seconds": round(ours.seconds, 3),
                               "ours": _end(ours), "wasmtime": _end(theirs),
                               "differences": _differences(ours, theirs)}
        if checkpoint:
            row["checkpoint"] = _checkpoint(w, wasm, argv, sandbox, ours)
    bad = row["differences"] or row.get("checkpoint", {}).get("differences")
    row["status"] = "differ" if bad else "agree"
    return row


def _workload(w: Workload, args: argparse.Namespace) -> Dict[str, Any]:
    row: Dict[str, Any] = {"name": w.name, "about": w.about, "args": list(w.args)}
    try:
        path = build_workload(w)
    except SourceUnavailable as exc:
        return {**row, "status": "skipped", "reason": str(exc)}
    except (BuildUnavailable, SourceInvalid) as exc:
        raise UsageError(str(exc)) from None
    except BuildFailed as exc:
        return {**row, "status": "error", "reason": str(exc)}
    wasm = path.read_bytes()
    row.update(wasm_bytes=len(wasm), wasm_sha256=hashlib.sha256(wasm).hexdigest())
    if args.build_only:
        return {**row, "status": "built", "path": str(path)}
    return {**row, **_run_one(w, wasm, not args.no_checkpoint)}


def _line(r: Dict[str, Any]) -> str:
    if r["status"] == "skipped":
        return f"{r['name']:<15} {r['reason']}"
    if r["status"] in ("error", "built"):
        return f"{r['name']:<15} {r['status']}: {r.get('reason') or r.get('path')}"
    t = r["wasmtime"]
    cp = r.get("checkpoint") or {}
    cps = (f"{cp['snapshot_bytes'] / 1024:.0f} KB @k={cp['k']}, restore {cp['restore_seconds']:.3f}s"
           if "snapshot_bytes" in cp else cp.get("error", "-"))
    resumed = [f"resumed {d}" for d in cp.get("differences", ())]
    verdict = r["status"] if r["status"] == "agree" else f"differ ({', '.join(r['differences'] + resumed)})"
    return (f"{r['name']:<15} {r['instructions']:>11,} {r['vm_seconds']:>8.2f}s  exit {t['exit_code']} "
            f"in {t['seconds'] * 1000:.1f} ms   {verdict:<10} {cps}")


def _run(args: argparse.Namespace) -> int:
    selected = _selected(args.names)
    print(f"{'workload':<15} {'instructions':>11} {'VM':>9}  wasmtime            verdict    mid-run checkpoint",
          flush=True)
    rows = []
    t0 = time.perf_counter()
    for w in selected:
        r = _workload(w, args)
        rows.append(r)
        print(_line(r), flush=True)
    report = {"python": f"{platform.python_implementation()} {platform.python_version()}",
              "seconds": round(time.perf_counter() - t0, 1), "workloads": rows}
    if args.json:
        write_output(args.json, json.dumps(report, indent=2) + "\n")
    failed = [r["name"] for r in rows if r["status"] in ("differ", "error")]
    if failed:
        print(f"wcr workloads: {', '.join(failed)} did not agree", file=sys.stderr)
    return EXIT_FAIL if failed else EXIT_OK


COMMANDS = [("workloads", "build real C programs (and SQLite) to WASI, run them on our VM and on wasmtime, "
                          "checkpoint them mid-run, compare", _add, _run)]
