"""A queued event as the disk queue holds it: what the store gives and the outbox sends."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Row:
    """A queued event: its row id, wire kind, receive time and msgpack payload."""

    id: int
    kind: str
    rx: int
    payload: bytes
