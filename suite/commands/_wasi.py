"""The WASI flags of the commands that run a WASI program, their checks, and how such a run ends.

``--wasi``, ``--dir HOST_DIR[::GUEST_DIR]``, ``--env K=V``, ``--real-clock``, ``--seed N``,
``--stdin FILE`` and the program's arguments after ``--`` mean the same on every command that takes them
(``wcr run`` first; ``wcr migrate`` and the WASI targets build their :class:`vm.runtime.wasi.WasiConfig`
through :func:`wasi_config` too), so one place checks them and words their errors.

A run ends like ``wasmtime run``: the program's exit status is ours (``proc_exit(code)``; 0 when
``_start`` returns; a status outside WASI's [0, 126) is a trap, as in wasmtime), its stdout/stderr were streamed to ours as it wrote them, the preopened host
directories hold what the program left in them; a trap prints one line and exits with
:data:`EXIT_TRAP` (134, wasmtime's status for a trap: 128 + SIGABRT).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Dict, List, Optional, Tuple

from suite.commands import EXIT_STOPPED, UsageError
from vm.errors import stop_message
from vm.runtime.wasi import WasiConfig, WasiState

__all__ = ["EXIT_TRAP", "add_wasi_flags", "echo", "parse_dir", "parse_env", "wasi_config", "wasi_exit",
           "wasi_state"]

#: the exit status of a WASI program that trapped (as ``wasmtime run``: 128 + SIGABRT)
EXIT_TRAP = 134
#: exit statuses a program may give (WASI's range; ``proc_exit`` of another is a trap in ``wasmtime run``)
MAX_EXIT = 126


def add_wasi_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("WASI (run a WASI command like `wasmtime run`; program arguments after --)")
    g.add_argument("--wasi", action="store_true",
                   help="provide wasi_snapshot_preview1 and run _start (or --invoke NAME): the program's "
                        "stdout/stderr are ours, its exit code is ours (a trap: 134)")
    g.add_argument("--dir", action="append", default=[], metavar="HOST_DIR[::GUEST_DIR]",
                   help="preopen a copy of HOST_DIR as GUEST_DIR (default: HOST_DIR as given); what the "
                        "program leaves there is written back at the end")
    g.add_argument("--env", action="append", default=[], metavar="K=V", help="an environment variable")
    g.add_argument("--real-clock", action="store_true",
                   help="read the host's clocks (default: a virtual clock, the same in every run)")
    g.add_argument("--seed", type=int, default=0, metavar="N", help="seed of random_get's stream (default 0)")
    g.add_argument("--stdin", metavar="FILE", help="the program's stdin ('-': ours; default: empty)")
    g.add_argument("--json", action="store_true",
                   help="print the outcome JSON (with its \"wasi\" key) instead of the program's output")
    p.set_defaults(takes_program_args=True, program_args=[])  # suite.cli puts what follows -- there


def parse_dir(text: str) -> Tuple[str, str]:
    """``HOST[::GUEST]`` → (guest path, host path); the host directory must exist."""
    host, sep, guest = text.partition("::")
    if not host or (sep and not guest):
        raise UsageError(f"--dir {text!r}: expected HOST_DIR or HOST_DIR::GUEST_DIR")
    if not os.path.isdir(host):
        raise UsageError(f"--dir {text!r}: {host} is not a directory")
    return (guest if sep else host), host


def parse_env(text: str) -> Tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(f"--env {text!r}: expected NAME=VALUE")
    return key, value


def wasi_config(args: argparse.Namespace, program: str, argv: List[str]) -> WasiConfig:
    """The configuration the WASI flags describe; ``program`` is argv[0] (as ``wasmtime run`` does)."""
    if not args.wasi:
        for flag, value in (("--dir", args.dir), ("--env", args.env), ("--real-clock", args.real_clock),
                            ("--stdin", args.stdin), ("--json", args.json), ("--seed", args.seed),
                            ("arguments after --", argv)):
            if value:
                raise UsageError(f"{flag} needs --wasi")
        return WasiConfig()
    dirs: List[Tuple[str, Optional[str]]] = [parse_dir(d) for d in args.dir]
    guests = [g for g, _ in dirs]
    if len(set(guests)) != len(guests):
        raise UsageError(f"--dir: a guest directory is given twice ({', '.join(sorted(guests))})")
    stdin = b""
    if args.stdin == "-":
        stdin = sys.stdin.buffer.read()
    elif args.stdin is not None:
        try:
            with open(args.stdin, "rb") as f:
                stdin = f.read()
        except OSError as e:
            raise UsageError(f"--stdin {args.stdin}: {e.strerror or e}") from None
    return WasiConfig([program, *argv], [parse_env(e) for e in args.env], dirs, stdin, args.real_clock, args.seed)


def wasi_state(config: WasiConfig, limits: Any, stream: bool) -> WasiState:
    """A fresh state (host directories loaded within ``limits``); ``stream``: echo the program's
    output to ours as it writes it."""
    st = WasiState.start(config, limits)
    if stream:
        st.echo = echo
    return st


def echo(fd: int, data: bytes) -> None:
    """Write the program's bytes to our stdout (fd 1) or stderr, as they come."""
    out = sys.stdout if fd == 1 else sys.stderr
    out.flush()
    raw = getattr(out, "buffer", None)
    if raw is not None:
        raw.write(data)
        raw.flush()
    else:
        out.write(data.decode("utf-8", "replace"))
        out.flush()


def wasi_exit(st: WasiState, out: Dict[str, Any], seconds: Optional[float]) -> int:
    """The exit status of a finished WASI run (the host directories are written back first):
    the program's code; a trap (or an exit status of :data:`MAX_EXIT` or more, which wasmtime refuses
    with a trap) → one line and :data:`EXIT_TRAP`; a stop → one line and
    :data:`~suite.commands.EXIT_STOPPED`."""
    st.write_back()
    if out.get("stopped"):
        print(f"wcr: {stop_message(out['stopped'], out.get('instructions'), seconds)}", file=sys.stderr)
        return EXIT_STOPPED
    if st.exit_code is not None and st.exit_code < MAX_EXIT:
        return st.exit_code
    if st.exit_code is not None:  # wasmtime refuses these with a trap
        print(f"wcr: the program exited with status {st.exit_code}, outside [0, {MAX_EXIT})", file=sys.stderr)
        return EXIT_TRAP
    if out.get("trap"):
        print(f"wcr: the program trapped: {out['trap']}", file=sys.stderr)
        return EXIT_TRAP
    return 0
