"""``wcr convert`` and ``wcr targets``: the native-runtime commands.

* ``wcr convert SNAP --module M.wasm [--module ...] -o resume.wasm`` writes the resume module of a
  snapshot (:func:`vm.snapshot.resume.make_resume_module`) and prints its manifest as JSON.  A snapshot
  that cannot be converted prints one line with the reason and exits 2 (it is not a bad input, but it
  is not a success either: there is no file to use).
* ``wcr targets [--json]`` lists each native target with version, declared features and status
  (available, or missing and why).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict

from suite.commands import EXIT_OK, UsageError
from suite.commands._io import read_snapshot, write_output

EXIT_NOT_CONVERTIBLE = 2


def _add_convert(p: argparse.ArgumentParser) -> None:
    p.add_argument("snapshot", metavar="SNAP")
    p.add_argument("--module", action="append", default=[], metavar="M.wasm", required=True,
                   help="a module of the snapshot (repeat for several)")
    p.add_argument("-o", "--output", required=True, metavar="resume.wasm", help="where to write the resume module")


def manifest_json(man: Any) -> Dict[str, Any]:
    return {"entry": man.entry, "results": [str(t) for t in man.results],
            "memories": {str(k): v for k, v in man.memories.items()},
            "globals": {str(k): v for k, v in man.globals.items()},
            "tables": {str(k): v for k, v in man.tables.items()},
            "imports": [list(i) for i in man.imports], "frames": man.frames, "sha256": man.sha256,
            **({"wasi": _wasi_json(man.wasi)} if man.wasi is not None else {})}


def _wasi_json(run: Any) -> Dict[str, Any]:
    """What a WASI program's resume module must be run with (the files are the snapshot's)."""
    def text(b: bytes) -> str:
        return b.decode("utf-8", "backslashreplace")

    return {"preopens": list(run.roots), "args": [text(a) for a in run.args], "env": [text(e) for e in run.env],
            "stdin_left": len(run.stdin), "status_export": run.status_export,
            "nondeterministic": list(run.nondeterministic)}


def _run_convert(args: argparse.Namespace) -> int:
    from vm.snapshot.resume import NotConvertible, make_resume_module

    _, state, modules = read_snapshot(args.snapshot, args.module)
    try:
        rm = make_resume_module(state, modules)
    except NotConvertible as e:
        print(f"not convertible: {e}", file=sys.stderr)
        return EXIT_NOT_CONVERTIBLE
    write_output(args.output, rm.bytes)
    print(json.dumps(manifest_json(rm.manifest), indent=2))
    return EXIT_OK


def _add_targets(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _run_targets(args: argparse.Namespace) -> int:
    from runners.native import describe, format_describe

    try:
        rows = describe()
    except ValueError as e:  # a bad config file or wcr.targets plugin
        raise UsageError(str(e)) from None
    print(json.dumps(rows, indent=2) if args.json else format_describe(rows))
    return EXIT_OK


COMMANDS = [
    ("convert", "turn a snapshot into a resume module (a plain Wasm module that finishes the run)",
     _add_convert, _run_convert),
    ("targets", "list the native targets (wasmtime, v8, wasm3, wabt, wasm2c, wamr, and yours: "
                "wcr.ini [targets], wcr.targets entry points) and whether they are available",
     _add_targets, _run_targets),
]
