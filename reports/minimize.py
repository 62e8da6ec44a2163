"""Minimizing a divergence after Hypothesis has shrunk the module: the schedule, and smith modules.

* :func:`minimize_schedule` — fewest hosts/targets (only the one that diverged), a single point instead
  of several, fewest hops, smallest k — greedily, keeping a candidate only while the same divergence
  (kind, where) persists.
* :func:`shrink_module` — ``wasm-tools shrink`` with our oracle as the predicate script
  (``python -m reports.minimize --predicate SPEC.json MODULE.wasm``; exit 0 = still diverges), for
  cases whose module Hypothesis cannot shrink structurally (wasm-smith output).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from typing import Any, Dict, List, Optional, Tuple


def _diverges(case: Any, sched: Any, sig: Tuple[str, str], hosts: Dict[str, Any], targets: Dict[str, Any]):
    from runners.trial import run_trial

    try:
        res, _ = run_trial(case, lambda total: _clamp(sched, total), hosts, targets, only=sig)
    except Exception:  # noqa: BLE001 - a candidate that breaks the harness is not interesting
        return None
    return next((d for d in res.divergences if d.signature == sig), None)


def _clamp(sched: Any, total: int) -> Any:
    return replace(sched, ks=tuple(min(k, total) for k in sched.ks))


def _candidates(s: Any, sig: Tuple[str, str], k: Optional[int] = None) -> List[Any]:
    kind, where = sig
    out = []
    if s.shape == "exhaustive":  # the point that diverged first, else every point as a plain multi
        if k is not None:
            out.append(replace(s, shape="single", ks=(k,)))
        out.append(replace(s, shape="multi"))
        return out
    if s.shape != "chain":
        if kind == "cr-host" and (s.hosts != (where,) or s.targets):
            out.append(replace(s, hosts=(where,), targets=()))
        if kind == "cr-target" and (s.targets != (where,) or s.hosts):
            out.append(replace(s, hosts=(), targets=(where,)))
        if s.shape == "multi":
            out += [replace(s, shape="single", ks=(k,)) for k in s.ks]
    else:
        if s.targets and kind == "cr-host":
            out.append(replace(s, targets=()))
        if kind == "cr-target" and s.targets != (where,):
            out.append(replace(s, targets=(where,)))
        if len(s.ks) > 1:
            for i in range(len(s.ks)):
                ks = s.ks[:i] + s.ks[i + 1:]
                hs = s.hosts[:i] + s.hosts[i + 1:]
                out.append(replace(s, ks=ks, hosts=hs))
        if kind == "cr-host" and len(s.ks) == 1 and s.start != "inproc" and where != s.start:
            out.append(replace(s, start="inproc"))
    for i, k in enumerate(s.ks):
        lo = s.ks[i - 1] if i > 0 else 0
        for nk in sorted({lo, (lo + k) // 2, k - 1}):
            if lo <= nk < k:
                out.append(replace(s, ks=s.ks[:i] + (nk,) + s.ks[i + 1:]))
    return out


def minimize_schedule(case: Any, sched: Any, sig: Tuple[str, str], hosts: Dict[str, Any],
                      targets: Dict[str, Any], max_tries: int = 60, k: Optional[int] = None
                      ) -> Tuple[Any, Optional[Any], int]:
    """Greedy schedule reduction: ``(schedule, its divergence or None, tries)``.  ``k``: where the
    divergence was seen (an exhaustive schedule is tried as that single point first)."""
    best_div = None
    tries = 0
    progress = True
    while progress and tries < max_tries:
        progress = False
        for cand in _candidates(sched, sig, k):
            if tries >= max_tries:
                break
            tries += 1
            d = _diverges(case, cand, sig, hosts, targets)
            if d is not None:
                sched, best_div, progress = cand, d, True
                break
    if best_div is None:
        best_div = _diverges(case, sched, sig, hosts, targets)
    return sched, best_div, tries


# -- wasm-tools shrink -----------------------------------------------------------------------------------
def shrink_module(case: Any, sched: Any, sig: Tuple[str, str], timeout: float = 60.0) -> Optional[bytes]:
    """``wasm-tools shrink`` the case's module while the divergence persists; the smaller module bytes,
    or None when nothing smaller was found.  The export and argument types must survive."""
    from generators.smith import wasm_tools_exe
    from reports.bugreport import export_type, format_args

    ft = export_type(case.wasm, case.export)
    spec = {"kind": sig[0], "where": sig[1], "export": case.export, "args": format_args(ft.params, case.args),
            "schedule": sched.to_dict() if sched is not None else None, "generator": case.generator,
            "deterministic": case.deterministic, "wasi": case.wasi}
    with tempfile.TemporaryDirectory(prefix="wcr-shrink-") as d:
        spec_path = os.path.join(d, "spec.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        script = os.path.join(d, "pred.sh")
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        with open(script, "w") as f:
            f.write(f"#!/bin/sh\ncd '{root}' && exec '{sys.executable}' -m reports.minimize --predicate "
                    f"'{spec_path}' \"$1\"\n")
        os.chmod(script, 0o755)
        inp, out = os.path.join(d, "in.wasm"), os.path.join(d, "out.wasm")
        with open(inp, "wb") as f:
            f.write(case.wasm)
        try:
            p = subprocess.run([wasm_tools_exe(), "shrink", script, inp, "-o", out, "--attempts", "200"],
                               capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        if p.returncode != 0 or not os.path.exists(out):
            return None
        with open(out, "rb") as f:
            small = f.read()
    return small if len(small) < len(case.wasm) else None


def _predicate(spec_path: str, wasm_path: str) -> int:
    from reports.bugreport import ReportError, export_type, parse_args
    from runners.trial import Case, Schedule
    from vm.errors import WasmError

    with open(spec_path) as f:
        spec = json.load(f)
    with open(wasm_path, "rb") as f:
        wasm = f.read()
    try:
        ft = export_type(wasm, spec["export"])
        args = parse_args(ft.params, spec["args"])
    except (ReportError, WasmError, Exception):  # noqa: BLE001 - export gone or retyped: not interesting
        return 1
    case = Case(wasm, spec["export"], args, spec["generator"], "", None, spec["deterministic"], wasi=spec.get("wasi"))
    sig = (spec["kind"], spec["where"])
    sched = Schedule.from_dict(spec["schedule"]) if spec.get("schedule") else None
    from reports.bugreport import _make_restorers

    hosts: Dict[str, Any] = {}
    targets: Dict[str, Any] = {}
    try:
        if sched is not None:
            _make_restorers(sched, hosts, targets)
        return 0 if _diverges(case, sched, sig, hosts, targets) is not None else 1
    finally:
        for h in hosts.values():
            h.close()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--predicate":
        sys.exit(_predicate(sys.argv[2], sys.argv[3]))
    print("usage: python -m reports.minimize --predicate SPEC.json MODULE.wasm", file=sys.stderr)
    sys.exit(2)
