"""The exception-handling part of the module generator (:mod:`generators.modules`, feature
``exceptions``): tags with payloads, ``throw``, ``try_table`` with ``catch``/``catch_ref``/``catch_all``/
``catch_all_ref`` handlers, ``throw_ref``, and ``exnref`` values kept in a local and a global.

Why a part of its own: a checkpoint can sit inside a ``try_table`` (its handlers must be rebuilt by a
resume module and checked on restore) or after a handler stored the caught exception (an exception
object in the heap section), and only programs that throw and catch around checkpoints test that.

Shape of a ``try_table`` producing ``R`` with handlers ``h_0 .. h_{n-1}`` (``T_i``: what handler ``i``
receives, the tag's payload plus ``exnref`` for the ``_ref`` forms)::

    block (result R)                          ;; $done
      block (result T_{n-1}) ... block (result T_0)
          try_table (result R) (catch.. 0) .. (catch.. n-1)  <body> [if <throw> end]  end
          br n                                ;; no exception: to $done
        end  <handler 0: T_0 -> R>  br n-1
      ...
      end  <handler n-1: T_{n-1} -> R>
    end

A handler's ``exnref`` is dropped, stored (local or global: a live exception object at later
checkpoints) or rethrown with ``throw_ref``.  Every function may ``throw``, so exceptions cross calls
(a ``try_table`` body calls functions like any other code) and some reach ``run`` uncaught (an outcome
the hosts compare like a trap).  A stored ``exnref`` is rethrown only when it is not null
(``br_on_null``).  With :mod:`generators.gc`, one tag carries a ``(ref null $node)`` payload.
"""

from __future__ import annotations

from typing import Any, List, Tuple

from hypothesis import strategies as st

from vm.module import Catch, Global, Instr, Tag
from vm.types import EXNREF, I32, I64, FuncType, GlobalType

__all__ = ["ExnOps"]

_CATCH_KINDS = ("catch", "catch_all", "catch_ref", "catch_all_ref")


class ExnOps:
    """Mixed into the generator (:class:`generators.modules._Gen`), whose drawing, emitting and value
    methods it uses."""

    draw: Any
    pick: Any
    flag: Any
    choice: Any
    emit: Any
    value: Any
    ctx: Any
    f: Any
    code: Any
    blocks: int
    globals: List[Global]
    types: List[Any]
    type_index: Any
    blocktype: Any
    block_body: Any
    values: Any
    exn_global: int = -1
    tag_params: List[Tuple[Any, ...]]

    def exn_tags(self, node_ref: Any) -> List[Tag]:
        """The tags: no payload, ``i32``, ``i64 i32`` and (with GC) ``(ref null $node)``."""
        self.tag_params = [(), (I32,), (I64, I32)]
        if node_ref is not None:
            self.tag_params.append((node_ref,))
        return [Tag(self.type_index(FuncType(p, ()))) for p in self.tag_params]

    def exn_globals(self, gbase: int) -> None:
        """A mutable ``exnref`` global (null at first) that handlers may store a caught exception in."""
        self.exn_global = gbase + len(self.globals)
        self.globals.append(Global(GlobalType(EXNREF, True), [Instr("ref.null", "exn"), Instr("end")]))

    def exn_locals(self) -> None:
        """Sometimes an ``exnref`` local (null until a handler stores into it), and sometimes a caught
        exception stored at function entry (like :meth:`generators.gc.GcOps.gc_locals`: later
        checkpoints of the frame then hold a live exception object)."""
        if self.choice(2):
            self.ctx.new_local(EXNREF)
        if self.choice(3) == 2:
            self.catch_and_keep()

    # -- statements ---------------------------------------------------------------------------------------
    def exn_stmt(self) -> None:
        """``throw``, a ``try_table``, or the rethrow of a stored exception (``stmt``'s ``exn``
        alternative)."""
        k = self.choice(5)
        if k == 0:
            self.throw()
        elif k == 1 and self.blocks < 3:
            self.try_table(())
        elif k == 2:
            self.catch_and_keep()
        else:
            self.rethrow_stored()

    def catch_and_keep(self) -> None:
        """``block (result exnref) try_table (catch_all_ref 0) <throw> end ref.null exn end`` stored in
        an ``exnref`` local or the global: an exception caught and kept for later (a ``throw_ref`` may
        rethrow it)."""
        from .stateops import _Label

        self.code += [Instr("block", EXNREF), Instr("try_table", (None, (Catch("catch_all_ref", None, 0),)))]
        self.ctx.labels += [_Label("block", (EXNREF,)), _Label("try_table", ())]
        self.throw()
        del self.ctx.labels[-2:]
        self.code += [Instr("end"), Instr("ref.null", "exn"), Instr("end")]
        locs = [i for i, t in enumerate(self.ctx.local_types) if t == EXNREF]
        if locs and self.flag():
            self.emit("local.set", self.pick(locs))
        else:
            self.emit("global.set", self.exn_global)

    def throw(self, tags: Tuple[int, ...] = ()) -> None:
        """``throw``: usually of one of ``tags`` (those a surrounding handler catches) if given."""
        tag = self.pick(tags) if tags and self.choice(4) else self.choice(len(self.tag_params))
        self.values(self.tag_params[tag])
        self.emit("throw", tag)

    def rethrow_stored(self) -> None:
        """``block local/global.get br_on_null 0 throw_ref end``: rethrows a stored exception, if any."""
        locs = [i for i, t in enumerate(self.ctx.local_types) if t == EXNREF]
        self.code.append(Instr("block", None))
        if locs and self.flag():
            self.code.append(Instr("local.get", self.pick(locs)))
        else:
            self.code.append(Instr("global.get", self.exn_global))
        self.code += [Instr("br_on_null", 0), Instr("throw_ref"), Instr("end")]

    # -- try_table ------------------------------------------------------------------------------------------
    def try_table(self, results: Tuple[Any, ...]) -> None:
        """A ``try_table`` producing ``results`` with one to three handlers (see the module docstring)."""
        from .stateops import _Label

        n = self.draw(st.integers(1, 3))
        clauses: List[Tuple[str, Any, Tuple[Any, ...]]] = []
        for _ in range(n):
            kind = self.pick(_CATCH_KINDS)
            tag = self.choice(len(self.tag_params)) if kind in ("catch", "catch_ref") else None
            types = self.tag_params[tag] if tag is not None else ()
            if kind.endswith("_ref"):
                types = types + (EXNREF,)
            clauses.append((kind, tag, types))
        labels = self.ctx.labels
        self.emit("block", self.blocktype((), results))
        labels.append(_Label("block", results))
        for _kind, _tag, types in reversed(clauses):
            self.emit("block", self.blocktype((), types))
            labels.append(_Label("block", types))
        catches = tuple(Catch(kind, tag, i) for i, (kind, tag, _t) in enumerate(clauses))
        self.emit("try_table", (self.blocktype((), results), catches))
        self.blocks += 1
        labels.append(_Label("try_table", results))
        self.block_body((), results)
        if self.choice(3):  # usually a throw the handlers may catch, behind an if (else rarely any)
            self.value(I32)
            self.emit("if", None)
            labels.append(_Label("if", ()))
            self.throw(tuple(tag for _k, tag, _t in clauses if tag is not None))
            labels.pop()
            self.emit("end")
        labels.pop()
        self.emit("end")
        self.emit("br", n)
        for i, (_kind, _tag, types) in enumerate(clauses):
            labels.pop()
            self.emit("end")
            self.handler(types, results)
            if i < n - 1:
                self.emit("br", n - 1 - i)
        labels.pop()
        self.blocks -= 1
        self.emit("end")

    def handler(self, types: Tuple[Any, ...], results: Tuple[Any, ...]) -> None:
        """Turn what a handler receives into ``results``; an ``exnref`` on top is dropped, stored in an
        ``exnref`` local or the global, or rethrown."""
        if types and types[-1] == EXNREF:
            locs = [i for i, t in enumerate(self.ctx.local_types) if t == EXNREF]
            k = self.choice(5)
            if k == 0:
                self.emit("drop")
            elif k == 1 and locs:
                self.emit("local.set", self.pick(locs))
            elif k <= 3:  # the global: the exception stays live to the end of the run
                self.emit("global.set", self.exn_global)
            else:
                self.emit("throw_ref")
            types = types[:-1]
        self.block_body(types, results)
