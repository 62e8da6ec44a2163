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

from ..exec.store import Store
from .capture import capture_store
from .codec import encode_digest_body
from .model import State

__all__ = ["digest_of_state", "state_digest"]


def digest_of_state(state: State) -> str:
    """``"sha256:<hex>"`` over the store part of ``state`` (its thread is ignored)."""
    return "sha256:" + hashlib.sha256(encode_digest_body(state)).hexdigest()


def state_digest(store: Store) -> str:
    """``"sha256:<hex>"`` over the canonical store state (see the module docstring)."""
    return digest_of_state(capture_store(store, require_sha=False))
