"""Targets the user defines: ``cmd:`` specs, the ``[targets]`` table of a config file, and Python adapters
from the ``wcr.targets`` entry-point group.

* ``cmd:NAME=COMMAND`` or ``cmd:NAME[FEATURE,...]=COMMAND`` (e.g. ``--restore-on 'cmd:myrt[bulk-memory,
  simd]=myrt run {wasm}'``): a :class:`CmdTarget` running COMMAND (placeholders: :mod:`.command`).  With
  a feature list the features are declared; without one they are probed once (:mod:`.probes`) and cached.
* a config file (INI, stdlib :mod:`configparser`; ``--config PATH``, else ``wcr.ini`` in the current
  directory): ``[targets]`` maps names to commands, ``[target.NAME]`` may say ``features = a, b`` (and
  ``features = probe``, the default).  The names are then used like built-in ones (``--restore-on myrt``).
* the entry-point group ``wcr.targets``: each entry point loads a callable (usually a
  :class:`runners.native.target.Target` subclass) that returns a Target; its ``name`` is how it is chosen.

Every mistake (unknown feature, no ``{wasm}``, bad INI, a name that shadows a built-in, a plugin that
does not load or returns something else) is a ``ValueError`` whose text names the file/spec and the
problem; the CLI prints it as one line and exits 2.
"""

from __future__ import annotations

import configparser
import os
import re
from pathlib import Path
from typing import Any, Dict, FrozenSet, List, Optional

from .command import SPEC_WORDS, CommandTarget, Invocation, check_template, expand
from .probes import KNOWN_FEATURES, probed_features
from .target import Target

#: the environment variable ``--config`` sets (so restores in child processes see the same file)
CONFIG_ENV = "WCR_CONFIG"
CONFIG_NAME = "wcr.ini"
ENTRY_POINT_GROUP = "wcr.targets"
_NAME = re.compile(r"[A-Za-z0-9_.-]+\Z")
_SPEC = re.compile(r"cmd:([^=\[]*)(?:\[([^\]]*)\])?=(.*)\Z", re.S)


class CmdTarget(CommandTarget):
    """A runtime given by a command template; features declared, or probed on first use; traps read in
    the spec's words (:data:`.command.SPEC_WORDS`), anything else is inconclusive."""

    trap_table = SPEC_WORDS

    def __init__(self, name: str, command: str, features: Optional[FrozenSet[str]] = None):
        super().__init__()
        self.name = name
        self.template = command
        self.words = check_template(command)
        self._features = features

    @property
    def features(self) -> FrozenSet[str]:  # probed on first use (then cached on disk)
        if self._features is None:
            ok, _ = self.available()
            self._features = frozenset()  # while probing (the probes' manifests need nothing of it)
            self._features = probed_features(self, self.template) if ok else frozenset()
        return self._features

    @features.setter
    def features(self, value: FrozenSet[str]) -> None:
        self._features = frozenset(value)

    def _available(self) -> tuple:
        import shutil

        exe = self.words[0]
        if "{" in exe or shutil.which(exe) is None:
            return False, f"{exe!r} (from {self.template!r}) is not an executable on PATH"
        return True, ""

    def version(self) -> str:
        return f"command: {self.template}"

    def command(self, path: str, inv: Invocation) -> List[str]:
        return expand(self.words, path, inv)


def parse_features(text: str, where: str) -> Optional[FrozenSet[str]]:
    """``a, b`` → the set (``mvp`` always in); ``probe`` or empty → None (probe); unknown → ValueError."""
    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items or items == ["probe"]:
        return None
    bad = sorted(set(items) - KNOWN_FEATURES)
    if bad:
        raise ValueError(f"{where}: unknown feature {bad[0]!r} (known: {', '.join(sorted(KNOWN_FEATURES))})")
    return frozenset(items) | {"mvp"}


def _check_name(name: str, where: str, builtin: List[str]) -> str:
    if not _NAME.match(name):
        raise ValueError(f"{where}: target name {name!r} must be letters, digits, '_', '.', '-'")
    if name in builtin or name in ("inproc", "pypy3"):
        raise ValueError(f"{where}: target name {name!r} is taken by a built-in target or host")
    return name


def parse_cmd(spec: str, builtin: List[str]) -> CmdTarget:
    """A ``cmd:`` spec (see the module docstring) → its target; ``ValueError`` naming the problem."""
    m = _SPEC.match(spec.strip())
    if not m:
        raise ValueError(f"{spec!r}: a command target is cmd:NAME=COMMAND or cmd:NAME[FEATURE,...]=COMMAND")
    name = _check_name(m.group(1).strip(), spec, builtin)
    feats = parse_features(m.group(2) or "", spec)
    return CmdTarget(name, m.group(3).strip(), feats)


def config_path() -> Optional[Path]:
    """The config file in effect: ``$WCR_CONFIG`` (set by ``--config``), else ``./wcr.ini`` if present."""
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    here = Path.cwd() / CONFIG_NAME
    return here if here.is_file() else None


def load_config(path: Path, builtin: List[str]) -> List[CmdTarget]:
    """The targets of a config file (see the module docstring); ``ValueError`` naming file and problem."""
    cp = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    cp.optionxform = str  # type: ignore[assignment,method-assign]  # names are case-sensitive
    try:
        with open(path, encoding="utf-8") as f:
            cp.read_file(f)
    except OSError as e:
        raise ValueError(f"config {path}: {e.strerror or e}") from None
    except (configparser.Error, UnicodeDecodeError) as e:
        raise ValueError(f"config {path}: {str(e).splitlines()[0]}") from None
    out: List[CmdTarget] = []
    names = list(cp["targets"]) if cp.has_section("targets") else []
    for sec in cp.sections():
        if sec != "targets" and not (sec.startswith("target.") and sec[7:] in names):
            raise ValueError(f"config {path}: section [{sec}] is neither [targets] nor [target.NAME] of a "
                             "name in [targets]")
        extra = sorted(set(cp[sec]) - {"features"}) if sec != "targets" else []
        if extra:
            raise ValueError(f"config {path}: [{sec}] has an unknown key {extra[0]!r} (known: features)")
    for name in names:
        where = f"config {path}: [targets] {name}"
        _check_name(name, where, builtin)
        sec = f"target.{name}"
        feats = parse_features(cp[sec].get("features", "") if cp.has_section(sec) else "", f"config {path}: [{sec}]")
        try:
            out.append(CmdTarget(name, cp["targets"][name], feats))
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
    return out


def plugin_targets() -> List[Target]:
    """One target per entry point of the ``wcr.targets`` group (installed Python adapters)."""
    from importlib.metadata import entry_points

    eps: Any = entry_points()
    group = eps.select(group=ENTRY_POINT_GROUP) if hasattr(eps, "select") else eps.get(ENTRY_POINT_GROUP, [])
    out: List[Target] = []
    for ep in group:
        try:
            made = ep.load()()
        except Exception as e:
            raise ValueError(f"entry point {ep.name} = {ep.value} ({ENTRY_POINT_GROUP}) does not load: "
                             f"{type(e).__name__}: {e}") from None
        if not isinstance(made, Target):
            raise ValueError(f"entry point {ep.name} = {ep.value} ({ENTRY_POINT_GROUP}) returned "
                             f"{type(made).__name__}, not a runners.native.Target")
        out.append(made)
    return out


def user_targets(builtin: List[str]) -> List[Target]:
    """Entry-point targets, then the config file's (each name once; a clash is a ValueError)."""
    out: List[Target] = list(plugin_targets())
    path = config_path()
    if path is not None:
        out += load_config(path, builtin)
    seen: Dict[str, Target] = {}
    for t in out:
        if t.name in seen or t.name in builtin:
            raise ValueError(f"target name {t.name!r} is defined twice (built-in, entry point or config file)")
        seen[t.name] = t
    return out
