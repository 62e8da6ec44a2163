"""``wcr workloads``: the build cache and its key (with a stub compiler), the pinned SQLite download
(a local tarball: verification, extraction of two members only, the skip without network), the command's
bad input, and, only where ``ziglang`` is installed, one real C workload built, compared with wasmtime and
checkpointed mid-run (the first build compiles wasi-libc into the empty test cache, ~40 s)."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path
from typing import Dict, Optional

import pytest

from generators.workloads import SOURCE_DIR, WORKLOADS
from spec_tests import cbuild, sqlite_src
from suite.tests._cli import wcr

STUB = """
import os, sys
if sys.argv[1] == "version":
    print("0.0.0-stub")
    sys.exit(0)
args = sys.argv[2:]
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(" ".join(args) + "\\n")
if "FAIL" in os.environ.get("STUB_MODE", ""):
    sys.stderr.write("error: stub compiler says no\\n")
    sys.exit(1)
with open(args[args.index("-o") + 1], "wb") as out:
    out.write(b"\\0asm\\1\\0\\0\\0")
"""


@pytest.fixture
def stub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stub ``zig`` (``$WCR_ZIG``) that logs each compile and writes an empty module."""
    script = tmp_path / "stubzig.py"
    script.write_text(STUB)
    log = tmp_path / "log"
    monkeypatch.setenv(cbuild.COMPILER_ENV, f"{sys.executable} {script}")
    monkeypatch.setenv("STUB_LOG", str(log))
    return log


def _compiles(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_every_workload_has_its_sources() -> None:
    for w in WORKLOADS.values():
        assert w.source_paths() and all(p.is_file() for p in w.source_paths()), w.name
    assert {p.name for p in SOURCE_DIR.glob("*.c")} == {s for w in WORKLOADS.values() for s in w.sources}


def test_build_is_cached_by_content(tmp_path: Path, stub: Path) -> None:
    src = tmp_path / "p.c"
    src.write_text("int main(void) { return 0; }\n")
    first = cbuild.build("p", [src], ["-O2"], root=tmp_path / "cache")
    assert first.read_bytes().startswith(b"\0asm") and _compiles(stub) == 1
    assert cbuild.build("p", [src], ["-O2"], root=tmp_path / "cache") == first and _compiles(stub) == 1
    assert cbuild.build("p", [src], ["-O1"], root=tmp_path / "cache") != first  # flags are in the key
    src.write_text("int main(void) { return 1; }\n")
    assert cbuild.build("p", [src], ["-O2"], root=tmp_path / "cache") != first  # so are the bytes
    assert _compiles(stub) == 3


def test_cache_key_covers_version_flags_names_and_bytes(tmp_path: Path) -> None:
    a, b = tmp_path / "a.c", tmp_path / "b.c"
    a.write_text("x")
    b.write_text("x")
    key = cbuild.cache_key("0.14", ["-O2"], [a])
    assert key != cbuild.cache_key("0.15", ["-O2"], [a])
    assert key != cbuild.cache_key("0.14", ["-O2", "-s"], [a])
    assert key != cbuild.cache_key("0.14", ["-O2"], [b])  # same bytes, another name
    assert key == cbuild.cache_key("0.14", ["-O2"], [a])


def test_a_failed_build_names_the_workload_and_leaves_no_entry(tmp_path: Path, stub: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STUB_MODE", "FAIL")
    src = tmp_path / "p.c"
    src.write_text("oops")
    with pytest.raises(cbuild.BuildFailed, match="p: zig cc exited 1: error: stub compiler says no"):
        cbuild.build("p", [src], [], root=tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("*.wasm"))


def test_without_ziglang_the_message_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cbuild.COMPILER_ENV, raising=False)
    monkeypatch.setattr(cbuild.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(cbuild.BuildUnavailable, match=r"ziglang is not installed: pip install 'wcr\[workloads\]'"):
        cbuild.compiler_command()


def test_cli_without_a_compiler_is_one_line_exit_2(capsys: pytest.CaptureFixture, monkeypatch) -> None:
    monkeypatch.setenv(cbuild.COMPILER_ENV, "/nonexistent/zig")
    code, out, err = wcr(capsys, "workloads", "sort", "--build-only")
    assert code == 2 and err.startswith("wcr: cannot run /nonexistent/zig") and err.count("\n") == 1


def test_cli_refuses_an_unknown_workload(capsys: pytest.CaptureFixture) -> None:
    code, _, err = wcr(capsys, "workloads", "doom")
    assert code == 2 and "unknown workload 'doom' (known: nbody," in err


@pytest.mark.parametrize("argv, message", [
    (["--cr", "1", "--restore-on", "nowhere"], "--restore-on nowhere: unknown"),
    (["--cr", "-1"], "--cr -1: expected a number of checkpoints >= 0"),
])
def test_cli_refuses_bad_cr_options_before_building(capsys: pytest.CaptureFixture, monkeypatch, argv, message) -> None:
    monkeypatch.setenv(cbuild.COMPILER_ENV, "/nonexistent/zig")  # never reached
    code, _, err = wcr(capsys, "workloads", "sort", *argv)
    assert code == 2 and message in err and err.count("\n") == 1


# ------------------------------------------------------------------------------ the SQLite download
def _tarball(members: Dict[str, bytes], links: Optional[Dict[str, str]] = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buf.getvalue()


GOOD = {"package/deps/sqlite3/sqlite3.c": b"/* amalgamation */", "package/deps/sqlite3/sqlite3.h": b"/* h */",
        "package/package.json": b"{}"}


def _serve(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "bs.tgz"
    path.write_bytes(data)
    return path.as_uri()


def test_the_pinned_tarball_is_verified_and_only_two_members_are_written(tmp_path: Path) -> None:
    data = _tarball({**GOOD, "../../escape.c": b"evil", "/abs/sqlite3.c": b"evil"})
    url, sha = _serve(tmp_path, data), hashlib.sha256(data).hexdigest()
    root = tmp_path / "cache"
    d = sqlite_src.amalgamation_dir(url, sha, root)
    assert sorted(p.name for p in d.iterdir()) == ["sqlite3.c", "sqlite3.h"]
    assert (d / "sqlite3.c").read_bytes() == b"/* amalgamation */"
    assert not (tmp_path / "escape.c").exists() and not Path("/abs/sqlite3.c").exists()
    assert sorted(p for p in root.rglob("*") if p.is_file()) == sorted(d.iterdir())
    (tmp_path / "bs.tgz").unlink()  # cached: no second download
    assert sqlite_src.amalgamation_dir(url, sha, root) == d


def test_a_tarball_that_is_not_the_pinned_one_is_refused(tmp_path: Path) -> None:
    url = _serve(tmp_path, _tarball(GOOD))
    with pytest.raises(sqlite_src.SourceInvalid, match="sha256 .* expected the pinned 0000"):
        sqlite_src.amalgamation_dir(url, "0" * 64, tmp_path / "cache")
    assert not (tmp_path / "cache" / "sqlite" / ("better-sqlite3-" + "0" * 16)).exists()


def test_links_in_place_of_the_members_are_not_followed(tmp_path: Path) -> None:
    data = _tarball({"package/deps/sqlite3/sqlite3.c": b"c"}, {"package/deps/sqlite3/sqlite3.h": "/etc/passwd"})
    url = _serve(tmp_path, data)
    with pytest.raises(sqlite_src.SourceInvalid, match="the archive has no sqlite3.h"):
        sqlite_src.amalgamation_dir(url, hashlib.sha256(data).hexdigest(), tmp_path / "cache")


def test_no_network_is_a_skip_with_the_reason(tmp_path: Path) -> None:
    url = (tmp_path / "absent.tgz").as_uri()
    with pytest.raises(sqlite_src.SourceUnavailable, match="^skipped: cannot download better-sqlite3 12.4.1 from"):
        sqlite_src.amalgamation_dir(url, root=tmp_path / "cache")


def test_cli_skips_sqlite_without_network(capsys: pytest.CaptureFixture, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(sqlite_src.URL_ENV, (tmp_path / "absent.tgz").as_uri())
    code, out, _ = wcr(capsys, "workloads", "sqlite", "--json", str(tmp_path / "w.json"))
    assert code == 0 and "sqlite          skipped: cannot download better-sqlite3" in out
    row = json.loads((tmp_path / "w.json").read_text())["workloads"][0]
    assert row["status"] == "skipped" and row["reason"].startswith("skipped: cannot download")


# ------------------------------------------------------------------------ one real C workload (zig)
def test_a_real_c_workload_builds_and_agrees(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    pytest.importorskip("ziglang", reason="ziglang not installed (the py311 tox env and `tox -e workloads` have it)")
    code, out, err = wcr(capsys, "workloads", "json-tokenizer", "--cr", "1", "--seed", "2", "--restore-on", "inproc",
                         "--json", str(tmp_path / "w.json"))
    row = json.loads((tmp_path / "w.json").read_text())["workloads"][0]
    assert code == 0, (out, err)
    assert row["status"] == "agree" and row["ours"]["stdout"] == row["wasmtime"]["stdout"]
    assert row["ours"]["stdout"].startswith("{       1500\n") and row["ours"]["exit_status"] == 0
    assert row["checkpoint"]["differences"] == [] and row["checkpoint"]["snapshot_bytes"] > 0
    assert [(c["on"], c["differences"]) for c in row["cr"]] == [("inproc", [])]
