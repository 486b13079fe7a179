"""A queued event as the disk queue holds it (what the store gives and the outbox sends), and
what a queued payload says (its event map, its stream), read without trusting it."""

from __future__ import annotations

from typing import NamedTuple

import msgpack


class Row(NamedTuple):
    """A queued event: its row id, wire kind, receive time and msgpack payload (a tuple: a
    drain makes a hundred thousand a second)."""

    id: int
    kind: str
    rx: int
    payload: bytes


class Queued(NamedTuple):
    """An event as the queue inserts it: a segment table's columns but its id, in order
    (``seq`` is None for what no source numbers: gaps, alarms)."""

    src: str
    seq: int | None
    kind: str
    rx: int
    payload: bytes


def event_map(payload: bytes) -> dict | None:
    """A queued payload's event map, or None if it is damaged."""
    try:
        event = msgpack.unpackb(payload)
    except (ValueError, TypeError, msgpack.UnpackException):
        return None
    return event if isinstance(event, dict) else None


def payload_stream(payload) -> str:
    """The stream a queued payload names ("" when it is damaged)."""
    return str((event_map(payload) or {}).get("stream") or "")
