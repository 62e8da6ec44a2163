"""Every test session runs as on a fresh machine: an empty ``WCR_CACHE_DIR`` and a working directory
that is not the repository root.

A developer's caches (converted .wast files, compiled wasm2c runtimes, the v8 shim) and the habit of
running from the repository root can make a broken set-up look green; CI clones fresh, and so do users.
The testsuite is located once, before the working directory changes, the way a user outside the
repository would point at it (``WASM_TESTSUITE``).  Each xdist worker configures itself the same way.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[2]
_made: list = []


def pytest_configure(config) -> None:  # noqa: ARG001 - pytest hook signature
    shared = REPO.parent / "shared" / "wasm-testsuite"
    if "WASM_TESTSUITE" not in os.environ and shared.is_dir():
        os.environ["WASM_TESTSUITE"] = str(shared)
    cache = tempfile.mkdtemp(prefix="wcr-test-cache-")
    _made.append(cache)
    os.environ["WCR_CACHE_DIR"] = cache


@pytest.fixture(scope="session", autouse=True)
def _foreign_working_directory() -> Iterator[None]:
    """After collection (xdist workers collect relative to the root), every test runs elsewhere."""
    cwd = tempfile.mkdtemp(prefix="wcr-test-cwd-")
    _made.append(cwd)
    os.chdir(cwd)
    yield


def pytest_unconfigure(config) -> None:  # noqa: ARG001
    os.chdir(tempfile.gettempdir())
    while _made:
        shutil.rmtree(_made.pop(), ignore_errors=True)
