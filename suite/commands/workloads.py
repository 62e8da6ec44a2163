"""``wcr workloads [NAMES] [--json PATH] [--build-only] [--no-checkpoint] [--cr N --seed S --restore-on LIST]``:
real C programs (and SQLite) built to WASI commands, run on our VM and on wasmtime, compared, and
checkpointed mid-run.

Each workload (:data:`generators.workloads.WORKLOADS`) is built with ``zig cc`` (cached by content,
:mod:`spec_tests.cbuild`; SQLite's amalgamation comes from a pinned, sha256-verified npm tarball,
:mod:`spec_tests.sqlite_src`) and run to its end with an empty sandbox preopened as ``/data``, on our VM
and on wasmtime's WASI (:mod:`runners.wasi_run`, the home ``wcr migrate`` uses too): exit status,
stdout, stderr and the files digest must be equal (``wcr migrate``'s comparison).  Then:

* unless ``--no-checkpoint``: a checkpoint at the middle instruction, encoded, decoded, restored here
  and run to its end (it must end like the uninterrupted run).  Its encoded size, and the time of
  checkpoint+encode and of decode+restore, are the figures the README compares with other C/R systems;
* ``--cr N``: N checkpoints at ``random.Random(--seed)`` instruction counts, each continued on every
  place of ``--restore-on`` (hosts: ``inproc``, ``python:PATH``, ``pypy3``; targets: ``wasmtime``,
  ``v8``, ...) exactly as ``wcr migrate --at K --to PLACE`` does (its checkpoint and comparison, through
  :func:`runners.session.restore_on`).

Statuses: ``agree``, ``partial`` (no difference, but some ``--cr`` restores could not be judged: inconclusive,
target-nonconformant, not applicable or not convertible, each listed with its reason), ``differ`` (exit 1), ``skipped`` (SQLite when the tarball cannot be downloaded:
the reason starts with ``skipped: cannot download``), ``built`` (``--build-only``).  No ziglang, or a
downloaded tarball that is not the pinned one, is bad input (one line, exit 2).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import platform
import random
import sys
import tempfile
import time
from collections import Counter
from typing import Any, Dict, List, Tuple

from generators.workloads import GUEST_DIR, WORKLOADS, Workload
from runners.restore import INCONCLUSIVE, NONCONFORMANT, NOT_APPLICABLE, NOT_CONVERTIBLE
from runners.session import resolve, restore_on
from runners.wasi_run import program_status, vm_start, wasmtime_run
from spec_tests.cbuild import BuildFailed, BuildUnavailable, build_workload
from spec_tests.sqlite_src import SourceInvalid, SourceUnavailable
from suite.commands import EXIT_FAIL, EXIT_OK, UsageError
from suite.commands._io import write_output
from suite.commands.migrate import checkpoint_program as migrate_checkpoint
from suite.commands.migrate import compare_program as migrate_compare
from vm.runtime.wasi import WasiConfig
from vm.snapshot import SnapshotError, advance, checkpoint, decode, encode, finish, restore


def _add(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", metavar="NAME", help=f"workloads (default all: {', '.join(WORKLOADS)})")
    p.add_argument("--json", metavar="PATH", help="write the results (figures included) as JSON")
    p.add_argument("--build-only", action="store_true", help="build (or find in the cache) and stop")
    p.add_argument("--no-checkpoint", action="store_true",
                   help="skip the mid-run checkpoint/restore (its size and restore time)")
    p.add_argument("--cr", type=int, default=0, metavar="N",
                   help="N seeded random checkpoints per workload, each continued on every --restore-on place")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the --cr instruction counts")
    p.add_argument("--restore-on", default="inproc", metavar="LIST",
                   help="where --cr checkpoints continue: inproc, python:PATH, pypy3, wasmtime, v8, ... "
                        "(comma-separated; default inproc)")


def _selected(args: argparse.Namespace) -> List[Workload]:
    unknown = [n for n in args.names if n not in WORKLOADS]
    if unknown:
        raise UsageError(f"unknown workload {unknown[0]!r} (known: {', '.join(WORKLOADS)})")
    if args.cr < 0:
        raise UsageError(f"--cr {args.cr}: expected a number of checkpoints >= 0")
    if args.cr:
        try:
            restorers = resolve(args.restore_on)
        except ValueError as e:
            raise UsageError(f"--restore-on {args.restore_on}: {e}") from None
        for r in restorers:
            ok, why = r.available()
            close = getattr(r, "close", None)
            if close is not None:
                close()
            if not ok:
                raise UsageError(f"--restore-on {r.name}: not available here: {why}")
    return [WORKLOADS[n] for n in (args.names or list(WORKLOADS))]


def _end(outcome: Dict[str, Any]) -> Dict[str, Any]:
    """A run's end for the report: exit status, stdout as text (or its sha256 when long), files."""
    wasi = outcome.get("wasi") or {}
    out = base64.b64decode(wasi.get("stdout") or "")
    text: Any = out.decode("utf-8", "replace") if len(out) <= 4096 else {
        "sha256": hashlib.sha256(out).hexdigest(), "bytes": len(out)}
    return {"exit_status": program_status(outcome), "stdout": text,
            "stderr_bytes": len(base64.b64decode(wasi.get("stderr") or "")), "files": wasi.get("files")}


def _midrun(wasm: bytes, config: WasiConfig, ref: Dict[str, Any]) -> Dict[str, Any]:
    """The figures of a checkpoint at the middle instruction, restored here from its bytes alone."""
    k = int(ref["instructions"]) // 2
    store, run = vm_start(wasm, config)
    advance(store, run, k)
    t0 = time.perf_counter()
    state = checkpoint(store, run)
    blob = encode(state)
    t1 = time.perf_counter()
    pages = sum(m.pages for m in state.mems)
    raw = len(encode(state, compress=False))  # the same sections without zlib (other C/R systems' unit)
    try:
        store2, run2 = restore(decode(blob), {hashlib.sha256(wasm).hexdigest(): wasm})
    except SnapshotError as e:
        return {"k": k, "snapshot_bytes": len(blob), "uncompressed_bytes": raw, "memory_pages": pages,
                "differences": [f"restore: {e}"]}
    t2 = time.perf_counter()
    assert run2 is not None  # a checkpoint of a running invocation has a thread
    got = finish(store2, run2).to_dict()
    return {"k": k, "snapshot_bytes": len(blob), "uncompressed_bytes": raw, "memory_pages": pages,
            "checkpoint_seconds": round(t1 - t0, 4),
            "restore_seconds": round(t2 - t1, 4), "resumed_seconds": round(time.perf_counter() - t2, 3),
            "differences": migrate_compare(f"resumed at {k}", ref, got)}


#: session verdicts that are neither agreement nor a C/R divergence: counted and shown apart
UNJUDGED = (INCONCLUSIVE, NONCONFORMANT, NOT_APPLICABLE, NOT_CONVERTIBLE)


def _cr(wasm: bytes, config: WasiConfig, ref: Dict[str, Any], args: argparse.Namespace) -> List[Dict[str, Any]]:
    """``--cr N``: what ``wcr migrate --at K --to PLACE`` does, for N seeded K and every place."""
    rng = random.Random(args.seed)
    ks = sorted(rng.randint(0, int(ref["instructions"])) for _ in range(args.cr))
    modules = {hashlib.sha256(wasm).hexdigest(): wasm}
    out = []
    for k in ks:
        snap = migrate_checkpoint(wasm, config, k, "inproc")
        for where in [w.strip() for w in args.restore_on.split(",") if w.strip()]:
            t0 = time.perf_counter()
            verdict = "match"
            try:
                got = restore_on(snap, modules, where)
                verdict = got.get("verdict", "match")
                if verdict in UNJUDGED:  # the session could not judge (e.g. the runtime's own bug): said, not a pass
                    diffs = []
                else:
                    diffs = migrate_compare(f"k={k} on {where}", ref, got)
                    diffs += [f"k={k} on {where}: {d}" for d in got.get("differences") or []]
            except (SnapshotError, ValueError) as e:
                diffs = [f"k={k} on {where}: {e}"]
            entry = {"k": k, "on": where, "snapshot_bytes": len(snap), "differences": diffs,
                     "seconds": round(time.perf_counter() - t0, 2)}
            if verdict in UNJUDGED:
                entry.update(verdict=verdict, note="; ".join(got.get("differences") or [])[:500])
            out.append(entry)
    return out


def _run_one(w: Workload, wasm: bytes, args: argparse.Namespace) -> Dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="wcr-sandbox-") as tmp:  # empty; never written (copies only)
        config = WasiConfig(args=[w.name, *w.args], dirs=[(GUEST_DIR, tmp)])
        t0 = time.perf_counter()
        store, run = vm_start(wasm, config)
        ref = finish(store, run).to_dict()
        t1 = time.perf_counter()
        theirs = wasmtime_run(wasm, config)
        t2 = time.perf_counter()
        row: Dict[str, Any] = {
            "instructions": ref["instructions"], "vm_seconds": round(t1 - t0, 3), "ours": _end(ref),
            "wasmtime": {**_end(theirs.outcome), "seconds": round(t2 - t1, 4), "message": theirs.message},
            "differences": migrate_compare("wasmtime", ref, theirs.outcome)}
        if not args.no_checkpoint:
            row["checkpoint"] = _midrun(wasm, config, ref)
        if args.cr:
            row["cr"] = _cr(wasm, config, ref, args)
    bad = (row["differences"] or (row.get("checkpoint") or {}).get("differences")
           or any(c["differences"] for c in row.get("cr", ())))
    unjudged = any(c.get("verdict") in UNJUDGED for c in row.get("cr", ()))
    row["status"] = "differ" if bad else ("partial" if unjudged else "agree")
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
    return {**row, **_run_one(w, wasm, args)}


HEADER = (f"{'workload':<15} {'instructions':>12} {'VM s':>7}  {'wasmtime':<16} {'verdict':<8} "
          f"{'mid-run checkpoint':<36} --cr")


def _line(r: Dict[str, Any]) -> Tuple[str, List[str]]:
    """The table row of a workload, and its differences (printed under it)."""
    if r["status"] == "skipped":
        return f"{r['name']:<15} {r['reason']}", []
    if r["status"] in ("error", "built"):
        return f"{r['name']:<15} {r['status']}: {r.get('reason') or r.get('path')}", []
    t = r["wasmtime"]
    cp = r.get("checkpoint") or {}
    cps = (f"{cp['snapshot_bytes'] / 1024:,.0f} KB @{cp['k']:,}, restore {cp['restore_seconds']:.3f} s"
           if "restore_seconds" in cp else ("failed" if cp else "-"))
    crs = r.get("cr") or []
    crtext = "-"
    if crs:
        agree = sum(not c["differences"] and "verdict" not in c for c in crs)
        others = Counter(c["verdict"] for c in crs if "verdict" in c)
        crtext = ", ".join([f"{agree}/{len(crs)} agree"] + [f"{n} {v}" for v, n in sorted(others.items())])
        diffs_un = [f"k={c['k']} on {c['on']}: {c['verdict']}: {c['note']}" for c in crs if "verdict" in c]
    else:
        diffs_un = []
    diffs = (list(r["differences"]) + list(cp.get("differences", ())) + [d for c in crs for d in c["differences"]]
             + diffs_un)
    return (f"{r['name']:<15} {r['instructions']:>12,} {r['vm_seconds']:>7.2f}  "
            f"{'exit ' + str(t['exit_status']) + ' ' + format(t['seconds'] * 1000, '.0f') + ' ms':<16} "
            f"{r['status']:<8} {cps:<36} {crtext}"), diffs


def _run(args: argparse.Namespace) -> int:
    selected = _selected(args)
    if not args.build_only:
        print(HEADER, flush=True)
    rows = []
    t0 = time.perf_counter()
    for w in selected:
        r = _workload(w, args)
        rows.append(r)
        line, diffs = _line(r)
        print("\n".join([line] + [f"    {d}" for d in diffs]), flush=True)
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
