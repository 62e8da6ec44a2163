"""``wcr migrate``: a WASI command started on our VM, checkpointed mid-run, continued elsewhere, and
compared with an uninterrupted wasmtime run.

::

    wcr migrate PROGRAM.wasm --at K|random --from HOST --to HOST|TARGET [--dir HOST_DIR[::GUEST]]
                [--env K=V] [--seed N] [--json PATH] [-- ARGS]

The program's ``_start`` runs on our VM from its first instruction up to K retired instructions on
``--from`` (``inproc``, or a ``python:PATH`` host: the run from 0 to K happens there, through the host's
``step``), is checkpointed (its WASI state — args, env, fd table, files, output so far — is in the
snapshot, section 13), and continues on ``--to`` through the one C/R session
(:func:`runners.session.restore_on`; a native target resumes under its own WASI).  ``--at random``
picks K with ``random.Random(--seed)`` in ``0..total``, the uninterrupted run's instruction count.

Three runs are compared, field by field: our VM uninterrupted, the migrated run, and wasmtime's WASI
uninterrupted (each ``--dir`` a fresh copy for wasmtime: runs never see each other's writes, and the
user's directory is never written).  Fields: the exit status (the ``proc_exit`` code, 0 when ``_start``
returned, or a trap), stdout and stderr (first differing byte), and the files (the canonical
``MemFS.digest`` of every preopened directory).  The program's stdout (of the migrated run) goes to
stdout; the report to stderr (``--json PATH``: the same as JSON).  Exit status 0 when all three agree,
1 on a divergence, 2 on bad input.  Clocks are virtual and ``random_get`` is seeded on our VM (both
replay exactly across a migration); wasmtime uses the real ones, so a program that prints the time or
random bytes differs from wasmtime by design.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import random
import sys
from typing import Any, Dict, List, Optional, Tuple, Union

from suite.commands import EXIT_FAIL, EXIT_OK, UsageError
from suite.commands._io import read_input, write_output
from vm.errors import WasmError

__all__ = ["COMMANDS"]


def _add_migrate(p: argparse.ArgumentParser) -> None:
    p.add_argument("program", metavar="PROGRAM.wasm", help="a WASI command (exports _start)")
    p.add_argument("--at", required=True, metavar="K|random",
                   help="checkpoint before retired instruction K (0..total), or a seeded random K")
    p.add_argument("--from", dest="src", default="inproc", metavar="HOST",
                   help="where the run up to K happens: inproc (default) or python:PATH")
    p.add_argument("--to", required=True, metavar="HOST|TARGET",
                   help="where it continues: inproc, python:PATH, or a native target (wasmtime, v8, ...)")
    p.add_argument("--dir", action="append", default=[], metavar="HOST_DIR[::GUEST]",
                   help="preopen a host directory (guest path: GUEST, default HOST_DIR as given); "
                        "never written: each run works on its own copy")
    p.add_argument("--env", action="append", default=[], metavar="K=V", help="an environment variable")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seed of the program's random_get stream and of --at random (default 0)")
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    p.set_defaults(takes_program_args=True, program_args=[])  # suite.cli puts what follows -- there


def _config(args: argparse.Namespace) -> Any:
    """The program's WASI configuration (the flags are checked and worded by ``suite.commands._wasi``,
    as for ``wcr run --wasi``); argv[0] is the program as given (as ``wcr run`` and ``wasmtime run``)."""
    from suite.commands._wasi import parse_dir, parse_env
    from vm.runtime.wasi import WasiConfig

    dirs: List[Tuple[str, Optional[str]]] = [parse_dir(d) for d in args.dir]
    if len({g for g, _ in dirs}) != len(dirs):
        raise UsageError("--dir: a guest directory is given twice")
    return WasiConfig(args=[args.program] + list(args.program_args),
                      env=[parse_env(e) for e in args.env], dirs=dirs, seed=args.seed)


def _at(text: str, total: int, seed: int) -> int:
    if text == "random":
        return random.Random(seed).randint(0, total)
    try:
        k = int(text)
    except ValueError:
        raise UsageError(f"--at {text!r}: expected a number of instructions or 'random'") from None
    if not 0 <= k <= total:
        raise UsageError(f"--at {k}: outside 0..{total} (the uninterrupted run retires {total} instructions)")
    return k


def _check_places(args: argparse.Namespace) -> None:
    """Bad --from/--to names are bad input before anything runs."""
    from runners.hosts import get_host
    from runners.session import resolve

    if not (args.src == "inproc" or args.src.startswith("python:") or args.src == "pypy3"):
        raise UsageError(f"--from {args.src}: the run up to the checkpoint is on our VM: inproc or python:PATH")
    try:
        get_host("python:pypy3" if args.src == "pypy3" else args.src)
        (r,) = resolve(args.to)
    except ValueError as e:
        raise UsageError(f"--to {args.to}: {e}") from None
    ok, why = r.available()
    if not ok:
        raise UsageError(f"--to {args.to}: not available here: {why}")


def checkpoint_program(wasm: bytes, config: Any, k: int, src: str) -> bytes:
    """The snapshot at k, the run from 0 to k done on ``src``."""
    from runners.hosts import get_host
    from runners.wasi_run import vm_start
    from vm.snapshot import advance, checkpoint, encode

    store, run = vm_start(wasm, config)
    if src == "inproc":
        advance(store, run, k)
        return encode(checkpoint(store, run))
    host = get_host("python:pypy3" if src == "pypy3" else src)
    try:
        return host.step(encode(checkpoint(store, run)), {hashlib.sha256(wasm).hexdigest(): wasm}, k)
    finally:
        host.close()


def compare_program(name: str, ref: Dict[str, Any], got: Dict[str, Any]) -> List[str]:
    """``got`` against our uninterrupted run: exit status, then output and files (the oracle's lines)."""
    from runners.oracle import compare_wasi_outcomes
    from runners.wasi_run import program_status

    out = []
    a, b = program_status(ref), program_status(got)
    if a != b:
        out.append(f"{name}: exit status: expected {a}, got {b}")
    w_ref, w_got = ref.get("wasi") or {}, got.get("wasi")
    if w_got is None:
        return out + [f"{name}: no WASI outcome (exit code, output, files)"]
    return out + [f"{name}: {d}" for d in compare_wasi_outcomes(w_ref, w_got)]


def _run_migrate(args: argparse.Namespace) -> int:
    from runners.hosts import HostError
    from runners.session import restore_on
    from vm.snapshot import SnapshotError

    wasm = read_input(args.program, "file")
    config = _config(args)
    _check_places(args)
    ref = _reference(args.program, wasm, config)
    total = int(ref["instructions"])
    k = _at(args.at, total, args.seed)
    try:
        snap = checkpoint_program(wasm, config, k, args.src)
        got = restore_on(snap, {hashlib.sha256(wasm).hexdigest(): wasm}, args.to)
    except (SnapshotError, HostError, ValueError) as e:
        print(f"wcr: migrate: {e}", file=sys.stderr)
        return EXIT_FAIL
    wt = _wasmtime(wasm, config)
    report = _verdict(args, ref, got, wt)
    report.update(at=k, total=total, snapshot_bytes=len(snap))
    sys.stdout.flush()
    sys.stdout.buffer.write(base64.b64decode((got.get("wasi") or {}).get("stdout") or ""))
    sys.stdout.flush()
    _report(report)
    if args.json:
        write_output(args.json, json.dumps(report, indent=2) + "\n")
    return EXIT_FAIL if report["differences"] else EXIT_OK


def _reference(path: str, wasm: bytes, config: Any) -> Dict[str, Any]:
    """Our uninterrupted run (what the migrated run and wasmtime are compared with)."""
    from runners.wasi_run import vm_run

    try:
        return vm_run(wasm, config)
    except KeyError:
        raise UsageError(f"{path}: not a WASI command (no _start function export)") from None
    except WasmError as e:
        raise UsageError(f"{path}: {e}") from None


def _verdict(args: argparse.Namespace, ref: Dict[str, Any], got: Dict[str, Any],
             wt: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """The report: the migrated run and wasmtime's against our uninterrupted run, field by field."""
    from runners.wasi_run import program_status

    verdict = got.get("verdict")
    compared = verdict in (None, "match", "mismatch")  # inproc has no verdict of its own
    if compared:
        diffs = compare_program(f"migrated ({args.src} -> {args.to})", ref, got)
        diffs += [f"migrated ({args.to}): {d}" for d in got.get("differences") or []]
    else:  # not-convertible, not-applicable, inconclusive, error: the target did not run it to compare
        diffs = [f"migrated ({args.to}): {verdict}: " + ("; ".join(got.get("differences") or []) or "no detail")]
    if wt is not None:
        diffs += compare_program("wasmtime", ref, wt)
    wasi = got.get("wasi")
    return {"program": args.program, "from": args.src, "to": args.to,
            "exit_status": program_status(got) if wasi is not None else None,
            "files": (wasi or {}).get("files"),
            "wasmtime": "not available" if wt is None else program_status(wt),
            "verdict": "agree" if not diffs else "divergence" if compared else f"not resumed ({verdict})",
            "differences": diffs}


def _wasmtime(wasm: bytes, config: Any) -> Optional[Dict[str, Any]]:
    """wasmtime's uninterrupted run (None when wasmtime-py is not installed: said in the report)."""
    try:
        import wasmtime  # noqa: F401
    except ImportError:
        return None
    from runners.wasi_run import wasmtime_run

    return wasmtime_run(wasm, config).outcome


def _report(r: Dict[str, Any]) -> None:
    status: Union[int, str, None] = r["exit_status"]
    lines = [f"wcr migrate: checkpoint at {r['at']} of {r['total']} instructions on {r['from']}, "
             f"continued on {r['to']} ({r['snapshot_bytes']} byte snapshot)",
             f"exit status: {status}", f"files digest: {r['files']}",
             f"wasmtime (uninterrupted): {r['wasmtime']}",
             {"agree": "verdict: all agree", "divergence": "verdict: DIVERGENCE"}.get(r["verdict"],
                                                                                      f"verdict: {r['verdict']}")]
    lines += [f"  {d}" for d in r["differences"]]
    print("\n".join(lines), file=sys.stderr)


COMMANDS = [
    ("migrate", "run a WASI command on our VM, checkpoint at K, continue on another host or target, "
                "compare with wasmtime", _add_migrate, _run_migrate),
]
