"""The strict command interpreter for converted ``.wast`` scripts.

One :class:`ScriptRunner` per script (one Store per script, like the reference interpreter).  Every
command becomes one :class:`CaseResult`:

* **passed** — the command did what the script says, compared strictly (bit-exact values, NaN classes
  only where the script allows them, the exact number of results, error messages by prefix as the
  reference interpreter's ``assert_message`` does);
* **failed** — anything else, including an unexpected Python exception inside the command (its
  traceback is kept and the run goes on) and a command whose code a limit stopped (``wcr spec
  --timeout``/``--fuel``: "timeout after S s (N instructions)", "fuel exhausted after N instructions";
  the expected result is known and was not produced);
* **skipped** — only when the engine raised ``Unsupported(feature)`` for this command or for a module it
  depends on (invoking a skipped module, importing from a registered skipped module).  Never "passed".

Binary modules are judged by *our* decoder and validator.  Text modules are assembled by wasm-tools
(at conversion time); a text module it cannot assemble counts as malformed text.
"""

from __future__ import annotations

import hashlib
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from vm.errors import (
    Exhaustion,
    InvalidModule,
    LinkError,
    MalformedModule,
    Stopped,
    Trap,
    Unsupported,
    WasmError,
    WasmException,
)

from .convert import ConversionError, Converted, convert
from .cr import CrFile
from .engine import Engine, VmEngine
from .results import FAILED, PASSED, SKIPPED, CaseResult, FileResult
from .values import Hooks, format_expected, format_value, match_results, parse_value


# -- internal outcomes ---------------------------------------------------------------------------
class _Fail(Exception):
    def __init__(self, message: str, expected: str = "", actual: str = ""):
        super().__init__(message)
        self.message = message
        self.expected = expected
        self.actual = actual


class _Skip(Exception):
    def __init__(self, feature: str, message: str = ""):
        super().__init__(message or f"unsupported feature {feature}")
        self.feature = feature
        self.message = message or f"unsupported feature {feature}"


@dataclass
class _Slot:
    """A module (instance or definition) as the script sees it: usable, skipped or failed."""

    line: int
    exports: Optional[Dict[str, Any]] = None
    module: Any = None
    info: Any = None
    skipped: str = ""  # feature
    failed: str = ""  # reason
    inst: Any = None  # the module instance (``register`` names it: ``inst.name``)

    def check(self) -> None:
        if self.skipped:
            raise _Skip(self.skipped, f"depends on module at line {self.line} (unsupported feature {self.skipped})")
        if self.failed:
            raise _Fail(f"module at line {self.line} is unusable: {self.failed}")


def _msg(e: BaseException) -> str:
    return getattr(e, "message", None) or str(e)


def _prefix_ok(expected: str, actual: str) -> bool:
    return actual.startswith(expected)


def _err(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def _expected_of(cmd: Dict[str, Any]) -> str:
    """What a command expected, for a failure that produced nothing to compare (a stopped run)."""
    if "expected" in cmd:
        return "[" + ", ".join(format_expected(e) for e in cmd["expected"]) + "]"
    return cmd.get("text") or "the command completes"


class ScriptRunner:
    """Runs the commands of one converted script against an engine."""

    def __init__(self, engine: Engine, conv: Converted, file: str, cr: Any = None):
        self.engine = engine
        self.conv = conv
        self.file = file
        self.base = Path(file).name
        self.hooks = Hooks(engine.extern_ref, engine.host_ref, engine.is_func)
        self._store: Any = None
        self.registry: Dict[str, Any] = {}  # name -> exports dict | _Slot (skipped/failed)
        self.named: Dict[str, _Slot] = {}
        self.current: Optional[_Slot] = None
        self.instructions = 0
        self.cr: Any = None  # spec_tests.cr.CrFile in ``--cr`` mode
        if cr is not None:
            self.cr = CrFile(cr, file)
        self._sha: Dict[int, Tuple[Any, str]] = {}  # id(module) -> (module, sha256 of its bytes)
        self._case: Optional[CaseResult] = None

    # -- store and linking ------------------------------------------------------------------------
    @property
    def store(self) -> Any:
        if self._store is None:
            self._store = self.engine.new_store()
        return self._store

    def _lookup_registry(self, name: str) -> Any:
        if name == "spectest" and name not in self.registry:
            self.registry[name] = self.engine.spectest(self.store)
        return self.registry.get(name)

    def resolve_imports(self, module: Any) -> List[Any]:
        """Extern values for ``module.imports``; ``LinkError("unknown import")`` if one is missing."""
        out = []
        for imp in getattr(module, "imports", []):
            src = self._lookup_registry(imp.module)
            if src is None:
                raise LinkError("unknown import")
            if isinstance(src, _Slot):
                src.check()
            if imp.name not in src:
                raise LinkError("unknown import")
            out.append(src[imp.name])
        return out

    # -- modules ------------------------------------------------------------------------------------
    def _binary(self, cmd: Dict[str, Any]) -> bytes:
        fn = cmd.get("binary_filename")
        if fn is None:
            if cmd.get("module_type", "binary") != "binary":
                ok, err = self.conv.verdicts.get(cmd.get("filename", ""), (False, "not assembled"))
                raise _Fail(f"text module could not be assembled by wasm-tools: {err}")
            fn = cmd["filename"]
        return self.conv.path(fn).read_bytes()

    def load(self, cmd: Dict[str, Any]) -> Tuple[Any, Any]:
        """Decode and validate the command's module (our decoder and validator)."""
        data = self._binary(cmd)
        module = self.engine.decode(data)
        info = self.engine.validate(module)
        if self.cr is not None:
            sha = hashlib.sha256(data).hexdigest()
            self.cr.modules[sha] = data
            self._sha[id(module)] = (module, sha)
        return module, info

    def instantiate(self, module: Any, info: Any) -> Any:
        imports = self.resolve_imports(module)
        if self.cr is not None:
            # snapshots name every instance's module by sha256 (checkpoint requires it)
            return self.engine.instantiate(self.store, module, info, imports, sha256=self._sha[id(module)][1])
        return self.engine.instantiate(self.store, module, info, imports)

    def _bind(self, slot: _Slot, name: Optional[str], current: bool = True) -> None:
        if name:
            self.named[name] = slot
        if current:
            self.current = slot

    def _module_failed(self, cmd: Dict[str, Any], e: BaseException, what: str) -> _Fail:
        slot = _Slot(cmd["line"], failed=f"{what}: {_err(e)}")
        self._bind(slot, cmd.get("name"))
        return _Fail(f"{what}: {_err(e)}", expected="module instantiates", actual=_err(e))

    def cmd_module(self, cmd: Dict[str, Any]) -> None:
        line = cmd["line"]
        try:
            module, info = self.load(cmd)
            inst = self.instantiate(module, info)
        except (Unsupported, _Skip) as e:
            feat = getattr(e, "feature", "unknown")
            self._bind(_Slot(line, skipped=feat), cmd.get("name"))
            raise
        except MalformedModule as e:
            raise self._module_failed(cmd, e, "malformed") from None
        except InvalidModule as e:
            raise self._module_failed(cmd, e, "invalid") from None
        except (LinkError, Trap, WasmException) as e:  # an exception escaping the start function too
            raise self._module_failed(cmd, e, "instantiation failed") from None
        except _Fail as e:
            self._bind(_Slot(line, failed=e.message), cmd.get("name"))
            raise
        except Stopped as e:  # the start function ran out of fuel or time
            self._bind(_Slot(line, failed=e.message), cmd.get("name"))
            raise
        except Exception:
            self._bind(_Slot(line, failed="unexpected error loading module"), cmd.get("name"))
            raise
        self._bind(_Slot(line, exports=inst.exports, module=module, info=info, inst=inst), cmd.get("name"))

    def cmd_module_definition(self, cmd: Dict[str, Any]) -> None:
        line = cmd["line"]
        try:
            module, info = self.load(cmd)
        except (Unsupported, _Skip) as e:
            self._bind(_Slot(line, skipped=getattr(e, "feature", "unknown")), cmd.get("name"), current=False)
            raise
        except Exception as e:
            self._bind(_Slot(line, failed=_err(e)), cmd.get("name"), current=False)
            if isinstance(e, WasmError):
                raise _Fail(f"module definition rejected: {_err(e)}", "valid module", _err(e)) from None
            raise
        self._bind(_Slot(line, module=module, info=info), cmd.get("name"), current=False)

    def cmd_module_instance(self, cmd: Dict[str, Any]) -> None:
        line = cmd["line"]
        name = cmd.get("instance")
        d = self.named.get(cmd.get("module", ""))
        if d is None:
            raise _Fail(f"unknown module definition {cmd.get('module')!r}")
        try:
            d.check()
            inst = self.instantiate(d.module, d.info)
        except (Unsupported, _Skip) as e:
            self._bind(_Slot(line, skipped=getattr(e, "feature", "unknown")), name)
            raise
        except (LinkError, Trap, WasmException) as e:
            raise self._module_failed({"line": line, "name": name}, e, "instantiation failed") from None
        except _Fail as e:
            self._bind(_Slot(line, failed=e.message), name)
            raise
        except Stopped as e:
            self._bind(_Slot(line, failed=e.message), name)
            raise
        except Exception:
            self._bind(_Slot(line, failed="unexpected error instantiating"), name)
            raise
        self._bind(_Slot(line, exports=inst.exports, module=d.module, info=d.info, inst=inst), name)

    def cmd_register(self, cmd: Dict[str, Any]) -> None:
        slot = self.named.get(cmd["name"]) if cmd.get("name") else self.current
        if slot is None:
            self.registry[cmd["as"]] = _Slot(cmd["line"], failed="register of an unknown module")
            raise _Fail(f"register: no module {cmd.get('name', '(current)')}")
        if slot.exports is None:
            self.registry[cmd["as"]] = slot
            slot.check()
            raise _Fail("register: module was not instantiated")
        self.registry[cmd["as"]] = slot.exports
        if slot.inst is not None:
            slot.inst.name = cmd["as"]

    # -- actions ------------------------------------------------------------------------------------
    def _target(self, action: Dict[str, Any]) -> _Slot:
        name = action.get("module")
        slot = self.named.get(name) if name else self.current
        if slot is None:
            raise _Fail(f"no module {name!r}" if name else "no current module")
        slot.check()
        if slot.exports is None:
            raise _Fail(f"module at line {slot.line} is a definition, not an instance")
        return slot

    def action(self, action: Dict[str, Any]) -> Tuple[List[Any], List[Any]]:
        """Perform an invoke/get; returns (results, their types when known)."""
        slot = self._target(action)
        fld = action["field"]
        if fld not in slot.exports:
            raise _Fail(f"unknown export {fld!r}")
        ext = slot.exports[fld]
        if action["type"] == "get":
            v = self.engine.global_value(ext)
            gt = getattr(ext, "type", None)
            return [v], [getattr(gt, "type", None)]
        if action["type"] != "invoke":
            raise _Fail(f"unknown action type {action['type']!r}")
        args = [parse_value(a, self.hooks) for a in action.get("args", [])]
        if self.cr is not None:
            res = self._invoke_cr(ext, args)
        else:
            try:
                res = self.engine.invoke(self.store, ext, args)
            finally:
                self.instructions += self.engine.instructions(self.store)
        if res is None:
            res = []
        return list(res), self.engine.result_types(ext)

    def _invoke_cr(self, func: Any, args: List[Any]) -> List[Any]:
        """The live invocation (judged by the script as usual) plus the C/R items built around it.
        A problem of our own checkpoint machinery fails the command but never changes the live run."""
        cr_error = ""
        pre = None
        try:
            pre = self.cr.begin(self.store, func, args)
        except Unsupported:  # the state cannot be captured yet: not checked, counted apart
            self.cr.counts["not_checked"] += 1
        except Exception as e:
            cr_error = f"C/R pre-invocation checkpoint failed: {_err(e)}"
        res: Optional[List[Any]] = None
        exc: Optional[BaseException] = None
        try:
            res = self.engine.invoke(self.store, func, args)
        except (Trap, WasmException) as e:
            exc = e
        except Stopped:  # no finished reference run: nothing to checkpoint (the command fails)
            self.cr.counts["not_checked"] += 1
            raise
        finally:
            self.instructions += self.engine.instructions(self.store)
        if pre is not None and self._case is not None:
            try:
                self.cr.end(self._case, self.store, func, pre, res, exc)
            except Exception as e:
                cr_error = f"C/R checkpoint/replay failed: {_err(e)}"
        if cr_error and self._case is not None:
            self._case.status = FAILED
            self._case.message = cr_error[:2000]
            self._case.actual = cr_error[:2000]
            self._case.traceback = traceback.format_exc(limit=30)[-8000:]
        if exc is not None:
            raise exc
        return res or []

    def _fmt_results(self, res: List[Any], types: List[Any]) -> str:
        return "[" + ", ".join(
            format_value(v, types[i] if i < len(types) else None) for i, v in enumerate(res)
        ) + "]"

    def cmd_action(self, cmd: Dict[str, Any]) -> None:
        try:
            self.action(cmd["action"])
        except (Trap, WasmException) as e:
            raise _Fail(f"action raised {_err(e)}", "no trap", _err(e)) from None

    def cmd_assert_return(self, cmd: Dict[str, Any]) -> None:
        expected = cmd.get("expected", [])
        exp_s = "[" + ", ".join(format_expected(e) for e in expected) + "]"
        try:
            res, types = self.action(cmd["action"])
        except (Trap, WasmException) as e:
            raise _Fail(f"unexpected {_err(e)}", exp_s, _err(e)) from None
        ok, why = match_results(expected, res, self.hooks)
        if not ok:
            raise _Fail(why, exp_s, self._fmt_results(res, types))

    def _expect_raise(self, cmd: Dict[str, Any], cls: Any, what: str) -> None:
        text = cmd.get("text", "")
        try:
            res, types = self.action(cmd["action"])
        except cls as e:
            if text and not _prefix_ok(text, _msg(e)):
                raise _Fail(f"wrong {what} message", text, _msg(e)) from None
            return
        except (Trap, WasmException) as e:
            raise _Fail(f"expected {what}, got {_err(e)}", text or what, _err(e)) from None
        raise _Fail(f"expected {what}, got results", text or what, self._fmt_results(res, types))

    def cmd_assert_trap(self, cmd: Dict[str, Any]) -> None:
        self._expect_raise(cmd, Trap, "trap")

    def cmd_assert_exhaustion(self, cmd: Dict[str, Any]) -> None:
        self._expect_raise(cmd, Exhaustion, "exhaustion")

    def cmd_assert_exception(self, cmd: Dict[str, Any]) -> None:
        self._expect_raise(cmd, WasmException, "exception")

    # -- module assertions ----------------------------------------------------------------------
    def _text_verdict(self, cmd: Dict[str, Any]) -> None:
        fn = cmd.get("filename", "")
        ok, err = self.conv.verdicts.get(fn, (True, ""))
        if ok:
            raise _Fail("wasm-tools assembled text that should be malformed", cmd.get("text", ""), "accepted")

    def cmd_assert_malformed(self, cmd: Dict[str, Any]) -> None:
        text = cmd.get("text", "")
        if cmd.get("module_type") == "text" and "binary_filename" not in cmd:
            self._text_verdict(cmd)
            return
        try:
            self.engine.decode(self._binary(cmd))
        except MalformedModule as e:
            if not _prefix_ok(text, e.message):
                raise _Fail("wrong malformed message", text, str(e)) from None
            return
        except InvalidModule as e:
            raise _Fail("expected malformed, got invalid", text, str(e)) from None
        raise _Fail("expected malformed, module decoded", text, "decoded")

    def cmd_assert_invalid(self, cmd: Dict[str, Any]) -> None:
        text = cmd.get("text", "")
        try:
            module = self.engine.decode(self._binary(cmd))
        except MalformedModule as e:
            raise _Fail("expected invalid, got malformed", text, str(e)) from None
        try:
            self.engine.validate(module)
        except InvalidModule as e:
            if not _prefix_ok(text, e.message):
                raise _Fail("wrong invalid message", text, str(e)) from None
            return
        raise _Fail("expected invalid, module validated", text, "valid")

    def _custom(self, cmd: Dict[str, Any]) -> None:
        """``assert_{malformed,invalid}_custom``: about custom sections/annotations, which wcr does not
        interpret.  Text: wasm-tools must reject it.  Binary: the module itself must load, and our
        custom-section checks (``Engine.validate_custom``) must reject it with the right message; an
        engine without such checks skips."""
        text = cmd.get("text", "")
        if cmd.get("module_type") == "text" and "binary_filename" not in cmd:
            self._text_verdict(cmd)
            return
        module, _info = self.load(cmd)
        try:
            self.engine.validate_custom(module)
        except NotImplementedError:
            raise _Skip("custom-annotations", "custom section checks are not implemented") from None
        except (MalformedModule, InvalidModule) as e:
            if not _prefix_ok(text, e.message):
                raise _Fail("wrong message", text, str(e)) from None
            return
        raise _Fail("expected the custom section to be rejected", text, "accepted")

    cmd_assert_malformed_custom = _custom
    cmd_assert_invalid_custom = _custom

    def _load_for_instantiation(self, cmd: Dict[str, Any]) -> Tuple[Any, Any]:
        try:
            return self.load(cmd)
        except (MalformedModule, InvalidModule) as e:
            raise _Fail(f"module rejected before instantiation: {_err(e)}", cmd.get("text", ""), _err(e)) from None

    def cmd_assert_unlinkable(self, cmd: Dict[str, Any]) -> None:
        text = cmd.get("text", "")
        module, info = self._load_for_instantiation(cmd)
        try:
            self.instantiate(module, info)
        except LinkError as e:
            if not _prefix_ok(text, _msg(e)):
                raise _Fail("wrong link error message", text, _msg(e)) from None
            return
        except (Trap, WasmException) as e:
            raise _Fail("expected link error, got trap", text, _err(e)) from None
        raise _Fail("expected link error, module instantiated", text, "instantiated")

    def cmd_assert_uninstantiable(self, cmd: Dict[str, Any]) -> None:
        text = cmd.get("text", "")
        module, info = self._load_for_instantiation(cmd)
        try:
            self.instantiate(module, info)
        except Trap as e:
            if not _prefix_ok(text, _msg(e)):
                raise _Fail("wrong trap message", text, _msg(e)) from None
            return
        except LinkError as e:
            raise _Fail("expected trap, got link error", text, _err(e)) from None
        except WasmException as e:  # the reference interpreter: an exception is not a trap here either
            raise _Fail("expected trap, got an uncaught exception", text, _err(e)) from None
        raise _Fail("expected trap, module instantiated", text, "instantiated")

    cmd_assert_trap_module = cmd_assert_uninstantiable

    def cmd_thread(self, cmd: Dict[str, Any]) -> None:
        raise _Skip("threads", "thread blocks in scripts are not supported")

    cmd_wait = cmd_thread

    def cmd_assert_suspension(self, cmd: Dict[str, Any]) -> None:
        raise _Skip("stack-switching", "assert_suspension is not supported")

    def cmd_assert_unsupported(self, cmd: Dict[str, Any]) -> None:
        """Not emitted by json-from-wast today; meaning: the module must be rejected (any way)."""
        try:
            module, info = self.load(cmd)
        except (MalformedModule, InvalidModule):
            return
        raise _Fail("expected the module to be rejected", cmd.get("text", ""), "accepted")

    # -- driver -------------------------------------------------------------------------------------
    def case_name(self, cmd: Dict[str, Any]) -> str:
        t = cmd["type"]
        name = f"{self.base}:{cmd.get('line', 0)} {t}"
        action = cmd.get("action")
        if action:
            mod = action.get("module")
            name += f" {mod + '.' if mod else ''}{action.get('field', '')}"
        elif cmd.get("text"):
            name += f" {cmd['text']!r}"
        elif t == "register":
            name += f" {cmd.get('as')!r}"
        elif cmd.get("name"):
            name += f" ${cmd['name']}"
        return name

    def run_command(self, cmd: Dict[str, Any]) -> CaseResult:
        t = cmd.get("type", "?")
        case = CaseResult(self.file, int(cmd.get("line", 0)), t, self.case_name(cmd), PASSED)
        start = time.perf_counter()
        self._case = case
        try:
            handler = getattr(self, "cmd_" + t, None)
            if handler is None:
                raise _Fail(f"unknown command type {t!r}")
            self.engine.start_command(self.store)
            handler(cmd)
        except _Skip as e:
            case.status, case.feature, case.message = SKIPPED, e.feature, e.message
        except Unsupported as e:
            case.status, case.feature, case.message = SKIPPED, e.feature, str(e)
        except _Fail as e:
            case.status, case.message, case.expected, case.actual = FAILED, e.message, e.expected, e.actual
        except Stopped as e:  # a limit of the run, not the program: the expected result was not produced
            case.status, case.message, case.actual, case.stopped = FAILED, e.message, e.message, e.kind
            case.expected = _expected_of(cmd)
        except Exception as e:  # a bug somewhere in wcr: a failure of this command, not of the run
            case.status = FAILED
            case.message = f"unexpected {_err(e)}"[:2000]
            case.actual = _err(e)[:2000]
            case.traceback = traceback.format_exc(limit=30)[-8000:]
        case.elapsed = time.perf_counter() - start
        return case

    def run(self) -> List[CaseResult]:
        cases = [self.run_command(c) for c in self.conv.commands]
        if self.cr is not None:
            self.cr.flush()  # the rest of the batch; mismatches turn their cases into failures
        return cases


def run_file(
    root: Path,
    rel: str,
    engine: Optional[Engine] = None,
    cache_root: Optional[Path] = None,
    cr: Any = None,
    limits: Any = None,
) -> FileResult:
    """Convert (cached) and run one script; never raises for problems inside the script.  ``limits``:
    the :class:`vm.exec.budget.Limits` of each command (for the default engine)."""
    start = time.perf_counter()
    result = FileResult(rel)
    try:
        conv = convert(root / rel, cache_root)
    except (ConversionError, OSError, ValueError) as e:
        result.cases.append(CaseResult(rel, 0, "convert", f"{Path(rel).name}:0 convert", FAILED,
                                       message=str(e), actual=str(e)))
        result.elapsed = time.perf_counter() - start
        return result
    runner = ScriptRunner(engine if engine is not None else VmEngine(limits=limits), conv, rel, cr)
    result.cases = runner.run()
    result.instructions = runner.instructions
    if runner.cr is not None:
        result.cr = runner.cr.counts
    result.elapsed = time.perf_counter() - start
    return result
