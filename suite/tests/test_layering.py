"""Layers import downward only and no two files import each other (ARCHITECTURE.md, "One home per
concept, layers import downward only").

``vm`` ← ``generators``, ``runners`` ← ``spec_tests`` ← ``reports`` ← ``suite``; ``generators`` and
``runners`` are siblings and do not know each other; inside ``vm``, the runtime (store, instances,
memories) never reaches up into the engines of ``vm/exec``.

Read with plain :mod:`ast`, never by importing, so a violation is found even in a file that does not
import cleanly.  What counts as an import: every ``import``/``from ... import`` anywhere in a file,
function-local ones included (a function-local import is a dependency that only hides from the reader),
relative imports resolved against the file's package, and a package's ``__init__.py`` is a file like any
other (``from . import x`` in ``pkg/a.py`` depends on ``pkg/__init__.py`` unless ``x`` is a submodule).
Each assertion lists every violation with its file names, so one run shows the whole picture.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("vm", "generators", "runners", "spec_tests", "reports", "suite")

#: files above vm/ longer than MAX_LINES, each with the one concept it holds (why it is still one file).
MAX_LINES = 500
LONG_FILES_ALLOWED: Dict[str, str] = {
    "generators/modules.py": "the typed module strategy: one program generator (_Gen) whose instruction "
                             "emitters share one typed operand/label state; split it when it grows new "
                             "state kinds (issue 9)",
    "spec_tests/runner.py": "the script command interpreter, one cmd_* per script command like the reference "
                            "interpreter's script/run.ml",
    "suite/tests/test_resume.py": "tests of resume modules (one converter, its cases)",
    "suite/tests/test_snapshot.py": "tests of checkpoint/restore of our VM (capture, codec, restore checks)",
}

Graph = Dict[str, Set[str]]  # file (relative path) -> files it imports


# ------------------------------------------------------------------------------------------- the graph
@cache
def modules() -> Dict[str, str]:
    """Dotted module name → relative file path, for every Python file of the project's packages."""
    out: Dict[str, str] = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            rel = path.relative_to(ROOT)
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = rel.as_posix()
    return out


def _package_of(rel: str) -> List[str]:
    """The package a file's relative imports start from (a package's ``__init__`` is its own package)."""
    parts = list(Path(rel).with_suffix("").parts)
    parts.pop()  # the module itself, or "__init__"
    return parts


def _resolve(name: str) -> Optional[str]:
    """The file of the longest project module that prefixes ``name`` (None: not the project's)."""
    mods = modules()
    parts = name.split(".")
    while parts:
        rel = mods.get(".".join(parts))
        if rel is not None:
            return rel
        parts.pop()
    return None


def imports_of(rel: str) -> Set[str]:
    """Project files that ``rel`` imports, anywhere in the file."""
    tree = ast.parse((ROOT / rel).read_text(encoding="utf-8"), filename=rel)
    found: Set[str] = set()
    for node in ast.walk(tree):
        targets: List[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package_of(rel)
                if node.level > 1:
                    base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # ``from pkg import sub`` imports the submodule when there is one, else a name of pkg
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules() else mod for a in node.names]
        for t in targets:
            target = _resolve(t)
            if target is not None and target != rel:
                found.add(target)
    return found


@cache
def graph() -> Graph:
    return {rel: imports_of(rel) for rel in modules().values()}


def _layer(rel: str) -> str:
    return rel.split("/", 1)[0]


def _edges_into(sources: Tuple[str, ...], forbidden: Tuple[str, ...]) -> List[str]:
    """``a.py -> b.py`` for every import from a file under ``sources`` into one under ``forbidden``
    (both: path prefixes)."""
    return sorted(f"{a} -> {b}" for a, bs in graph().items() if a.startswith(sources)
                  for b in bs if b.startswith(forbidden))


def _report(what: str, violations: List[str]) -> str:
    return f"{len(violations)} {what}:\n  " + "\n  ".join(violations)


# ------------------------------------------------------------------------------------------- the rules
def test_the_graph_sees_the_project() -> None:
    """Guard against a test that passes because it reads nothing."""
    g = graph()
    assert "vm/api.py" in g and "suite/cli.py" in g and "runners/native/__init__.py" in g
    assert any(b.startswith("vm/") for b in g["suite/commands/run.py"])


def test_vm_imports_only_vm() -> None:
    bad = sorted(f"{a} -> {b}" for a, bs in graph().items() if a.startswith("vm/")
                 for b in bs if not b.startswith("vm/"))
    assert not bad, _report("imports from vm/ into the layers above it", bad)


def test_runners_and_generators_are_siblings_below_spec_tests() -> None:
    bad = (_edges_into(("runners/", "generators/"), ("spec_tests/", "reports/", "suite/"))
           + _edges_into(("generators/",), ("runners/",))
           + _edges_into(("runners/",), ("generators/",)))
    assert not bad, _report("upward or sideways imports from runners/ or generators/", bad)


def test_spec_tests_import_neither_reports_nor_suite() -> None:
    bad = _edges_into(("spec_tests/",), ("reports/", "suite/"))
    assert not bad, _report("upward imports from spec_tests/", bad)


def test_reports_do_not_import_suite() -> None:
    bad = _edges_into(("reports/",), ("suite/",))
    assert not bad, _report("upward imports from reports/", bad)


def test_vm_runtime_does_not_import_vm_exec() -> None:
    bad = _edges_into(("vm/runtime/",), ("vm/exec/",))
    assert not bad, _report("imports from vm/runtime/ into vm/exec/", bad)


def test_no_import_cycles_between_files() -> None:
    cycles = [_describe_cycle(c) for c in strongly_connected(graph())]
    assert not cycles, _report("import cycles between files", cycles)


def test_files_above_vm_are_short() -> None:
    """Past ~500 lines a file usually holds more than one concept; an exception names its concept."""
    long = []
    for rel in graph():
        if _layer(rel) == "vm" or rel in LONG_FILES_ALLOWED:
            continue
        n = len((ROOT / rel).read_text(encoding="utf-8").splitlines())
        if n > MAX_LINES:
            long.append(f"{rel}: {n} lines")
    stale = sorted(rel for rel in LONG_FILES_ALLOWED if rel not in graph())
    assert not long, _report(f"files above vm/ over {MAX_LINES} lines (split, or allow-list with its concept)",
                             sorted(long))
    assert not stale, _report("allow-listed files that no longer exist", stale)


# ------------------------------------------------------------------------------------------- cycles
def strongly_connected(g: Graph) -> List[List[str]]:
    """Tarjan's algorithm (iterative: no recursion limit): the components with a cycle in them —
    more than one file, or a file that imports itself."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    on_stack: Set[str] = set()
    stack: List[str] = []
    out: List[List[str]] = []
    counter = 0
    for root in sorted(g):
        if root in index:
            continue
        work: List[Tuple[str, List[str]]] = [(root, sorted(g[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, todo = work[-1]
            if todo:
                w = todo.pop(0)
                if w not in g:
                    continue
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, sorted(g[w])))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1 or v in g[v]:
                    out.append(sorted(comp))
    return sorted(out)


def _describe_cycle(component: List[str]) -> str:
    """One concrete loop through the component (``a.py -> b.py -> a.py``), and its other files."""
    members = set(component)
    start = component[0]
    path = _path_back(start, members)
    rest = sorted(members - set(path))
    loop = " -> ".join(path + [start])
    return loop + (f"  (same cycle: {', '.join(rest)})" if rest else "")


def _path_back(start: str, members: Set[str]) -> List[str]:
    """Shortest path from ``start`` back to itself inside ``members`` (breadth first)."""
    g = graph()
    prev: Dict[str, str] = {}
    frontier = [start]
    seen = {start}
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(g[v] & members):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return list(reversed(path))
                if w not in seen:
                    seen.add(w)
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return [start]


def test_cycle_finder_on_a_known_graph() -> None:
    """The finder itself: a package ``__init__`` ↔ submodule loop, a three-file loop, a self-import, and
    a chain that is not a loop."""
    g: Graph = {"p/__init__.py": {"p/a.py"}, "p/a.py": {"p/__init__.py"},
                "x.py": {"y.py"}, "y.py": {"z.py"}, "z.py": {"x.py"},
                "s.py": {"s.py"}, "c1.py": {"c2.py"}, "c2.py": set()}
    assert strongly_connected(g) == [["p/__init__.py", "p/a.py"], ["s.py"], ["x.py", "y.py", "z.py"]]


def test_relative_imports_resolve_to_files() -> None:
    """``from .campaign import ...`` is a sibling file; absolute imports resolve to the longest module."""
    assert "suite/fuzz/campaign.py" in imports_of("suite/fuzz/selftest.py")
    assert {"vm/api.py", "suite/commands/__init__.py", "suite/commands/_io.py"} <= imports_of("suite/commands/run.py")
    assert all(not b.startswith(".") and (ROOT / b).is_file() for bs in graph().values() for b in bs)
