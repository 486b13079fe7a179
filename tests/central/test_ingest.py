"""Messages in, rows out: what the collector stores, and what it keeps aside and why."""

import hashlib
import json

import msgpack
import pytest

from gateway.central.ingest import EVENT_COLUMNS, MAX_DEPTH, REJECTED_KEEP_BYTES, Reply, Rows, problem, too_deep
from gateway.wire.events import CallEvent, GapEvent, StatusEvent, to_wire

pytestmark = pytest.mark.central

CALL = to_wire(CallEvent(gw="gw-1", src="pbx", stream="a" * 16, seq=7, rx=1_700_000_000_000, profile="avaya-ipo",
                         start=1_699_999_000, ring=5, dur=60, dir="in", ext="201", raw="r", x={"k": 1}))
TOPIC = "pbxgw/v1/lab/gw-1/calls"


def packed(*events) -> bytes:
    return msgpack.packb(list(events), use_bin_type=True)


def test_a_batch_of_calls_becomes_event_rows_with_their_key_and_site():
    rows = Rows()
    rows.add(TOPIC, packed(CALL, {**CALL, "seq": 8, "hist": True}), 123)
    assert not rows.rejected and len(rows.events) == 2
    first, second = (dict(zip(EVENT_COLUMNS, r)) for r in rows.events)
    assert (first["gw"], first["src"], first["stream"], first["seq"], first["site"]) == ("gw-1", "pbx", "a" * 16, 7, "lab")
    assert (json.loads(first["x"]), first["hist"], second["hist"], first["received_at"]) == ({"k": 1}, False, True, 123)


@pytest.mark.parametrize("topic, payload, reason", [
    (TOPIC, b"\xc1garbage", "not msgpack"),
    (TOPIC, b"not msgpack at all {", "not msgpack"),
    (TOPIC, msgpack.packb(CALL), "expected an array of events, got dict"),
    ("pbxgw/v1/lab/gw-1/status", packed(CALL), "expected one map, got list"),
    ("somewhere/else", packed(CALL), "not a pbxgw/v1/<site>/<gw>/<kind> topic"),
])
def test_a_message_that_is_no_batch_is_kept_whole_with_its_reason(topic, payload, reason):
    rows = Rows()
    rows.add(topic, payload, 5)
    assert not rows.events and len(rows.rejected) == 1
    assert rows.rejected[0][0] == topic and rows.rejected[0][1] == payload and reason in rows.rejected[0][2]


@pytest.mark.parametrize("change, reason", [
    ({"v": 2}, "schema version 2"),
    ({"kind": "unparsed"}, "a 'unparsed' event on the topic of 'call' events"),
    ({"seq": "7"}, "'seq' is '7', expected int"),
    ({"seq": True}, "'seq' is True, expected int"),
    ({"seq": 2**63}, "beyond 64 bits"),  # (msgpack carries it as uint64; bigint cannot)
    ({"seq": 0}, "'seq': 0 is no sequence number"),
    ({"seq": -5}, "'seq': -5 is no sequence number"),
    ({"seq": 2**53}, f"'seq': {2**53} is no sequence number"),
    ({"seq": 2**62}, "is no sequence number (1 to 9007199254740991)"),
    ({"start": 2**62}, f"'start': {2**62} s is no time in the years 1 to 9999"),
    ({"start": -62135596801}, "is no time in the years 1 to 9999"),  # (a second before the year 1)
    ({"raw": "a\0b"}, "NUL"),
    ({"x": {"k": "a\0"}}, "NUL"),
    ({"x": {"k": [1.5, float("nan")]}}, "number nan"),
    ({"x": {"k": b"\x01"}}, "not storable as JSON"),
    ({"gw": "gw-2"}, "gateway 'gw-2' on the topic of gateway 'gw-1'"),
    ({"colour": "red"}, "unknown key 'colour'"),
])
def test_one_bad_event_is_rejected_and_its_batchmates_stored(change, reason):
    rows = Rows()
    payload = packed(CALL, {**CALL, "seq": 8, **change})
    rows.add(TOPIC, payload, 5)
    assert len(rows.events) == 1 and rows.events[0][3] == 7
    assert rows.rejected == [(TOPIC, payload, rows.rejected[0][2], 5)]
    assert rows.rejected[0][2].startswith("event 2: ") and reason in rows.rejected[0][2]


def test_a_batch_of_bad_elements_is_one_rejected_row_that_counts_them():
    rows = Rows()
    payload = msgpack.packb([CALL] + [None] * 50_000 + [{**CALL, "seq": 9}])
    rows.add(TOPIC, payload, 5)
    assert [r[3] for r in rows.events] == [7, 9]
    assert len(rows.rejected) == 1 and rows.rejected[0][1] == payload
    assert rows.rejected[0][2] == "50000 of 50002 events refused; event 2: expected an event map, got NoneType"


def test_a_large_refused_payload_is_kept_to_a_cap_with_the_digest_of_the_whole():
    rows = Rows()
    payload = msgpack.packb([{**CALL, "raw": "r" * 2_000_000, "seq": 0}])
    rows.add(TOPIC, payload, 5)
    (topic, kept, reason, _), = rows.rejected
    assert kept == payload[:REJECTED_KEEP_BYTES]
    assert f"first {REJECTED_KEEP_BYTES} of {len(payload)} bytes" in reason
    assert hashlib.sha256(payload).hexdigest() in reason


@pytest.mark.parametrize("kind, key", [("status", "sources"), ("metrics", "queue"), ("calls", "x")])
def test_a_message_nested_a_thousand_deep_is_refused_before_anything_walks_it(kind, key):
    deep: object = "leaf"
    for _ in range(1_020):
        deep = [deep]
    value = {"status": to_wire(StatusEvent(gw="gw-1", site="lab", state="online", boot=1, rx=9, version="1")),
             "metrics": {"v": 1, "kind": "metrics", "gw": "gw-1", "rx": 1, "up_s": 1.0, "sources": [], "queue": {},
                         "broker": {}, "headsets": 0},
             "calls": CALL}[kind] | {key: deep if key == "sources" else {"k": deep}}
    payload = msgpack.packb([value] if kind == "calls" else value)
    rows = Rows()
    rows.add(f"pbxgw/v1/lab/gw-1/{kind}", payload, 5)
    assert not rows.statuses and not rows.metrics and not rows.events
    reason = f"{key!r}: arrays and maps nested more than {MAX_DEPTH} deep"
    assert rows.rejected == [(f"pbxgw/v1/lab/gw-1/{kind}", payload, f"event 1: {reason}" if kind == "calls" else reason,
                              5)]


def test_a_nesting_at_the_limit_is_walked_without_recursion():
    deep: object = {"k": 1.5}
    for _ in range(MAX_DEPTH - 1):
        deep = [deep]
    assert not too_deep(deep) and too_deep([deep])
    rows = Rows()
    rows.add(TOPIC, packed({**CALL, "x": {"k": [[float("nan")]]}}), 5)
    assert "number nan" in rows.rejected[0][2]


def test_a_gap_that_ends_before_it_begins_is_refused():
    gap = to_wire(GapEvent(gw="gw-1", src="pbx", stream=None, rx=9, first=9, last=3, count=3, first_rx=None,
                           last_rx=None, reason="queue full: drop_oldest"))
    rows = Rows()
    rows.add("pbxgw/v1/lab/gw-1/gaps", packed(gap), 5)
    assert not rows.gaps and "'first' 9 after 'last' 3" in rows.rejected[0][2]


def test_vendor_fields_that_only_look_unstorable_in_json_are_stored():
    rows = Rows()
    rows.add(TOPIC, packed({**CALL, "x": {"note": "a \\u0000 b", "gone": None, "n": 2**64 - 1}}), 5)
    assert not rows.rejected
    assert json.loads(rows.events[0][EVENT_COLUMNS.index("x")]) == {"note": "a \\u0000 b", "gone": None, "n": 2**64 - 1}


def test_an_event_missing_a_key_names_it():
    event = dict(CALL)
    del event["ring"]
    assert problem(event, "call", "gw-1") == "no 'ring'"
    assert problem({k: v for k, v in CALL.items() if k != "x"}, "call", "gw-1") == ""  # x may be left out


def test_status_gaps_and_metrics_become_their_rows():
    rows = Rows()
    rows.add("pbxgw/v1/lab/gw-1/status", msgpack.packb(to_wire(StatusEvent(
        gw="gw-1", site="lab", state="online", boot=4, rx=9, version="1.0",
        sources=[{"name": "pbx", "profile": "avaya-ipo", "timezone": "Europe/Paris"}]))), 10)
    rows.add("pbxgw/v1/lab/gw-1/gaps", packed(to_wire(GapEvent(gw="gw-1", src="pbx", stream=None, rx=9, first=3,
                                                                 last=5, count=3, first_rx=None, last_rx=None,
                                                                 reason="queue full: drop_oldest"))), 10)
    assert not rows.rejected
    assert rows.statuses[0]["boot"] == 4 and rows.statuses[0]["site"] == "lab"
    assert rows.gaps[0][:6] == ("gw-1", "pbx", "", 3, 5, 3)


def test_the_reader_process_hands_back_replies_as_the_collector_checks_them():
    from gateway.central.reader import Reader

    reply = {"v": 1, "id": "c1-r1-1", "src": "pbx", "stream": "s1", "first": 5, "last": 9, "found": 2,
             "missing": [[7, 9]]}
    reader = Reader()
    try:
        rows = reader.rows([("pbxgw/v1/lab/gw-1/replies", msgpack.packb(reply), 11), (TOPIC, packed(CALL), 12)])
    finally:
        reader.close()
    assert rows.replies == [Reply("pbxgw/v1/lab/gw-1/replies", msgpack.packb(reply), "gw-1", "lab", reply, 11)]
    assert not rows.gaps and len(rows.events) == 1  # (a reply makes rows once the asker says it answers a request)
    rows.take_reply(rows.replies[0], "")
    assert [g[:6] for g in rows.gaps] == [("gw-1", "pbx", "s1", 7, 9, 3)]
    rows.take_reply(rows.replies[0], "a reply to no request")
    assert len(rows.gaps) == 1 and rows.rejected[-1][2] == "a reply to no request"


@pytest.mark.parametrize("up_s", [float("nan"), float("inf"), -float("inf")])
def test_a_number_no_database_keeps_is_refused_where_it_came(up_s):
    metrics = {"v": 1, "kind": "metrics", "gw": "gw-1", "rx": 1, "up_s": up_s, "sources": [], "queue": {},
               "broker": {}, "headsets": 0}
    rows = Rows()
    rows.add("pbxgw/v1/lab/gw-1/metrics", msgpack.packb(metrics), 5)
    assert not rows.metrics and f"'up_s': number {up_s}" in rows.rejected[0][2]


def test_a_json_column_that_is_no_json_reads_as_nothing():
    from gateway.central.database import json_value

    assert json_value("") is None and json_value("{") is None and json_value('{"a": 1}') == {"a": 1}


def test_a_reason_shows_a_hostile_value_cut_in_depth_and_length():
    """A value 1020 deep (msgpack reads 1024) would exhaust Python's repr."""
    payload = packed({**CALL, "v": "PLACEHOLDER"}, {**CALL, "ext": "x" * 100_000, "seq": 8, "dur": "y" * 100_000})
    payload = payload.replace(msgpack.packb("PLACEHOLDER"), b"\x91" * 1_020 + b"\x01")
    rows = Rows()
    rows.add(TOPIC, payload, 5)
    (reason,) = [r[2] for r in rows.rejected]
    assert reason.startswith("2 of 2 events refused; event 1: schema version [[[[") and "...]]]]" in reason
    assert len(reason.split(" (payload cut")[0]) < 200
