"""Differential checkpoint fuzzing (issue 5): trials (:mod:`.trial`), campaigns (:mod:`.campaign`), the
persistent Python-host worker (:mod:`.worker`) and the self-test of the suite's power (:mod:`.selftest`).

Kept import-free: :mod:`.worker` runs in bare interpreters that only have the standard library and vm/.
"""
