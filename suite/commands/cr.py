"""``wcr restore``, ``wcr snapshot show`` and ``wcr bench``: the checkpoint/restore commands.

* ``wcr restore OUT.snap --module M.wasm [--module ...] [--host inproc|python:PATH] [--target NAME]``
  resumes a snapshot (written by ``wcr run --checkpoint-at``) and prints the one outcome shape
  (:func:`runners.session.restore_on`): ``{"results", "trap", "instructions", "host_log",
  "state_digest", "restored_on"}``; ``instructions`` is the total of the whole invocation and
  ``state_digest`` the same canonical digest as ``wcr run``'s.  Anywhere but ``inproc`` the output adds
  the ``verdict`` against our VM resuming the same snapshot here, its ``differences`` and that
  ``reference``; exit status 1 when the verdict is a mismatch or an error.  ``--fuel N`` / ``--timeout
  S`` bound the restored run (fuel counts from the invocation's start, as ``wcr run --fuel`` does; a
  native target gets the wall time only) and the reference here alike; a run they stop ends with
  ``"stopped"`` set, one line on stderr and exit status 4 (the verdict is then inconclusive).
* ``wcr snapshot show FILE`` prints the YAML view of a snapshot.
* ``wcr bench`` measures engine speed (scalar loops and a SIMD kernel, :mod:`suite.bench.simd_bench`),
  snapshot size and checkpoint/restore latency.

A corrupt, truncated, foreign-version or wrong-module snapshot is one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, List

from suite.commands import EXIT_FAIL, EXIT_OK, EXIT_STOPPED, UsageError
from suite.commands._io import read_input, read_snapshot, write_output
from suite.commands._limits import add_limit_flags, limits_of
from suite.commands.run import print_outcome
from vm.errors import stop_message


# ==================================================================================================
# wcr restore
# ==================================================================================================
def _add_restore(p: argparse.ArgumentParser) -> None:
    p.add_argument("snapshot", metavar="OUT.snap")
    p.add_argument("--module", action="append", required=True, metavar="MODULE.wasm",
                   help="module bytes of the snapshot's instances (repeat for several modules)")
    p.add_argument("--host", default="inproc", metavar="inproc|python:PATH",
                   help="where to resume (default inproc)")
    p.add_argument("--target", metavar="NAME",
                   help="resume on a native runtime instead (its verdict against our VM is printed too)")
    add_limit_flags(p, "restore (and for the reference run here)")


def _run_restore(args: argparse.Namespace) -> int:
    from vm.snapshot import SnapshotError

    limits = limits_of(args)
    blob, state, needed = read_snapshot(args.snapshot, args.module)
    if state.thread is None:
        raise UsageError(f"{args.snapshot}: the snapshot has no thread to resume")
    from runners.hosts import HostError
    from runners.session import restore_on

    where = args.target or args.host
    if args.target and limits.fuel is not None:
        print(f"wcr: note: --fuel bounds only our reference run here; {where} is bounded by the clock only",
              file=sys.stderr)
    try:
        out = restore_on(blob, needed, where, limits, state=state)
    except SnapshotError as e:
        raise UsageError(f"{args.snapshot}: cannot restore: {e}") from None
    except ValueError as e:
        raise UsageError(f"{'--target' if args.target else '--host'} {where}: {e}") from None
    except HostError as e:
        print(f"wcr: {where}: {e}", file=sys.stderr)
        return EXIT_STOPPED if e.kind == "timeout" and limits.seconds is not None else EXIT_FAIL
    status = print_outcome(out, limits.seconds)  # EXIT_STOPPED when the restored run was stopped
    ref = out.get("reference") or {}
    if status == EXIT_OK and ref.get("stopped"):  # the restored run ended, the reference here did not
        print(f"wcr: the reference run here was stopped: "
              f"{stop_message(ref['stopped'], ref.get('instructions'), limits.seconds)}", file=sys.stderr)
        status = EXIT_STOPPED
    # a restore stopped after running past the reference's total has diverged: a finding beats a limit
    return EXIT_FAIL if out.get("verdict") in ("mismatch", "error") else status


# ==================================================================================================
# wcr snapshot show
# ==================================================================================================
def _add_snapshot(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("show",), help="show: print the YAML view")
    p.add_argument("file", metavar="FILE")


def _run_snapshot(args: argparse.Namespace) -> int:
    from vm.snapshot import SnapshotError, show

    blob = read_input(args.file, "snapshot file")
    try:
        text = show(blob)
    except SnapshotError as e:
        raise UsageError(f"{args.file}: bad snapshot: {e}") from None
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return EXIT_OK


# ==================================================================================================
# wcr bench
# ==================================================================================================
def _add_bench(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON here")
    p.add_argument("--repeat", type=int, default=5, metavar="N", help="repetitions per latency (median)")
    p.add_argument("--loop", type=int, default=100_000, metavar="N", help="iterations of the engine loop")
    p.add_argument("--memory-mib", type=int, default=64, metavar="N",
                   help="guest memory the memory benchmark writes (0: skip it; the issue-10 figure uses 1024)")


def _run_bench(args: argparse.Namespace) -> int:
    import platform

    from suite.bench.engine_bench import bench_engine
    from suite.bench.memory_bench import bench_memory
    from suite.bench.simd_bench import bench_simd
    from suite.bench.snapshot_bench import bench_snapshot

    if args.repeat < 1 or args.loop < 1 or args.memory_mib < 0:
        raise UsageError("--repeat and --loop must be at least 1, --memory-mib at least 0")
    eng = bench_engine(args.loop)
    simd = bench_simd(max(1, args.loop // 5))
    snap = bench_snapshot(args.repeat)
    mem = bench_memory(args.memory_mib) if args.memory_mib else {}
    rows: List[List[str]] = [
        ["engine (reference) on sum loop", f"{eng['instructions_per_s'] / 1e6:.2f} M instr/s",
         f"{eng['instructions']} instructions in {eng['seconds']} s"],
    ]
    rows += _simd_rows(simd)
    for case, d in snap.items():
        rows.append([f"snapshot size [{case}]", f"{d['snapshot_bytes']} B",
                     f"{d['nonzero_pages']} touched page(s), {d['frames']} frames"])
        for k in ("checkpoint_ms", "encode_ms", "decode_ms", "decode_restore_ms", "checkpoint_to_restored_ms"):
            rows.append([f"{k[:-3].replace('_', ' ')} [{case}]", f"{d[k]:.3f} ms", "median"])
    for step in ("run", "run_checkpoint", "restore"):
        d = mem.get(step)
        if isinstance(d, dict):
            rows.append([f"peak RSS [{step.replace('_', ' + ')}, writes {mem['guest_mib']} MiB]",
                         f"{d['peak_mib']} MiB", f"(peak - {d['constant_mib']} MiB) / guest = "
                         f"{d['ratio_to_guest']}"])
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    py = f"{platform.python_implementation()} {platform.python_version()}"
    print(f"wcr bench ({py})")
    for r in rows:
        print(f"  {r[0]:<{w0}}  {r[1]:>{w1}}  {r[2]}")
    if args.json:
        write_output(args.json, json.dumps({"python": py, "engine": eng, "simd": simd, "snapshot": snap, "memory": mem}, indent=1) + "\n")
    return EXIT_OK


def _simd_rows(simd: Dict[str, Any]) -> List[List[str]]:
    """The SIMD kernel (suite.bench.simd_bench) and its scalar twin: instr/s and lane ops/s, or why not."""
    rows = []
    for name in ("simd", "scalar"):
        d = simd[name]
        label = f"engine (reference) on {'i32x4' if name == 'simd' else 'i32'} multiply-add loop"
        if "unsupported" in d:
            rows.append([label, "unsupported", d["unsupported"]])
        else:
            rows.append([label, f"{d['instructions_per_s'] / 1e6:.2f} M instr/s",
                         f"{d['lane_ops_per_s'] / 1e6:.2f} M lane ops/s; {d['instructions']} instructions in "
                         f"{d['seconds']} s"])
    return rows


COMMANDS = [
    ("restore", "resume a snapshot (wcr run --checkpoint-at) and print the outcome JSON", _add_restore,
     _run_restore),
    ("snapshot", "inspect a snapshot: wcr snapshot show FILE", _add_snapshot, _run_snapshot),
    ("bench", "engine speed, snapshot size, checkpoint/restore latency", _add_bench, _run_bench),
]
