"""Feature probes for targets whose features are not declared (``cmd:`` targets without a list): one
tiny resume module per feature whose ``resume`` returns 42 only when the feature works, run through the
target like any restore (so the probe tests the whole path: wrapper, command line, reading back).

A probe that does not return 42 (refused, trapped, wrong) means "not supported"; the target then gets
modules with that feature as *not applicable*, never a verdict.  Results are cached per command line
(:func:`.process.cache_dir`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Dict, FrozenSet

from vm.snapshot.resume import Manifest

from .process import cache_dir
from .target import Target

#: every feature name targets declare (:class:`.target.Target`)
KNOWN_FEATURES = frozenset((
    "mvp", "mutable-globals", "sign-ext", "sat-trunc", "multi-value", "bulk-memory", "reference-types",
    "simd", "relaxed-simd", "tail-call", "extended-const", "multi-memory", "memory64", "function-references",
    "gc", "exception-tags", "exceptions", "legacy-exceptions", "host-references"))

_R = '(func (export "resume") (result i32) '
#: feature → module text (``resume`` returns 42 when the feature works); legacy exceptions and host
#: references are not probed (never declared by a probe)
PROBES: Dict[str, str] = {
    "mvp": _R + "(i32.add (i32.const 40) (i32.const 2)))",
    "mutable-globals": '(global $g (export "g") (mut i32) (i32.const 0)) ' + _R
                       + "(global.set $g (i32.const 42)) (global.get $g))",
    "sign-ext": _R + "(i32.extend8_s (i32.const 0x12a)))",
    "sat-trunc": _R + "(i32.trunc_sat_f32_s (f32.const 42.5)))",
    "multi-value": "(func $two (result i32 i32) (i32.const 40) (i32.const 2)) " + _R + "(i32.add (call $two)))",
    "bulk-memory": "(memory 1) " + _R + "(memory.fill (i32.const 100) (i32.const 42) (i32.const 4)) "
                   "(memory.copy (i32.const 200) (i32.const 100) (i32.const 4)) (i32.load8_u (i32.const 203)))",
    "reference-types": "(table 2 funcref) (elem declare func $f) (func $f) " + _R
                       + "(table.set (i32.const 1) (ref.func $f)) "
                       "(select (i32.const 0) (i32.const 42) (ref.is_null (table.get (i32.const 1)))))",
    "simd": _R + "(i32x4.extract_lane 1 (i32x4.add (v128.const i32x4 0 40 0 0) (v128.const i32x4 0 2 0 0))))",
    "relaxed-simd": _R + "(i32x4.extract_lane 0 (i32x4.relaxed_trunc_f32x4_s (v128.const f32x4 42 0 0 0))))",
    "tail-call": "(func $t (param i32) (result i32) (if (result i32) (local.get 0) (then (return_call $t "
                 "(i32.sub (local.get 0) (i32.const 1)))) (else (i32.const 42)))) " + _R
                 + "(call $t (i32.const 100000)))",
    "extended-const": "(global $g i32 (i32.add (i32.const 40) (i32.const 2))) " + _R + "(global.get $g))",
    "multi-memory": "(memory 1) (memory $b 1) " + _R + "(i32.store8 $b (i32.const 9) (i32.const 42)) "
                    "(i32.load8_u $b (i32.const 9)))",
    "memory64": "(memory $m i64 1) " + _R + "(i32.store8 $m (i64.const 9) (i32.const 42)) "
                "(i32.load8_u $m (i64.const 9)))",
    "function-references": "(type $f (func (result i32))) (elem declare func $c) (func $c (result i32) "
                           "(i32.const 42)) " + _R + "(call_ref $f (ref.func $c)))",
    "gc": "(type $s (struct (field i32))) " + _R + "(struct.get $s 0 (struct.new $s (i32.const 42))))",
    "exception-tags": "(tag $e) " + _R + "(if (i32.eqz (i32.const 42)) (then (throw $e))) (i32.const 42))",
    "exceptions": "(tag $e (param i32)) " + _R + "(block $h (result i32) (try_table (catch $e $h) "
                  "(throw $e (i32.const 42))) (i32.const 0)))",
}

PROBE_VERSION = "1"


def probe(target: Target, timeout: float = 20.0) -> FrozenSet[str]:
    """The features whose probe returns 42 on ``target`` (every probe runs, ``target.supports`` is
    not asked: that is what is being found out)."""
    from .adapter import wat

    found = set()
    for feat, body in PROBES.items():
        wasm = wat(f"(module {body})")
        man = Manifest(entry="resume", memories={}, globals={}, tables={}, results=("i32",), imports=[])
        out = target.run(wasm, man, timeout)
        if out.results == [("i32", 42)] and out.trap is None and not out.inconclusive:
            found.add(feat)
    return frozenset(found)


def probed_features(target: Target, key: str, timeout: float = 20.0) -> FrozenSet[str]:
    """:func:`probe`, cached under ``key`` (e.g. the command line) in the cache folder."""
    digest = hashlib.sha256(f"{PROBE_VERSION}\0{key}".encode()).hexdigest()[:24]
    path = cache_dir() / f"features-{digest}.json"
    try:
        data = json.loads(path.read_text())
        if isinstance(data, list) and all(isinstance(x, str) for x in data):
            return frozenset(data) & KNOWN_FEATURES
    except (OSError, ValueError):
        pass
    found = probe(target, timeout)
    path.write_text(json.dumps(sorted(found)))
    return found
