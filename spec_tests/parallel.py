"""Running many scripts, in this process or in N worker processes.

Each worker builds its own engine and Store per file, so results do not depend on ``-j``.  A worker
that dies (e.g. a C-level crash) costs only the file it was running: the unfinished files are rerun
one per process, and the one that kills its process again is reported as one failed case.  Workers die
with the process that runs them (:func:`runners.lifetime.die_with_parent`): a killed ``wcr spec -j N``
leaves no worker running.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import sys
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from runners.lifetime import die_with_parent

from .runner import FAILED, CaseResult, FileResult, run_file

Progress = Callable[[FileResult, int, int], None]


def _worker(root: str, rel: str, cache_root: Optional[str], cr: Any = None, limits: Any = None) -> FileResult:
    return run_file(Path(root), rel, None, Path(cache_root) if cache_root else None, cr, limits)


def _pool(jobs: int) -> cf.ProcessPoolExecutor:
    """Worker processes that are children of this process (fork on Linux, else spawn: never a fork
    server in between, whose death would not reach them) and die with it."""
    ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    return cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=die_with_parent,
                                  initargs=(os.getpid(),))


def _crashed(rel: str, why: str) -> FileResult:
    r = FileResult(rel)
    r.cases.append(CaseResult(rel, 0, "worker", f"{Path(rel).name}:0 worker", FAILED, message=why, actual=why))
    return r


def run_files(
    root: Path,
    files: List[str],
    jobs: int = 1,
    progress: Optional[Progress] = None,
    cache_root: Optional[Path] = None,
    cr: Any = None,
    limits: Any = None,
) -> List[FileResult]:
    """Run ``files`` (relative to ``root``); results in the order of ``files``.  ``cr``: a
    :class:`spec_tests.cr.CrConfig` for C/R mode (None: plain run); ``limits``: each command's
    :class:`vm.exec.budget.Limits` (None: unlimited)."""
    done: Dict[str, FileResult] = {}
    total = len(files)
    croot = str(cache_root) if cache_root else None

    def record(r: FileResult) -> None:
        done[r.file] = r
        if progress is not None:
            progress(r, len(done), total)

    if jobs <= 1 or len(files) <= 1:
        for rel in files:
            record(run_file(root, rel, None, cache_root, cr, limits))
        return [done[f] for f in files]

    broken = False
    with _pool(jobs) as pool:
        futs = {pool.submit(_worker, str(root), rel, croot, cr, limits): rel for rel in files}
        for fut in cf.as_completed(futs):
            rel = futs[fut]
            try:
                record(fut.result())
            except BrokenProcessPool:
                broken = True
                break
            except Exception as e:  # pickling problems etc.: a failure of that file only
                record(_crashed(rel, f"worker error: {type(e).__name__}: {e}"))
        if broken:
            for f in futs:
                f.cancel()
    if broken:
        # We cannot tell which file killed the worker: rerun the unfinished ones one per process.
        for rel in [f for f in files if f not in done]:
            with _pool(1) as solo:
                try:
                    record(solo.submit(_worker, str(root), rel, croot, cr, limits).result())
                except BrokenProcessPool:
                    record(_crashed(rel, "worker process died while running this file"))
                except Exception as e:
                    record(_crashed(rel, f"worker error: {type(e).__name__}: {e}"))
    return [done[f] for f in files]
