"""The queue's high-water marks: what a damaged queue would have held, kept apart from it.

A queue whose file is cut short, or whose WAL is cut or overwritten, can lose events that
were committed, even fsynced, without a trace: what SQLite cannot read, it does not know
it had. So beside ``queue.db`` a small file, ``queue.mark``, says per stream and source
three sequence numbers:

* ``low``: every ``seq`` up to it was delivered (or reported lost);
* ``high``: every ``seq`` up to it was committed and made durable (at the last sync);
* ``ahead``: no ``seq`` above it was committed. The queue reserves numbers ahead of what it
  commits (twice what a sync interval took, at least ``AHEAD_MIN``) and writes the mark
  again before it commits past them, so the few records committed since the last sync are
  bounded too.

It also says how long the WAL was at the last sync (and which WAL: its salt), so that a
WAL cut shorter, which SQLite reads as a torn last write, is known for damage. It is
written after each sync's fsync when it changed, as a new file renamed over the old, and
not fsynced itself: on a power cut it may fall back to an older mark, which claims less.

After damage, every ``seq`` in ``low < seq <= ahead`` that the queue no longer has is
reported as a gap: some may have been delivered, some never used (the centre counts only
what it numbered and does not have), none is left out. A queue that opened without a sign
of damage but says it committed less than ``high`` lost durable commits: reported too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import msgpack

from gateway.wire import ranges

MARK_NAME = "queue.mark"
#: A mark file larger than this is not read (it is a few hundred bytes).
MAX_MARK_BYTES = 1 << 20
#: Sequence numbers reserved ahead of what is committed, at the least.
AHEAD_MIN = 100


@dataclass
class Marks:
    """``streams``: ``{stream: {src: (low, high, ahead)}}``; ``wal``: ``(salt, size)`` of the
    WAL at the last sync (``None``: not known)."""

    streams: dict[str, dict[str, tuple[int, int, int]]] = field(default_factory=dict)
    wal: tuple[bytes, int] | None = None


def read(path: Path) -> Marks:
    """The marks in ``path``; empty when it is missing, too large or not a mark file."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_MARK_BYTES + 1)
        value = msgpack.unpackb(data, raw=False) if len(data) <= MAX_MARK_BYTES else None
    except (OSError, ValueError, TypeError, msgpack.UnpackException):
        return Marks()
    if not (isinstance(value, dict) and value.get("v") == 2 and isinstance(value.get("streams"), dict)):
        return Marks()
    marks = Marks()
    for stream, sources in value["streams"].items():
        if isinstance(stream, str) and isinstance(sources, dict):
            marks.streams[stream] = {
                src: tuple(numbers) for src, numbers in sources.items()
                if isinstance(src, str) and isinstance(numbers, list) and len(numbers) == 3
                and all(type(n) is int and n >= 0 for n in numbers) and numbers[0] <= numbers[1] <= numbers[2]}
    wal = value.get("wal")
    if isinstance(wal, list) and len(wal) == 2 and isinstance(wal[0], bytes) and type(wal[1]) is int:
        marks.wal = (wal[0], wal[1])
    return marks


def write(path: Path, marks: Marks) -> None:
    """Replace the mark file (a new file renamed over it: never half a mark).

    :raises OSError: it could not be written (a full disk: the previous mark stays).
    """
    tmp = path.with_name(f"{path.name}.new")
    with open(tmp, "wb") as fh:
        fh.write(msgpack.packb({"v": 2, "wal": list(marks.wal) if marks.wal else None,
                                "streams": {stream: {src: list(numbers) for src, numbers in sources.items()}
                                            for stream, sources in marks.streams.items()}}))
    os.replace(tmp, path)


def unaccounted(streams: dict[str, dict[str, tuple[int, int, int]]], kept: dict[tuple[str, str], list[int]],
                committed: dict[tuple[str, str], int], reach: int) -> list[tuple[str, str, int, int]]:
    """The ranges ``(src, stream, first, last)`` from ``low + 1`` to the mark at index
    ``reach`` (1: ``high``, 2: ``ahead``) that are neither among the ``kept`` seqs (by
    ``(src, stream)``) nor at or below what the queue says it ``committed`` last (by
    ``(src, stream)``: the events up to it are there, or delivered)."""
    out = []
    for stream, sources in streams.items():
        for src, numbers in sources.items():
            low, top = numbers[0], numbers[reach]
            have = [(seq, seq) for seq in kept.get((src, stream), ())]
            below = committed.get((src, stream))
            if below is not None and below > low:
                have.append((low + 1, below))
            for first, last in ranges.subtract([(low + 1, top)] if top > low else [], have):
                out.append((src, stream, first, last))
    return out
