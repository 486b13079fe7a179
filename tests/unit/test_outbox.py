"""The delivery state machine: lanes (live first, then the backlog), window, cursors,
batches, backoff. The queue is a list of rows read as the store's peek reads it."""

import random

import msgpack

from gateway.edge.outbox import Outbox
from gateway.edge.queue.row import Row
from gateway.wire.events import CallEvent, GapEvent, packb


def row(i: int, kind: str = "call", pad: int = 0) -> Row:
    event = (CallEvent(gw="g", src="s", seq=i, rx=i, profile="p", start=0, raw="x" * pad) if kind == "call"
             else GapEvent(gw="g", src="s", rx=i, first=1, last=2, count=2, first_rx=0, last_rx=1, reason="r"))
    return Row(i, kind, i, packb(event))


def queue(*rows: Row):
    """A peek over ``rows``, as :meth:`gateway.edge.queue.store.Store.peek` reads the disk queue."""
    def peek(after: int, upto: int | None, limit: int) -> list[Row]:
        return [r for r in rows if after < r.id and (upto is None or r.id <= upto)][:limit]
    return peek


def outbox(**kw) -> Outbox:
    options = dict(batch_events=3, batch_bytes=10_000, window=2, backoff_min=1, backoff_max=8,
                   rng=random.Random(1))
    return Outbox(**{**options, **kw})


def test_nothing_is_sent_offline_or_past_the_window():
    box, peek = outbox(), queue(row(1), row(2))
    assert not box.can_send()
    box.connected(upto=0)
    box.sent(1, box.next_batch(queue(row(1))))
    box.sent(2, box.next_batch(peek))
    assert not box.can_send()  # window of 2 full
    assert box.acked(1).ids == (1,)
    assert box.can_send() and box.next_batch(peek) is None  # both sent: nothing more


def test_queued_rows_are_backlog_sent_after_live_rows_and_marked_hist():
    box = outbox()
    box.connected(upto=5)  # rows 1..5 waited through an outage; 6 came after the connect
    peek = queue(*(row(i) for i in range(1, 7)))
    sent = []
    while (batch := box.next_batch(peek)) is not None:
        box.sent(len(sent) + 1, batch)
        sent += [(e["seq"], e.get("hist", False)) for e in msgpack.unpackb(batch.payload)]
    assert sent == [(6, False), (1, True), (2, True), (3, True), (4, True), (5, True)]


def test_a_reconnect_never_rewinds_the_cursors():
    box = outbox(window=10, batch_events=2)
    box.connected(upto=4)
    peek = queue(*(row(i) for i in range(1, 7)))
    box.sent(1, box.next_batch(peek))  # live 5..6
    box.sent(2, box.next_batch(peek))  # backlog 1..2; 3..4 still to send
    box.disconnected()
    peek = queue(*(row(i) for i in range(1, 10)))
    box.connected(upto=9)  # 7..9 queued while down; paho resends mids 1 and 2 itself
    ids = []
    while (batch := box.next_batch(peek)) is not None:
        box.sent(len(ids) + 3, batch)
        ids += batch.ids
    assert ids == [3, 4, 7, 8, 9] and set(box.in_flight) >= {1, 2}


def test_batches_hold_one_topic_and_respect_count_and_size():
    box = outbox(batch_events=3, batch_bytes=700)
    box.connected(upto=0)
    assert box.next_batch(queue(row(1), row(2), row(3), row(4))).ids == (1, 2, 3)
    assert box.next_batch(queue(row(1), row(2, "gap"), row(3))).ids == (1,)
    gap = box.next_batch(queue(row(2, "gap"), row(3)))
    assert gap.topic == "gaps" and gap.ids == (2,)
    assert box.next_batch(queue(row(1, pad=400), row(2, pad=400))).ids == (1,)  # a second would pass 700 bytes
    assert box.next_batch(queue(row(1, pad=5000))).ids == (1,)  # one large event still goes


def test_backoff_is_full_jitter_capped_and_reset_by_a_connect():
    box = outbox(backoff_min=1, backoff_max=8, rng=random.Random(7))
    delays = [box.disconnected() for _ in range(8)]
    caps = [1, 2, 4, 8, 8, 8, 8, 8]
    assert all(0 <= d <= c for d, c in zip(delays, caps))
    assert len(set(delays)) == len(delays)  # jittered, not a fixed ladder
    box.connected(upto=0)
    assert box.disconnected() <= 1
