"""The probe runner: probes in a worker process, each bounded in wall time, until the budget ends.

Why a worker process: a probe that hangs (a decoder loop, a restored run that never ends) or kills its
interpreter (a recursion the C stack does not survive, a memory blow-up) must become a *finding* with
its input on disk, not a stalled or dead campaign.  The worker announces each probe's input before
judging it, so the parent has the input even when the worker never answers; the parent then kills the
worker (after ``timeout`` seconds, or when it died), files the finding and starts a new worker.  The
worker runs under an address-space limit (:data:`MEMORY_LIMIT`) so that a runaway allocation is a
``MemoryError`` there, not the machine's swap.

A probe kind is a factory ``"module:attribute"`` (:data:`KINDS`) returning an object with
``make_input(rng, n) -> Input`` and ``judge(input) -> dict`` (``"verdict"``: the category the probe is counted in,
``"finding"``: a one-line reason or None, ``"counts"``: optional extra counters, e.g. per rule).  Probe ``n`` draws from ``random.Random(f"{seed}:{kind}:{n}")``,
so a seed fixes the inputs.  An exception escaping ``judge`` is a finding unless it is a documented
error the kind lists (``expected_errors``); one escaping ``make_input`` is a finding of the generator.

Findings are written to ``DIR/<kind>-<seed>-<n>/``: the input files and ``reason.txt`` (one line: the
reason, then `` | origin: ...``).  The summary: ``probes``, ``verdicts`` (one per probe: they add up to
``probes``), ``counts`` (the kinds' extra counters), ``origins`` (probes by input source), ``findings``
and the first :data:`MAX_LISTED` of them in ``finding_list``, ``worker_restarts``.
"""

from __future__ import annotations

import importlib
import multiprocessing
import random
import re
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

__all__ = ["KINDS", "Input", "MEMORY_LIMIT", "run_probes"]

#: the built-in probe kinds: name → factory
KINDS: Dict[str, str] = {
    "modules": "suite.fuzz.robustness.modules:ModuleProbes",
    "snapshots": "suite.fuzz.robustness.snapshots:SnapshotProbes",
}
#: address-space limit of a worker (bytes): a probe allocating more gets MemoryError, a finding
MEMORY_LIMIT = 3 << 30
#: findings listed in the summary (all are counted and on disk)
MAX_LISTED = 200


@dataclass
class Input:
    """A probe's input: named files (written to the finding's directory as they are) and its origin."""

    files: Dict[str, bytes]
    origin: str
    meta: Dict[str, Any] = field(default_factory=dict)


def load_kind(kind: str, options: Dict[str, Any]) -> Any:
    """Instantiate a probe kind by name (:data:`KINDS`) or by ``"module:attribute"``; ``options``
    always hold ``seed`` (a kind that draws more than its inputs, e.g. base checkpoints, seeds with it)."""
    mod, _, attr = KINDS.get(kind, kind).partition(":")
    return getattr(importlib.import_module(mod), attr)(**options)


def judge_one(probes: Any, inp: Input) -> Dict[str, Any]:
    """``probes.judge(inp)`` with escaping exceptions turned into verdicts: a documented one (the
    kind's ``expected_errors``) is counted by class name, any other is a finding."""
    try:
        return probes.judge(inp)
    except BaseException as e:  # noqa: BLE001 - every escape is judged
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        name = type(e).__name__
        if isinstance(e, tuple(getattr(probes, "expected_errors", ()))):
            return {"verdict": f"error:{name}", "finding": None}
        tb = traceback.format_exception(type(e), e, e.__traceback__)
        return {"verdict": "exception", "finding": f"{name}: {e}"[:300], "traceback": "".join(tb)[-3000:]}


def make_one(probes: Any, seed: int, kind: str, n: int) -> Tuple[Optional[Input], Optional[Dict[str, Any]]]:
    """Probe ``n``'s input, or ``(None, verdict)`` when making it raised (a finding of the generator,
    or of the checkpoint code that made a snapshot)."""
    try:
        return probes.make_input(random.Random(f"{seed}:{kind}:{n}"), n), None
    except Exception as e:  # noqa: BLE001 - a generator or checkpoint bug is a finding too
        tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))[-3000:]
        return None, {"verdict": "generator-exception", "traceback": tb,
                      "finding": f"input generation: {type(e).__name__}: {e}"[:300]}


def _limit_memory(limit: int) -> None:
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):  # not on this platform: the wall limit still applies
        pass


def _worker_main(conn: Any, kind: str, seed: int, options: Dict[str, Any], memory_limit: int) -> None:
    """The worker: for each probe number received, announce the input, then send the verdict."""
    _limit_memory(memory_limit)
    probes = load_kind(kind, dict(options, seed=seed))
    while True:
        n = conn.recv()
        if n is None:
            return
        inp, failed = make_one(probes, seed, kind, n)
        conn.send(("input", inp))
        conn.send(("result", failed or judge_one(probes, inp)))


class _Worker:
    def __init__(self, kind: str, seed: int, options: Dict[str, Any], memory_limit: int):
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, kind, seed, options, memory_limit), daemon=True)
        self.proc.start()
        child.close()

    def recv(self, timeout: float) -> Tuple[str, Any]:
        """The next message, ``("timeout", None)`` or ``("died", exit code)``."""
        try:
            if not self.conn.poll(timeout):
                return "timeout", None
            return self.conn.recv()
        except (EOFError, OSError):
            self.proc.join(5)
            return "died", self.proc.exitcode

    def stop(self, kill: bool = False) -> None:
        try:
            if not kill:
                self.conn.send(None)
                self.proc.join(10)
        except (OSError, ValueError):
            pass
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(10)
        self.conn.close()


class _Summary:
    def __init__(self, kind: str, seed: int, budget: float, out_dir: Optional[Path]):
        self.kind, self.seed, self.budget, self.dir = kind, seed, budget, out_dir
        self.verdicts: Dict[str, int] = {}
        self.counts: Dict[str, int] = {}
        self.origins: Dict[str, int] = {}
        self.findings: List[Dict[str, Any]] = []
        self.probes = 0
        self.restarts = 0
        self.t0 = time.monotonic()

    def add(self, n: int, inp: Optional[Input], res: Dict[str, Any]) -> None:
        self.probes += 1
        v = str(res.get("verdict", "?"))
        self.verdicts[v] = self.verdicts.get(v, 0) + 1
        for key, val in (res.get("counts") or {}).items():  # extra per-probe counters of a kind
            self.counts[key] = self.counts.get(key, 0) + int(val)
        if inp is not None:
            src = inp.origin.split(":", 1)[0].split("+", 1)[0]
            self.origins[src] = self.origins.get(src, 0) + 1
        if res.get("finding"):
            self.finding(n, inp, res)

    def finding(self, n: int, inp: Optional[Input], res: Dict[str, Any]) -> None:
        origin = inp.origin if inp is not None else "?"
        rec = {"probe": n, "verdict": res.get("verdict"), "reason": res["finding"], "origin": origin}
        if self.dir is not None:
            d = self.dir / f"{safe_name(self.kind)}-{self.seed}-{n}"
            d.mkdir(parents=True, exist_ok=True)
            for name, data in (inp.files if inp is not None else {}).items():
                (d / name).write_bytes(data)
            line = " ".join(f"{res['finding']} | origin: {origin}".split())
            (d / "reason.txt").write_text(line + "\n", encoding="utf-8")
            if res.get("traceback"):
                (d / "traceback.txt").write_text(res["traceback"], encoding="utf-8")
            rec["dir"] = str(d)
        self.findings.append(rec)

    def to_dict(self, timeout: float) -> Dict[str, Any]:
        return {"kind": self.kind, "seed": self.seed, "budget": self.budget,
                "seconds": round(time.monotonic() - self.t0, 1), "probes": self.probes,
                "verdicts": dict(sorted(self.verdicts.items())), "counts": dict(sorted(self.counts.items())),
                "origins": dict(sorted(self.origins.items())),
                "findings": len(self.findings), "finding_list": self.findings[:MAX_LISTED],
                "worker_restarts": self.restarts, "per_probe_timeout": timeout}


def run_probes(kind: str, budget: float, seed: int = 0, out_dir: Optional[str] = None,
               max_probes: Optional[int] = None, timeout: float = 30.0, options: Optional[Dict[str, Any]] = None,
               inproc: bool = False, memory_limit: int = MEMORY_LIMIT) -> Dict[str, Any]:
    """Run probes of ``kind`` for ``budget`` seconds (or ``max_probes``), each bounded by ``timeout``
    seconds; the summary dict.  ``inproc``: judge in this process (no hang or crash protection; tests
    that patch a verdict function use it)."""
    options = options or {}
    out = Path(out_dir) if out_dir else None
    if out_dir:
        prepare_dir(out_dir, kind)
    summ = _Summary(kind, seed, budget, out)
    deadline = time.monotonic() + budget
    if inproc:
        probes = load_kind(kind, dict(options, seed=seed))
        n = 0
        while time.monotonic() < deadline and (max_probes is None or n < max_probes):
            inp, failed = make_one(probes, seed, kind, n)
            summ.add(n, inp, failed or judge_one(probes, inp))
            n += 1
        return summ.to_dict(timeout)
    worker: Optional[_Worker] = None
    n = 0
    try:
        while time.monotonic() < deadline and (max_probes is None or n < max_probes):
            if worker is None:
                worker = _Worker(kind, seed, options, memory_limit)
            try:
                worker.conn.send(n)
            except (OSError, ValueError):  # it died after its last answer: a new one takes this probe
                worker.stop(kill=True)
                worker = None
                summ.restarts += 1
                continue
            worker = _one(worker, n, timeout, summ)
            n += 1
    finally:
        if worker is not None:
            worker.stop()
    return summ.to_dict(timeout)


def _one(worker: _Worker, n: int, timeout: float, summ: _Summary) -> Optional[_Worker]:
    """Probe ``n`` on ``worker``; the worker to go on with (None: it was killed or died)."""
    what, inp = worker.recv(max(timeout, 120.0))  # input generation includes a checkpoint or smith
    if what != "input":
        summ.add(n, None, {"verdict": "generator-" + what, "finding": f"input generation: worker {what}"
                           + (f" (exit code {inp})" if what == "died" else f" after {max(timeout, 120.0)} s")})
        worker.stop(kill=True)
        summ.restarts += 1
        return None
    what, res = worker.recv(timeout)
    if what == "result":
        summ.add(n, inp, res)
        return worker
    reason = (f"hang: no verdict within {timeout} s" if what == "timeout"
              else f"crash: the worker died (exit code {res})")
    summ.add(n, inp, {"verdict": "hang" if what == "timeout" else "crash", "finding": reason})
    worker.stop(kill=True)
    summ.restarts += 1
    return None


def safe_name(kind: str) -> str:
    """A kind as a file name part (a ``module:attribute`` kind keeps only letters, digits, ``_``, ``.``)."""
    return re.sub(r"[^A-Za-z0-9_.]+", "_", kind)


class ForeignDirectory(Exception):
    """``--dir`` holds files this runner did not write: it is never taken over."""


def prepare_dir(path: str, kind: str) -> None:
    """Make ``path`` ready for ``kind``'s findings: nothing to do when it does not exist; reused when
    everything in it is a finding directory of ours (``<kind>-<seed>-<n>/reason.txt``; those of ``kind``
    are removed, so the directory shows this run's findings only).  Anything else there raises :class:`ForeignDirectory`."""
    p = Path(path)
    if not p.exists():
        return  # created with the first finding
    if not p.is_dir():
        raise ForeignDirectory(f"{path} is not a directory")
    foreign = [e.name for e in p.iterdir() if not (e.is_dir() and (e / "reason.txt").is_file())]
    if foreign:
        raise ForeignDirectory(f"{path} holds files that are not robustness findings ({foreign[0]}, ...): "
                               "refusing to write into it")
    for e in p.iterdir():
        if e.name.startswith(f"{safe_name(kind)}-"):
            shutil.rmtree(e)
