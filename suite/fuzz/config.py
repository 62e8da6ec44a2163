"""A fuzzing campaign's configuration: what ``meta.json`` holds and ``--resume`` reads back, with the
constants that shape a campaign.  Its own file because the command line, the campaign, selftest and
the summary all read it, and none of them needs the campaign's machinery to do so."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple

__all__ = ["CHUNK", "EXHAUSTIVE_EVERY", "EXHAUSTIVE_MAX", "FORMAT", "TRIAL_TIMEOUT", "Config", "default_hosts"]

CHUNK = 16
#: seconds one trial may take unless ``wcr fuzz --timeout`` says otherwise (trials take milliseconds; one
#: that takes a minute is counted inconclusive with the reason, and the campaign goes on)
TRIAL_TIMEOUT = 60.0
#: runs of at most this many instructions may be checked exhaustively (every k, every host and target)
EXHAUSTIVE_MAX = 200
#: ... in one trial out of this many
EXHAUSTIVE_EVERY = 10


#: ``meta.json`` format: 2 = chunks committed with end markers (older campaigns cannot be resumed)
FORMAT = 2


@dataclass
class Config:
    budget: float = 60.0  # seconds of campaign time (inf: none; then ``chunks`` bounds the campaign)
    seed: int = 0
    hosts: List[str] = field(default_factory=lambda: ["inproc"])
    targets: List[str] = field(default_factory=list)
    generator: str = "own"  # own | smith | both
    workers: int = 1
    shard: Tuple[int, int] = (0, 1)
    dir: str = "fuzz-campaign"
    reports: str = ""
    chunk: int = CHUNK
    shrink_seconds: float = 60.0
    stop_on_divergence: bool = False
    faults: List[str] = field(default_factory=list)
    max_funcs: int = 4
    chunks: int = 0  # chunks per worker (0: until the budget ends); the deterministic budget
    format: int = FORMAT
    fuel: Optional[int] = None  # per trial, every run (None: runners.trial.MAX_INSTRUCTIONS)
    timeout: Optional[float] = TRIAL_TIMEOUT  # per trial, wall time
    simd: bool = False  # v128 values and SIMD instructions in both generators (``wcr fuzz --simd``)
    gc: bool = False  # structs, arrays, i31 and casts in both generators (``wcr fuzz --gc``)
    exceptions: bool = False  # tags, throw, try_table, exnref in both generators (``wcr fuzz --exceptions``)
    wasi: bool = False  # WASI programs (files, stdout, errnos) from our generator (``wcr fuzz --wasi``)

    def features(self) -> Tuple[str, ...]:
        """The switches this campaign turned on (names of :data:`generators.modules.ALL_FEATURES`)."""
        return tuple(n for n, on in (("simd", self.simd), ("gc", self.gc), ("exceptions", self.exceptions),
                                     ("wasi", self.wasi)) if on)

    @property
    def reports_dir(self) -> Path:
        return Path(self.reports) if self.reports else Path(self.dir) / "reports"


def default_hosts() -> List[str]:
    hosts = ["inproc"]
    for cand in ("/root/.pyenv/versions/3.12.1/bin/python",):
        if os.path.exists(cand):
            hosts.append(f"python:{cand}")
            break
    else:
        import platform

        from runners.hosts import known_python_hosts

        mine = platform.python_version()
        others = [h for h in known_python_hosts() if mine not in h]
        hosts += others[:1]
    return hosts
