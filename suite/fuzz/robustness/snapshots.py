"""Snapshot probes: checksum-valid snapshots that lie, and what restore does with them.

Checksums only catch accidents; a snapshot is a file from a stranger, so every probe here re-encodes
its edit with the codec (or re-packs an edited body), which recomputes the checksum.  Each probe starts
from a real checkpoint (:func:`base_checkpoint`: a module of our generator, of wasm-smith or of the
pinned testsuite, stopped at a random instruction count through the public :mod:`vm.snapshot` API, the
code path of :func:`runners.session.checkpoints_of_run`) and applies one edit family:

``identity``  the checkpoint unedited: must restore (a state the VM reached) and run on;
``targeted``  :data:`.targeted.TARGETED`, each breaking one documented consistency rule: restore must raise
              ``SnapshotError``; a restore that succeeds is the finding "restore exit 0 from an
              inconsistent snapshot";
``neutral``   :data:`.edits.NEUTRAL`, keeping every rule: must restore;
``random``    :func:`.edits.random_edit`, one to three random model edits;
``bytes``     byte mutations (:func:`generators.mutate.mutate_bytes`) of the decompressed body, re-packed.

For ``random`` and ``bytes`` anything but ``SnapshotError`` escaping decode/restore is a finding; every
restore that succeeds is run on under a fuel bound (:data:`FUEL` instructions: ``fuel`` is a verdict,
not a finding), and anything escaping that run is a finding too.  After every :data:`CLI_EVERY`-th
probe, the next refused snapshot also goes through the real command line (``python -m suite restore
SNAP --module M``): exit status 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import copy
import hashlib
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from vm.snapshot import SnapshotError

from .edits import NEUTRAL, Layout, random_edit
from .targeted import TARGETED

__all__ = ["CLI_EVERY", "FUEL", "SnapshotProbes", "base_checkpoint", "restore_and_run"]

#: instructions a restored run may execute before the probe calls it "fuel" and moves on
FUEL = 20_000
#: probes per base checkpoint (a checkpoint costs more than an edit)
EDITS_PER_BASE = 8
#: what restore may raise for a bad snapshot (a documented limit error of the restoring side, if it is
#: not a SnapshotError, belongs here too)
DOCUMENTED_RESTORE_ERRORS: Tuple[type, ...] = (SnapshotError,)
#: every this many probes one also goes through ``python -m suite restore`` (0: never)
CLI_EVERY = 50
FAMILIES = ("identity", "targeted", "targeted", "targeted", "neutral", "random", "random", "bytes", "bytes")


def base_checkpoint(rng: random.Random, pool: Any) -> Optional[Tuple[bytes, Any, str]]:
    """``(module bytes, State, origin)`` of a real checkpoint at a random k, or None when this draw
    gave no runnable invocation (a testsuite module that does not link, has no callable export...)."""
    from vm.api import load_module
    from vm.errors import WasmError
    from vm.snapshot import advance, checkpoint, start

    from .modules import bounded_instance, zero_args
    from .sources import generated_module, smith_module_from

    src = rng.choice(("own", "own", "testsuite", "testsuite", "smith"))
    args: Optional[List[Any]] = None
    export: Optional[str] = None
    if src == "own":
        wasm, export, args = generated_module(rng.randrange(1 << 32))
        where = "-"
    elif src == "smith":
        sm = smith_module_from(rng)
        if sm is None:
            return None
        wasm, where = sm, "-"
    else:
        got = pool.pick(rng, valid_only=True)
        if got is None:
            return None
        wasm, where = got
    try:
        lm = load_module(wasm)
    except WasmError:
        return None
    store, inst, _steps = bounded_instance(lm)
    if inst is None:
        return None
    funcs = [(ex.name, inst.funcs[ex.index]) for ex in lm.module.exports if ex.kind == "func"]
    funcs = [(name, f) for name, f in funcs if f.host is None and zero_args(f.type.params) is not None]
    if export is None:
        if not funcs:
            return None
        export, f = rng.choice(funcs)
        args = zero_args(f.type.params)
    f = inst.exports[export]
    k = rng.choice((0, 1, rng.randrange(200), rng.randrange(5000), FUEL))
    run = advance(store, start(store, f, list(args or [])), k)
    if run.status != "running" and run.count > 0 and rng.random() < 0.5:
        # it ended before k: checkpoint a running state of the same invocation too
        store, inst, _steps = bounded_instance(lm)
        k = max(0, run.count - 1 - rng.randrange(20))
        run = advance(store, start(store, inst.exports[export], list(args or [])), k)
    return wasm, checkpoint(store, run), f"{src}:{where}:{export}@{run.count}"


def restore_and_run(blob: bytes, modules: Dict[str, bytes]) -> str:
    """Decode, restore and run on under :data:`FUEL`: the run's status (``done``/``trapped``/``fuel``).
    ``SnapshotError`` propagates; so does anything else (the caller's finding unless it is one of
    :data:`DOCUMENTED_RESTORE_ERRORS`)."""
    from vm.snapshot import advance, decode, restore

    store, run = restore(decode(blob), modules)
    if run is None:
        return "store-only"
    advance(store, run, run.count + FUEL)
    return run.status if run.status != "running" else "fuel"


def cli_restore(blob: bytes, module: bytes, timeout: float = 120.0) -> Tuple[int, str]:
    """``python -m suite restore`` on the snapshot: ``(exit status, stderr)`` (-9 after a timeout)."""
    with tempfile.TemporaryDirectory(prefix="wcr-robust-") as d:
        snap, mod = os.path.join(d, "s.snap"), os.path.join(d, "m.wasm")
        with open(snap, "wb") as fh:
            fh.write(blob)
        with open(mod, "wb") as fh:
            fh.write(module)
        try:
            # run where this package is (a checkout or site-packages), so that the wcr under test is
            # this one; the file paths are absolute
            root = Path(__file__).resolve().parents[3]
            p = subprocess.run([sys.executable, "-m", "suite", "restore", snap, "--module", mod],
                               capture_output=True, timeout=timeout, cwd=str(root))
        except subprocess.TimeoutExpired:
            return -9, ""
    return p.returncode, p.stderr.decode("utf-8", "replace")


class SnapshotProbes:
    """The ``snapshots`` probe kind of :mod:`.runner`.  ``files``: the testsuite files to take modules
    from (default all); ``cli_every``: see :data:`CLI_EVERY`."""

    expected_errors = ()  # SnapshotError is a verdict of judge(), nothing may escape it

    def __init__(self, files: Optional[List[str]] = None, cli_every: int = CLI_EVERY, seed: int = 0):
        from .sources import Pool

        self.pool = Pool(files)
        self.cli_every = cli_every
        self.seed = seed
        self._base: Tuple[int, Optional[Tuple[bytes, Any, str]]] = (-1, None)
        self.cli_due = False

    def base(self, n: int) -> Tuple[bytes, Any, str]:
        b = n // EDITS_PER_BASE
        if self._base[0] != b:
            rng = random.Random(f"{self.seed}:base:{b}")
            got = None
            while got is None:
                got = base_checkpoint(rng, self.pool)
            self._base = (b, got)
        got = self._base[1]
        assert got is not None
        return got

    def make_input(self, rng: random.Random, n: int) -> Any:
        from generators.mutate import mutate_bytes
        from vm.snapshot import encode
        from vm.snapshot.codec import pack, unpack

        from .runner import Input

        wasm, state0, origin = self.base(n)
        modules = {hashlib.sha256(wasm).hexdigest(): wasm}
        family = rng.choice(FAMILIES)
        state = copy.deepcopy(state0)
        what: Optional[str] = "unedited"
        rule = ""
        if family in ("targeted", "neutral"):
            table = TARGETED if family == "targeted" else NEUTRAL
            layout = Layout(state, modules)
            names = sorted(table)
            rng.shuffle(names)
            what = None
            for rule in names:
                what = table[rule](state, layout, rng)
                if what is not None:
                    break
            if what is None:
                family, rule, what = "identity", "", "unedited (no edit applies)"
        elif family == "random":
            layout = Layout(state, modules)
            what = "; ".join(str(random_edit(state, layout, rng)) for _ in range(rng.choice((1, 1, 2, 3))))
        try:
            blob = encode(state)
        except SnapshotError as e:  # the edit cannot even be written (e.g. an i32 of 40 bits)
            blob, what = encode(state0), f"unencodable edit ({e}); unedited"
            family = "identity"
        if family == "bytes":
            body, how = mutate_bytes(unpack(blob), rng)
            blob, what = pack(body), f"body bytes: {how}"
        meta = {"family": family, "rule": rule, "edit": what, "source": origin.split(":", 1)[0],
                "cli": self.cli_every > 0 and n % self.cli_every == 0}
        return Input({"snapshot.snap": blob, "module.wasm": wasm}, f"{family}:{rule or '-'}:{origin}: {what}", meta)

    def judge(self, inp: Any) -> Dict[str, Any]:
        blob, wasm = inp.files["snapshot.snap"], inp.files["module.wasm"]
        fam, rule = inp.meta["family"], inp.meta["rule"]
        modules = {hashlib.sha256(wasm).hexdigest(): wasm}
        refused = ""
        try:
            status = restore_and_run(blob, modules)
        except DOCUMENTED_RESTORE_ERRORS as e:
            refused, status = f"{type(e).__name__}: {e}", "refused"
        out: Dict[str, Any] = {"verdict": f"{fam}:{status if status == 'refused' else 'restored'}", "finding": None,
                               "counts": {f"source:{inp.meta['source']}": 1}}
        if rule:  # per rule: targeted edits caught/missed, neutral ones accepted/refused
            word = ("caught" if refused else "missed") if fam == "targeted" else ("refused" if refused else "accepted")
            out["counts"][f"{fam}:{rule}:{word}"] = 1
        if fam == "targeted" and not refused:
            out["finding"] = f"restore exit 0 from an inconsistent snapshot ({rule}: {inp.meta['edit']}); run {status}"
        elif fam in ("identity", "neutral") and refused:
            out["finding"] = f"a consistent snapshot ({fam} {rule}: {inp.meta['edit']}) is refused: {refused}"
        self.cli_due = self.cli_due or bool(inp.meta.get("cli"))
        if self.cli_due and refused and not out["finding"]:  # the first refused probe from there on
            self.cli_due = False
            out["finding"] = self.check_cli(blob, wasm)
            out["counts"]["cli"] = 1
        return out

    def check_cli(self, blob: bytes, wasm: bytes) -> Optional[str]:
        """A refused snapshot through ``wcr restore``: exit 2, one line, no traceback."""
        code, err = cli_restore(blob, wasm)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        if code != 2 or len(lines) != 1 or "Traceback" in err:
            return f"wcr restore of a refused snapshot: exit {code}, stderr {err[:300]!r}"
        return None
