"""The ``wcr`` command line.

Subcommands are registered in :data:`COMMANDS` as ``(name, help, add_arguments, run)``; adding one
(snapshot, restore, convert, fuzz, bench ...) means writing those two functions and appending a row.

Exit codes: 0 = success (``spec``: nothing failed), 1 = ``spec`` had failures, 2 = bad input (missing
file, bad argument, unknown export, malformed/invalid module: one line on stderr, never a traceback),
3 = the module needs a feature wcr does not support.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import struct
import sys
import time
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_UNSUPPORTED = 0, 1, 2, 3


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit 2."""


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("wcr")
    except Exception:
        return "0+unknown"


# ==================================================================================================
# wcr spec
# ==================================================================================================
def _add_spec(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="*", metavar="FILE|GLOB",
                   help="scripts relative to the testsuite dir, or globs (i32.wast, 'simd_*.wast', "
                        "'custom/*.wast'); default: all .wast files, recursively")
    p.add_argument("--testsuite", metavar="DIR",
                   help="testsuite directory (default: $WASM_TESTSUITE, ../shared/wasm-testsuite, "
                        "else download of the pinned commit)")
    p.add_argument("--list", metavar="NAME", help="a named file list from spec_tests/data (e.g. core-1-2)")
    p.add_argument("--json", metavar="PATH", help="write the JSON summary here")
    p.add_argument("--junit", metavar="PATH", help="write JUnit XML here")
    p.add_argument("-j", "--jobs", type=int, default=1, metavar="N", help="worker processes (default 1)")
    p.add_argument("--max-failures", type=int, default=10, metavar="N",
                   help="how many failures to show in detail (default 10)")
    p.add_argument("--quiet", action="store_true", help="no per-file table")
    p.add_argument("--cr", choices=("random", "all"),
                   help="C/R mode: also checkpoint every invocation (random: one seeded point; all: every "
                        "instruction, at most --cr-max-points spread evenly), restore and compare")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the C/R points (default 0)")
    p.add_argument("--restore-on", default="inproc", metavar="HOST[,HOST...]",
                   help="restorers for --cr: inproc, python:PATH, pypy3, or a native target name "
                        "(default inproc)")
    p.add_argument("--cr-max-points", type=int, default=50, metavar="N",
                   help="--cr all: at most N checkpoints per invocation (default 50)")


def _run_spec(args: argparse.Namespace) -> int:
    from reports.spec import failure_components, failures, skipped_features, totals, write_json, write_junit
    from spec_tests.parallel import run_files
    from spec_tests.testsuite import TestsuiteError, locate_testsuite, read_list, select_files

    if args.jobs < 1:
        raise UsageError(f"-j {args.jobs}: must be at least 1")
    cr = None
    if args.cr:
        from runners.restore import resolve
        from spec_tests.cr import CrConfig

        if args.cr_max_points < 1:
            raise UsageError(f"--cr-max-points {args.cr_max_points}: must be at least 1")
        try:
            restorers = resolve(args.restore_on)
        except ValueError as e:
            raise UsageError(f"--restore-on: {e}") from None
        for r in restorers:
            ok, why = r.available()
            if not ok:
                raise UsageError(f"--restore-on {r.name}: not available: {why}")
        cr = CrConfig(args.cr, args.seed, args.restore_on, args.cr_max_points)
    try:
        root = locate_testsuite(args.testsuite)
        patterns = list(args.files)
        if args.list:
            patterns += read_list(args.list)
        files = select_files(root, patterns)
    except TestsuiteError as e:
        raise UsageError(str(e)) from None
    if not files:
        raise UsageError(f"no .wast files in {root}")

    tty = sys.stderr.isatty()
    start = time.perf_counter()
    state = {"cases": 0}

    def progress(r: Any, i: int, n: int) -> None:
        state["cases"] += len(r.cases)
        if tty:
            el = time.perf_counter() - start
            rate = state["cases"] / el if el > 0 else 0.0
            sys.stderr.write(f"\r\x1b[K[{i}/{n}] {r.file}  {state['cases']} asserts, {rate:.0f}/s")
            sys.stderr.flush()

    results = run_files(root, files, jobs=args.jobs, progress=progress, cr=cr)
    elapsed = time.perf_counter() - start
    if tty:
        sys.stderr.write("\r\x1b[K")
        sys.stderr.flush()

    out = sys.stdout
    if not args.quiet:
        w = max([len(r.file) for r in results] + [5])
        out.write(f"{'file':<{w}}  {'passed':>7} {'failed':>7} {'skipped':>7}\n")
        for r in results:
            out.write(f"{r.file:<{w}}  {r.passed:>7} {r.failed:>7} {r.skipped:>7}\n")
    t = totals(results)
    n = sum(t.values())
    feats = skipped_features(results)
    if feats:
        out.write("skipped (unsupported features): "
                  + ", ".join(f"{k} {v}" for k, v in feats.items()) + "\n")
    fails = failures(results, args.max_failures)
    if fails:
        comps = failure_components(results)
        out.write("failures by component (guess): " + ", ".join(f"{k} {v}" for k, v in comps.items()) + "\n")
        out.write(f"first {len(fails)} of {t['failed']} failures:\n")
        for f in fails:
            out.write(f"  {f['file']}:{f['line']} {f['name'].split(' ', 1)[-1]}: {f['message']}"
                      f" [{f['component']}]\n")
            if f.get("expected") or f.get("actual"):
                out.write(f"      expected: {f.get('expected', '')}\n      actual:   {f.get('actual', '')}\n")
            tb = f.get("traceback")
            if tb:
                last = [ln for ln in tb.strip().splitlines() if ln.strip().startswith("File ")][-1:]
                for ln in last:
                    out.write(f"      at {ln.strip()}\n")
    rate = n / elapsed if elapsed > 0 else 0.0
    out.write(f"{len(results)} files: {t['passed']} passed, {t['failed']} failed, {t['skipped']} skipped"
              f" in {elapsed:.1f}s ({rate:.0f} asserts/s)\n")
    if cr is not None:
        from reports.spec import cr_summary

        c = cr_summary(results)
        out.write(f"C/R ({args.cr}, seed {args.seed}): {c['invocations']} invocations, {c['checkpoints']} "
                  f"checkpoints, {c['restores']} restores, {c['mismatches']} mismatches; hosts: "
                  + ", ".join(f"{k} {v}" for k, v in c["hosts"].items()) + "\n")
        for name, tc in c.get("targets", {}).items():
            out.write(f"  target {name}: " + ", ".join(f"{k} {v}" for k, v in tc.items()
                                                     if k != "not_convertible_reasons") + "\n")
    if args.json:
        write_json(Path(args.json), results, elapsed)
    if args.junit:
        write_junit(Path(args.junit), results)
    return EXIT_OK if t["failed"] == 0 else EXIT_FAIL


# ==================================================================================================
# wcr run
# ==================================================================================================
_INT_BITS = {"i32": 32, "i64": 64}


def parse_arg(text: str) -> Tuple[str, Any]:
    """``TYPE:VALUE`` → (type, runtime value).

    i32/i64: decimal (negative allowed) or 0x hex; f32/f64: ``0x...`` raw bits, or a decimal float /
    ``nan`` / ``inf`` / ``-inf`` converted to bits; v128: an integer (0x hex allowed); externref: N or
    ``null``; funcref: ``null``.
    """
    typ, sep, val = text.partition(":")
    if not sep or not val:
        raise UsageError(f"argument {text!r}: expected TYPE:VALUE (e.g. i32:7, f64:1.5, externref:null)")
    try:
        if typ in _INT_BITS:
            bits = _INT_BITS[typ]
            n = int(val, 0)
            if not -(1 << (bits - 1)) <= n < (1 << bits):
                raise UsageError(f"argument {text!r}: out of range for {typ}")
            return typ, n & ((1 << bits) - 1)
        if typ in ("f32", "f64"):
            bits = 32 if typ == "f32" else 64
            if val.lower().startswith(("0x", "-0x", "+0x")) and "." not in val and "p" not in val.lower():
                n = int(val, 16)
                if not 0 <= n < (1 << bits):
                    raise UsageError(f"argument {text!r}: bit pattern out of range for {typ}")
                return typ, n
            x = float(val)
            if typ == "f32":
                if math.isfinite(x) and abs(x) > 3.4028235677973366e38:
                    raise UsageError(f"argument {text!r}: out of range for f32")
                return typ, struct.unpack("<I", struct.pack("<f", x))[0]
            return typ, struct.unpack("<Q", struct.pack("<d", x))[0]
        if typ == "v128":
            n = int(val, 0)
            if not 0 <= n < (1 << 128):
                raise UsageError(f"argument {text!r}: out of range for v128")
            return typ, n
        if typ == "externref":
            if val == "null":
                return typ, None
            from vm.runtime import ExternRef

            return typ, ExternRef(int(val, 0))
        if typ in ("funcref", "anyref", "exnref", "ref"):
            if val == "null":
                return typ, None
            raise UsageError(f"argument {text!r}: only null can be passed for {typ}")
    except ValueError:
        raise UsageError(f"argument {text!r}: bad {typ} value {val!r}") from None
    raise UsageError(f"argument {text!r}: unknown type {typ!r} (i32 i64 f32 f64 v128 externref funcref)")


def format_result(v: Any, t: Any) -> str:
    """Canonical text of a result: i32/i64 unsigned decimal, f32/f64/v128 hex bits, refs by kind."""
    from vm.types import RefType

    if isinstance(t, str):
        if t in ("i32", "i64"):
            return f"{t}:{v}"
        if t == "f32":
            return f"f32:0x{v:08x}"
        if t == "f64":
            return f"f64:0x{v:016x}"
        if t == "v128":
            return f"v128:0x{v:032x}"
    name = repr(t) if isinstance(t, RefType) else str(t)
    if v is None:
        return f"{name}:null"
    if type(v).__name__ == "ExternRef":
        return f"externref:{getattr(v, 'value', getattr(v, 'n', '?'))}"
    kind = getattr(v, "kind", None)
    if kind is None and type(v).__name__ == "FuncInst":
        kind = "func"
    return f"{name}:{kind or type(v).__name__}"


def _add_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("module", metavar="MODULE.wasm")
    p.add_argument("--invoke", required=True, nargs="+", metavar=("NAME", "TYPE:VALUE"),
                   help="exported function to call, then its arguments, e.g. i32:7 i64:-3 "
                        "f32:0x7fc00000 f64:1.5 externref:3 funcref:null")
    p.add_argument("args", nargs="*", metavar="TYPE:VALUE", help=argparse.SUPPRESS)
    p.add_argument("--checkpoint-at", type=int, metavar="K",
                   help="stop before retired instruction K (0 = before the first; K = the total gives a "
                        "snapshot of the finished run; beyond the total is an error), write --snapshot, "
                        "then finish the run")
    p.add_argument("--snapshot", metavar="OUT.snap", help="where --checkpoint-at writes the snapshot")


def checkpoint_info(state: Any) -> dict:
    """``{"k": K, "status": ..., "frames": [{"func": index in its instance, "instance": n, "name": ...,
    "pc": byte offset}, ...]}`` (bottom to top) for the JSON of ``wcr run --checkpoint-at``."""
    loc = {}
    for n, ist in enumerate(state.instances):
        for j, a in enumerate(ist.funcs):
            loc.setdefault(a, (n, j))
    th = state.thread
    frames = []
    for fr in th.frames:
        n, j = loc.get(fr.func, (None, None))
        frames.append({"func": j, "instance": n, "name": state.names.get(fr.func), "pc": fr.pc})
    return {"k": th.count, "status": th.status, "frames": frames}


def _run_run(args: argparse.Namespace) -> int:
    from vm.errors import InvalidModule, LinkError, MalformedModule, Trap, Unsupported, WasmException

    path = Path(args.module)
    if not path.is_file():
        raise UsageError(f"{args.module}: no such file")
    name, *rest = args.invoke
    args.invoke = name
    parsed = [parse_arg(a) for a in list(args.args) + rest]
    k_at = getattr(args, "checkpoint_at", None)
    snap_out = getattr(args, "snapshot", None)
    if (k_at is None) != (snap_out is None):
        raise UsageError("--checkpoint-at and --snapshot go together")
    if k_at is not None and k_at < 0:
        raise UsageError(f"--checkpoint-at {k_at}: must be at least 0")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UsageError(f"{args.module}: cannot read: {e.strerror}") from None
    try:
        from vm.api import Store
        from vm.binary import decode_module
        from vm.runtime import FuncInst
        from vm.runtime.spectest import spectest_exports
        from vm.valid import validate_module

        module = decode_module(data)
        info = validate_module(module)
        store = Store(max_call_depth=1000)
        host = {"spectest": spectest_exports(store)}
        imports = []
        for imp in module.imports:
            src = host.get(imp.module, {})
            if imp.name not in src:
                raise UsageError(f"{args.module}: unknown import {imp.module}.{imp.name} "
                                 "(only the spectest host module is available)")
            imports.append(src[imp.name])
        import hashlib

        from vm.snapshot import state_digest

        inst = store.instantiate(module, info, imports, hashlib.sha256(data).hexdigest())
        func = inst.exports.get(args.invoke)
        if func is None:
            funcs = sorted(k for k, v in inst.exports.items() if isinstance(v, FuncInst))
            raise UsageError(f"{args.module}: no exported function {args.invoke!r} "
                             f"(exported functions: {', '.join(funcs) or 'none'})")
        if not isinstance(func, FuncInst):
            raise UsageError(f"{args.module}: export {args.invoke!r} is not a function")
        params = list(func.type.params)
        if len(params) != len(parsed):
            raise UsageError(f"{args.invoke}: expects {len(params)} arguments "
                             f"({' '.join(map(str, params)) or 'none'}), got {len(parsed)}")
        for i, (p, (t, _)) in enumerate(zip(params, parsed)):
            if isinstance(p, str) and p != t:
                raise UsageError(f"{args.invoke}: argument {i} must be {p}, got {t}")
            if not isinstance(p, str) and t in _INT_BITS.keys() | {"f32", "f64", "v128"}:
                raise UsageError(f"{args.invoke}: argument {i} must be {p!r}, got {t}")
        trap = None
        results: List[str] = []
        cp = None
        if k_at is not None:
            from vm.snapshot import advance, checkpoint, encode, finish, start

            run = advance(store, start(store, func, [v for _, v in parsed]), k_at)
            if run.count < k_at:
                raise UsageError(f"--checkpoint-at {k_at}: the invocation ends after {run.count} "
                                 "instructions")
            state = checkpoint(store, run)
            try:
                Path(snap_out).write_bytes(encode(state))
            except OSError as e:
                raise UsageError(f"{snap_out}: cannot write: {e.strerror}") from None
            cp = checkpoint_info(state)
            finish(store, run, digest=False)
            trap = run.trap
            if trap is None:
                results = [format_result(v, t) for v, t in zip(run.thread.results or [], func.type.results)]
        else:
            try:
                res = store.invoke(func, [v for _, v in parsed])
                results = [format_result(v, t) for v, t in zip(res, func.type.results)]
            except Trap as e:
                trap = e.kind
            except WasmException as e:
                trap = e.message
        out = {"results": results, "trap": trap, "instructions": int(getattr(store, "instructions", 0) or 0),
               "state_digest": state_digest(store)}
        if cp is not None:
            out["checkpoint"] = cp
            out["snapshot"] = snap_out
    except MalformedModule as e:
        raise UsageError(f"{args.module}: malformed module: {e}") from None
    except InvalidModule as e:
        raise UsageError(f"{args.module}: invalid module: {e}") from None
    except LinkError as e:
        raise UsageError(f"{args.module}: link error: {e}") from None
    except Trap as e:  # start function / segment initialisation
        from vm.snapshot import state_digest

        if k_at is not None:
            raise UsageError(f"{args.module}: instantiation trapped ({e.kind}): nothing to checkpoint") from None
        out = {"results": [], "trap": e.kind, "instructions": int(getattr(store, "instructions", 0) or 0),
               "state_digest": state_digest(store)}
    except Unsupported as e:
        print(f"wcr: {args.module}: {e}", file=sys.stderr)
        return EXIT_UNSUPPORTED
    print(json.dumps(out))
    return EXIT_OK


# ==================================================================================================
# entry point
# ==================================================================================================
Command = Tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]

COMMANDS: List[Command] = [
    ("spec", "run the official .wast spec tests strictly", _add_spec, _run_spec),
    ("run", "instantiate a module and invoke one export, print JSON", _add_run, _run_run),
]


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors in one line with exit code 2 (its default prints usage too)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"wcr: {message}\n")


def all_commands() -> List[Command]:
    """The built-in rows plus every ``suite.commands.*`` module's ``COMMANDS``."""
    import importlib
    import pkgutil

    from . import commands

    rows = list(COMMANDS)
    for mod in sorted(m.name for m in pkgutil.iter_modules(commands.__path__)):
        if mod.startswith("_"):
            continue
        rows.extend(importlib.import_module(f"suite.commands.{mod}").COMMANDS)
    return rows


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="wcr", description="WebAssembly checkpoint/restore conformance suite")
    parser.add_argument("--version", action="version", version=f"wcr {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, help_, add, run in all_commands():
        p = sub.add_parser(name, help=help_, description=help_)
        add(p)
        p.set_defaults(_run=run)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args._run(args))
    except UsageError as e:
        print(f"wcr: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("wcr: interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # an output path that cannot be written, a vanished input...
        print(f"wcr: {e.strerror or e}: {e.filename}" if e.filename else f"wcr: {e}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as e:  # a bug in wcr: one line, the traceback only on request
        if os.environ.get("WCR_DEBUG"):
            raise
        print(f"wcr: internal error: {type(e).__name__}: {e} (set WCR_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
