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
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import msgpack

from gateway.wire import ranges

log = logging.getLogger("pbxgw.store")

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


def raise_to(sources: dict[str, tuple[int, int, int]], committed: dict[str, int]) -> None:
    """Raise the marks of a stream's sources to what was ``committed`` in it (by source)."""
    for src, high in committed.items():
        if src in sources:
            low, was, ahead = sources[src]
            sources[src] = (low, max(was, high), max(ahead, high))


def _raise(low: dict[str, int], top: dict[str, int]) -> None:
    for src, seq in top.items():
        if seq > low.get(src, 0):
            low[src] = seq


#: What the queue says of its delivery, for the marks: the top seq per source of each
#: segment finished in order from the oldest, and whether nothing of an earlier stream waits.
Delivered = Callable[[], tuple[Iterable[dict[str, int]], bool]]


class Keeper:
    """This run's marks, kept in ``path`` as the queue commits, syncs and delivers.

    Its stream's marks start from the sources' ``committed`` seqs (or, when the last run's
    stream goes on after a clean stop, from that run's marks); those of earlier streams
    whose events still wait are carried, raised to what the sources say was committed
    since the last mark, until ``delivered`` says nothing of them waits."""

    def __init__(self, path: Path, previous: Marks, stream: str, previous_stream: str | None,
                 committed: dict[str, int], delivered: Delivered):
        self.path = path
        self.stream = stream
        self._delivered = delivered
        self._carried = {other: dict(sources) for other, sources in previous.streams.items() if other != stream}
        raise_to(self._carried.get(previous_stream, {}), committed)
        going_on = previous.streams.get(stream, {})
        self._low_base = {src: numbers[0] for src, numbers in going_on.items()}
        for src, high in committed.items():
            self._low_base.setdefault(src, high)
        # Where each source's numbers begin in a stream new with this run (None: it goes on).
        self._began = None if stream == previous_stream else {src: high + 1 for src, high in committed.items()}
        self._appended = dict(committed)  # per source, the last seq committed
        self._durable = dict(committed)  # ... and made durable (at the last sync)
        self._ahead = {src: max(going_on.get(src, (0, 0, 0))[2], high + AHEAD_MIN)
                       for src, high in committed.items()}  # no seq above it committed
        self._written: Marks | None = None
        self._wal: tuple[bytes, int] | None = None

    def began(self, src: str) -> int | None:
        """The first ``seq`` of ``src`` in this run's stream when it began with this run (1
        for a source the queue never had); None when it goes on from the last run's."""
        return None if self._began is None else self._began.get(src, 1)

    def committing(self, src: str, seqs: list[int], top: int) -> None:
        """Before a commit of ``src``'s ``seqs``, up to ``top``: a source first numbered now
        starts its low below them, and seqs past those reserved are reserved (twice what
        came since the last sync, at least ``AHEAD_MIN``) and written, before they are
        committed."""
        if seqs and src not in self._low_base:
            self._low_base[src] = min(seqs) - 1
        if top > self._ahead.get(src, -1):
            self._ahead[src] = top + max(AHEAD_MIN, 2 * (top - self._durable.get(src, top)))
            self.write()

    def committed(self, src: str, top: int) -> None:
        self._appended[src] = top

    def dropped(self, top: dict[str, int]) -> None:
        """A segment finished in order was dropped: the lows no longer see its seqs."""
        _raise(self._low_base, top)

    def durable(self, wal: tuple[bytes, int] | None) -> None:
        """Every commit so far survives a power cut, and the WAL is ``wal`` (just fsynced
        or checkpointed): reserve ahead for the next interval."""
        for src, top in self._appended.items():
            came = top - self._durable.get(src, top)
            self._ahead[src] = max(self._ahead.get(src, 0), top + max(AHEAD_MIN, 2 * came))
        self._durable = dict(self._appended)
        self._wal = wal

    def now(self) -> Marks:
        """What the marks say now. ``low`` follows the segments finished in order: a later
        one finished first says nothing of the seqs below it."""
        finished, earlier_done = self._delivered()
        low = dict(self._low_base)
        for top in finished:
            _raise(low, top)
        if self._carried and earlier_done:
            self._carried = {}  # every event of an earlier stream delivered, or its loss reported and delivered
        current = {}
        for src, ahead in self._ahead.items():
            high = self._durable.get(src, self._low_base.get(src, 0))
            current[src] = (min(low.get(src, high), high), high, max(ahead, high))
        return Marks({**self._carried, self.stream: current}, self._wal)

    def write(self) -> None:
        """Write the marks when they changed; a full disk leaves the older mark, claiming less."""
        now = self.now()
        if now == self._written:
            return
        try:
            write(self.path, now)
            self._written = now
        except OSError as exc:
            if self._written is not None:
                log.warning("cannot write %s (%s); tried again at the next sync", self.path, exc.strerror)
            self._written = None
