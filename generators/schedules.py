"""Checkpoint schedules as Hypothesis strategies.

A schedule says *where* a run is interrupted, given ``total`` = N, the number of instructions an
uninterrupted run retires (``Store.instructions``, or the reference run's outcome).
Positions use the counting rule of docs/execution-model.md: "checkpoint at k" means *stop before the
(k+1)-th instruction*, i.e. after exactly k retired instructions; every ``0 <= k <= N`` is valid (k = 0:
before the first instruction; k = N: after the last one, just before the results are handed back).

Three shapes, each a :class:`vm.snapshot.schedule.Schedule` (the one schedule type: plain data that
a campaign logs and replays):

* ``single`` — one checkpoint, then restore and finish (``single_points``);
* ``multi`` — several checkpoints in one run, strictly increasing (``multi_points``);
* ``chain`` — checkpoint at k1 on host A, restore on host B, run to k2, checkpoint, restore on host
  C, ...; the last hop's host finishes the run (``migration_chains``).  Host names are opaque labels
  drawn from a list the caller gives (e.g. ``["inproc", "python:/usr/bin/pypy3"]``).

Shrinking moves points towards 0 and chains towards fewer hops.
"""

from __future__ import annotations

from typing import List, Sequence

from hypothesis import strategies as st

from vm.snapshot.schedule import Schedule

__all__ = ["Schedule", "single_points", "multi_points", "migration_chains", "schedules"]


def _check_total(total: int) -> None:
    if total < 0:
        raise ValueError(f"total instruction count must be >= 0, got {total}")


def single_points(total: int) -> st.SearchStrategy[Schedule]:
    """One point ``k`` in ``[0, total]`` (the ends are drawn often: they are the classic off-by-ones)."""
    _check_total(total)
    k = st.one_of(st.sampled_from(sorted({0, total, max(0, total - 1), min(total, 1)})),
                  st.integers(0, total))
    return k.map(lambda v: Schedule("single", (v,)))


def multi_points(total: int, min_points: int = 1, max_points: int = 8) -> st.SearchStrategy[Schedule]:
    """Sorted distinct points in ``[0, total]`` (at most ``total + 1`` of them, however many are asked)."""
    _check_total(total)
    hi = min(max_points, total + 1)
    lo = min(min_points, hi)
    ks = st.lists(st.integers(0, total), min_size=lo, max_size=hi, unique=True)
    return ks.map(lambda v: Schedule("multi", tuple(sorted(v))))


def migration_chains(total: int, hosts: Sequence[str], min_hops: int = 1,
                     max_hops: int = 5) -> st.SearchStrategy[Schedule]:
    """A start host plus ``min_hops..max_hops`` hops with non-decreasing ks in ``[0, total]`` and hosts
    drawn from ``hosts`` (consecutive hosts may repeat: same-host restore is part of the contract)."""
    _check_total(total)
    if not hosts:
        raise ValueError("migration_chains needs at least one host name")
    host = st.sampled_from(list(hosts))

    @st.composite
    def chain(draw) -> Schedule:
        start = draw(host)
        ks: List[int] = sorted(draw(st.lists(st.integers(0, total), min_size=min_hops, max_size=max_hops)))
        return Schedule("chain", tuple(ks), start, tuple(draw(host) for _ in ks))

    return chain()


def schedules(total: int, hosts: Sequence[str] = ("wcr",)) -> st.SearchStrategy:
    """Any of the three shapes (single points first: what shrinking prefers)."""
    return st.one_of(single_points(total), multi_points(total), migration_chains(total, hosts))
