"""Converting a few .wast files of the pinned testsuite inside a test (so tests work on a clean
checkout without the spec runner's cache): shared by the decoder and validator tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Dict, Iterator, Optional, Sequence, Tuple

import pytest


def testsuite_dir() -> Optional[Path]:
    try:
        from spec_tests.testsuite import locate_testsuite

        return Path(locate_testsuite(download=False))
    except Exception:
        pass
    for cand in (os.environ.get("WASM_TESTSUITE"),
                 str(Path(__file__).resolve().parents[2].parent / "shared" / "wasm-testsuite")):
        if cand and Path(cand).is_dir():
            return Path(cand)
    return None


def wasm_tools() -> Optional[str]:
    try:
        from spec_tests.convert import wasm_tools_exe

        return wasm_tools_exe()
    except Exception:
        return shutil.which("wasm-tools")


def converted_commands(tmp: Path, files: Sequence[str]) -> Iterator[Tuple[str, Dict, Path]]:
    """``(file name, command, directory of its .wasm files)`` for every command of ``files``
    (those missing from the testsuite are passed over); skips the test without testsuite/wasm-tools."""
    root = testsuite_dir()
    exe = wasm_tools()
    if root is None or exe is None:
        pytest.skip("testsuite or wasm-tools not available")
    for name in files:
        src = root / name
        if not src.exists():
            continue
        d = tmp / src.stem
        d.mkdir()
        subprocess.run([exe, "json-from-wast", str(src), "-o", str(d / "out.json"), "--wasm-dir", str(d)],
                       check=True, capture_output=True, timeout=120)
        for cmd in json.loads((d / "out.json").read_text())["commands"]:
            yield name, cmd, d
