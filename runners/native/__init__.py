"""Native targets: real WebAssembly runtimes that run a *resume module* and report what happened.

A resume module (made by :mod:`vm.snapshot.resume`) is a plain Wasm module that imports what the original
module imported (in practice the ``spectest`` host module) and exports ``resume``, a function without
parameters whose results are the rest of the execution's results, plus the memories/globals/tables its
:class:`vm.snapshot.resume.Manifest` names, so that the final state can be read back.  Each
:class:`Target` runs such a module on one runtime and returns a :class:`NativeOutcome` in wcr's own
representation, which the oracle compares against the uninterrupted run.

Why bit-exactness needs care: runtimes hand floats to their host language as native floats, and some
conversions quiet signalling NaNs (wasmtime-py does it for f32, JS may too).  The wasmtime, v8 and
wabt targets therefore never let a float cross into the host: a small *shim* module in front of the
resume module turns every print's float arguments into integers (``i32.reinterpret_f32``), and a
*reader* module behind it calls ``resume`` and returns/prints results and globals as integer bits
(:mod:`.adapter`).  The wasm2c harness reads bits with ``memcpy``.  Only wasm3 (no module linking) reads
f32/f64 through Python floats: its outcomes say ``nan_exact=False`` so the oracle applies the NaN rule.

One concept per file: :mod:`.target` (the interface), :mod:`.registry` (which targets exist),
:mod:`.introspect` (a module's imports/exports), :mod:`.rewrite` (binary rewrites), :mod:`.adapter`
(shim/reader), :mod:`.process` (bounded subprocesses and servers), :mod:`.features` (what a module
needs), :mod:`.restorer` (targets as restorers); one file per runtime.  This package file only
re-exports the public API: :class:`Target`, :class:`NativeOutcome`, :data:`DEFAULT_TIMEOUT`,
:func:`all_targets`, :func:`get_target`, :func:`describe`, :func:`format_describe`.
"""

from __future__ import annotations

from .registry import all_targets, describe, format_describe, get_target
from .target import DEFAULT_TIMEOUT, NativeOutcome, Target

__all__ = ["DEFAULT_TIMEOUT", "NativeOutcome", "Target", "all_targets", "describe", "format_describe", "get_target"]
