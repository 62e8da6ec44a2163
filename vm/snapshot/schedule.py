"""A checkpoint schedule: where a run is interrupted and where each part of it runs.

Plain data (it is logged as JSON, stored in bug reports and replayed), shared by the generators that
draw schedules and the C/R trial that carries them out — this is its one definition.  Positions use the
counting rule of docs/execution-model.md: "checkpoint at k" means *after exactly k retired
instructions*; every ``0 <= k <= total`` is valid (k = total: the finished or trapped run).

Shapes:

* ``single`` — one checkpoint, restored on every host and target;
* ``multi`` — several checkpoints of one run (``ks`` strictly increasing), each restored everywhere;
* ``exhaustive`` — every instruction boundary of a (small) run, ``ks = 0..total`` with k = total (the
  finished or trapped run) included, each restored on every host and every target
  (:func:`exhaustive`; the campaign draws it for a share of its small trials);
* ``chain`` — the run starts on ``start``, stops at ``ks[i]`` and migrates to ``hosts[i]`` (ks
  non-decreasing; a zero-length hop tests restore → checkpoint fidelity); the last host finishes.

``targets`` are the native targets that resume the checkpoints (for a chain: its last one: the hops
run on our hosts, restored and re-checkpointed there, and the final snapshot goes to the targets).
Reports written before ``exhaustive`` existed load unchanged (the dict form of the other shapes is the
same).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Tuple

SHAPES = ("single", "multi", "chain", "exhaustive")


@dataclass(frozen=True)
class Schedule:
    shape: str
    ks: Tuple[int, ...]
    start: str = "inproc"
    hosts: Tuple[str, ...] = ()  # chain: the host of each hop; single/multi: every host restores
    targets: Tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"unknown schedule shape {self.shape!r} (expected one of {', '.join(SHAPES)})")
        if any(type(k) is not int or k < 0 for k in self.ks):
            raise ValueError(f"schedule points must be non-negative integers, got {list(self.ks)}")
        if self.shape == "chain" and len(self.hosts) != len(self.ks):
            raise ValueError(f"a chain has one host per hop: {len(self.ks)} points, {len(self.hosts)} hosts")
        if list(self.ks) != sorted(self.ks):
            raise ValueError(f"schedule points must not decrease: {list(self.ks)}")

    def points(self) -> Tuple[int, ...]:
        return self.ks

    @property
    def finish_host(self) -> str:
        return self.hosts[-1] if self.shape == "chain" and self.hosts else self.start

    def to_dict(self) -> Dict[str, Any]:
        d: Dict[str, Any] = {"shape": self.shape, "ks": list(self.ks), "targets": list(self.targets)}
        if self.shape == "chain":
            d["start"] = self.start
            d["hops"] = [[k, h] for k, h in zip(self.ks, self.hosts)]
        else:
            d["hosts"] = list(self.hosts)
        return d

    @classmethod
    def from_dict(cls, d: Any) -> Schedule:
        """The inverse of :meth:`to_dict`; a malformed dict raises ``ValueError`` naming the field."""
        if not isinstance(d, dict):
            raise ValueError(f"schedule: expected a mapping, got {type(d).__name__}")
        try:
            shape = str(d["shape"])
            targets = tuple(str(t) for t in d.get("targets", ()))
            if shape == "chain":
                hops = [(int(k), str(h)) for k, h in d["hops"]]
                return cls(shape, tuple(k for k, _ in hops), str(d.get("start", "inproc")),
                           tuple(h for _, h in hops), targets)
            return cls(shape, tuple(int(k) for k in d["ks"]), "inproc",
                       tuple(str(h) for h in d.get("hosts", ())), targets)
        except KeyError as e:
            raise ValueError(f"schedule: missing field {e.args[0]!r}") from None
        except (TypeError, ValueError) as e:
            raise ValueError(f"schedule: {e}") from None

    @classmethod
    def exhaustive(cls, total: int, hosts: Tuple[str, ...] = (), targets: Tuple[str, ...] = ()) -> Schedule:
        """Every instruction boundary of a run of ``total`` instructions, on all ``hosts`` and
        ``targets``."""
        return cls("exhaustive", tuple(range(total + 1)), "inproc", tuple(hosts), tuple(targets))

    def key(self) -> Tuple[Any, ...]:
        return (self.shape, self.ks, self.start, self.hosts, self.targets)

    def describe(self) -> str:
        if self.shape == "chain":
            hops = " → ".join(f"{h}@{k}" for k, h in zip(self.ks, self.hosts))
            tail = f" → {'/'.join(self.targets)}" if self.targets else ""
            return f"chain {self.start} → {hops}{tail}"
        if self.shape == "exhaustive":
            return f"exhaustive k=0..{self.ks[-1] if self.ks else 0} on {', '.join(self.hosts + self.targets)}"
        return f"{self.shape} k={list(self.ks)} on {', '.join(self.hosts + self.targets)}"
