"""The wire contract: keys as documented, bytes as pinned, encode/decode inverse."""

import dataclasses
import re

import msgpack
import pytest

from helpers import FIXTURES, ROOT
from gateway.wire.events import (AlarmEvent, CallEvent, GapEvent, HeadsetEvent, StatusEvent, UnparsedEvent,
                            from_wire, mark_historical, packb, to_json_dict, to_wire, unpackb)
from gateway.edge.headsets.telephony import EVENTS

CALL = CallEvent(gw="gw-01", src="pbx1", stream="5f1c0a9e3b7d2468", seq=42, rx=1768478400123, profile="avaya-ipo",
                 start=1214645321, ring=9, dur=0, dir="in", ext="4324", trunk="9161",
                 caller="8004206", called="4324", acct=None, disp="unanswered",
                 callid="1000014155", raw="2008/06/28 09:28:41,00:00:00,9,8004206,I,...",
                 x={"continuation": 0, "party1_name": "Анна"})
UNPARSED = UnparsedEvent(gw="gw-01", src="pbx1", stream="5f1c0a9e3b7d2468", seq=43, rx=1768478400456, profile="avaya-ipo",
                         raw="garbage\xff", reason="1 fields, expected at least 17")

HEADSET = HeadsetEvent(gw="gw-01", src="hs-0b0e-0307-ABC123", stream="5f1c0a9e3b7d2468", seq=7, ts=1768478400123, vid=0x0B0E,
                       pid=0x0307, model="Jabra EVOLVE LINK MS", serial="ABC123", agent="alice", ext="4101",
                       ev="off_hook")

GAP = GapEvent(gw="gw-01", src="pbx1", stream="5f1c0a9e3b7d2468", rx=1768478400999, first=1, last=15, count=15,
               first_rx=1768478000000, last_rx=1768478100000, reason="queue full: drop_oldest")
ALARM = AlarmEvent(gw="gw-01", src="pbx1", rx=1768478400999, alarm="no_data", state="raised",
                   last_rx=None, quiet_s=900.0)
STATUS = StatusEvent(gw="gw-01", site="hq", state="online", boot=3, rx=1768478400000, version="0.1.0",
                     sources=[{"name": "pbx1", "profile": "avaya-ipo", "timezone": "Europe/London"}])


def documented_keys(kind: str) -> list[str]:
    """The key column of the docs/events.md table under the `kind` heading."""
    text = (ROOT / "docs" / "events.md").read_text()
    section = text.split(f"## `{kind}`", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `(\w+)` \|", section, re.MULTILINE)


@pytest.mark.parametrize("event", [CALL, UNPARSED, HEADSET, GAP, ALARM, STATUS],
                         ids=["call", "unparsed", "headset", "gap", "alarm", "status"])
def test_wire_keys_are_the_documented_ones_in_order(event):
    """With every key there: the optional ones set where the kind has them."""
    names = {f.name for f in dataclasses.fields(event)}
    event = dataclasses.replace(event, **{key: value for key, value in (
        ("unsynced", True), ("latin1", True), ("after_start", 1768478000), ("unparsed_share", 0.5)) if key in names})
    assert list(to_wire(event)) == documented_keys(event.KIND)


@pytest.mark.parametrize("event, golden", [(CALL, "call-v1.msgpack"), (UNPARSED, "unparsed-v1.msgpack"),
                                           (HEADSET, "headset-v1.msgpack"), (STATUS, "status-v1.msgpack")])
def test_encoding_matches_golden_bytes_and_decodes_back(event, golden):
    pinned = (FIXTURES / "wire" / golden).read_bytes()
    assert packb(event) == pinned
    assert unpackb(pinned) == event


def test_empty_vendor_fields_are_left_out_and_nulls_kept():
    bare = CallEvent(gw="g", src="s", seq=1, rx=0, profile="p", start=0)
    wire = to_wire(bare)
    assert "x" not in wire and wire["ring"] is None and wire["callid"] is None
    assert from_wire(wire) == bare


def test_text_is_msgpack_str_not_bin():
    decoded = msgpack.unpackb(packb(UNPARSED), raw=False)  # bin would decode to bytes
    assert isinstance(decoded["raw"], str) and decoded["raw"] == "garbage\xff"


def test_backlog_mark_is_added_without_reencoding_and_ignored_on_decoding():
    marked = mark_historical(packb(CALL))
    assert msgpack.unpackb(marked)["hist"] is True
    assert unpackb(marked) == CALL


@pytest.mark.parametrize("keys", [0, 14, 15, 16, 300, 65_534, 65_535, 70_000])
def test_the_backlog_mark_is_added_to_a_map_of_any_header(keys):
    """fixmap, map 16 (rewritten in place, up to its last count) and map 32 alike."""
    event = {f"k{n}": n for n in range(keys)}
    marked = msgpack.unpackb(mark_historical(msgpack.packb(event)))
    assert marked == {**event, "hist": True}


def test_json_shows_start_in_iso_utc():
    assert to_json_dict(CALL)["start"] == "2008-06-28T09:28:41Z"


@pytest.mark.parametrize("wire, message", [
    ({"v": 2, "kind": "call"}, "unsupported schema version 2"),
    ({"v": 1, "kind": "fax"}, "unknown event kind 'fax'"),
    ({"v": 1, "kind": "unparsed", "gw": "g"}, "malformed unparsed event"),
])
def test_decoding_rejects_what_it_does_not_know(wire, message):
    with pytest.raises(ValueError, match=message):
        from_wire(wire)


def test_every_headset_event_the_tracker_knows_is_documented():
    text = (ROOT / "docs" / "events.md").read_text().split("## `headset`", 1)[1].split("\n## ", 1)[0]
    ev_row = next(line for line in text.splitlines() if line.startswith("| `ev` |"))
    assert re.findall(r'"(\w+)"', ev_row) == list(EVENTS)


def test_every_topic_a_gateway_publishes_reads_back_as_what_it_carries():
    from gateway.wire import topics
    from gateway.wire.events import _TYPES

    for kind in _TYPES:  # each kind's events on their own topic; status and metrics by name
        last = topics.KIND_TOPICS.get(kind, kind)
        assert topics.parse(topics.topic("lab", "gw-1", last)) == ("lab", "gw-1", kind)
    assert topics.parse(topics.topic("lab", "gw-1", "replies")) == ("lab", "gw-1", "reply")
    request = topics.topic("lab", "gw-1", topics.REPLAY)
    assert topics.is_command(request) and topics.parse(request) is None
    for name in ("pbxgw/v1/lab/gw-1/nonsense", "pbxgw/v2/lab/gw-1/calls", "pbxgw/v1/la+b/gw-1/calls",
                 topics.every_gateway(), topics.one_gateway("lab", "gw-1")):
        assert topics.parse(name) is None and not topics.is_command(name)
