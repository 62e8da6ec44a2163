"""A campaign worker's JSONL file, written one chunk at a time: all of a chunk's records or none.

Why: a campaign is killed from outside (``kill -9``, a CI timeout) at any moment.  Records written as
they happen left half a chunk behind (its trials without its batched target checks), and a resumed
campaign could neither tell which trials it had run nor re-run exactly those it had not.  So a chunk's
records (trials, target batch, divergences, reports, errors) stay in memory until the chunk ends and
then reach the file in **one** ``os.write`` on an ``O_APPEND`` descriptor, followed (in the same write)
by a marker line::

    {"t": "chunk", "chunk": C, "lines": N, "complete": true, "trials": T, "elapsed": S}

The N lines just before an intact marker are its chunk (one write is contiguous, so a marker that made
it to the file vouches for what precedes it); anything else — a torn last line, the records of a chunk
whose marker never came — is ignored.  ``complete`` is false for a chunk the time budget cut short; its
trials count until a resumed campaign re-runs that chunk, whose newer version then replaces it (a
chunk's trials are a deterministic function of the campaign seed, worker and chunk number, so the re-run
starts with the same trials).  :func:`resume_point` says where a worker continues: the first chunk
without a complete version.  The file is locked (``flock``) while a worker writes it, so a second
campaign in the same directory is refused instead of interleaving with a live one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

__all__ = ["CampaignBusy", "ChunkLog", "ResumePoint", "check_unlocked", "chunk_records", "committed", "log_files",
           "read_jsonl", "resume_point", "write_chunk"]

#: the ``t`` of a chunk's end marker
MARKER = "chunk"


class CampaignBusy(Exception):
    """A worker file of the campaign is locked: a campaign (or a worker that outlived it) is running."""


def log_files(directory: Path) -> List[Path]:
    """The worker files of a campaign directory (``trials-SHARD-WORKER.jsonl``)."""
    return sorted(Path(directory).glob("trials-*.jsonl"))


def read_jsonl(path: Path) -> List[Dict[str, Any]]:
    """Every line of ``path`` that is a JSON object, committed or not (a torn line is skipped)."""
    return [rec for rec in _lines(path) if rec is not None]


def _lines(path: Path) -> Iterator[Optional[Dict[str, Any]]]:
    with open(path, "rb") as f:
        for raw in f:
            try:
                rec = json.loads(raw.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                rec = None  # a line cut by a kill
            yield rec if isinstance(rec, dict) else None


def committed(path: Path) -> Dict[int, Tuple[List[Dict[str, Any]], Dict[str, Any]]]:
    """chunk number → (its records, its marker), the last committed version of each chunk."""
    out: Dict[int, Tuple[List[Dict[str, Any]], Dict[str, Any]]] = {}
    since: List[Optional[Dict[str, Any]]] = []  # lines after the last marker
    for rec in _lines(path):
        if rec is None or rec.get("t") != MARKER:
            since.append(rec)
            continue
        c, n = rec.get("chunk"), rec.get("lines")
        if isinstance(c, int) and isinstance(n, int) and 0 <= n <= len(since):
            mine = since[len(since) - n:]
            if all(r is not None and r.get("chunk") == c for r in mine):
                out[c] = ([r for r in mine if r is not None], rec)
        since = []
    return out


def chunk_records(directory: Path) -> Iterator[Dict[str, Any]]:
    """The records of every committed chunk (last versions), file by file, chunk by chunk."""
    for p in log_files(directory):
        for _c, (recs, _marker) in sorted(committed(p).items()):
            yield from recs


@dataclass
class ResumePoint:
    """Where a worker continues: ``next_chunk`` (the first chunk without a complete version), the
    campaign time spent so far, the records of the chunks before it (its steering is rebuilt from them),
    and ``floor``: the trials of a cut version of ``next_chunk`` (its re-run runs at least as many, so a
    resume never has fewer trials than the run it continues)."""

    next_chunk: int = 0
    elapsed: float = 0.0
    records: List[Dict[str, Any]] = field(default_factory=list)
    floor: int = 0


def resume_point(path: Path) -> ResumePoint:
    if not path.exists():
        return ResumePoint()
    chunks = committed(path)
    rp = ResumePoint()
    while rp.next_chunk in chunks and chunks[rp.next_chunk][1].get("complete"):
        rp.records += chunks[rp.next_chunk][0]
        rp.next_chunk += 1
    cut = chunks.get(rp.next_chunk)
    rp.floor = int(cut[1].get("trials", 0)) if cut else 0
    rp.elapsed = max([float(m.get("elapsed", 0.0)) for _r, m in chunks.values()] + [0.0])
    return rp


def chunk_lines(c: int, records: List[Dict[str, Any]], complete: bool, elapsed: float) -> bytes:
    """A chunk's records and its marker, as the bytes of one write."""
    marker = {"t": MARKER, "chunk": c, "lines": len(records), "complete": complete,
              "trials": sum(1 for r in records if r.get("t") == "trial"), "elapsed": round(elapsed, 3)}
    return "".join(json.dumps(dict(r, chunk=c)) + "\n" for r in [*records, marker]).encode("utf-8")


def write_chunk(path: Path, c: int, records: List[Dict[str, Any]], complete: bool = True,
                elapsed: float = 0.0) -> None:
    """Commit one chunk to ``path`` (tests and tools; a worker keeps a :class:`ChunkLog` open)."""
    log = ChunkLog(path)
    try:
        log.commit(c, records, complete, elapsed)
    finally:
        log.close()


class ChunkLog:
    """A worker's open file: locked, appended to one chunk at a time."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            _lock(self.fd, self.path)
            # a torn last line (a kill during a write) must not swallow the next chunk's first line
            self.sep = b"\n" if os.fstat(self.fd).st_size and _last_byte(self.path) != b"\n" else b""
        except BaseException:
            os.close(self.fd)
            raise

    def commit(self, c: int, records: List[Dict[str, Any]], complete: bool, elapsed: float) -> None:
        data = self.sep + chunk_lines(c, records, complete, elapsed)
        self.sep = b""
        view = memoryview(data)
        while view:  # one write in practice; a short write leaves an incomplete chunk, which readers skip
            view = view[os.write(self.fd, view):]

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # releases the lock
            self.fd = -1


def _last_byte(path: Path) -> bytes:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1)


def _lock(fd: int, path: Path) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock, a second campaign is the user's problem
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise CampaignBusy(f"{path} is locked: a campaign (or a worker of a killed one) is still writing "
                           "it") from None


def check_unlocked(directory: Path) -> None:
    """Raise :class:`CampaignBusy` if any worker file of ``directory`` is being written."""
    for p in log_files(directory):
        ChunkLog(p).close()
