"""``wcr selftest``: how strong is the fuzzer?  Short campaigns against deliberately broken C/R.

For each fault of :data:`vm.snapshot.faults.FAULTS` a campaign runs with only that fault active (in this
process and, through ``WCR_FAULTS``, in any Python host it starts) until the first divergence or the
budget.  The campaign is the fuzzer alone (no spec slice), restoring on the given hosts plus what the
fault needs to be reachable at all (:data:`vm.snapshot.faults.NEEDS`: a ``python:PATH`` child for the
child faults, the ``wasmtime`` target for the converter faults).  Per fault it reports: caught or not,
seconds to the first divergence, trials, the minimized report and the size of its module, and whether
``wcr replay`` reproduces it (exit 1 with the fault active; with the fault off it must pass, exit 0 —
otherwise the report would not be *about* the fault).  The score is caught/total
(:func:`score`).  A selftest with
no fault to run, or a fault whose campaign completed no trial, raises :class:`NothingRan`: "not caught"
after zero trials would blame the fuzzer for a run that never happened.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from runners.lifetime import popen_kwargs
from vm.snapshot import faults

from .campaign import Worker
from .config import Config
from .summary import NothingRan, nothing_ran_reason, summarize


def replay_exit(report: str, fault: Optional[str], timeout: float = 300.0, hosts: Sequence[str] = ()) -> int:
    """Exit status of ``wcr replay REPORT`` in a fresh process with ``fault`` (or none) active; ``hosts``:
    the campaign's hosts, which the replay is allowed to use (``--restore-on``)."""
    env = dict(os.environ)
    env.pop("WCR_FAULTS", None)
    if fault:
        env["WCR_FAULTS"] = fault
    root = Path(__file__).resolve().parents[2]
    # the child runs in the package's root (so ``-m suite`` works from a checkout): the report's path
    # must not depend on the caller's working directory
    allow = [h for h in hosts if h != "inproc"]
    cmd = [sys.executable, "-m", "suite", "replay", str(Path(report).resolve())]
    p = subprocess.run(cmd + (["--restore-on", ",".join(allow)] if allow else []), env=env, cwd=str(root),
                       capture_output=True, timeout=timeout, **popen_kwargs())  # dies with the selftest
    return p.returncode


#: the native target converter faults are measured on (in-process wasmtime: no server to start)
SELFTEST_TARGET = "wasmtime"


def restorers_for(fault: str, hosts: Sequence[str]) -> Tuple[List[str], List[str]]:
    """Hosts and targets of ``fault``'s campaign: ``hosts`` plus what :data:`faults.NEEDS` asks for
    (when this machine has it; a fault that then cannot be reached shows as not caught)."""
    need = faults.NEEDS.get(fault)
    hs = list(hosts)
    ts: List[str] = []
    if need == "python" and not any(h.startswith("python:") for h in hs):
        from .config import default_hosts

        hs += [h for h in default_hosts() if h.startswith("python:")][:1]
    if need == "target":
        from runners.session import resolve

        try:
            (r,) = resolve(SELFTEST_TARGET)
            if r.available()[0]:
                ts.append(SELFTEST_TARGET)
        except ValueError:
            pass
    return hs, ts


def run_fault(fault: str, budget: float, directory: Path, seed: int = 0, hosts: Sequence[str] = ("inproc",),
              shrink_seconds: float = 20.0) -> Dict[str, Any]:
    d = directory / fault
    hs, ts = restorers_for(fault, hosts)
    cfg = Config(budget=budget, seed=seed, hosts=hs, targets=ts, generator="own", dir=str(d),
                 chunk=8, shrink_seconds=shrink_seconds, stop_on_divergence=True, faults=[fault], max_funcs=3)
    d.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    w = Worker(cfg, 0)
    try:
        w.run(budget)
    finally:
        w.close()
        faults.set_active(())
    s = summarize(d)
    out: Dict[str, Any] = {"fault": fault, "what": faults.FAULTS[fault], "needs": faults.NEEDS.get(fault, "inproc"),
                           "hosts": hs, "targets": ts, "caught": s["divergences"] > 0,
                           "seconds_to_catch": s["first_catch_seconds"], "trials": s["trials"],
                           "seconds": round(time.monotonic() - t0, 2), "report": None,
                           "replay_with_fault": None, "replay_without_fault": None, "replays": False}
    if s["reports"]:
        rep = s["reports"][0]
        import yaml

        with open(rep, encoding="utf-8") as f:
            data = yaml.safe_load(f)
        out.update(report=rep, kind=data["kind"], where=data["where"], k=data["checkpoint"].get("k"),
                   module_instructions=data["module"]["instructions"], report_bytes=os.path.getsize(rep),
                   first_difference=data["first_difference"],
                   replay_with_fault=replay_exit(rep, fault, hosts=hs), replay_without_fault=replay_exit(rep, None, hosts=hs))
        out["replays"] = out["replay_with_fault"] == 1 and out["replay_without_fault"] == 0
    return out


def run_selftest(names: Sequence[str], budget: float, directory: Path, seed: int = 0,
                 hosts: Sequence[str] = ("inproc",), log=sys.stderr) -> List[Dict[str, Any]]:
    if not names:
        raise NothingRan("the selftest has no fault to run")
    rows = []
    for name in names:
        r = run_fault(name, budget, directory, seed, hosts)
        rows.append(r)
        if r["trials"] == 0:
            raise NothingRan(f"fault {name}: " + nothing_ran_reason(directory / name, r["seconds"], budget))
        if log is not None:
            if r["caught"]:
                print(f"{name:22s} caught in {r['seconds_to_catch']:6.2f} s  report: {r.get('module_instructions')} "
                      f"instrs, replay {'ok' if r.get('replays') else 'FAILED'} ({r['kind']} on {r['where']})",
                      file=log)
            else:
                print(f"{name:22s} NOT caught in {budget:g} s ({r['trials']} trials)", file=log)
    return rows


def score(rows: Sequence[Dict[str, Any]], seconds: float) -> Dict[str, Any]:
    """The mutation score of a selftest: caught/total, which faults escaped, and the per-fault rows."""
    caught = sum(1 for r in rows if r["caught"])
    return {"score": f"{caught}/{len(rows)}", "caught": caught, "total": len(rows),
            "not_caught": [r["fault"] for r in rows if not r["caught"]],
            "all_replay": all(r.get("replays") for r in rows), "seconds": round(seconds, 1), "faults": list(rows)}
