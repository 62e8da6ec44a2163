"""The final-state digest: one canonical hash of everything an invocation can change in a store.

``state_digest(store)`` hashes the digest-only encoding of the store part of a state (address counts,
every instance's dropped flags, every table's elements, every memory's size and non-zero pages, every
global's value, the host log) with sha256.  Addresses come from walking the store in creation and index
order and values are tagged bit patterns, so the digest depends neither on Python object ids nor on dict
order nor on the interpreter, and it is the same for an uninterrupted run and a restored one.  Module
identities, registered names and the store configuration are not part of it (they cannot change while
running).  The encoding is uncompressed, so zlib versions do not matter either.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .model import State


def digest_of_state(state: State) -> str:
    from .codec import _W, encode_store_sections

    w = _W()
    encode_store_sections(state, w, digest_only=True)
    return "sha256:" + hashlib.sha256(bytes(w.buf)).hexdigest()


def state_digest(store: Any) -> str:
    """``"sha256:<hex>"`` over the canonical store state (see the module docstring)."""
    from .checkpoint import capture_store

    return digest_of_state(capture_store(store, require_sha=False))
