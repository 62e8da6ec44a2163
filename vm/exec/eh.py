"""Exception handling (``throw``, ``throw_ref``, ``try_table``; legacy ``try``/``catch``/``delegate``/
``rethrow``) for the reference engine.

Contract with :func:`vm.exec.engine.compile_function`: ``OPS[op](machine, inst, imm, i, branch)`` returns
the ``(handler, arg)`` pair of instruction ``i``.  A throwing handler raises
:class:`vm.errors.WasmException` carrying a :class:`vm.runtime.heap.ExnInst`; the engine's run loop
catches it and calls :func:`unwind`, which searches the handlers of the frames from the top (the
validator's control metadata at each frame's pc) and moves the thread to the handler, or reports that
the exception escapes the invocation.

Why the handler tables live in the compiled code: ``try_table`` and ``try`` execute like ``block`` (their
handler ignores its argument), so their ``arg`` slot is free to hold what :func:`unwind` needs, resolved
once at compile time like every branch target — a ``try_table``'s clauses as ``(tag or None, with exnref,
branch pair)`` (the branch pair is exactly ``br`` to the clause's label), a legacy ``try``'s catches as
``(tag or None, index of the catch instruction)``, or the label of its ``delegate``.  Unwinding then needs
only ``info.controls[pc]`` (which blocks enclose the throwing instruction or pending call) and these tables.

Counting (docs/execution-model.md): ``try_table``/``try`` count like ``block``; ``throw``/``throw_ref``/
``rethrow`` count once (the run loop counts the instruction that raised); the transfer to a handler counts
nothing: a ``try_table`` clause continues where ``br`` to its label would, a legacy ``catch`` at the
instruction after the ``catch``/``catch_all``; ``catch``/``catch_all`` reached from the code before them
count and jump after the ``try``'s ``end`` (like ``else``); ``delegate`` reached normally counts like ``end``.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

from ..errors import ResourceLimit, Trap, WasmException
from ..runtime.heap import ExnInst, new_exn
from .gc import oom

__all__ = ["OPS", "Rethrow", "unwind"]


class Rethrow(WasmException):
    """Legacy ``rethrow``: raised by its handler, which cannot see the frame; :func:`unwind` looks the
    exception up in the frame's :attr:`~vm.exec.engine.Frame.caught` entry of the ``try`` at
    ``try_index``, and what escapes is an ordinary :class:`WasmException` with that exception."""

    def __init__(self, try_index: int):
        super().__init__(None)
        self.try_index = try_index


# ------------------------------------------------------------------------------------------ handlers
def _h_next(st, lc, a, pc):
    return pc + 1


def _h_jump(st, lc, a, pc):
    return a


def _h_throw(st, lc, a, pc):
    tag, n, quota = a
    if n:
        payload = st[-n:]
        del st[-n:]
    else:
        payload = []
    try:
        exn = new_exn(quota, tag, payload)
    except ResourceLimit as e:
        raise oom(e) from None
    raise WasmException(exn)


def _h_throw_ref(st, lc, a, pc):
    exn = st.pop()
    if exn is None:
        raise Trap("null exception reference")
    raise WasmException(exn)


def _h_rethrow(st, lc, a, pc):
    raise Rethrow(a)


# ------------------------------------------------------------------------------------------ compilers
def _throw(m: Any, inst: Any, imm: Any, i: int, branch: Callable) -> Tuple[Callable, Any]:
    tag = inst.tags[imm]
    return _h_throw, (tag, len(tag.type.params), m.store.quota)


def _throw_ref(m: Any, inst: Any, imm: Any, i: int, branch: Callable) -> Tuple[Callable, Any]:
    return _h_throw_ref, None


def _try_table(m: Any, inst: Any, imm: Any, i: int, branch: Callable) -> Tuple[Callable, Any]:
    """Executes like ``block``; ``arg`` = the clauses ``(tag or None, pushes exnref, branch pair)``, the
    label of each resolved in the context *outside* the ``try_table`` (as the validator reads it)."""
    _bt, catches = imm
    clauses = tuple(
        (inst.tags[c.tag] if c.kind in ("catch", "catch_ref") else None, c.kind.endswith("_ref"),
         branch(i, c.label))
        for c in catches
    )
    return _h_next, clauses


def _try(m: Any, inst: Any, imm: Any, i: int, branch: Callable) -> Tuple[Callable, Any]:
    """Executes like ``block``; ``arg`` = the label of its ``delegate`` (an int), or its catches
    ``(tag or None, index of the catch/catch_all)`` in order."""
    f = _func_of(m, inst, i)
    body, info = f.func.body, f.info
    end = info.block_end[i]
    if body[end].op == "delegate":
        return _h_next, int(body[end].imm)
    catches = tuple(
        (inst.tags[body[c].imm] if body[c].op == "catch" else None, c) for c in info.catches.get(i, ())
    )
    return _h_next, catches


def _catch(m: Any, inst: Any, imm: Any, i: int, branch: Callable) -> Tuple[Callable, Any]:
    """Reached from the code before it (the try body or a previous catch block): like ``else``."""
    f = _func_of(m, inst, i)
    try_idx = f.info.controls[i][-1].start
    return _h_jump, f.info.block_end[try_idx] + 1


def _delegate(m: Any, inst: Any, imm: Any, i: int, branch: Callable) -> Tuple[Callable, Any]:
    return _h_next, None


def _rethrow(m: Any, inst: Any, imm: Any, i: int, branch: Callable) -> Tuple[Callable, Any]:
    f = _func_of(m, inst, i)
    return _h_rethrow, f.info.controls[i][-1 - imm].start


def _func_of(m: Any, inst: Any, i: int) -> Any:
    """The function being compiled (the compiler's hook passes the machine, not the function)."""
    f = m.compiling
    assert f is not None and f.module is inst and i < len(f.func.body)
    return f


OPS: Dict[str, Callable[..., Any]] = {
    "throw": _throw,
    "throw_ref": _throw_ref,
    "try_table": _try_table,
    "try": _try,
    "catch": _catch,
    "catch_all": _catch,
    "delegate": _delegate,
    "rethrow": _rethrow,
}


# ------------------------------------------------------------------------------------------ unwinding
def unwind(th: Any, e: WasmException) -> Optional[WasmException]:
    """Move thread ``th`` to the handler of the exception ``e`` raised at the top frame's ``pc``: frames
    above the handler's are popped, its operand stack is cut to the handler label's height, the payload
    (and exnref) pushed, its ``pc`` set to where the handler continues (a clause that targets the
    function's label returns from it, possibly ending the thread); then None.  When no frame of this
    invocation (``th.base`` and above) catches it, nothing changes and the result is the
    :class:`WasmException` to raise out of the run (``e``, or for a rethrow one with the caught exception)."""
    frames: List[Any] = th.frames
    if isinstance(e, Rethrow):
        e = WasmException(frames[-1].caught[e.try_index])
    exn = e.exn
    top = len(frames) - 1
    for k in range(top, th.base - 1, -1):
        frame = frames[k]
        if k == top and frame.func.func.body[frame.pc].op.startswith("return_call"):
            continue  # a host callee of a tail call threw: this frame was already replaced
        found = _search(frame, exn)
        if found is not None:
            del frames[k + 1:]
            _transfer(th, frame, exn, found)
            return None
    return e


def _search(frame: Any, exn: ExnInst) -> Any:
    """The handler of ``frame`` that catches ``exn`` thrown at ``frame.pc``: ``(ctl, clause)`` of a
    ``try_table`` or ``(ctl, catch index)`` of a legacy ``try``; None when the exception leaves the frame."""
    ctl = frame.func.info.controls[frame.pc]
    code = frame.code
    tag = exn.tag
    j = len(ctl) - 1
    while j > 0:  # entry 0 is the function itself
        c = ctl[j]
        kind = c.kind
        if kind == "try_table":
            for clause in code[c.start][1]:
                if clause[0] is None or clause[0] is tag:
                    return c, clause
        elif kind == "try":
            handlers = code[c.start][1]
            if type(handlers) is int:  # try ... delegate L: continue at label L outside this try
                j -= 1 + handlers
                continue
            for h_tag, at in handlers:
                if h_tag is None or h_tag is tag:
                    return c, at
        j -= 1
    return None


def _transfer(th: Any, frame: Any, exn: ExnInst, found: Tuple[Any, Any]) -> None:
    ctl, handler = found
    st = frame.stack
    if type(handler) is int:  # legacy catch: its block runs with the payload, its try's stack below
        del st[ctl.height:]
        if frame.func.func.body[handler].op == "catch":
            st.extend(exn.payload)
        if frame.caught is None:
            frame.caught = {}
        frame.caught[ctl.start] = exn
        frame.pc = handler + 1
        return
    _tag, with_ref, (fn, arg) = handler
    if _tag is not None:
        st.extend(exn.payload)
    if with_ref:
        st.append(exn)
    npc = fn(st, frame.locals, arg, frame.pc)
    if npc >= 0:
        frame.pc = npc
        return
    _return_from(th, frame)


def _return_from(th: Any, frame: Any) -> None:
    """A clause whose label is the function's: return from ``frame`` (the engine's RETURN path)."""
    nres = frame.nresults
    res = frame.stack[-nres:] if nres else []
    frames = th.frames
    frames.pop()
    if len(frames) <= th.base:
        th.results = res
        th.done = True
        return
    caller = frames[-1]
    caller.stack.extend(res)
    caller.pc += 1
