"""Sans-I/O delivery state: what to publish next, what is in flight, when to retry.

Theory of operation
-------------------
Rows wait in the disk queue (:mod:`gateway.edge.queue.store`) until the broker acknowledges them.
The outbox decides which rows to read and send; the publisher shell reads them, publishes,
and reports acknowledgements back. Nothing here touches the network, the disk or a clock.

Two lanes, live first. When the link comes up, every row already queued (``id <= upto``)
is *backlog*: it is sent marked ``hist: true``, after any *live* row (queued since). Each
lane keeps its own order. Backlog is kept as a list of id ranges: a range is added at
each connect and consumed front to back. Events a replay request asks for again
(:mod:`gateway.edge.replay`) go last, in messages of their own that move neither lane.

Cursors only move forward while the process lives. paho keeps messages that were in
flight when a connection dropped and resends them (DUP) after it reconnects, so
re-reading them from disk would send them twice. A restart starts with empty cursors:
all queued rows are backlog again, and what was in flight at the crash is sent again
(duplicates with the same ``(gw, src, stream, seq)``, as the at-least-once contract allows).

At most ``window`` messages are in flight, so paho's memory queue stays bounded and its
16-bit message ids never run out. A message's rows leave the queue only on a PUBACK with
a success reason code; a failure code is a rejection (the rows go to the dead table).

Reconnects back off exponentially with full jitter (a delay drawn uniformly between 0
and the capped exponential), so a fleet of gateways does not reconnect in step.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import msgpack

from gateway.common.backoff import Backoff
from gateway.edge.queue.row import Row
from gateway.wire.events import mark_historical
from gateway.wire.topics import KIND_TOPICS

#: Reads queued rows: ``peek(after, upto, limit)``, those with ``after < id <= upto`` (no
#: upper bound when None), oldest first (the store's :meth:`~gateway.edge.queue.store.Store.peek`).
Peek = Callable[[int, "int | None", int], list[Row]]


@dataclass(frozen=True, slots=True)
class Batch:
    """One MQTT message to publish: its topic (last part), payload and the rows in it."""

    topic: str
    payload: bytes
    ids: tuple[int, ...]
    sizes: tuple[int, ...]  # each row's payload bytes (what its confirmation frees in the queue)
    hist: bool
    replay: bool = False  # events published again on request (delivered before: nothing to confirm)


class Outbox:
    """Delivery bookkeeping for one publisher.

    :param batch_events: most events in one message.
    :param batch_bytes: most payload bytes in one message (a single larger event still goes).
    :param window: most messages in flight.
    :param backoff_min: first reconnect delay cap, seconds.
    :param backoff_max: largest reconnect delay cap, seconds.
    :param rng: source of jitter (seeded in tests).
    """

    def __init__(self, batch_events: int, batch_bytes: int, window: int,
                 backoff_min: float, backoff_max: float, rng: random.Random | None = None):
        self.batch_events, self.batch_bytes, self.window = batch_events, batch_bytes, window
        self.backoff = Backoff(backoff_min, backoff_max, rng)
        self.online = False
        self.in_flight: dict[int, Batch] = {}
        self._live_after = 0
        self._backlog: list[list[int]] = []  # [after, upto] ranges, oldest first

    # -- link state ----------------------------------------------------------------------

    def connected(self, upto: int) -> None:
        """The link is up; rows with ``id <= upto`` are queued already (backlog)."""
        self.online = True
        self.backoff.reset()
        if upto > self._live_after:
            self._backlog.append([self._live_after, upto])
            self._live_after = upto

    def disconnected(self) -> float:
        """The link went down (or a connect failed): seconds to wait before trying again."""
        self.online = False
        return self.backoff.next()

    # -- sending -------------------------------------------------------------------------

    def can_send(self) -> bool:
        """Online, with room in the in-flight window."""
        return self.online and len(self.in_flight) < self.window

    def next_batch(self, peek: Peek) -> Batch | None:
        """The next message to publish, live rows first, then the backlog's (marked
        ``hist``), or None when every lane is empty. The caller publishes it and reports
        :meth:`sent`."""
        rows = peek(self._live_after, None, self.batch_events)
        if rows:
            return self._batch(rows, hist=False)
        while self._backlog:
            after, upto = self._backlog[0]
            rows = peek(after, upto, self.batch_events)
            if rows:
                return self._batch(rows, hist=True)
            self._backlog.pop(0)  # this range is sent: on to the next
        return None

    def replay_batch(self, rows: list[Row]) -> Batch:
        """A message of rows a replay request asked for again (a prefix of ``rows``, as
        :meth:`_batch` takes it): sent in the window, after live rows and the backlog,
        and moving neither lane's cursor."""
        return self._batch(rows, hist=True, replay=True)

    def _batch(self, rows: list[Row], hist: bool, replay: bool = False) -> Batch:
        """The longest prefix of ``rows`` with one topic within the size limits."""
        topic, size, taken = KIND_TOPICS[rows[0].kind], 0, []
        for row in rows[:self.batch_events]:
            if KIND_TOPICS[row.kind] != topic or (taken and size + len(row.payload) > self.batch_bytes):
                break
            taken.append(row)
            size += len(row.payload)
        parts = [mark_historical(r.payload) if hist else r.payload for r in taken]
        payload = msgpack.Packer().pack_array_header(len(parts)) + b"".join(parts)
        return Batch(topic, payload, tuple(r.id for r in taken), tuple(len(r.payload) for r in taken), hist, replay)

    def sent(self, mid: int, batch: Batch) -> None:
        """``batch`` was handed to the client as message ``mid``; move past its rows."""
        self.in_flight[mid] = batch
        last = batch.ids[-1]
        if batch.replay:
            return
        if batch.hist:
            self._backlog[0][0] = last
        else:
            self._live_after = last

    def acked(self, mid: int) -> Batch | None:
        """The broker confirmed (or rejected) ``mid``; the batch, or None if unknown."""
        return self.in_flight.pop(mid, None)
