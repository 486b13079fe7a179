"""The delivery state machine: lanes, window, cursors, batches, backoff."""

import random

import msgpack

from gateway.events import CallEvent, GapEvent, packb
from gateway.outbox import Outbox, Row


def row(i: int, kind: str = "call", pad: int = 0) -> Row:
    event = (CallEvent(gw="g", src="s", seq=i, rx=i, profile="p", start=0, raw="x" * pad) if kind == "call"
             else GapEvent(gw="g", src="s", rx=i, first=1, last=2, count=2, first_rx=0, last_rx=1, reason="r"))
    return Row(i, kind, i, packb(event))


def outbox(**kw) -> Outbox:
    options = dict(batch_events=3, batch_bytes=10_000, window=2, backoff_min=1, backoff_max=8,
                   rng=random.Random(1))
    return Outbox(**{**options, **kw})


def test_nothing_is_sent_offline_or_past_the_window():
    box = outbox()
    assert not box.can_send()
    box.connected(upto=0)
    box.sent(1, box.batch([row(1)], hist=False))
    box.sent(2, box.batch([row(2)], hist=False))
    assert not box.can_send()  # window of 2 full
    assert box.acked(1).ids == (1,)
    assert box.can_send() and box.live_after == 2


def test_queued_rows_are_backlog_sent_after_live_rows_and_marked_hist():
    box = outbox()
    box.connected(upto=5)  # rows 1..5 waited through an outage
    assert box.live_after == 5 and box.backlog_range() == (0, 5)
    batch = box.batch([row(1), row(2)], hist=True)
    events = msgpack.unpackb(batch.payload)
    assert [e["seq"] for e in events] == [1, 2] and all(e["hist"] is True for e in events)
    box.sent(7, batch)
    assert box.backlog_range() == (2, 5) and box.live_after == 5
    live = msgpack.unpackb(box.batch([row(6)], hist=False).payload)
    assert "hist" not in live[0]


def test_a_reconnect_never_rewinds_the_cursors():
    box = outbox(window=10)
    box.connected(upto=4)
    box.sent(1, box.batch([row(1), row(2)], hist=True))  # backlog 3..4 still to send
    box.sent(2, box.batch([row(5), row(6)], hist=False))  # live sent up to 6
    box.disconnected()
    box.connected(upto=9)  # 7..9 queued while down; paho resends mids 1 and 2 itself
    assert box.backlog_range() == (2, 4)
    box.backlog_empty()
    assert box.backlog_range() == (6, 9) and box.live_after == 9
    assert set(box.in_flight) == {1, 2}


def test_batches_hold_one_topic_and_respect_count_and_size():
    box = outbox(batch_events=3, batch_bytes=700)
    assert box.batch([row(1), row(2), row(3), row(4)], hist=False).ids == (1, 2, 3)
    assert box.batch([row(1), row(2, "gap"), row(3)], hist=False).ids == (1,)
    gap = box.batch([row(2, "gap"), row(3)], hist=False)
    assert gap.topic == "gaps" and gap.ids == (2,)
    big = [row(1, pad=400), row(2, pad=400)]
    assert box.batch(big, hist=False).ids == (1,)  # a second would pass 700 bytes
    assert box.batch([row(1, pad=5000)], hist=False).ids == (1,)  # one large event still goes


def test_backoff_is_full_jitter_capped_and_reset_by_a_connect():
    box = outbox(backoff_min=1, backoff_max=8, rng=random.Random(7))
    delays = [box.disconnected() for _ in range(8)]
    caps = [1, 2, 4, 8, 8, 8, 8, 8]
    assert all(0 <= d <= c for d, c in zip(delays, caps))
    assert len(set(delays)) == len(delays)  # jittered, not a fixed ladder
    box.connected(upto=0)
    assert box.disconnected() <= 1
