"""``wcr robustness modules|snapshots``: the robustness probes of :mod:`suite.fuzz.robustness`.

* ``modules``: random, mutated (testsuite, ``wasm-tools mutate``, wasm-smith, our generator) module
  binaries; our decode + validate verdict against ``wasm-tools validate``, accepted modules instantiated
  and run under a fuel bound;
* ``snapshots``: checkpoints edited at model level (targeted: one consistency rule broken each; neutral;
  random) or at byte level, always re-encoded with a valid checksum; restore must refuse the
  inconsistent ones with ``SnapshotError`` and never raise anything undocumented or hang.

Each probe runs in a worker process with a wall limit (``--timeout``); a hang or a dead worker is a
finding.  Findings are written to ``--dir`` (input files + ``reason.txt``, one line), the summary (probes
by verdict, findings) to stdout and ``--json``.  Exit status 0 when nothing was found, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict

from suite.commands import EXIT_FAIL, EXIT_OK, UsageError
from suite.commands._io import write_output


def _add(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", choices=("modules", "snapshots"), help="what to probe")
    p.add_argument("--budget", type=float, required=True, metavar="SECONDS", help="wall time of the run")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="fixes the inputs (default 0)")
    p.add_argument("--json", metavar="FILE", help="write the summary here")
    p.add_argument("--dir", default="robustness-findings", metavar="DIR",
                   help="findings directory (default robustness-findings; created with the first finding)")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S",
                   help="wall limit of one probe; past it the probe is a hang (default 30)")
    p.add_argument("--max-probes", type=int, default=None, metavar="N", help="stop after N probes")


def _print_summary(s: Dict[str, Any]) -> None:
    print(f"wcr robustness {s['kind']}: {s['probes']} probes in {s['seconds']} s (seed {s['seed']}), "
          f"{s['findings']} findings, {s['worker_restarts']} worker restarts")
    for title, rows in (("verdicts", s["verdicts"]), ("counts", s["counts"]), ("origins", s["origins"])):
        print(f" {title}:")
        for k, v in rows.items():
            print(f"  {k:<48} {v}")
    for f in s["finding_list"][:20]:
        print(f"  FINDING probe {f['probe']}: {f['reason']}" + (f" [{f['dir']}]" if f.get("dir") else ""))


def _run(args: argparse.Namespace) -> int:
    from suite.fuzz.robustness.runner import ForeignDirectory, run_probes

    if args.budget <= 0 or args.timeout <= 0:
        raise UsageError("--budget and --timeout must be positive")
    try:
        s = run_probes(args.kind, args.budget, args.seed, args.dir, args.max_probes, args.timeout)
    except ForeignDirectory as e:
        raise UsageError(f"--dir: {e}") from None
    if s["probes"] == 0:
        raise UsageError(f"no probe completed within --budget {args.budget}: a run that tested nothing")
    _print_summary(s)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        write_output(args.json, json.dumps(s, indent=1) + "\n")
    sys.stdout.flush()
    return EXIT_FAIL if s["findings"] else EXIT_OK


COMMANDS = [
    ("robustness", "robustness probes: wcr robustness modules|snapshots --budget S (findings in --dir)", _add, _run),
]
