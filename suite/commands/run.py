"""``wcr run``: instantiate a module, invoke one export and print its outcome as JSON.

The output is the one outcome shape every host and target speaks (:meth:`vm.snapshot.Outcome.to_dict`):
``{"results", "trap", "instructions", "host_log", "state_digest"}``, plus ``"checkpoint"`` and
``"snapshot"`` with ``--checkpoint-at K --snapshot OUT.snap``.  Why one shape: ``wcr restore`` of that
snapshot prints the same fields, so "did the resumed run end like the uninterrupted one" is a diff.

Arguments are value text (:mod:`vm.values`: ``i32:7``, ``i64:-3``, ``f32:0x7fc00000``, ``f64:1.5``,
``externref:3``, ``funcref:null``); the module is instantiated through :mod:`vm.api` (imports resolve
against the ``spectest`` host module); the invocation runs through :mod:`vm.snapshot`'s
``start``/``advance``/``finish``, the same path a checkpointed run takes, so both print the same
instruction count and digest.

``--fuel N`` / ``--timeout S`` bound the run (:mod:`vm.exec.budget`; instantiation's start function
included): a run they stop prints the outcome as it stands with ``"stopped": "fuel exhausted"`` or
``"timeout"``, one line on stderr naming the limit, and exits with :data:`EXIT_STOPPED`.

``--wasi`` runs a WASI command the way ``wasmtime run`` does (:mod:`suite.commands._wasi`: its flags,
exit statuses and the write-back of ``--dir`` directories): ``_start`` unless ``--invoke`` names another
export, the arguments after ``--`` are the program's, its output is streamed to ours and its exit
status is ours; ``--json`` prints the outcome instead (with ``"wasi"``: exit code, output, files digest).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, List, Optional, Sequence

from suite.commands import EXIT_OK, EXIT_STOPPED, UnsupportedInput, UsageError
from suite.commands._io import read_input, write_output
from suite.commands._limits import add_limit_flags, limits_of
from suite.commands._wasi import add_wasi_flags, wasi_config, wasi_exit, wasi_state
from vm.api import Store, instantiate
from vm.errors import (
    TIMEOUT,
    InvalidModule,
    LinkError,
    MalformedModule,
    Stopped,
    Trap,
    Unsupported,
    WasmException,
    stop_message,
)
from vm.exec.budget import Budget
from vm.runtime import FuncInst
from vm.snapshot import (
    Outcome,
    State,
    advance_within,
    capture_store,
    checkpoint,
    encode,
    finish,
    start,
    state_digest,
)
from vm.types import RefType
from vm.values import NUM_BITS, Value, ValueTextError, parse_value, to_runtime


def _add_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("module", metavar="MODULE.wasm")
    p.add_argument("--invoke", nargs="+", metavar=("NAME", "TYPE:VALUE"),
                   help="exported function to call, then its arguments, e.g. i32:7 i64:-3 "
                        "f32:0x7fc00000 f64:1.5 externref:3 funcref:null (required without --wasi; with "
                        "--wasi: default _start)")
    p.add_argument("args", nargs="*", metavar="TYPE:VALUE", help=argparse.SUPPRESS)
    p.add_argument("--checkpoint-at", type=int, metavar="K",
                   help="stop before retired instruction K (0 = before the first; K = the total gives a "
                        "snapshot of the finished run; beyond the total is an error), write --snapshot, "
                        "then finish the run")
    p.add_argument("--snapshot", metavar="OUT.snap", help="where --checkpoint-at writes the snapshot")
    add_limit_flags(p, "run")
    add_wasi_flags(p)


def _run_run(args: argparse.Namespace) -> int:
    if args.invoke is None and not args.wasi:
        raise UsageError("--invoke NAME is required (or --wasi to run a WASI command's _start)")
    name, *rest = args.invoke if args.invoke is not None else ["_start"]
    # with --wasi the positional arguments (after --) are the program's, not the export's
    texts = rest if args.wasi else list(args.args) + rest
    config = wasi_config(args, args.module, (list(args.args) if args.wasi else []) + list(args.program_args))
    k_at: Optional[int] = args.checkpoint_at
    if (k_at is None) != (args.snapshot is None):
        raise UsageError("--checkpoint-at and --snapshot go together")
    if k_at is not None and k_at < 0:
        raise UsageError(f"--checkpoint-at {k_at}: must be at least 0")
    limits = limits_of(args)
    data = read_input(args.module, "file")
    values = [parse_arg(t) for t in texts]
    store = Store()
    store.budget = budget = limits.start()  # one clock for the start function and the invocation
    if args.wasi:
        store.wasi = wasi_state(config, store.limits, stream=not args.json)
    try:
        inst = instantiate(store, data)
    except Stopped as e:  # the start function ran out of fuel or time
        out = Outcome([], None, e.instructions, capture_store(store).host_log, state_digest(store), e.kind,
                      _wasi_summary(store)).to_dict()
        return _end(args, store, out, limits.seconds)
    except (Trap, WasmException) as e:  # the start function or a segment trapped (or threw): nothing to invoke
        if k_at is not None:
            raise UsageError(f"{args.module}: instantiation trapped ({e.message}): nothing to checkpoint") from None
        out = Outcome([], e.message, int(store.instructions or 0), capture_store(store).host_log,
                      state_digest(store), None, _wasi_summary(store)).to_dict()
        if args.wasi and not args.json:
            return wasi_exit(store.wasi, out, limits.seconds)
        print(json.dumps(out))
        return EXIT_OK
    except MalformedModule as e:
        raise UsageError(f"{args.module}: malformed module: {e}") from None
    except InvalidModule as e:
        raise UsageError(f"{args.module}: invalid module: {e}") from None
    except LinkError as e:
        hint = "" if "--wasi" in str(e) else " (the host modules are spectest and, with --wasi, WASI preview 1)"
        raise UsageError(f"{args.module}: link error: {e}{hint}") from None
    except Unsupported as e:
        raise UnsupportedInput(f"{args.module}: {e}") from None
    func = exported_function(inst, name, args.module)
    call_args = runtime_args(func, name, texts, values)
    try:
        out = invoke(store, func, call_args, k_at, args.snapshot, budget)
    except Unsupported as e:  # an instruction or value the engine or the snapshot cannot handle
        raise UnsupportedInput(f"{args.module}: {e}") from None
    return _end(args, store, out, limits.seconds)


def _wasi_summary(store: Store) -> Optional[Dict[str, Any]]:
    return store.wasi.summary() if store.wasi is not None else None


def _end(args: argparse.Namespace, store: Store, out: Dict[str, Any], seconds: Optional[float]) -> int:
    """Print the outcome (a WASI run without --json: its output was streamed; end with its status)."""
    if args.wasi and not args.json:
        return wasi_exit(store.wasi, out, seconds)
    if store.wasi is not None:
        store.wasi.write_back()
    return print_outcome(out, seconds)


def print_outcome(out: Dict[str, Any], seconds: Optional[float]) -> int:
    """Print the outcome JSON; a stopped one also gets its one line on stderr and :data:`EXIT_STOPPED`
    (``wcr restore`` ends the same way)."""
    print(json.dumps(out))
    if not out.get("stopped"):
        return EXIT_OK
    print(f"wcr: {stop_message(out['stopped'], out.get('instructions'), seconds)}", file=sys.stderr)
    return EXIT_STOPPED


def invoke(store: Store, func: FuncInst, call_args: List[Any], k_at: Optional[int],
           snapshot: Optional[str], budget: Optional[Budget] = None) -> Dict[str, Any]:
    """Run the invocation to its end (within ``budget``), stopping at ``k_at`` on the way to write
    ``snapshot``: the outcome dict, with ``checkpoint``/``snapshot`` when it stopped there."""
    run = start(store, func, call_args)
    extra: Dict[str, Any] = {}
    if k_at is not None and snapshot is not None:
        if budget is not None and budget.fuel is not None and k_at > budget.fuel:
            raise UsageError(f"--checkpoint-at {k_at}: beyond --fuel {budget.fuel}")
        if advance_within(store, run, Budget(k_at, None if budget is None else budget.left())) == TIMEOUT:
            return finish(store, run, budget=budget).to_dict()  # stopped on the way to k: no snapshot
        if run.count < k_at:
            raise UsageError(f"--checkpoint-at {k_at}: the invocation ends after {run.count} instructions")
        state = checkpoint(store, run)
        write_output(snapshot, encode(state))
        extra = {"checkpoint": checkpoint_info(state), "snapshot": snapshot}
    out = finish(store, run, budget=budget).to_dict()
    out.update(extra)
    return out


def parse_arg(text: str) -> Value:
    """One ``TYPE:VALUE`` argument → tagged value (:func:`vm.values.parse_value`); its error becomes
    ``argument 'TEXT': why``."""
    try:
        return parse_value(text)
    except ValueTextError as e:
        raise UsageError(f"argument {text!r}: {_reason(text, e)}") from None


def _reason(text: str, e: ValueTextError) -> str:
    """The codec's message without its own ``value 'TEXT'`` prefix (the CLI names the argument)."""
    msg = str(e)
    prefix = f"value {text.strip()!r}"
    return msg[len(prefix):].lstrip(": ") if msg.startswith(prefix) else msg


def exported_function(inst: Any, name: str, module: str) -> FuncInst:
    func = inst.exports.get(name)
    if func is None:
        funcs = sorted(k for k, v in inst.exports.items() if isinstance(v, FuncInst))
        raise UsageError(f"{module}: no exported function {name!r} "
                         f"(exported functions: {', '.join(funcs) or 'none'})")
    if not isinstance(func, FuncInst):
        raise UsageError(f"{module}: export {name!r} is not a function")
    return func


def runtime_args(func: FuncInst, name: str, texts: Sequence[str], values: Sequence[Value]) -> List[Any]:
    """Check the tagged arguments against the export's parameter types and convert them to runtime
    values (:func:`vm.values.to_runtime`)."""
    params = list(func.type.params)
    if len(params) != len(values):
        raise UsageError(f"{name}: expects {len(params)} arguments "
                         f"({' '.join(_type_name(p) for p in params) or 'none'}), got {len(values)}")
    out = []
    for i, (p, text, v) in enumerate(zip(params, texts, values)):
        why = _mismatch(p, v)
        if why:
            raise UsageError(f"{name}: argument {i} must be {_type_name(p)}, got {why}")
        try:
            out.append(to_runtime(v))
        except ValueTextError as e:
            raise UsageError(f"argument {text!r}: {e}") from None
    return out


def _mismatch(p: Any, v: Value) -> str:
    """Why tagged ``v`` cannot be passed for parameter type ``p`` ('' if it can)."""
    tag = v[0]
    if isinstance(p, RefType):
        if tag not in ("ref.null", "ref.extern", "ref.func"):
            return tag
        if tag == "ref.null" and not p.nullable:
            return "null"
        if tag == "ref.extern" and p.heap != "extern":
            return "an externref"
        return ""
    return "" if tag == p and tag in NUM_BITS else tag


def _type_name(t: Any) -> str:
    return repr(t) if isinstance(t, RefType) else str(t)


def checkpoint_info(state: State) -> Dict[str, Any]:
    """``{"k": K, "status": ..., "frames": [{"func": index in its instance, "instance": n, "name": ...,
    "pc": byte offset}, ...]}`` (bottom to top): where ``--checkpoint-at`` stopped, in the module's own
    function indices (a snapshot stores store-wide addresses)."""
    loc: Dict[int, Any] = {}
    for n, ist in enumerate(state.instances):
        for j, a in enumerate(ist.funcs):
            loc.setdefault(a, (n, j))
    th = state.thread
    assert th is not None  # a checkpoint of a run always has its thread
    frames = []
    for fr in th.frames:
        n, j = loc.get(fr.func, (None, None))
        frames.append({"func": j, "instance": n, "name": state.names.get(fr.func), "pc": fr.pc})
    return {"k": th.count, "status": th.status, "frames": frames}


COMMANDS = [
    ("run", "instantiate a module and invoke one export, print the outcome JSON", _add_run, _run_run),
]
