"""Checkpoint schedules as Hypothesis strategies.

A schedule says *where* a run is interrupted, given ``total`` = N, the number of instructions an
uninterrupted run retires (``Store.instructions`` / :attr:`generators.diff.Outcome.instructions`).
Positions use the counting rule of docs/execution-model.md: "checkpoint at k" means *stop before the
(k+1)-th instruction*, i.e. after exactly k retired instructions; every ``0 <= k <= N`` is valid (k = 0:
before the first instruction; k = N: after the last one, just before the results are handed back).

Three shapes, all plain data so that a campaign can log and replay them:

* :class:`SinglePoint` — one checkpoint, then restore and finish (``single_points``);
* :class:`MultiPoint` — several checkpoints in one run, strictly increasing (``multi_points``);
* :class:`MigrationChain` — checkpoint at k1 on host A, restore on host B, run to k2, checkpoint,
  restore on host C, ...; the last hop's ``host`` finishes the run (``migration_chains``).  Host names
  are opaque labels drawn from a list the caller gives (e.g. ``["wcr", "wcr-pypy", "wcr-py39"]``).

Shrinking moves points towards 0 and chains towards fewer hops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

from hypothesis import strategies as st

__all__ = ["SinglePoint", "MultiPoint", "Hop", "MigrationChain", "single_points", "multi_points",
           "migration_chains", "schedules"]


@dataclass(frozen=True)
class SinglePoint:
    """Checkpoint once after ``k`` retired instructions (``0 <= k <= total``)."""

    k: int
    total: int

    def points(self) -> Tuple[int, ...]:
        return (self.k,)


@dataclass(frozen=True)
class MultiPoint:
    """Checkpoint after each of ``ks`` retired instructions (sorted, distinct, within ``[0, total]``)."""

    ks: Tuple[int, ...]
    total: int

    def points(self) -> Tuple[int, ...]:
        return self.ks


@dataclass(frozen=True)
class Hop:
    """Run on ``host`` until ``k`` instructions have retired (counted from the start of the
    invocation, not of the hop), then checkpoint and migrate to the next hop's host."""

    k: int
    host: str


@dataclass(frozen=True)
class MigrationChain:
    """``start_host`` starts the run; each hop ``(k_i, host_i)`` means: the current host stops at k_i,
    checkpoints, and ``host_i`` restores and continues; the last hop's host finishes the run.
    The ks are non-decreasing (a zero-length hop, restoring and immediately checkpointing again, is a
    legitimate test of restore→checkpoint fidelity)."""

    start_host: str
    hops: Tuple[Hop, ...]
    total: int

    def points(self) -> Tuple[int, ...]:
        return tuple(h.k for h in self.hops)

    @property
    def finish_host(self) -> str:
        return self.hops[-1].host if self.hops else self.start_host

    def hosts(self) -> Tuple[str, ...]:
        return (self.start_host,) + tuple(h.host for h in self.hops)


def _check_total(total: int) -> None:
    if total < 0:
        raise ValueError(f"total instruction count must be >= 0, got {total}")


def single_points(total: int) -> st.SearchStrategy[SinglePoint]:
    """One point ``k`` in ``[0, total]`` (the ends are drawn often: they are the classic off-by-ones)."""
    _check_total(total)
    k = st.one_of(st.sampled_from(sorted({0, total, max(0, total - 1), min(total, 1)})),
                  st.integers(0, total))
    return k.map(lambda v: SinglePoint(v, total))


def multi_points(total: int, min_points: int = 1, max_points: int = 8) -> st.SearchStrategy[MultiPoint]:
    """Sorted distinct points in ``[0, total]`` (at most ``total + 1`` of them, however many are asked)."""
    _check_total(total)
    hi = min(max_points, total + 1)
    lo = min(min_points, hi)
    ks = st.lists(st.integers(0, total), min_size=lo, max_size=hi, unique=True)
    return ks.map(lambda v: MultiPoint(tuple(sorted(v)), total))


def migration_chains(total: int, hosts: Sequence[str], min_hops: int = 1,
                     max_hops: int = 5) -> st.SearchStrategy[MigrationChain]:
    """A start host plus ``min_hops..max_hops`` hops with non-decreasing ks in ``[0, total]`` and hosts
    drawn from ``hosts`` (consecutive hosts may repeat: same-host restore is part of the contract)."""
    _check_total(total)
    if not hosts:
        raise ValueError("migration_chains needs at least one host name")
    host = st.sampled_from(list(hosts))

    @st.composite
    def chain(draw) -> MigrationChain:
        start = draw(host)
        ks: List[int] = sorted(draw(st.lists(st.integers(0, total), min_size=min_hops, max_size=max_hops)))
        hops = tuple(Hop(k, draw(host)) for k in ks)
        return MigrationChain(start, hops, total)

    return chain()


def schedules(total: int, hosts: Sequence[str] = ("wcr",)) -> st.SearchStrategy:
    """Any of the three shapes (single points first: what shrinking prefers)."""
    return st.one_of(single_points(total), multi_points(total), migration_chains(total, hosts))
