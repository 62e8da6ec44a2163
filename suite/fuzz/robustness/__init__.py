"""Robustness probes (issue 10): hostile modules and checksum-valid hostile snapshots, ``wcr robustness``.

One file per concept: :mod:`.runner` (probes in a worker process, each bounded in wall time; findings
on disk; the summary), :mod:`.modules` (our decode + validate verdict against ``wasm-tools validate``,
accepted modules run under a fuel bound), :mod:`.snapshots` (real checkpoints, edited, re-encoded,
restored), :mod:`.edits` (the model-level edits: targeted per consistency rule, neutral, random),
:mod:`.sources` (testsuite, wasm-smith and generator modules).  The byte-level mutators live with the
other generators (:mod:`generators.mutate`).
"""
