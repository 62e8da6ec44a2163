"""The error kinds of the VM.

Each carries the spec's wording as its message, because the spec runner matches messages the way
the reference interpreter does: the expected text must be a prefix of ours.
"""

from __future__ import annotations

from typing import Optional, Tuple

#: The closed trap vocabulary: every trap, exhaustion or escaping exception the VM reports starts with
#: exactly one of these (the reference interpreter's wording; the spec runner matches by prefix, so a
#: detail may follow: ``"undefined element 3"``).  Native targets map their own reports into it in their
#: adapters; snapshots and outcomes carry only these kinds (:func:`trap_kind`).  A new proposal that adds
#: a trap adds it here, and nowhere else.
#: the kind of a Wasm exception that escaped an invocation (:class:`WasmException`)
UNCAUGHT_EXCEPTION = "uncaught exception"
#: a WASI program ended itself with ``proc_exit(code)`` (:class:`ProcExit`): the invocation ends the way a
#: trap ends it (no frames are left to resume), with this kind; the exit code is WASI state
#: (``WasiState.exit_code``, an outcome's ``wasi.exit_code``), compared with the program's output and files
PROC_EXIT = "exit"
TRAP_KINDS: Tuple[str, ...] = (
    "unreachable",
    "integer divide by zero",
    "integer overflow",
    "invalid conversion to integer",
    "out of bounds memory access",
    "out of bounds table access",
    "undefined element",
    "uninitialized element",
    "indirect call type mismatch",
    "null function reference",
    "null reference",
    "null structure reference",
    "null array reference",
    "null i31 reference",
    "null exception reference",
    "out of bounds array access",
    "cast failure",
    "call stack exhausted",
    "out of memory",
    UNCAUGHT_EXCEPTION,
    PROC_EXIT,
)


#: The closed vocabulary of *stops*: an invocation ended by a limit the runner set (``--fuel`` N retired
#: instructions, ``--timeout`` S seconds of wall time), not by the program.  These are not Wasm traps: the
#: spec knows neither fuel nor clocks, so a stop never appears as an outcome's ``trap`` (nor in a
#: snapshot) but in its own field, ``stopped``; a comparison with a stopped side says nothing about C/R
#: and is inconclusive (:func:`runners.oracle.compare_stopped`).
FUEL_EXHAUSTED = "fuel exhausted"
TIMEOUT = "timeout"
STOP_KINDS: Tuple[str, ...] = (FUEL_EXHAUSTED, TIMEOUT)


def stop_message(kind: str, instructions: Optional[int], seconds: Optional[float] = None) -> str:
    """The one line that says which limit stopped a run and where: ``"fuel exhausted after 1000
    instructions"``, ``"timeout after 1 s (123456 instructions)"`` (every command prints this wording;
    ``instructions`` is None for a native engine, which does not count)."""
    count = f"{instructions} instructions" if instructions is not None else ""
    if kind == TIMEOUT:
        after = f" after {seconds:g} s" if seconds is not None else ""
        return f"timeout{after}" + (f" ({count})" if count else "")
    return f"fuel exhausted after {count or 'an unknown number of instructions'}"


def trap_kind(message: str) -> Optional[str]:
    """The kind a trap message belongs to (its longest :data:`TRAP_KINDS` prefix), or None when it is
    not a trap of the vocabulary (free text must never pass for a trap kind)."""
    best = None
    for kind in TRAP_KINDS:
        if (message == kind or message.startswith(kind + " ")) and (best is None or len(kind) > len(best)):
            best = kind
    return best


class WasmError(Exception):
    """Base of every error the VM raises on purpose (anything else is a bug in wcr)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class MalformedModule(WasmError):
    """The binary cannot be decoded.  ``offset`` is the byte offset in the module where it failed."""

    def __init__(self, message: str, offset: Optional[int] = None):
        super().__init__(message)
        self.offset = offset

    def __str__(self) -> str:
        if self.offset is None:
            return self.message
        return f"{self.message} (at byte offset {self.offset:#x})"


class Unsupported(WasmError):
    """The module (or a command) uses a Wasm feature that wcr does not implement yet.

    ``feature`` is a short proposal name such as ``"simd"``, ``"gc"``, ``"exceptions"``; the spec
    runner reports these as *skipped* and lists the features that caused them.
    """

    def __init__(self, feature: str, detail: str = ""):
        super().__init__(f"unsupported feature {feature}" + (f": {detail}" if detail else ""))
        self.feature = feature


class InvalidModule(WasmError):
    """The module decodes but does not validate.  ``func``/``offset`` locate it when known."""

    def __init__(self, message: str, func: Optional[int] = None, offset: Optional[int] = None):
        super().__init__(message)
        self.func = func
        self.offset = offset

    def __str__(self) -> str:
        where = []
        if self.func is not None:
            where.append(f"func {self.func}")
        if self.offset is not None:
            where.append(f"byte offset {self.offset:#x}")
        return self.message + (f" ({', '.join(where)})" if where else "")


class LinkError(WasmError):
    """Instantiation failed while resolving imports (``assert_unlinkable``)."""


class ResourceLimit(WasmError):
    """The store's limits (:class:`vm.runtime.limits.StoreLimits`, the runner's or restorer's settings)
    do not allow an allocation: instantiating a module whose memories or tables are larger, or
    restoring a snapshot that holds more.  Not a trap: the module is fine, the settings are too
    small for it (the CLI reports it with exit status 2 and names the flag to raise)."""


class Trap(WasmError):
    """A Wasm trap.  ``kind`` is the spec's message, e.g. ``"integer divide by zero"``."""

    @property
    def kind(self) -> str:
        return self.message


class Exhaustion(Trap):
    """Resource exhaustion (``assert_exhaustion``): ``"call stack exhausted"``."""


class ProcExit(Trap):
    """``proc_exit(code)`` of WASI preview 1 (:mod:`vm.runtime.wasi`): unwinds the invocation like a trap
    of kind :data:`PROC_EXIT`; ``code`` is the program's exit status (also kept in the WASI state)."""

    def __init__(self, code: int):
        super().__init__(PROC_EXIT)
        self.code = code


class WasmException(WasmError):
    """A Wasm exception unwinding the stack: raised by ``throw``/``throw_ref``/``rethrow``, caught by the
    engine's handler search, and escaping an invocation when no handler takes it (``assert_exception``;
    an outcome's trap kind ``uncaught exception``).  ``exn`` is the exception object
    (:class:`vm.runtime.heap.ExnInst`: tag instance + payload)."""

    def __init__(self, exn):
        super().__init__(UNCAUGHT_EXCEPTION)
        self.exn = exn

    @property
    def tag(self):
        return self.exn.tag

    @property
    def payload(self):
        return self.exn.payload


class Stopped(WasmError):
    """An invocation stopped by a limit (:data:`STOP_KINDS`): ``kind``, ``instructions`` retired so far.
    Deliberately not a :class:`Trap`: a script's ``assert_trap`` must not pass because the clock ran out."""

    def __init__(self, kind: str, instructions: int, seconds: Optional[float] = None):
        super().__init__(stop_message(kind, instructions, seconds))
        self.kind = kind
        self.instructions = instructions
