"""``wcr spec``: run the official ``.wast`` spec tests strictly, optionally checkpointing every invocation.

Exit 0 when nothing failed, 1 when something did, 2 for bad input (no testsuite, no matching file, a
restorer that does not exist or is not available here).  The per-file table and the failure details go
to stdout; progress (on a terminal) to stderr; ``--json`` / ``--junit`` write the reports of
:mod:`reports.spec`.  Each finished file is streamed to a state file (``--state``, by default next to
``--json`` or ``--junit``): a killed run keeps what finished, and ``--resume`` runs only the rest.

Every command runs within ``--timeout`` seconds (default :data:`COMMAND_TIMEOUT`, so one engine bug cannot
stall a CI job) and, with ``--fuel N``, N retired instructions per invocation: a command they stop fails
with "timeout after S s" / "fuel exhausted after N instructions" and the run goes on.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, TextIO, Tuple

from reports.spec import (
    SpecState,
    StateError,
    cr_summary,
    failure_components,
    failures,
    skipped_features,
    totals,
    write_json,
    write_junit,
)
from runners.session import resolve
from spec_tests.cr import CrConfig
from spec_tests.parallel import run_files
from spec_tests.testsuite import TestsuiteError, locate_testsuite, read_list, select_files
from suite.commands import EXIT_FAIL, EXIT_OK, UsageError
from suite.commands._limits import add_limit_flags, limits_of

#: default wall-time limit of one script command (seconds); the whole 1.0/2.0 set runs in seconds
COMMAND_TIMEOUT = 60.0


def _add_spec(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="*", metavar="FILE|GLOB",
                   help="scripts relative to the testsuite dir, or globs (i32.wast, 'simd_*.wast', "
                        "'custom/*.wast'); default: all .wast files, recursively")
    p.add_argument("--testsuite", metavar="DIR",
                   help="testsuite directory (default: $WASM_TESTSUITE, ../shared/wasm-testsuite, "
                        "else download of the pinned commit)")
    p.add_argument("--list", metavar="NAME", help="a named file list from spec_tests/data (e.g. core-1-2)")
    p.add_argument("--json", metavar="PATH", help="write the JSON summary here")
    p.add_argument("--junit", metavar="PATH", help="write JUnit XML here")
    p.add_argument("-j", "--jobs", type=int, default=1, metavar="N", help="worker processes (default 1)")
    p.add_argument("--max-failures", type=int, default=10, metavar="N",
                   help="how many failures to show in detail (default 10)")
    p.add_argument("--quiet", action="store_true", help="no per-file table")
    p.add_argument("--cr", choices=("random", "all"),
                   help="C/R mode: also checkpoint every invocation (random: one seeded point; all: every "
                        "instruction, at most --cr-max-points spread evenly), restore and compare")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the C/R points (default 0)")
    p.add_argument("--restore-on", default="inproc", metavar="HOST[,HOST...]",
                   help="restorers for --cr: inproc, python:PATH, pypy3, or a native target name "
                        "(default inproc)")
    p.add_argument("--cr-max-points", type=int, default=50, metavar="N",
                   help="--cr all: at most N checkpoints per invocation (default 50)")
    p.add_argument("--state", metavar="PATH",
                   help="stream each finished file's results here (default: JSON.state.jsonl next to --json, "
                        "else next to --junit)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run of --state: skip the files it finished (same files and options)")
    add_limit_flags(p, "command (and per restore in --cr mode)", COMMAND_TIMEOUT)


def _run_spec(args: argparse.Namespace) -> int:
    if args.jobs < 1:
        raise UsageError(f"-j {args.jobs}: must be at least 1")
    limits = limits_of(args)
    cr = _cr_config(args)
    root, files = _select(args)
    tty = sys.stderr.isatty()
    state = _open_state(args, root, files)
    start = time.perf_counter()
    show = _Progress(start) if tty else None

    def progress(r: Any, i: int, n: int) -> None:
        if state is not None:
            state.add(r)
        if show is not None:
            show(r, i, n)

    done = state.done if state is not None else {}
    try:
        fresh = run_files(root, [f for f in files if f not in done], jobs=args.jobs, progress=progress, cr=cr,
                          limits=limits)
    finally:
        if state is not None:
            state.close()
    by_file = dict(done, **{r.file: r for r in fresh})
    results = [by_file[f] for f in files]
    elapsed = state.elapsed() if state is not None else time.perf_counter() - start
    if tty:
        sys.stderr.write("\r\x1b[K")
        sys.stderr.flush()
    out = sys.stdout
    if not args.quiet:
        _print_table(out, results)
    _print_failures(out, results, args.max_failures)
    t = totals(results)
    n = sum(t.values())
    rate = n / elapsed if elapsed > 0 else 0.0
    out.write(f"{len(results)} files: {t['passed']} passed, {t['failed']} failed, {t['skipped']} skipped"
              f" in {elapsed:.1f}s ({rate:.0f} asserts/s)\n")
    if cr is not None:
        _print_cr(out, results, args)
    if args.json:
        write_json(Path(args.json), results, elapsed)
    if args.junit:
        write_junit(Path(args.junit), results)
    return EXIT_OK if t["failed"] == 0 else EXIT_FAIL


#: options that do not change any file's results (they may differ between a run and its ``--resume``)
NOT_RESULTS = frozenset({"json", "junit", "jobs", "quiet", "max_failures", "state", "resume", "command",
                         "files", "list", "testsuite"})


def _state_path(args: argparse.Namespace) -> Optional[Path]:
    if args.state:
        return Path(args.state)
    for out in (args.json, args.junit):
        if out:
            return Path(out).with_name(Path(out).name + ".state.jsonl")
    return None


def _open_state(args: argparse.Namespace, root: Path, files: List[str]) -> Optional[SpecState]:
    """The run's state file (None without ``--state``/``--json``/``--junit``).  Its options are what
    decides a file's results: the testsuite, the selected files and every option not in
    :data:`NOT_RESULTS` (so a flag added later takes part without being listed here)."""
    path = _state_path(args)
    if path is None:
        if args.resume:
            raise UsageError("--resume needs the state of the run: --state PATH, or the run's --json/--junit")
        return None
    options: Dict[str, Any] = {k: v for k, v in sorted(vars(args).items())
                               if k not in NOT_RESULTS and not k.startswith("_")}
    options.update(testsuite=str(root.resolve()), files=list(files))
    if args.resume and not path.is_file():
        raise UsageError(f"--resume: no state file {path} (a run with these --json/--junit/--state writes it)")
    try:
        return SpecState(path, options, resume=args.resume)
    except StateError as e:
        raise UsageError(str(e)) from None
    except OSError as e:
        raise UsageError(f"--state {path}: {e.strerror}") from None


def _cr_config(args: argparse.Namespace) -> Optional[CrConfig]:
    """``--cr`` as a config for the workers; every restorer must exist and be available *before* the run
    (a typo must not cost a whole testsuite run)."""
    if not args.cr:
        return None
    if args.cr_max_points < 1:
        raise UsageError(f"--cr-max-points {args.cr_max_points}: must be at least 1")
    try:
        restorers = resolve(args.restore_on)
    except ValueError as e:
        raise UsageError(f"--restore-on: {e}") from None
    for r in restorers:
        ok, why = r.available()
        if not ok:
            raise UsageError(f"--restore-on {r.name}: not available: {why}")
    return CrConfig(args.cr, args.seed, args.restore_on, args.cr_max_points, limits_of(args))


def _select(args: argparse.Namespace) -> Tuple[Path, List[str]]:
    try:
        root = locate_testsuite(args.testsuite)
        patterns = list(args.files)
        if args.list:
            patterns += read_list(args.list)
        files = select_files(root, patterns)
    except TestsuiteError as e:
        raise UsageError(str(e)) from None
    if not files:
        raise UsageError(f"no .wast files in {root}")
    return root, files


class _Progress:
    """One self-overwriting status line on a terminal: file count, asserts so far, asserts per second."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.cases = 0

    def __call__(self, r: Any, i: int, n: int) -> None:
        self.cases += len(r.cases)
        el = time.perf_counter() - self.start
        rate = self.cases / el if el > 0 else 0.0
        sys.stderr.write(f"\r\x1b[K[{i}/{n}] {r.file}  {self.cases} asserts, {rate:.0f}/s")
        sys.stderr.flush()


def _print_table(out: TextIO, results: Sequence[Any]) -> None:
    w = max([len(r.file) for r in results] + [5])
    out.write(f"{'file':<{w}}  {'passed':>7} {'failed':>7} {'skipped':>7}\n")
    for r in results:
        out.write(f"{r.file:<{w}}  {r.passed:>7} {r.failed:>7} {r.skipped:>7}\n")


def _print_failures(out: TextIO, results: Sequence[Any], limit: int) -> None:
    feats = skipped_features(results)
    if feats:
        out.write("skipped (unsupported features): " + ", ".join(f"{k} {v}" for k, v in feats.items()) + "\n")
    fails = failures(results, limit)
    if not fails:
        return
    comps = failure_components(results)
    out.write("failures by component (guess): " + ", ".join(f"{k} {v}" for k, v in comps.items()) + "\n")
    out.write(f"first {len(fails)} of {totals(results)['failed']} failures:\n")
    for f in fails:
        out.write(f"  {f['file']}:{f['line']} {f['name'].split(' ', 1)[-1]}: {f['message']} [{f['component']}]\n")
        if f.get("expected") or f.get("actual"):
            out.write(f"      expected: {f.get('expected', '')}\n      actual:   {f.get('actual', '')}\n")
        tb = f.get("traceback")
        if tb:
            for ln in [ln for ln in tb.strip().splitlines() if ln.strip().startswith("File ")][-1:]:
                out.write(f"      at {ln.strip()}\n")


#: target-nonconformant / inconclusive verdicts printed on the console (the JSON summary keeps up to 100)
MAX_NOTES_SHOWN = 20


def _print_cr(out: TextIO, results: Sequence[Any], args: argparse.Namespace) -> None:
    c = cr_summary(results)
    out.write(f"C/R ({args.cr}, seed {args.seed}): {c['invocations']} invocations, {c['checkpoints']} "
              f"checkpoints, {c['restores']} restores, {c['mismatches']} mismatches; hosts: "
              + ", ".join(f"{k} {v}" for k, v in c["hosts"].items()) + "\n")
    for name, tc in c.get("targets", {}).items():
        out.write(f"  target {name}: "
                  + ", ".join(f"{k} {v}" for k, v in tc.items() if k != "not_convertible_reasons") + "\n")
        reasons = tc.get("not_convertible_reasons") or {}
        if reasons:
            out.write("    not convertible: " + ", ".join(f"{r} {n}" for r, n in sorted(reasons.items())) + "\n")
    # neither a pass nor a C/R failure, but every one says where and what differed
    for n in c.get("notes", [])[:MAX_NOTES_SHOWN]:
        out.write(f"  {n['status']} on {n['restorer']}: {n['at']}: {n['detail'][:300]}\n")
        if n.get("uninterrupted_difference"):
            out.write(f"      its own uninterrupted run: {n['uninterrupted_difference'][:300]}\n")
    hidden = len(c.get("notes", [])) - MAX_NOTES_SHOWN
    if hidden > 0:
        out.write(f"  ... {hidden} more in the JSON summary's cr.notes\n")


COMMANDS = [
    ("spec", "run the official .wast spec tests strictly", _add_spec, _run_spec),
]
