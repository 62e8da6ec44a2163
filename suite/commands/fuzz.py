"""``wcr fuzz`` (differential checkpoint fuzzing campaign), ``wcr replay`` (re-run a YAML bug report) and
``wcr selftest`` (the fuzzer against deliberately broken C/R).  See :mod:`suite.fuzz`.

A campaign or selftest that completes no trial is an error (one line, exit 2), never a success: see
:class:`suite.fuzz.campaign.NothingRan`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, List, Tuple

from suite.commands import UsageError
from suite.commands._io import write_output
from suite.commands._limits import add_limit_flags, limits_of

if TYPE_CHECKING:
    from suite.fuzz.config import Config


def _add_fuzz(p: argparse.ArgumentParser) -> None:
    p.add_argument("--budget", type=float, metavar="SECONDS",
                   help="campaign time (cumulative over --resume; a chunk the budget cuts is re-run by --resume)")
    p.add_argument("--chunks", type=int, metavar="N",
                   help="chunks (of 16 trials) per worker: a deterministic budget, alone or with --budget")
    p.add_argument("--seed", type=int, default=0, metavar="N")
    p.add_argument("--hosts", metavar="LIST",
                   help="inproc,python:PATH,... (default: inproc and one other Python if present)")
    p.add_argument("--targets", metavar="LIST", default=None,
                   help="native targets (default wasmtime,v8; unavailable ones are skipped with a note; '' = none)")
    p.add_argument("--generator", choices=["own", "smith", "both"], default="own")
    p.add_argument("--simd", action="store_true",
                   help="v128 values and SIMD instructions in both generators (smith: --simd-enabled true)")
    p.add_argument("--gc", action="store_true",
                   help="GC structs, arrays, i31 and casts in both generators (smith: --gc-enabled true)")
    p.add_argument("--exceptions", action="store_true",
                   help="tags, throw, try_table, throw_ref and exnref in both generators "
                        "(smith: --exceptions-enabled true)")
    p.add_argument("--wasi", action="store_true",
                   help="WASI programs from our generator: fd_write of computed bytes to stdout/stderr and to "
                        "files in an in-memory /sandbox, reads, seeks, errnos fed back (smith makes none)")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), metavar="N",
                   help="worker processes with disjoint seeds (default: min(2, CPUs))")
    p.add_argument("--shard", default="0/1", metavar="I/N", help="this campaign's share of the seed space")
    p.add_argument("--dir", default="fuzz-campaign", metavar="DIR",
                   help="campaign directory: JSONL results, Hypothesis database (default fuzz-campaign)")
    p.add_argument("--json", metavar="PATH", help="write the final JSON summary here")
    p.add_argument("--reports", metavar="DIR", help="bug report directory (default DIR/reports)")
    p.add_argument("--resume", action="store_true",
                   help="continue the campaign in --dir: re-runs exactly its unfinished chunks")
    p.add_argument("--shrink-seconds", type=float, default=60.0, metavar="S",
                   help="time limit of Hypothesis shrinking per divergence (default 60)")
    add_limit_flags(p, "trial (a stopped trial is inconclusive)", None,
                    fuel_default="runners.trial.MAX_INSTRUCTIONS", timeout_default="suite.fuzz.config.TRIAL_TIMEOUT")


def _parse_shard(text: str) -> Tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard must be I/N, got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise UsageError(f"--shard {text}: need 0 <= I < N")
    return i, n


def _check_hosts(hosts: List[str]) -> None:
    """Unknown or unavailable hosts are bad input, found before a campaign starts."""
    from runners.hosts import get_host

    if not hosts:
        raise UsageError("--hosts: at least one host is needed")
    for h in hosts:
        try:
            ok, why = get_host(h).available()
        except ValueError as e:
            raise UsageError(str(e)) from None
        if not ok:
            raise UsageError(f"host {h} is not available: {why}")


def _hosts_and_targets(args: argparse.Namespace) -> Tuple[List[str], List[str], List[str]]:
    from runners.session import resolve
    from suite.fuzz.config import default_hosts

    notes: List[str] = []
    hosts = [h.strip() for h in args.hosts.split(",") if h.strip()] if args.hosts else default_hosts()
    _check_hosts(hosts)
    explicit = args.targets is not None
    names = [t.strip() for t in (args.targets if explicit else "wasmtime,v8").split(",") if t.strip()]
    targets = []
    for t in names:
        try:
            (r,) = resolve(t)
        except ValueError as e:
            raise UsageError(f"--targets: {e}") from None
        ok, why = r.available()
        if ok:
            targets.append(t)
        else:
            notes.append(f"target {t} skipped: {why}")
    return hosts, targets, notes


def _run_fuzz(args: argparse.Namespace) -> int:
    from suite.fuzz.campaign import run_campaign
    from suite.fuzz.chunklog import CampaignBusy
    from suite.fuzz.config import Config
    from suite.fuzz.summary import NothingRan

    if args.budget is not None and args.budget <= 0:
        raise UsageError("--budget must be positive")
    if args.chunks is not None and args.chunks < 1:
        raise UsageError("--chunks must be >= 1")
    if args.workers < 1:
        raise UsageError("--workers must be >= 1")
    shard = _parse_shard(args.shard)
    d = Path(args.dir)
    meta = d / "meta.json"
    budget = float("inf") if args.budget is None else args.budget
    if args.resume:
        cfg = _resumed_config(d)
        cfg.budget = budget
        if args.chunks is not None:
            cfg.chunks = args.chunks
        if args.budget is None and not cfg.chunks:
            raise UsageError("--resume: the campaign has no --chunks: give --budget SECONDS")
    else:
        if args.budget is None and args.chunks is None:
            raise UsageError("give --budget SECONDS, --chunks N or both")
        if d.exists() and any(d.glob("trials-*.jsonl")):
            raise UsageError(f"{d} already holds a campaign: use --resume or another --dir")
        if d.is_dir() and any(d.iterdir()) and not meta.is_file():
            raise UsageError(f"{d} is not empty and holds no campaign: choose an empty or new --dir")
        hosts, targets, notes = _hosts_and_targets(args)
        for n in notes:
            print(f"wcr fuzz: note: {n}", file=sys.stderr)
        limits = limits_of(args)
        cfg = Config(budget=budget, seed=args.seed, hosts=hosts, targets=targets, generator=args.generator,
                     workers=args.workers, shard=shard, dir=str(d), reports=args.reports or "",
                     shrink_seconds=args.shrink_seconds, chunks=args.chunks or 0, fuel=limits.fuel,
                     simd=args.simd, gc=args.gc, exceptions=args.exceptions, wasi=args.wasi)
        if args.timeout is not None:  # else the campaign's default (TRIAL_TIMEOUT); 0 = no limit
            cfg.timeout = limits.seconds
    limit = " and ".join(x for x in (f"{cfg.budget:g} s" if cfg.budget != float("inf") else "",
                                     f"{cfg.chunks} chunks/worker" if cfg.chunks else "") if x)
    print(f"wcr fuzz: {limit}, seed {cfg.seed}, generator {cfg.generator}{''.join(' +' + x for x in cfg.features())}, hosts {','.join(cfg.hosts)}, "
          f"targets {','.join(cfg.targets) or '-'}, {cfg.workers} worker(s), dir {cfg.dir}", file=sys.stderr)
    try:
        summary = run_campaign(cfg, progress=sys.stderr.isatty())
    except (NothingRan, CampaignBusy) as e:
        raise UsageError(str(e)) from None
    text = json.dumps(summary, indent=1)
    if args.json:
        write_output(args.json, text + "\n")
    print(text)
    if summary.get("inconclusive_flag"):
        print(f"wcr fuzz: warning: {summary['inconclusive_flag']}", file=sys.stderr)
    return 1 if summary["divergences"] or summary.get("worker_deaths") else 0


def _resumed_config(d: Path) -> Config:
    """The configuration of the campaign in ``d`` (its ``meta.json``), for ``--resume``."""
    from suite.fuzz.config import FORMAT, Config

    meta = d / "meta.json"
    if not meta.is_file():
        raise UsageError(f"--resume: {d} has no campaign (meta.json missing)")
    try:
        old = json.loads(meta.read_text())
        if not isinstance(old, dict):
            raise ValueError("not a JSON object")
        cfg = Config(**old)
        cfg.shard = tuple(cfg.shard)  # type: ignore[assignment]
    except (ValueError, TypeError) as e:
        raise UsageError(f"--resume: unreadable {meta}: {e}") from None
    if old.get("format") != FORMAT:  # older campaigns have no "format" (and no chunk markers)
        raise UsageError(f"--resume: {d} was written by another version of wcr (format {old.get('format', 1)}, this one "
                         f"writes {FORMAT}): start a new campaign")
    return cfg


def _add_replay(p: argparse.ArgumentParser) -> None:
    p.add_argument("report", metavar="REPORT.yaml")
    p.add_argument("--restore-on", "--host", dest="restore_on", action="append", default=[],
                   metavar="HOST[,HOST...]",
                   help="python:PATH hosts the report may use (a report runs only inproc, the native "
                        "targets and the hosts named here or in $WCR_HOSTS; others are skipped)")


def _run_replay(args: argparse.Namespace) -> int:
    from reports.bugreport import ReportError, main_replay

    try:
        return main_replay(args.report, allow=args.restore_on)
    except ReportError as e:
        raise UsageError(str(e)) from None


def _add_selftest(p: argparse.ArgumentParser) -> None:
    from vm.snapshot.faults import FAULTS

    p.add_argument("--budget-per-fault", type=float, default=60.0, metavar="SECONDS")
    p.add_argument("--faults", metavar="LIST", help=f"subset of: {','.join(FAULTS)}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dir", default="selftest-campaign", metavar="DIR")
    p.add_argument("--hosts", default="inproc", metavar="LIST", help="hosts to restore on (default inproc)")
    p.add_argument("--json", metavar="PATH")


def _run_selftest(args: argparse.Namespace) -> int:
    import shutil

    from suite.fuzz.selftest import run_selftest, score
    from suite.fuzz.summary import NothingRan
    from vm.snapshot.faults import FAULTS

    names = [f.strip() for f in args.faults.split(",") if f.strip()] if args.faults is not None else list(FAULTS)
    bad = [n for n in names if n not in FAULTS]
    if bad:
        raise UsageError(f"unknown fault(s) {', '.join(bad)} (known: {', '.join(FAULTS)})")
    if not names:
        raise UsageError(f"--faults {args.faults!r} names no fault (known: {', '.join(FAULTS)})")
    if args.budget_per_fault <= 0:
        raise UsageError("--budget-per-fault must be positive")
    d = Path(args.dir)
    if d.exists():
        # only an earlier selftest's results are replaced: never a directory of someone's files
        foreign = [x.name for x in d.iterdir() if not (x.is_dir() and x.name in FAULTS)] if d.is_dir() else [d.name]
        if foreign:
            raise UsageError(f"{d} is not a selftest directory (it holds {foreign[0]!r}): choose an empty "
                             "or new --dir")
        shutil.rmtree(d)
    hosts = [h.strip() for h in args.hosts.split(",") if h.strip()]
    _check_hosts(hosts)
    t0 = time.monotonic()
    try:
        rows = run_selftest(names, args.budget_per_fault, d, args.seed, hosts)
    except NothingRan as e:
        raise UsageError(str(e)) from None
    out = score(rows, time.monotonic() - t0)
    text = json.dumps(out, indent=1)
    if args.json:
        write_output(args.json, text + "\n")
    print(text)
    print(f"wcr selftest: mutation score {out['score']} in {out['seconds']:g} s"
          + (f"; not caught: {', '.join(out['not_caught'])}" if out["not_caught"] else ""), file=sys.stderr)
    return 0 if out["caught"] == len(rows) and out["all_replay"] else 1


COMMANDS = [
    ("fuzz", "differential checkpoint fuzzing campaign (generated programs, random checkpoints)", _add_fuzz,
     _run_fuzz),
    ("replay", "re-run a YAML bug report: exit 1 while it still diverges, 0 when fixed", _add_replay, _run_replay),
    ("selftest", "run short campaigns against deliberately broken C/R and report what is caught", _add_selftest,
     _run_selftest),
]
