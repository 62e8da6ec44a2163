"""The SQLite amalgamation, from a pinned release of the npm package ``better-sqlite3``.

Why npm: the registry serves immutable tarballs (a published version's bytes never change, so a sha256
pinned here is a real proof), it is reachable from the machines this suite runs on, and the package
ships the amalgamation (``package/deps/sqlite3/sqlite3.c`` + ``sqlite3.h``), one C file that builds
with ``zig cc``.  Nothing downloaded is committed: the tarball is fetched once into the cache
(``$WCR_CACHE_DIR/sqlite/<version>/``), verified, and only those two members are extracted, by our own
file names (a member's path never becomes a host path, so no archive can write outside that directory).

Failures: no network (or a URL that does not answer) is :class:`SourceUnavailable`, whose message starts
with ``skipped: cannot download`` (commands print it and go on, tests skip with it); bytes that are not
the pinned ones, or an archive without the members, are :class:`SourceInvalid` (an error).
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import tempfile
import urllib.request
from pathlib import Path
from typing import Dict, Optional

from .testsuite import cache_dir

PINNED_VERSION = "12.4.1"
PINNED_SHA256 = "14398acbf00d1e8fe0a2753df7d4f15c13138e4b874f4e6e96791f65b4536d0d"
DEFAULT_URL = f"https://registry.npmjs.org/better-sqlite3/-/better-sqlite3-{PINNED_VERSION}.tgz"
#: overrides the tarball URL (a mirror, or ``file://`` for an offline copy; the sha256 still applies)
URL_ENV = "WCR_SQLITE_URL"
#: the archive members we use → the file names they get in the cache
MEMBERS: Dict[str, str] = {
    "package/deps/sqlite3/sqlite3.c": "sqlite3.c",
    "package/deps/sqlite3/sqlite3.h": "sqlite3.h",
}
MAX_TARBALL_BYTES = 64 << 20
MAX_MEMBER_BYTES = 32 << 20


class SourceUnavailable(Exception):
    """The tarball cannot be downloaded (message: ``skipped: cannot download …``)."""


class SourceInvalid(Exception):
    """The tarball was downloaded but is not the pinned one, or lacks the amalgamation."""


def _download(url: str, timeout: float = 120.0) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (pinned https or file URL)
            data = resp.read(MAX_TARBALL_BYTES + 1)
    except (OSError, ValueError) as exc:
        raise SourceUnavailable(f"skipped: cannot download better-sqlite3 {PINNED_VERSION} from {url}: "
                                f"{exc}") from None
    if len(data) > MAX_TARBALL_BYTES:
        raise SourceInvalid(f"{url}: more than {MAX_TARBALL_BYTES} bytes, not the pinned tarball")
    return data


def extract_members(data: bytes, origin: str, dest: Path) -> None:
    """Write :data:`MEMBERS` of the gzip tarball ``data`` into ``dest`` under their own names.  Only
    regular-file members with exactly those names are read (links, devices and any other path are
    ignored), so nothing in the archive chooses where bytes land."""
    found: Dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar:
                target = MEMBERS.get(member.name)
                if target is None or not member.isfile() or member.size > MAX_MEMBER_BYTES:
                    continue
                f = tar.extractfile(member)
                if f is not None:
                    found[target] = f.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise SourceInvalid(f"{origin}: not a readable .tgz ({exc})") from None
    missing = sorted(set(MEMBERS.values()) - set(found))
    if missing:
        raise SourceInvalid(f"{origin}: the archive has no {', '.join(missing)} "
                            f"(expected {', '.join(sorted(MEMBERS))})")
    dest.mkdir(parents=True, exist_ok=True)
    for name, content in found.items():
        tmp = dest / f".{name}.tmp{os.getpid()}"
        tmp.write_bytes(content)
        os.replace(tmp, dest / name)


def amalgamation_dir(url: Optional[str] = None, sha256: str = PINNED_SHA256,
                     root: Optional[Path] = None) -> Path:
    """The cache directory holding ``sqlite3.c`` and ``sqlite3.h`` of the pinned release, downloaded
    and verified on first use (``url``/``sha256``/``root`` are for tests: a local tarball and its hash)."""
    url = url or os.environ.get(URL_ENV) or DEFAULT_URL
    dest = (root or cache_dir()) / "sqlite" / f"better-sqlite3-{sha256[:16]}"
    if all((dest / name).is_file() for name in MEMBERS.values()):
        return dest
    data = _download(url)
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise SourceInvalid(f"{url}: sha256 {got}, expected the pinned {sha256} "
                            f"(better-sqlite3 {PINNED_VERSION}); refusing to build it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        extract_members(data, url, Path(tmp))
        for name in MEMBERS.values():
            dest.mkdir(parents=True, exist_ok=True)
            os.replace(Path(tmp) / name, dest / name)
    return dest
