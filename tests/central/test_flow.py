"""The collector's flow of messages, sans I/O: what is unacknowledged, when reading stops and
starts again, what is acknowledged after a reconnection, whether a backlog drains, and when
the backoff starts afresh."""

import pytest

from gateway.central.flow import BATCHES_IN_HAND, DRAIN_S, STABLE_S, Flow, Message

BATCH_BYTES = 1024 * 1024
HELD_BYTES = BATCHES_IN_HAND * BATCH_BYTES

pytestmark = pytest.mark.central


def message(flow: Flow, mid: int, qos: int = 1, payload: bytes = b"") -> Message:
    arrival = flow.received(qos, len(payload))
    return Message(arrival.generation, mid, qos, "pbxgw/v1/lab/gw-1/calls", payload, 0)


def test_reading_stops_at_the_receive_maximum_and_goes_on_once_acknowledgements_make_room():
    flow = Flow(inflight=3, batch_messages=3, batch_bytes=BATCH_BYTES)
    arrivals = [flow.received(1, 0) for _ in range(3)]
    assert [a.pause for a in arrivals] == [False, False, True] and flow.unacked == 3
    kept = [Message(a.generation, mid, 1, "t", b"", 0) for mid, a in enumerate(arrivals, 1)]
    acked, reading = flow.stored(kept[:1])
    assert acked == kept[:1] and reading and flow.unacked == 2


def test_qos_0_needs_no_acknowledgement_and_takes_room_in_hand_all_the_same():
    flow = Flow(inflight=2, batch_messages=2, batch_bytes=BATCH_BYTES)
    first = message(flow, 0, qos=0)
    assert flow.unacked == 0 and flow.held == 1
    assert flow.received(0, 0).pause  # (the broker's window counts no QoS 0: the flow does)
    assert flow.stored([first]) == ([], True) and flow.held == 1


def test_reading_stops_while_the_bytes_in_hand_reach_their_bound():
    flow = Flow(inflight=100, batch_messages=100, batch_bytes=BATCH_BYTES)
    big = [message(flow, mid, payload=bytes(HELD_BYTES // 4)) for mid in range(1, 4)]
    assert flow.received(1, HELD_BYTES // 4).pause  # the fourth quarter reaches it
    acked, reading = flow.stored(big[:1])
    assert [m.mid for m in acked] == [1] and reading and flow.held_bytes == 3 * (HELD_BYTES // 4)


def test_the_broker_sending_past_the_receive_maximum_is_said_once():
    flow = Flow(inflight=2, batch_messages=2, batch_bytes=BATCH_BYTES)
    overflows = [flow.received(1, 0).overflow for _ in range(5)]
    assert overflows == [False, False, True, False, False] and flow.unacked == 5


def test_messages_of_a_lost_connection_are_not_acknowledged_on_the_next():
    flow = Flow(inflight=2, batch_messages=2, batch_bytes=BATCH_BYTES)
    old = [message(flow, 1), message(flow, 2)]
    flow.lost(now=10.0)
    new = message(flow, 1)  # (the broker delivers again: the same packet id, a new connection)
    acked, reading = flow.stored(old + [new])
    assert acked == [new] and reading and flow.unacked == 0


def test_a_backlog_drains_while_batches_come_full():
    flow = Flow(inflight=100, batch_messages=50, batch_bytes=BATCH_BYTES)
    assert not flow.draining(now=0.0)
    flow.batched(messages=49, size=49 * 300, now=1.0)
    assert not flow.draining(now=1.0)
    flow.batched(messages=50, size=50 * 300, now=2.0)
    assert flow.draining(now=2.0 + DRAIN_S - 0.1) and not flow.draining(now=2.0 + DRAIN_S)
    flow.batched(messages=3, size=BATCH_BYTES + 1, now=9.0)  # (a backlog's: big messages)
    assert flow.draining(now=9.0)


def test_a_batch_is_full_at_its_messages_or_at_its_bytes():
    flow = Flow(inflight=1000, batch_messages=500, batch_bytes=BATCH_BYTES)
    assert not flow.full(499, BATCH_BYTES - 1)
    assert flow.full(500, 500 * 300) and flow.full(40, BATCH_BYTES)


def test_only_a_connection_that_lasted_starts_the_backoff_afresh():
    flow = Flow(inflight=10, batch_messages=10, batch_bytes=BATCH_BYTES)
    assert flow.lost(now=5.0) is False  # never connected: an attempt failed
    flow.connected(now=100.0)
    assert flow.lost(now=100.0 + STABLE_S - 1) is False  # a flap (a takeover)
    flow.connected(now=200.0)
    assert flow.lost(now=200.0 + STABLE_S) is True
    assert flow.generation == 3
