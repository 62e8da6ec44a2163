"""A fuzzing campaign: Hypothesis drives trials (:mod:`runners.trial`) in chunks until the budget ends.

Why chunks of Hypothesis runs: one ``@given`` call per chunk (seeded from campaign seed, shard, worker and
chunk number) gives reproducible generation, Hypothesis shrinking of the *whole* trial (module,
arguments and schedule are all draws) when a chunk fails, and a natural point to flush batched target
checks (a node process or compile per batch, not per checkpoint).  A target divergence only shows up at
the flush, so the chunk is then re-run with synchronous target checks restricted to that divergence's
signature, which lets Hypothesis shrink it too.  A chunk is also the unit of recording and of
``--resume`` (:mod:`suite.fuzz.chunklog`): its records reach the file together or not at all, and a
resumed campaign re-runs exactly the chunks that are not complete.  That a chunk's trials depend only on
(seed, shard, worker, chunk) and on the worker's earlier chunks (steering) is what makes this exact:
counted chunks therefore never replay the example database (it would put earlier failures into them).

On disk, under the campaign directory::

    meta.json                 configuration (``--resume`` reads it)
    trials-S-W.jsonl          worker W's records, one chunk (trials, target batch, divergences, reports,
                              errors, then an end marker) per write: :mod:`suite.fuzz.chunklog`
    hypothesis/               the example database (shrinking and the re-runs of target divergences)
    reports/                  YAML bug reports (default of ``--reports``), written as found at once

The summary is recomputed from the committed chunks, so a killed campaign loses nothing but its
unfinished chunks, which ``--resume`` re-runs.  Workers die with the campaign process
(:mod:`runners.lifetime`).  Its coverage section and the steering towards uncovered kinds:
:mod:`suite.fuzz.coverage`.  A campaign that completes no trial raises :class:`NothingRan`: an empty
run proves nothing, so it is never a success.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from runners.trial import Case, Divergence, Schedule, judge_target_results, make_hosts, run_trial
from vm.exec.budget import RunLimits

from .chunklog import ChunkLog, check_unlocked, resume_point
from .config import EXHAUSTIVE_EVERY, EXHAUSTIVE_MAX, Config
from .coverage import Steering, format_coverage, trial_coverage
from .summary import NothingRan, nothing_ran_reason, summarize


class _Found(Exception):
    """Raised inside the Hypothesis test for a divergence (one raise site: one failure to shrink)."""


def _digest(key: Any) -> str:
    """A short stable id of a case or schedule key (``trial`` records: comparing campaigns)."""
    return hashlib.sha256(repr(key).encode()).hexdigest()[:16]


def _hseed(cfg: Config, wid: int, chunk: int) -> int:
    h = hashlib.sha256(f"{cfg.seed}:{cfg.shard[0]}/{cfg.shard[1]}:{wid}:{chunk}".encode()).digest()
    return int.from_bytes(h[:8], "little")


class Worker:
    """One process's share of a campaign."""

    def __init__(self, cfg: Config, wid: int, queue: Any = None):
        from vm.snapshot import faults

        self.cfg = cfg
        self.wid = wid
        self.queue = queue
        if cfg.faults:
            faults.set_active(cfg.faults)
        from runners.session import resolve

        self.hosts = make_hosts(cfg.hosts)
        self.targets = {t: resolve(t)[0] for t in cfg.targets}
        self.dir = Path(cfg.dir)
        self.log_path = self.dir / f"trials-{cfg.shard[0]}-{wid}.jsonl"
        self.trials = 0
        self.divergences = 0
        self.checkpoints = 0
        self.log = ChunkLog(self.log_path)  # locked first: nobody else appends while we read it
        rp = resume_point(self.log_path)
        self.elapsed0, self.next_chunk, self.floor = rp.elapsed, rp.next_chunk, rp.floor
        self.buf: List[Dict[str, Any]] = []  # the records of the chunk being run
        self.cut = False  # the running chunk was cut short by the budget
        self.t0 = time.monotonic()
        self.first_catch: Optional[float] = None
        self.reports: List[str] = []
        self.steer = Steering(rp.records, bool(self.targets))

    # -- bookkeeping ------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return self.elapsed0 + time.monotonic() - self.t0

    def emit(self, rec: Dict[str, Any]) -> None:
        """Add a record to the running chunk (:meth:`commit` writes them)."""
        rec["elapsed"] = round(self.elapsed(), 3)
        self.buf.append(rec)

    def commit(self, c: int, complete: bool) -> None:
        """Write chunk ``c``'s records in one piece (:mod:`suite.fuzz.chunklog`)."""
        buf, self.buf = self.buf, []
        self.log.commit(c, buf, complete, self.elapsed())

    def progress(self) -> None:
        if self.queue is not None:
            self.queue.put(("progress", self.wid, self.trials, self.checkpoints, self.divergences))

    def close(self) -> None:
        for h in self.hosts.values():
            h.close()
        self.log.close()

    # -- drawing ----------------------------------------------------------------------------------
    def draw_case(self, data: Any) -> Case:
        from hypothesis import strategies as st

        gen = self.cfg.generator
        if gen == "both":
            gen = data.draw(st.sampled_from(["own", "smith"]))
        if gen == "smith":
            from generators.smith import SmithConfig, feature_config, smith_cases

            sc = feature_config(SmithConfig(fuel=32, max_funcs=4, max_instructions=100), simd=self.cfg.simd,
                                gc=self.cfg.gc, exceptions=self.cfg.exceptions)
            c = data.draw(smith_cases(sc, max_size=512))
            return Case(c.wasm, c.export, list(c.args), "smith", "", None, c.deterministic, c.seed)
        from generators.modules import DEFAULT_FEATURES, Size, cases

        feats = DEFAULT_FEATURES | set(self.cfg.features())
        c = data.draw(cases(feats, size=Size(max_funcs=self.cfg.max_funcs), boost=self.steer.boost))
        return Case(c.wasm, c.export, list(c.args), "own", "run_bits", list(c.bits_args), c.deterministic,
                    wasi=c.wasi)

    def draw_schedule(self, data: Any, total: int) -> Schedule:
        from hypothesis import strategies as st

        from generators.schedules import migration_chains, multi_points, single_points

        hosts = tuple(self.hosts)
        # one target per trial (drawn, so shrinking can settle on the one that diverges): a resume
        # module and a native run cost ~50-100 ms, more than the rest of a trial
        targets = (data.draw(st.sampled_from(sorted(self.targets))),) if self.targets else ()
        # a share of small runs is checked at every instruction boundary on every host and target (the
        # draw shrinks towards the cheaper shapes: 0 is "not exhaustive")
        if total <= EXHAUSTIVE_MAX and data.draw(st.integers(0, EXHAUSTIVE_EVERY - 1)) == EXHAUSTIVE_EVERY - 1:
            return Schedule.exhaustive(total, hosts, tuple(sorted(self.targets)))
        shape = data.draw(st.sampled_from(["single", "multi", "chain"]))
        if shape == "single":
            drawn = data.draw(single_points(total))
        elif shape == "multi":
            drawn = data.draw(multi_points(total, max_points=4))
        else:
            return replace(data.draw(migration_chains(total, hosts, max_hops=4)), targets=targets)
        return replace(drawn, hosts=hosts, targets=targets)

    # -- chunks -----------------------------------------------------------------------------------
    def run(self, deadline_s: float) -> None:
        """Run chunks until ``deadline_s`` seconds of (cumulative) campaign time, or until the worker has
        ``cfg.chunks`` complete chunks; each chunk is committed as it ends."""
        while self.elapsed() < deadline_s and not (self.cfg.chunks and self.next_chunk >= self.cfg.chunks):
            c = self.next_chunk
            self.cut = False
            stop = self.run_chunk(c, deadline_s)
            self.commit(c, complete=not self.cut)
            self.floor = 0
            if self.cut:
                break
            self.next_chunk += 1
            self.progress()
            if stop and self.cfg.stop_on_divergence:
                break

    def run_chunk(self, c: int, deadline_s: float, only: Optional[Tuple[str, str]] = None,
                  report_name: Optional[str] = None) -> bool:
        """One Hypothesis run of up to ``cfg.chunk`` trials.  ``only``: a re-run that looks for one
        divergence signature with synchronous target checks (trials are not counted).  Returns True
        when a divergence was found.  A chunk the budget ends sets ``self.cut`` (not complete), but
        never before it has ``self.floor`` trials (those of the cut version it re-runs).

        A divergence is reported twice under one file name: at once, as found (so a campaign killed
        or cut short while shrinking still leaves a report that replays), and again, minimized, over
        it once shrinking ends (``report_name``: the file of an earlier as-found report)."""
        from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings
        from hypothesis import strategies as st
        from hypothesis.database import DirectoryBasedExampleDatabase

        cfg = self.cfg
        self.steer.new_chunk(c)
        st_: Dict[str, Any] = {"sig": only, "last": None, "shrink_until": None, "found": False,
                               "name": report_name}
        batch: List[Tuple[Any, Any, Case, Schedule, int]] = []
        replaying = only is not None
        counted = [0]  # trials of this chunk so far

        def body(data: Any) -> None:
            if st_["sig"] is None and self.elapsed() >= deadline_s and counted[0] >= self.floor:
                self.cut = True
                return  # budget spent: let Hypothesis finish the chunk without work
            case = self.draw_case(data)
            until, last = st_["shrink_until"], st_["last"]
            if until is not None and last is not None and time.monotonic() > until and case.key() != last[0].key():
                return  # shrinking time is over: do not even run other modules (a capped restore costs seconds)
            sched_box: List[Schedule] = []

            def schedule_fn(total: int) -> Schedule:
                s = self.draw_schedule(data, total)
                sched_box.append(s)
                return s

            try:
                res, sched = run_trial(case, schedule_fn, self.hosts, self.targets,
                                       batch_targets=not replaying and st_["sig"] is None, only=st_["sig"],
                                       limits=RunLimits(cfg.fuel, cfg.timeout))
            except Exception as e:  # the harness broke: remembered, so it is logged even past the budget
                st_.setdefault("error", e)
                raise
            if st_["sig"] is None:  # a counted trial
                self.trials += 1
                counted[0] += 1
                self.checkpoints += res.checkpoints
                cov = trial_coverage(res.coverage)
                self.steer.on_hosts(cov)
                self.emit({"t": "trial", "chunk": c, "i": counted[0] - 1, "case": _digest(case.key()),
                           "sched": _digest(sched.key()) if sched else None, "gen": case.generator, "N": res.total,
                           "shape": sched.shape if sched else None, "checkpoints": res.checkpoints,
                           "restores": res.restores, "inconclusive": res.inconclusive, "skipped": res.skipped,
                           "notes": res.notes,
                           "divergences": [[d.kind, d.where] for d in res.divergences],
                           "ms": round(res.seconds * 1000, 2), "coverage": cov})
                for p in res.pending:
                    batch.append((p, res, case, sched, self.trials))
                if self.trials % 4 == 0:
                    self.progress()
            want = st_["sig"]
            hit = next((d for d in res.divergences if want is None or d.signature == want), None)
            if hit is None:
                return
            key = (case.key(), sched.key() if sched else None)
            if want is None:
                st_["sig"] = hit.signature
                st_["shrink_until"] = time.monotonic() + cfg.shrink_seconds
                st_["found"] = True
                self.divergence_found(c, case, sched, hit, minimized=False)
                st_["name"] = self.report(c, case, sched, hit, minimized=False).name
            elif st_["shrink_until"] is None:
                st_["shrink_until"] = time.monotonic() + cfg.shrink_seconds
            elif time.monotonic() > st_["shrink_until"] and st_["last"] is not None and key != st_["last"][3]:
                return  # shrinking time is over: only the best example found so far still fails
            st_["last"] = (case, sched, hit, key)
            raise _Found(hit.detail)

        phases = ([Phase.reuse] if replaying else []) + [Phase.generate, Phase.shrink]
        test = settings(max_examples=cfg.chunk, database=DirectoryBasedExampleDatabase(str(self.dir / "hypothesis")),
                        deadline=None, phases=phases, suppress_health_check=list(HealthCheck),
                        verbosity=Verbosity.quiet, print_blob=False, report_multiple_bugs=False,
                        derandomize=False)(seed(_hseed(cfg, self.wid, c))(given(st.data())(body)))
        try:
            test()
        except BaseException as e:  # _Found, or Hypothesis' Flaky/ExceptionGroup wrapping it
            if isinstance(e, KeyboardInterrupt):
                raise
            if st_.get("error") is not None:  # Hypothesis may wrap it (or call it flaky once the budget ended)
                e = st_["error"]
            if st_["last"] is None and (st_.get("error") is not None
                                        or not (st_["sig"] is None and self.elapsed() >= deadline_s)):
                import traceback

                tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
                self.emit({"t": "error", "chunk": c, "error": f"{type(e).__name__}: {e}"[:500], "traceback": tb[-3000:]})
        if st_["last"] is not None:
            case, sched, hit, _ = st_["last"]
            self.report(c, case, sched, hit, name=st_["name"])
        found = bool(st_["found"]) or (replaying and st_["last"] is not None)
        if not replaying and batch:
            found = self.flush_targets(c, batch, deadline_s) or found
        return found

    def flush_targets(self, c: int, batch: List[Tuple[Any, Any, Case, Schedule, int]], deadline_s: float) -> bool:
        """Batched target checks of a chunk; a divergence triggers a minimizing re-run of the chunk."""
        from runners.trial import TrialResult

        by_target: Dict[str, List[int]] = {}
        for i, (p, *_rest) in enumerate(batch):
            by_target.setdefault(p.target, []).append(i)
        per_item = [TrialResult() for _ in batch]
        for name, idxs in by_target.items():
            results = self.targets[name].check_many([batch[i][0].item for i in idxs])
            judge_target_results([batch[i][0] for i in idxs], results, [per_item[i] for i in idxs])
        restores: Dict[str, int] = {}
        inconclusive = 0
        skipped: Dict[str, int] = {}
        notes: List[Dict[str, Any]] = []
        divs: List[Tuple[Divergence, Case, Schedule]] = []
        cov = self.steer.on_targets([(b[0], b[1], r) for b, r in zip(batch, per_item)])
        for (_p, _res, case, sched, _n), r in zip(batch, per_item):
            for k, v in r.restores.items():
                restores[k] = restores.get(k, 0) + v
            for k, v in r.skipped.items():
                skipped[k] = skipped.get(k, 0) + v
            inconclusive += r.inconclusive
            notes += r.notes
            divs += [(d, case, sched) for d in r.divergences]
        self.emit({"t": "targets", "chunk": c, "restores": restores, "inconclusive": inconclusive,
                   "skipped": skipped, "notes": notes, "divergences": [[d.kind, d.where] for d, _, _ in divs],
                   "coverage": cov})
        if not divs:
            return False
        seen = set()
        for d, case, sched in divs:
            if d.signature in seen:
                continue
            seen.add(d.signature)
            self.divergence_found(c, case, sched, d, minimized=False)
            name = self.report(c, case, sched, d, minimized=False).name  # as found; minimized over it
            self.run_chunk(c, deadline_s, only=d.signature, report_name=name)
        return True

    # -- divergences ------------------------------------------------------------------------------
    def divergence_found(self, c: int, case: Case, sched: Optional[Schedule], d: Divergence, minimized: bool) -> None:
        self.divergences += 1
        if self.first_catch is None:
            self.first_catch = self.elapsed()
        self.emit({"t": "divergence", "chunk": c, "kind": d.kind, "where": d.where, "k": d.k,
                   "detail": d.detail[:2000], "first_catch": round(self.first_catch, 3)})
        self.progress()

    def report(self, c: int, case: Case, sched: Optional[Schedule], d: Divergence, minimized: bool = True,
               name: Optional[str] = None) -> Path:
        """Write (or, with ``name``, overwrite) the report of ``d``.  Minimizing the schedule is best
        effort: a minimizer that fails leaves the schedule as found, and the report is written anyway."""
        from reports.bugreport import build_report, write_report
        from reports.minimize import minimize_schedule

        info: Dict[str, Any] = {"hypothesis": minimized}
        if minimized and sched is not None and d.kind in ("cr-host", "cr-target"):
            try:
                sched, d2, tries = minimize_schedule(case, sched, d.signature, self.hosts, self.targets,
                                                     max_tries=25, k=d.k)
                d = d2 or d
                info["schedule_tries"] = tries
            except Exception as e:  # noqa: BLE001 - the report matters more than its size
                info["schedule_error"] = f"{type(e).__name__}: {e}"[:300]
        rep = build_report(case, sched, d, found={"campaign": str(self.dir), "seed": self.cfg.seed,
                                                  "chunk": c, "worker": self.wid,
                                                  "elapsed": round(self.elapsed(), 2)}, minimized=info)
        path = write_report(rep, self.cfg.reports_dir, name)
        if str(path) not in self.reports:
            self.reports.append(str(path))
        self.emit({"t": "report", "chunk": c, "path": str(path), "kind": d.kind, "where": d.where,
                   "instructions": rep["module"]["instructions"], "minimized": minimized})
        return path


def _worker_entry(cfg_dict: Dict[str, Any], wid: int, deadline_s: float, queue: Any, parent: int) -> None:
    from runners.lifetime import die_with_parent

    die_with_parent(parent)  # a killed campaign must not leave workers appending to its files
    cfg = Config(**cfg_dict)
    cfg.shard = tuple(cfg.shard)  # type: ignore[assignment]
    w = Worker(cfg, wid, queue)
    try:
        w.run(deadline_s)
    finally:
        w.close()
        if queue is not None:
            queue.put(("done", wid, w.trials, w.checkpoints, w.divergences))


def run_campaign(cfg: Config, progress: bool = False, out=sys.stderr) -> Dict[str, Any]:
    """Run (or continue) a campaign and return :func:`summarize`'s dict plus timing."""
    d = Path(cfg.dir)
    d.mkdir(parents=True, exist_ok=True)
    check_unlocked(d)
    if cfg.chunks and all(resume_point(d / f"trials-{cfg.shard[0]}-{w}.jsonl").next_chunk >= cfg.chunks
                          for w in range(cfg.workers)):
        raise NothingRan(f"the campaign in {d} has its {cfg.chunks} chunks per worker already: nothing to run "
                         "(a larger --chunks continues it)")
    (d / "meta.json").write_text(json.dumps(asdict(cfg), indent=1))
    t0 = time.monotonic()
    before = summarize(d)["trials"]
    died: List[Dict[str, Any]] = []
    if cfg.workers <= 1:
        w = Worker(cfg, 0, None)
        try:
            if progress:
                import queue as _q

                w.queue = _q.SimpleQueue()
                _run_with_progress_inline(w, cfg.budget, out)
            else:
                w.run(cfg.budget)
        finally:
            w.close()
    else:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        q = ctx.Queue()
        procs = [ctx.Process(target=_worker_entry, args=(asdict(cfg), i, cfg.budget, q, os.getpid()), daemon=True)
                 for i in range(cfg.workers)]
        for p in procs:
            p.start()
        stats: Dict[int, Tuple[int, int, int]] = {}
        done = 0
        while done < len(procs):
            try:
                msg = q.get(timeout=1.0)
            except Exception:  # noqa: BLE001 - queue.Empty
                if not any(p.is_alive() for p in procs):
                    break
                continue
            stats[msg[1]] = msg[2:]
            if msg[0] == "done":
                done += 1
            if progress:
                _print_progress(out, t0, before, stats)
        for p in procs:
            p.join(timeout=30)
        if progress:
            out.write("\n")
        # a worker that died (a native crash or abort in a library, the OOM killer) is never silent:
        # its committed chunks count, the rest is re-run by --resume, and the campaign fails
        died = [{"worker": i, "exitcode": p.exitcode} for i, p in enumerate(procs) if p.exitcode not in (0, None)]
    s = summarize(d)
    if died:
        s["worker_deaths"] = died
        for x in died:
            out.write(f"wcr fuzz: worker {x['worker']} died (exit code {x['exitcode']}); the campaign is "
                      "incomplete: --resume re-runs its unfinished chunks\n")
    s["seconds"] = round(time.monotonic() - t0, 2)
    s["trials_per_second"] = round((s["trials"] - before) / max(s["seconds"], 1e-9), 2)
    s["simd"] = cfg.simd  # the generators made v128 values (coverage kind value.v128 counts them live)
    s["gc"] = cfg.gc  # ... heap objects (kinds heap.*)
    s["exceptions"] = cfg.exceptions  # ... exceptions (kinds heap.exn, ctl.handler)
    s["wasi"] = cfg.wasi  # ... WASI programs (kinds wasi.*)
    if s["trials"] <= before:  # (fewer: a re-run of a cut chunk broke down)
        raise NothingRan(nothing_ran_reason(d, s["seconds"], cfg.budget))
    out.write(format_coverage(s["coverage"]) + "\n")
    return s


def _print_progress(out: Any, t0: float, before: int, stats: Dict[int, Tuple[int, int, int]]) -> None:
    el = time.monotonic() - t0
    tr = sum(v[0] for v in stats.values())
    ck = sum(v[1] for v in stats.values())
    dv = sum(v[2] for v in stats.values())
    out.write(f"\r{el:7.1f}s  trials {before + tr}  ({tr / max(el, 1e-9):.1f}/s)  checkpoints {ck}  "
              f"divergences {dv}   ")
    out.flush()


def _run_with_progress_inline(w: Worker, deadline_s: float, out: Any) -> None:
    t0 = time.monotonic()
    orig = w.progress

    def prog() -> None:
        orig()
        _print_progress(out, t0, 0, {0: (w.trials, w.checkpoints, w.divergences)})

    w.progress = prog  # type: ignore[method-assign]
    w.run(deadline_s)
    out.write("\n")
