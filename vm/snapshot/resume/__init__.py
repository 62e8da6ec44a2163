"""Snapshot → *resume module*: a plain Wasm module that, instantiated in any runtime with the same
imports, *is the rest of the execution* when its export ``resume`` is called.

A native runtime cannot be handed our frames, so we hand it a program instead (ARCHITECTURE.md,
"Resume modules").  For a snapshot of one instance with frames F0..Fn::

    make_resume_module(state, {sha256_hex: module_bytes}) -> ResumeModule(bytes, module, manifest)
    run_resume_on_vm(resume) -> ResumeOutcome                   # the self-check on our own VM
    instance_final_state(inst) -> ResumeOutcome                 # the same view of a live instance

builds a copy of the original module where

* memories are declared with ``min`` = their current size and filled by active data segments
  (non-zero runs only); imported memories/tables/mutable globals are set by a prologue in ``resume``
  (grow, fill, ``memory.init``/``table.set``/``global.set``), because their size at instantiation is
  whatever the import provides;
* defined globals get the snapshot values as their initialisers; defined tables get ``min`` = their
  current size and one active element segment per run of non-null entries;
* original data/elem segments keep their indices: a dropped one becomes an *empty passive* segment
  (``memory.init``/``table.init`` then behave exactly like on a dropped segment: length 0 succeeds,
  anything else traps), a live passive one stays; declarative ones stay; an extra declarative segment
  declares every function the original could take a ``ref.func`` of (the originally-active segments no
  longer do);
* the original functions stay, unchanged, at their indices (tables, ``call_indirect``, ``ref.func`` keep
  working), the start function is removed (it ran), and one *specialized function* per frame is appended,
  the frame's function starting at its pc with its control structure rebuilt (:mod:`.frames` says how:
  blocks, the loop split, branch remapping, pending calls). Frame 0's specialized function (with the
  store prologue in front) is exported as ``resume``; a finished run resumes as its results, a trapped
  one as the same trap.

GC objects and exceptions (:mod:`.heap_part`): every struct/array a converted value reaches is rebuilt
once, into an immutable *helper global* (``struct.new``/``array.new_fixed``; cycles in two phases, set by
the prologue; long arrays by ``array.new_default`` + ``array.set``), exceptions by a throw caught into a
mutable ``exnref`` helper, host references as imported ``externref`` globals (``wcr_host``); helpers
come right after the imported globals, so the defined globals are renumbered once, at assembly.  A frame
inside a legacy ``try`` reopens it with its clauses; inside a legacy ``catch`` a ``rethrow`` of it throws
the caught exception's tag and payload (:mod:`.frames`).

Every memory, global and table of the original index spaces is exported for the oracle as
``wcr:mem:N``/``wcr:global:N``/``wcr:table:N`` unless the original exports it already (the manifest
records the name either way).  Instruction counts are not preserved (native runtimes do not count);
results, trap kinds, host calls (prints) and the final memories/globals/tables are.

Imports from another *Wasm* instance of the store (a spec script's ``register``-ed module): a
function whose body, and the bodies of the functions it calls directly, use no state of its instance
(no globals, memories, tables, segments, tags, ``ref.func``, indirect calls, imports) is *folded*:
copied in as a defined function.  Imports must come first, so the function index space is then
renumbered (kept imports, original definitions, copies, frames) consistently everywhere, references
to the import become references to the copy, and ``Manifest.funcs`` maps resume → original indices
(:func:`run_resume_on_vm` reports references in the original space).  Any other import from another
instance is refused ("multiple instances").

WASI programs (:mod:`.wasi_part`): the ``wasi_snapshot_preview1`` imports stay (the target provides
WASI), and ``resume`` first runs a prologue that recreates the snapshot's fd table by reopening every
open file and directory at its fd number and offset; ``Manifest.wasi`` says what the target must give the
program (the snapshot's files, preopens, args, env, the rest of stdin).

The phases, one file each: ``store_part`` (memories as data segments, globals, tables, segments, the
prologue for imports), ``heap_part`` (GC objects, exceptions, host references), ``frames`` (the specialized per-frame functions: control rebuilt, loops split,
branches remapped, pending calls chained), ``fold`` (functions of other instances), ``build`` (loading,
then the phases, then exports, declarations and encoding), ``selfcheck`` (running it on our VM), ``wasi_part`` (the fd-table prologue);
``common`` holds what they share.

What cannot be converted raises :class:`NotConvertible` with a short stable ``reason`` (callers count
them); nothing is guessed.
"""


from __future__ import annotations

from .build import make_resume_module
from .common import REASONS, RESUME_EXPORT, Manifest, NotConvertible, ResumeModule
from .heap_part import HOST_MODULE
from .selfcheck import ResumeOutcome, instance_final_state, run_resume_on_vm

__all__ = [
    "NotConvertible", "Manifest", "ResumeModule", "ResumeOutcome", "make_resume_module",
    "run_resume_on_vm", "instance_final_state", "REASONS", "RESUME_EXPORT", "HOST_MODULE",
]
