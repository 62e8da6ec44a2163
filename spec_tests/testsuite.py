"""Where the official WebAssembly testsuite comes from, and proof that it is the pinned one.

Order of precedence (first that exists wins):

1. an explicit directory (``wcr spec --testsuite DIR``),
2. the ``WASM_TESTSUITE`` environment variable,
3. ``<repo>/../shared/wasm-testsuite`` (the project's pinned copy next to the checkout),
4. a download of the pinned commit of WebAssembly/testsuite into the cache
   (``$WCR_CACHE_DIR`` or ``~/.cache/wcr``), verified *file by file* against the project's
   ``spec_tests/MANIFEST.sha256``.  GitHub does not keep tarball bytes stable, so the archive itself is
   never hashed; only the ``.wast`` files we actually use are.

The download is placed by content: every manifest entry is looked up in the archive by path suffix and,
failing that, by sha256, so that a different directory layout upstream (e.g. ``legacy/exceptions/``)
still yields the manifest's layout.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional, Tuple

PINNED_COMMIT = "193e551ff22663995b1ac95dc62344133669e14b"
DEFAULT_URL = f"https://codeload.github.com/WebAssembly/testsuite/tar.gz/{PINNED_COMMIT}"
URL_ENV = "WCR_TESTSUITE_URL"
TESTSUITE_ENV = "WASM_TESTSUITE"
CACHE_ENV = "WCR_CACHE_DIR"

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
MANIFEST = PACKAGE_DIR / "MANIFEST.sha256"
LISTS_DIR = PACKAGE_DIR / "data"


class TestsuiteError(Exception):
    """The testsuite cannot be found, downloaded or verified (a one-line, user-facing message)."""

    __test__ = False  # not a pytest test class


def cache_dir() -> Path:
    """Root of wcr's caches; ``WCR_CACHE_DIR`` overrides ``~/.cache/wcr`` (tests point it at tmp)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "wcr"


def read_manifest(path: Path = MANIFEST) -> Dict[str, str]:
    """``{relative path: sha256}`` from a ``sha256sum``-style file."""
    out: Dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        digest, _, name = line.partition(" ")
        out[name.strip().lstrip("*")] = digest.lower()
    return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_dir(root: Path, manifest: Dict[str, str]) -> List[str]:
    """Problems found checking ``root`` against ``manifest`` (empty list = verified)."""
    problems = []
    for name, digest in sorted(manifest.items()):
        p = root / name
        if not p.is_file():
            problems.append(f"{name}: missing")
        elif sha256_file(p) != digest:
            problems.append(f"{name}: sha256 mismatch")
    return problems


def download_testsuite(
    url: Optional[str] = None,
    dest: Optional[Path] = None,
    manifest_path: Path = MANIFEST,
    timeout: float = 120.0,
) -> Path:
    """Download the pinned testsuite tarball and lay out exactly the manifest's files under ``dest``.

    Raises :class:`TestsuiteError` if the download fails or any manifest file is missing or differs.
    Returns ``dest`` (created atomically: a half-written copy is never left in place).
    """
    url = url or os.environ.get(URL_ENV) or DEFAULT_URL
    dest = dest or cache_dir() / f"testsuite-{PINNED_COMMIT}"
    manifest = read_manifest(manifest_path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".testsuite-", dir=dest.parent))
    try:
        archive = tmp / "archive.tar.gz"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(archive, "wb") as out:
                shutil.copyfileobj(resp, out)
        except Exception as e:  # network errors come in many classes; all mean the same here
            raise TestsuiteError(f"cannot download the testsuite from {url}: {e}") from e
        tree = tmp / "tree"
        _extract_by_manifest(archive, tree, manifest)
        problems = verify_dir(tree, manifest)
        if problems:
            raise TestsuiteError(
                f"downloaded testsuite from {url} does not match MANIFEST.sha256: "
                + "; ".join(problems[:5]) + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else "")
            )
        shutil.copyfile(manifest_path, tree / "MANIFEST.sha256")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tree, dest)
        return dest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _extract_by_manifest(archive: Path, tree: Path, manifest: Dict[str, str]) -> None:
    """Write each manifest file found in ``archive`` to ``tree/<manifest path>``.

    Only regular ``.wast`` members are read and nothing is written to an archive-chosen path, so a
    hostile archive cannot escape ``tree``.
    """
    by_hash: Dict[str, bytes] = {}
    by_suffix: Dict[str, Tuple[str, bytes]] = {}
    try:
        with tarfile.open(archive, "r:*") as tf:
            for m in tf:
                if not m.isfile() or not m.name.endswith(".wast"):
                    continue
                f = tf.extractfile(m)
                if f is None:
                    continue
                data = f.read()
                digest = hashlib.sha256(data).hexdigest()
                by_hash.setdefault(digest, data)
                parts = m.name.split("/")
                for i in range(1, len(parts)):
                    by_suffix.setdefault("/".join(parts[i:]), (digest, data))
    except (tarfile.TarError, OSError, EOFError) as e:
        raise TestsuiteError(f"downloaded testsuite archive is not a readable tarball: {e}") from e
    for name, digest in manifest.items():
        hit = by_suffix.get(name)
        data = hit[1] if hit is not None and hit[0] == digest else by_hash.get(digest)
        if data is None:
            continue  # reported by verify_dir
        out = tree / name
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)


def shared_copy() -> Path:
    """``../shared/wasm-testsuite`` next to the repository.  The repository is where this package
    lives when it runs from a checkout; when it is installed (a tox env, a wheel) it is the current
    directory or one of its parents, so those are tried too."""
    candidates = [REPO_DIR] + [d for d in (Path.cwd(), *Path.cwd().parents) if (d / "pyproject.toml").is_file()]
    for repo in candidates:
        p = repo.parent / "shared" / "wasm-testsuite"
        if p.is_dir():
            return p
    return REPO_DIR.parent / "shared" / "wasm-testsuite"


def locate_testsuite(explicit: Optional[str] = None, download: bool = True) -> Path:
    """The testsuite directory to use (see the module docstring for the order)."""
    if explicit:
        p = Path(explicit)
        if not p.is_dir():
            raise TestsuiteError(f"--testsuite {explicit}: not a directory")
        return p
    env = os.environ.get(TESTSUITE_ENV)
    if env:
        p = Path(env)
        if not p.is_dir():
            raise TestsuiteError(f"{TESTSUITE_ENV}={env}: not a directory")
        return p
    shared = shared_copy()
    if shared.is_dir():
        return shared
    cached = cache_dir() / f"testsuite-{PINNED_COMMIT}"
    if cached.is_dir() and not verify_dir(cached, read_manifest()):
        return cached
    if not download:
        raise TestsuiteError("no testsuite found (set WASM_TESTSUITE or pass --testsuite DIR)")
    return download_testsuite(dest=cached)


def all_wast_files(root: Path) -> List[str]:
    """Every ``.wast`` under ``root`` (recursive), as sorted POSIX paths relative to it."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.wast") if p.is_file())


def read_list(name: str) -> List[str]:
    """A named file list from ``spec_tests/data/<name>.txt`` (e.g. ``core-1-2``)."""
    p = LISTS_DIR / f"{name}.txt"
    if not p.is_file():
        known = ", ".join(sorted(x.stem for x in LISTS_DIR.glob("*.txt")))
        raise TestsuiteError(f"--list {name}: no such list (known: {known})")
    return [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip() and not ln.startswith("#")]


def select_files(root: Path, patterns: List[str]) -> List[str]:
    """Resolve FILES/GLOBS (relative to ``root``) to relative paths; unknown names are an error."""
    import fnmatch

    available = all_wast_files(root)
    if not patterns:
        return available
    out: List[str] = []
    seen = set()
    for pat in patterns:
        pat = pat.replace(os.sep, "/")
        if any(ch in pat for ch in "*?["):
            hits = [f for f in available if fnmatch.fnmatchcase(f, pat)]
            if not hits:
                raise TestsuiteError(f"{pat}: no .wast file in {root} matches")
        else:
            if not (root / pat).is_file():
                if (root / (pat + ".wast")).is_file():
                    pat = pat + ".wast"
                else:
                    raise TestsuiteError(f"{pat}: no such file in {root}")
            hits = [pat]
        for h in hits:
            if h not in seen:
                seen.add(h)
                out.append(h)
    return out
