"""The strict spec runner: hand-written scripts with known outcomes, a deliberately broken opcode,
skipping on Unsupported, malformed text/binary, reports, and the verified download path."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import tarfile
import threading
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Dict, List

import pytest

from reports.spec import summary, write_junit
from spec_tests import testsuite as ts
from spec_tests.engine import VmEngine
from spec_tests.parallel import run_files
from spec_tests.runner import FileResult, run_file
from spec_tests.values import Hooks, match_value
from vm.errors import Unsupported


@pytest.fixture(scope="session")
def conv_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wast-json")


def run_wast(tmp_path: Path, text: str, cache: Path, engine: Any = None, name: str = "t.wast") -> FileResult:
    (tmp_path / name).write_text(text, encoding="utf-8")
    return run_file(tmp_path, name, engine, cache)


def statuses(r: FileResult) -> List[str]:
    return [c.status for c in r.cases]


ADD = """
(module
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
  (func (export "div") (param i32 i32) (result i32) (i32.div_s (local.get 0) (local.get 1)))
  (func (export "two") (result i32 i64) (i32.const 1) (i64.const -1))
  (func (export "nan") (result f32) (f32.const nan))
  (func (export "anan") (result f64) (f64.const nan:0x8000000000001))
  (func (export "snan") (result f32) (f32.const nan:0x200000))
  (global (export "g") i64 (i64.const -7))
)
"""


def test_assert_return_pass_and_fail(tmp_path: Path, conv_cache: Path) -> None:
    r = run_wast(tmp_path, ADD + """
(assert_return (invoke "add" (i32.const 1) (i32.const 2)) (i32.const 3))
(assert_return (invoke "add" (i32.const -1) (i32.const 0)) (i32.const -1))
(assert_return (invoke "add" (i32.const 1) (i32.const 2)) (i32.const 4))
(assert_return (invoke "two") (i32.const 1) (i64.const -1))
(assert_return (invoke "two") (i32.const 1))
(assert_return (invoke "nan") (f32.const nan:canonical))
(assert_return (invoke "nan") (f32.const nan:arithmetic))
(assert_return (invoke "anan") (f64.const nan:arithmetic))
(assert_return (invoke "anan") (f64.const nan:canonical))
(assert_return (invoke "snan") (f32.const nan:arithmetic))
(assert_return (get "g") (i64.const -7))
(assert_return (invoke "nope"))
""", conv_cache)
    assert statuses(r) == ["passed", "passed", "passed", "failed", "passed", "failed", "passed", "passed",
                           "passed", "failed", "failed", "passed", "failed"]
    bad = r.cases[3]
    assert bad.name == "t.wast:14 assert_return add"
    assert bad.expected == "[i32:4]" and bad.actual == "[i32:3]"
    assert "results" in r.cases[5].message  # wrong number of results


def test_broken_opcode_is_reported(tmp_path: Path, conv_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Break i32.add in the numerics table the engine compiles from: the runner must notice."""
    numerics = pytest.importorskip("vm.exec.numerics")
    script = ADD + '(assert_return (invoke "add" (i32.const 1) (i32.const 2)) (i32.const 3))\n'
    assert run_wast(tmp_path, script, conv_cache).failed == 0
    monkeypatch.setitem(numerics.OPS, "i32.add", lambda a, b: (a + b + 1) & 0xFFFFFFFF)
    r = run_wast(tmp_path, script, conv_cache)
    assert r.failed == 1 and r.cases[-1].actual == "[i32:4]"


def test_trap_kinds(tmp_path: Path, conv_cache: Path) -> None:
    r = run_wast(tmp_path, ADD + """
(assert_trap (invoke "div" (i32.const 1) (i32.const 0)) "integer divide by zero")
(assert_trap (invoke "div" (i32.const 1) (i32.const 0)) "integer divide")
(assert_trap (invoke "div" (i32.const 1) (i32.const 0)) "integer overflow")
(assert_trap (invoke "div" (i32.const 4) (i32.const 2)) "integer divide by zero")
(assert_return (invoke "div" (i32.const 1) (i32.const 0)) (i32.const 0))
(assert_exhaustion (invoke "div" (i32.const 1) (i32.const 0)) "call stack exhausted")
""", conv_cache)
    assert statuses(r) == ["passed", "passed", "passed", "failed", "failed", "failed", "failed"]
    assert r.cases[3].actual == "integer divide by zero"


def test_exhaustion(tmp_path: Path, conv_cache: Path) -> None:
    r = run_wast(tmp_path, """
(module (func $f (export "f") (call $f)))
(assert_exhaustion (invoke "f") "call stack exhausted")
(assert_trap (invoke "f") "unreachable")
""", conv_cache)
    assert statuses(r) == ["passed", "passed", "failed"]


class UnsupportedSimd(VmEngine):
    """Declares every module that has a ``v128`` anywhere unsupported (as an engine without SIMD would)."""

    def validate(self, module: Any) -> Any:
        if "v128" in repr(module):
            raise Unsupported("simd")
        return super().validate(module)


def test_unsupported_module_is_skipped_with_dependents(tmp_path: Path, conv_cache: Path) -> None:
    r = run_wast(tmp_path, """
(module $V (func (export "v") (result v128) (v128.const i32x4 1 2 3 4)) (global (export "g") i32 (i32.const 1)))
(assert_return (invoke "v") (v128.const i32x4 1 2 3 4))
(assert_return (invoke "v") (v128.const i32x4 9 9 9 9))
(register "V" $V)
(module (import "V" "g" (global i32)) (func (export "f") (result i32) (i32.const 1)))
(assert_return (invoke "f") (i32.const 1))
(module (func (export "h") (result i32) (i32.const 2)))
(assert_return (invoke "h") (i32.const 2))
(assert_return (invoke $V "v") (v128.const i32x4 1 2 3 4))
""", conv_cache, engine=UnsupportedSimd())
    assert statuses(r) == ["skipped"] * 6 + ["passed", "passed", "skipped"]
    assert {c.feature for c in r.cases if c.status == "skipped"} == {"simd"}
    # and the same script on the full engine passes (except the deliberately wrong expectation)
    r2 = run_wast(tmp_path, (tmp_path / "t.wast").read_text(), conv_cache)
    assert r2.cases[2].status in ("failed", "skipped") and r2.cases[-3].status == "passed"


def test_failed_module_makes_dependents_fail(tmp_path: Path, conv_cache: Path) -> None:
    r = run_wast(tmp_path, """
(module (func (export "f") (result i32) (i32.const 1)))
(module (memory 1) (data (i32.const 70000) "x") (func (export "f") (result i32) (i32.const 2)))
(assert_return (invoke "f") (i32.const 2))
""", conv_cache)
    assert statuses(r) == ["passed", "failed", "failed"]
    assert "unusable" in r.cases[2].message


def test_malformed_text_and_binary(tmp_path: Path, conv_cache: Path) -> None:
    r = run_wast(tmp_path, r"""
(assert_malformed (module quote "(func (i32.add") "unexpected token")
(assert_malformed (module quote "(module)") "should have been malformed")
(assert_malformed (module binary "\00asm\02\00\00\00") "unknown binary version")
(assert_malformed (module binary "\00asm\02\00\00\00") "magic header not detected")
(assert_malformed (module binary "\00asm\01\00\00\00") "unexpected end")
(assert_invalid (module (func (result i32) (i64.const 0))) "type mismatch")
(assert_invalid (module (func (result i32) (i64.const 0))) "unknown function")
(assert_invalid (module (func (result i32) (i32.const 0))) "type mismatch")
(assert_invalid (module binary "\00asm\02\00\00\00") "type mismatch")
""", conv_cache)
    assert statuses(r) == ["passed", "failed", "passed", "failed", "failed", "passed", "failed", "failed",
                           "failed"]
    assert "wasm-tools assembled" in r.cases[1].message


def test_linking_commands(tmp_path: Path, conv_cache: Path) -> None:
    r = run_wast(tmp_path, """
(module $M (global (export "g") (mut i32) (i32.const 5)) (func (export "get") (result i32) (global.get 0)))
(register "M" $M)
(module (import "M" "g" (global (mut i32))) (func (export "set") (global.set 0 (i32.const 9))))
(invoke "set")
(assert_return (invoke $M "get") (i32.const 9))
(assert_unlinkable (module (import "M" "nope" (global i32))) "unknown import")
(assert_unlinkable (module (import "M" "g" (global i64))) "incompatible import type")
(assert_unlinkable (module (import "M" "g" (global (mut i32)))) "unknown import")
(module (import "spectest" "print_i32" (func (param i32))))
(assert_trap (module (memory 1) (data (i32.const 70000) "x")) "out of bounds memory access")
(assert_trap (module (func $s unreachable) (start $s)) "unreachable")
(assert_trap (module (func (export "f"))) "unreachable")
""", conv_cache)
    assert statuses(r) == ["passed"] * 7 + ["failed", "passed", "passed", "passed", "failed"]


def test_python_exception_in_command_is_a_failure(tmp_path: Path, conv_cache: Path) -> None:
    class Buggy(VmEngine):
        calls = 0

        def invoke(self, store: Any, func: Any, args: List[Any]) -> List[Any]:
            Buggy.calls += 1
            if Buggy.calls == 1:
                raise ZeroDivisionError("engine bug")
            return super().invoke(store, func, args)

    r = run_wast(tmp_path, ADD + """
(assert_return (invoke "add" (i32.const 1) (i32.const 2)) (i32.const 3))
(assert_return (invoke "add" (i32.const 1) (i32.const 2)) (i32.const 3))
""", conv_cache, engine=Buggy())
    assert statuses(r) == ["passed", "failed", "passed"]
    assert "ZeroDivisionError" in r.cases[1].traceback


def test_conversion_error_is_one_failure(tmp_path: Path, conv_cache: Path) -> None:
    r = run_wast(tmp_path, "(module (func (i32.const", conv_cache)
    assert statuses(r) == ["failed"] and r.cases[0].command == "convert"


def test_value_patterns() -> None:
    class Obj:
        def __init__(self, kind: str) -> None:
            self.kind = kind

    func = Obj("func")
    hooks = Hooks(lambda n: ("ext", n), lambda n: ("host", n), lambda x: x is func)
    m = lambda e, a: match_value(e, a, hooks)  # noqa: E731
    assert m({"type": "refnull"}, None) and not m({"type": "refnull"}, func)
    assert m({"type": "funcref"}, func) and not m({"type": "funcref"}, None)
    assert m({"type": "funcref", "value": "null"}, None)
    assert m({"type": "externref", "value": "3"}, ("ext", 3)) and not m({"type": "externref", "value": "3"}, ("ext", 4))
    assert m({"type": "externref"}, Obj("extern")) and not m({"type": "externref"}, None)
    assert not m({"type": "externref"}, Obj("struct")) and not m({"type": "anyref"}, Obj("extern"))
    assert m({"type": "anyref"}, Obj("host")) and m({"type": "anyref"}, Obj("array")) and not m({"type": "anyref"}, func)
    assert m({"type": "anyref", "value": "2"}, ("host", 2))
    assert m({"type": "structref"}, Obj("struct")) and not m({"type": "structref"}, Obj("array"))
    assert m({"type": "eqref"}, Obj("i31")) and m({"type": "i31ref"}, Obj("i31"))
    assert m({"type": "nullexternref"}, None)
    lanes = {"type": "v128", "lane_type": "f32", "value": ["nan:canonical", "nan:arithmetic", "0", "1"]}
    v = 0x7FC00000 | (0xFFE00000 << 32) | (0 << 64) | (1 << 96)
    assert m(lanes, v) and not m(lanes, v ^ (1 << 96))
    either = {"type": "either", "values": [{"type": "i32", "value": "1"}, {"type": "i32", "value": "2"}]}
    assert m(either, 2) and not m(either, 3)
    assert m({"type": "i32", "value": "-1"}, 0xFFFFFFFF) and not m({"type": "i32", "value": "1"}, None)


def test_reports_shape_and_junit(tmp_path: Path, conv_cache: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.wast").write_text(ADD + '(assert_return (invoke "add" (i32.const 1) (i32.const 1)) (i32.const 2))\n')
    (tmp_path / "sub" / "b.wast").write_text(ADD + '(assert_return (invoke "add" (i32.const 1) (i32.const 1)) (i32.const 3))\n')
    files = ts.select_files(tmp_path, [])
    assert files == ["a.wast", "sub/b.wast"]
    results = run_files(tmp_path, files, jobs=2, cache_root=conv_cache)
    s = summary(results, 1.0)
    assert s["totals"] == {"passed": 3, "failed": 1, "skipped": 0}
    assert s["files"] == {"a.wast": {"passed": 2, "failed": 0, "skipped": 0},
                          "sub/b.wast": {"passed": 1, "failed": 1, "skipped": 0}}
    f = s["failures"][0]
    assert (f["file"], f["command"], f["expected"], f["actual"]) == ("sub/b.wast", "assert_return", "[i32:3]", "[i32:2]")
    assert s["failure_components"] == {"runtime": 1} and f["component"] == "runtime"
    json.dumps(s)
    out = tmp_path / "r.xml"
    write_junit(out, results)
    root = ET.parse(out).getroot()
    suites = root.findall("testsuite")
    assert [x.get("name") for x in suites] == ["a.wast", "sub/b.wast"]
    names = [tc.get("name") for tc in suites[1].findall("testcase")]
    assert names[-1].startswith("b.wast:") and names[-1].endswith("assert_return add")
    assert suites[1].findall("testcase")[-1].find("failure") is not None


def test_select_files(tmp_path: Path) -> None:
    for n in ["i32.wast", "simd_a.wast", "simd_b.wast", "custom/x.wast"]:
        (tmp_path / n).parent.mkdir(exist_ok=True)
        (tmp_path / n).write_text("")
    assert ts.select_files(tmp_path, ["simd_*.wast"]) == ["simd_a.wast", "simd_b.wast"]
    assert ts.select_files(tmp_path, ["custom/*.wast", "i32"]) == ["custom/x.wast", "i32.wast"]
    with pytest.raises(ts.TestsuiteError):
        ts.select_files(tmp_path, ["nope.wast"])
    assert len(ts.read_list("core-1-2")) == 83


# -- the download path ------------------------------------------------------------------------------
def _tarball(files: Dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def http_serve():
    """Serve one payload on 127.0.0.1; yields a function that sets it and returns the URL."""
    payload = {"data": b""}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload["data"])))
            self.end_headers()
            self.wfile.write(payload["data"])

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()

    def serve(data: bytes) -> str:
        payload["data"] = data
        return f"http://127.0.0.1:{server.server_address[1]}/testsuite.tar.gz"

    yield serve
    server.shutdown()
    server.server_close()


def test_download_verified_by_manifest(tmp_path: Path, http_serve: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    a = b'(module (func (export "f") (result i32) (i32.const 1)))\n(assert_return (invoke "f") (i32.const 1))\n'
    b = b"(module)\n"
    manifest = tmp_path / "MANIFEST.sha256"
    manifest.write_text(f"{hashlib.sha256(a).hexdigest()}  a.wast\n"
                        f"{hashlib.sha256(b).hexdigest()}  legacy/b.wast\n")
    # upstream layout differs (legacy/exceptions/) and has extra files: placement is by content
    url = http_serve(_tarball({"testsuite-123/a.wast": a, "testsuite-123/legacy/exceptions/b.wast": b,
                               "testsuite-123/proposals/x.wast": b"(module $x)", "testsuite-123/README.md": b"hi"}))
    dest = ts.download_testsuite(url, tmp_path / "cache" / "ts", manifest)
    assert ts.all_wast_files(dest) == ["a.wast", "legacy/b.wast"]
    assert not ts.verify_dir(dest, ts.read_manifest(manifest))
    monkeypatch.setenv("WCR_CACHE_DIR", str(tmp_path / "cache"))
    r = run_file(dest, "a.wast")
    assert (r.passed, r.failed) == (2, 0)

    # a tampered file is refused, and nothing is left at the destination
    url = http_serve(_tarball({"t/a.wast": a + b";; evil\n", "t/legacy/b.wast": b}))
    with pytest.raises(ts.TestsuiteError, match="a.wast: missing"):
        ts.download_testsuite(url, tmp_path / "cache" / "ts2", manifest)
    assert not (tmp_path / "cache" / "ts2").exists()
    # not a tarball
    url = http_serve(b"<html>not found</html>")
    with pytest.raises(ts.TestsuiteError, match="not a readable tarball"):
        ts.download_testsuite(url, tmp_path / "cache" / "ts3", manifest)


def test_locate_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WASM_TESTSUITE", str(tmp_path))
    assert ts.locate_testsuite() == tmp_path
    assert ts.locate_testsuite(str(tmp_path / "..")) == tmp_path / ".."
    monkeypatch.setenv("WASM_TESTSUITE", str(tmp_path / "missing"))
    with pytest.raises(ts.TestsuiteError, match="WASM_TESTSUITE"):
        ts.locate_testsuite()
    monkeypatch.delenv("WASM_TESTSUITE")
    monkeypatch.setattr(ts, "shared_copy", lambda: tmp_path / "no-shared")
    monkeypatch.setenv("WCR_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(ts.TestsuiteError):
        ts.locate_testsuite(download=False)


LINKED = """
(module $A
  (import "spectest" "print_i32" (func $p (param i32)))
  (memory (export "mem") 1)
  (global (export "g") (mut i32) (i32.const 5))
  (func (export "bump") (result i32)
    (global.set 0 (i32.add (global.get 0) (i32.const 1)))
    (i32.store (i32.const 4) (global.get 0))
    (call $p (global.get 0))
    (global.get 0)))
(register "A" $A)
(module $B
  (import "A" "bump" (func $bump (result i32)))
  (import "A" "mem" (memory 1))
  (func (export "twice") (result i32) (drop (call $bump)) (call $bump))
  (func (export "load") (result i32) (i32.load (i32.const 4)))
  (func $r (export "rec") (param i32) (result i32) (call $r (local.get 0)))
  (func (export "oob") (result i32) (i32.load (i32.const 65536))))
(assert_return (invoke $B "twice") (i32.const 7))
(assert_return (invoke $B "load") (i32.const 7))
(assert_trap (invoke $B "oob") "out of bounds memory access")
(assert_exhaustion (invoke $B "rec" (i32.const 1)) "call stack exhausted")
(invoke $A "bump")
(assert_return (invoke $B "load") (i32.const 8))
"""


def test_cr_mode_linked_modules(tmp_path: Path, conv_cache: Path) -> None:
    """C/R mode over registered/linked instances: every instance gets its sha256 and registered name,
    imports across instances and the spectest print log survive the restore."""
    from spec_tests.cr import CrConfig

    (tmp_path / "l.wast").write_text(LINKED, encoding="utf-8")
    r = run_file(tmp_path, "l.wast", None, conv_cache, CrConfig("all", 0, "inproc", max_points=6))
    assert [c.status for c in r.cases if c.status != "passed"] == []
    assert r.cr["invocations"] == 6 and r.cr["mismatches"] == 0 and r.cr["checkpoints"] > 6
    plain = run_file(tmp_path, "l.wast", None, conv_cache)
    assert plain.cr is None and [c.status for c in plain.cases] == [c.status for c in r.cases]


GROWN = """
(module $T
  (table (export "t") 1 funcref)
  (memory (export "m") 1)
  (func (export "grow") (result i32)
    (drop (memory.grow (i32.const 1)))
    (table.grow (ref.null func) (i32.const 1))))
(register "T" $T)
(assert_return (invoke $T "grow") (i32.const 1))
(module $U
  (import "T" "t" (table 2 funcref))
  (import "T" "m" (memory 2))
  (func (export "size") (result i32) (i32.add (table.size) (memory.size))))
(assert_return (invoke $U "size") (i32.const 4))
"""


def test_cr_restore_links_against_grown_imports(tmp_path: Path, conv_cache: Path) -> None:
    """Regression (table_grow.wast in C/R mode): an instance that imported a table/memory after it grew
    declares a larger minimum than the exporter's module; restore must size the exporter's table and
    memory from the snapshot before linking the importer."""
    from spec_tests.cr import CrConfig

    (tmp_path / "g.wast").write_text(GROWN, encoding="utf-8")
    r = run_file(tmp_path, "g.wast", None, conv_cache, CrConfig("all", 0, "inproc"))
    assert [(c.name, c.message) for c in r.cases if c.status != "passed"] == []
    assert r.cr["invocations"] == 2 and r.cr["mismatches"] == 0


def test_shared_copy_found_from_the_working_directory_when_installed(tmp_path, monkeypatch):
    """Installed (tox env, wheel), the package is not in the checkout: `tox -e spec` runs from the
    repository root, whose ../shared/wasm-testsuite must still be found (it was not: a download was
    attempted instead)."""
    import spec_tests.testsuite as ts

    repo = tmp_path / "main"
    (repo / "sub").mkdir(parents=True)
    (repo / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    shared = tmp_path / "shared" / "wasm-testsuite"
    shared.mkdir(parents=True)
    monkeypatch.setattr(ts, "REPO_DIR", tmp_path / "site-packages")
    monkeypatch.chdir(repo / "sub")
    assert ts.shared_copy() == shared
