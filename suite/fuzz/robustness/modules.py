"""Module probes: does our decoder + validator say what ``wasm-tools validate`` says, and does an
accepted module instantiate and run with nothing but documented errors?

For each input (:func:`module_input`: random bytes, a testsuite module as it is or mutated, a
``wasm-tools mutate`` or wasm-smith mutant, a module of our generator mutated):

* our verdict, :func:`our_verdict`: ``accepted`` / ``malformed`` / ``invalid`` / ``unsupported``
  (decode + validate, :func:`vm.api.load_module`);
* the reference verdict, :func:`reference_accepts`: ``wasm-tools validate --features`` :data:`FEATURES`
  (input without the ``\\0asm`` magic is not asked: wasm-tools would parse it as the *text* format,
  a binary decoder rejects it).
  Feature sets, precisely: our decoder and validator implement every proposal of wasm-tools 1.262's
  default set (all phase-4+ proposals: SIMD, GC, exceptions, tail calls, function references, memory64,
  multi-memory, extended-const, ...) plus the legacy exception-handling instructions (``try`` /
  ``catch`` / ``delegate``, testsuite ``legacy/``), which wasm-tools only accepts with
  ``legacy-exceptions``; so the reference runs with ``legacy-exceptions`` added to its default.  What we
  do not implement (shared memories of the threads proposal, custom page sizes) is ``unsupported``,
  counted apart and never compared.
* an accepted module is then instantiated (``spectest`` imports, start function under a fuel bound) and
  up to :data:`MAX_CALLS` exports are invoked with zero arguments under the same bound
  (:func:`exercise`).

``wasm-tools validate`` takes one input per process, so it is not batched; a call costs ~3 ms here,
less than our own decode + validate of the same module.

Findings: accept/reject disagreement, any exception that is not a :class:`vm.errors.WasmError` (or a
documented error from the wrong stage), and (in the runner) a probe that hangs or kills its worker.
"""

from __future__ import annotations

import os
import random
import subprocess
import tempfile
from typing import Any, Dict, List, Optional, Tuple

from vm.errors import InvalidModule, MalformedModule, Unsupported

__all__ = ["FEATURES", "FUEL", "ModuleProbes", "bounded_instance", "exercise", "module_input", "module_probe", "our_verdict",
           "reference_accepts", "zero_args"]

#: the ``wasm-tools validate --features`` that match our decoder + validator (see the module docstring)
FEATURES = "legacy-exceptions"
#: instructions a start function or an invoked export may run before the probe moves on
FUEL = 20_000
#: exports invoked per accepted module
MAX_CALLS = 3


def our_verdict(data: bytes) -> Tuple[str, str, Any]:
    """``(verdict, message, LoadedModule or None)``; verdict is ``accepted``, ``malformed``,
    ``invalid`` or ``unsupported``.  Exceptions of any other kind propagate (the probe's finding)."""
    from vm.api import load_module

    try:
        return "accepted", "", load_module(data)
    except MalformedModule as e:
        return "malformed", str(e), None
    except InvalidModule as e:
        return "invalid", str(e), None
    except Unsupported as e:
        return "unsupported", str(e), None


def reference_accepts(data: bytes, features: str = FEATURES) -> Tuple[Optional[bool], str]:
    """``wasm-tools validate``: ``(True, "")``, ``(False, first error line)``, or ``(None, why)`` when
    the tool itself failed (crash, timeout: no verdict, counted apart)."""
    from spec_tests.convert import wasm_tools_exe

    if not data.startswith(b"\0asm"):  # wasm-tools would parse it as the text format: no binary
        return False, "not a binary module (no \\0asm magic)"
    with tempfile.TemporaryDirectory(prefix="wcr-probe-") as d:
        path = os.path.join(d, "m.wasm")
        with open(path, "wb") as fh:
            fh.write(data)
        try:
            p = subprocess.run([wasm_tools_exe(), "validate", "--features", features, path],
                               capture_output=True, timeout=30)
        except subprocess.TimeoutExpired:
            return None, "wasm-tools validate timed out"
    err = p.stderr.decode("utf-8", "replace")
    if p.returncode == 0:
        return True, ""
    # (a warning about DWARF information may come first)
    lines = [ln for ln in err.splitlines() if ln.startswith("error")]
    if p.returncode == 1 and lines:
        return False, " ".join(err[err.index(lines[0]):].split())[:200]
    return None, f"wasm-tools validate exited {p.returncode}: {err[:200]}"


def _zero(t: Any) -> Any:
    """A zero-ish argument of type ``t``: 0 for numbers (v128 too), null for nullable references."""
    if isinstance(t, str):
        return 0
    if getattr(t, "nullable", False):
        return None
    raise LookupError("non-nullable reference parameter")


def bounded_instance(lm: Any) -> Tuple[Any, Any, List[str]]:
    """Instantiate ``lm`` in a fresh store: ``spectest`` imports, segments, the start function under
    :data:`FUEL` (a start function may loop forever).  ``(store, instance or None, steps)``; documented
    errors end it (``link``, ``unsupported``, ``init-trap``, ``start:fuel``), anything else propagates."""
    from vm.api import Store
    from vm.errors import LinkError, Trap
    from vm.runtime.spectest import spectest_exports
    from vm.snapshot import advance, start

    store = Store()
    host = spectest_exports(store)
    try:
        imports = []
        for imp in lm.module.imports:
            if imp.module != "spectest" or imp.name not in host:
                raise LinkError(f"unknown import {imp.module}.{imp.name}")
            imports.append(host[imp.name])
        inst = store.allocate(lm.module, lm.info, imports, lm.sha256)
        store.initialize(inst)
        if lm.module.start is not None:
            run = advance(store, start(store, inst.funcs[lm.module.start], []), FUEL)
            if run.status != "done":
                return store, None, ["start:" + (run.status if run.status != "running" else "fuel")]
    except LinkError:
        return store, None, ["link"]
    except Unsupported:
        return store, None, ["unsupported"]
    except Trap:
        return store, None, ["init-trap"]
    return store, inst, []


def zero_args(params: Any) -> Optional[List[Any]]:
    """Zero-ish arguments: 0 for numbers (v128 too), null for nullable references; None when a
    parameter is a non-nullable reference (no zero value)."""
    out = []
    for t in params:
        if isinstance(t, str):
            out.append(0)
        elif getattr(t, "nullable", False):
            out.append(None)
        else:
            return None
    return out


def exercise(lm: Any) -> List[str]:
    """:func:`bounded_instance`, then up to :data:`MAX_CALLS` function exports invoked with
    :func:`zero_args` under :data:`FUEL` each.  What happened, one word per step (``link``, ``trap``,
    ``done``, ``fuel``, ``unsupported``, ...); documented errors are outcomes, anything else propagates."""
    from vm.snapshot import advance, start

    store, inst, steps = bounded_instance(lm)
    if inst is None:
        return steps
    for ex in [ex for ex in lm.module.exports if ex.kind == "func"][:MAX_CALLS]:
        f = inst.funcs[ex.index]
        args = zero_args(f.type.params)
        if args is None:
            steps.append("skip")
            continue
        try:
            run = advance(store, start(store, f, args), FUEL)
        except Unsupported:
            steps.append("unsupported")
            continue
        steps.append(run.status if run.status != "running" else "fuel")
    return steps


def module_input(rng: random.Random, pool: Any, n: int) -> Tuple[bytes, str]:
    """Probe ``n``'s input, drawn by ``rng``: ``(bytes, origin)``; origin says how it was made."""
    from generators.mutate import mutate_bytes, random_module, wasm_mutate

    from .sources import generated_module, smith_module_from

    kind = rng.choice(("random", "testsuite", "testsuite", "testsuite-mutated", "testsuite-mutated",
                       "testsuite-mutated", "wasm-mutate", "smith", "smith-mutated", "own-mutated"))
    base: Optional[Tuple[bytes, str]] = None
    if kind == "random":
        return random_module(rng)
    if kind.startswith("testsuite") or kind == "wasm-mutate":
        base = pool.pick(rng, valid_only=kind == "wasm-mutate")
    elif kind.startswith("smith"):
        sm = smith_module_from(rng)
        base = (sm, "smith") if sm is not None else None
    else:
        base = (generated_module(rng.randrange(1 << 32))[0], "own")
    if base is None:
        return random_module(rng)
    data, where = base
    if kind == "testsuite" or kind == "smith":
        return data, f"{kind}:{where}"
    if kind == "wasm-mutate":
        mutant = wasm_mutate(data, rng.randrange(1 << 32))
        if mutant is not None:
            if rng.random() < 0.3:
                mutant, how = mutate_bytes(mutant, rng)
                return mutant, f"wasm-mutate+{how}:{where}"
            return mutant, f"wasm-mutate:{where}"
    mutant, how = mutate_bytes(data, rng)
    return mutant, f"{kind}:{how}:{where}"


def module_probe(data: bytes) -> Dict[str, Any]:
    """Judge one module: ``{"verdict": counted category, "finding": reason or None, ...}``."""
    ours, msg, lm = our_verdict(data)
    ref, ref_msg = reference_accepts(data)
    out: Dict[str, Any] = {"ours": ours, "message": msg[:200], "reference": ref, "reference_message": ref_msg,
                           "finding": None}
    if ours == "unsupported":
        out["verdict"] = "unsupported"
        return out
    if ref is None:
        out["verdict"] = "no-reference"
        return out
    if (ours == "accepted") != ref:
        out["verdict"] = "disagree"
        out["finding"] = (f"we say {ours}, wasm-tools validate --features {FEATURES} "
                          f"{'accepts' if ref else 'rejects'}" + (f": {msg or ref_msg}" if msg or ref_msg else ""))
        return out
    if ours != "accepted":
        out["verdict"] = "both-reject"
        return out
    out["verdict"] = "both-accept"
    out["counts"] = {}
    for step in exercise(lm):
        out["counts"]["run:" + step] = out["counts"].get("run:" + step, 0) + 1
    return out


class ModuleProbes:
    """The ``modules`` probe kind of :mod:`.runner`.  ``files``: restrict the testsuite pool to these
    ``.wast`` files (default: all)."""

    expected_errors = ()  # nothing may escape a module probe: every documented error is a verdict

    def __init__(self, files: Optional[List[str]] = None, seed: int = 0):
        from .sources import Pool

        self.pool = Pool(files)

    def make_input(self, rng: random.Random, n: int) -> Any:
        from .runner import Input

        data, origin = module_input(rng, self.pool, n)
        return Input({"module.wasm": data}, origin)

    def judge(self, inp: Any) -> Dict[str, Any]:
        return module_probe(inp.files["module.wasm"])
