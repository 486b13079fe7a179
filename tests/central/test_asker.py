"""The collector's asking: holes asked for after their grace, bounded per gateway, backed
off, asked again when their gateway is back, forgotten once filled."""

import msgpack
import pytest

from gateway.central.asker import Asker
from gateway.wire.replay import MAX_HOLE, MAX_JOBS, MAX_RANGE

pytestmark = pytest.mark.central

KEY = ("gw-1", "lab", "pbx", "s1")


def asked(requests):
    return [(topic, msgpack.unpackb(payload)) for topic, payload in requests]


def test_a_hole_is_asked_for_after_its_grace_and_again_after_a_backoff_until_filled():
    asker = Asker(grace=60, name="c1", run="r1", backoff_min=30)
    assert asker.requests({KEY: [(5, 9)]}, now=0) == []  # seen now: it may fill by itself
    ((topic, request),) = asked(asker.requests({KEY: [(5, 9)]}, now=61))
    assert topic == "pbxgw/v1/lab/gw-1/cmd/replay"
    assert {k: request[k] for k in ("v", "src", "stream", "first", "last")} == \
        {"v": 1, "src": "pbx", "stream": "s1", "first": 5, "last": 9}
    assert asker.requests({KEY: [(5, 9)]}, now=80) == []  # asked; not again before its backoff
    ((_, again),) = asked(asker.requests({KEY: [(5, 9)]}, now=92))
    assert again["id"] != request["id"]
    assert asker.requests({KEY: [(5, 9)]}, now=140) == []  # (the backoff doubled: 60 s)
    assert asker.requests({}, now=200) == []  # filled: forgotten
    assert asker.requests({KEY: [(5, 9)]}, now=201) == []  # a new hole there waits its grace again


def test_a_large_hole_is_asked_in_pieces_at_most_max_jobs_at_a_time_per_gateway():
    asker = Asker(grace=0, name="c1", run="r1")
    hole = {KEY: [(1, 10 * MAX_RANGE)], ("gw-2", "lab", "pbx", "s9"): [(1, 1)]}
    first = asked(asker.requests(hole, now=1))
    to_gw1 = [r for t, r in first if "/gw-1/" in t]
    assert len(to_gw1) == MAX_JOBS and all(r["last"] - r["first"] + 1 == MAX_RANGE for r in to_gw1)
    assert any("/gw-2/" in t for t, _ in first)  # another gateway is not held up
    for t, r in first:
        assert asker.answered(t.split("/")[3], {**r, "found": 1, "missing": []}) == ""
    assert len([r for t, r in asked(asker.requests(hole, now=3)) if "/gw-1/" in t]) == MAX_JOBS


def test_what_was_asked_of_a_gateway_that_then_came_online_is_asked_again_at_once():
    asker = Asker(grace=0, name="c1", run="r1", backoff_min=30)
    (_, first), = asked(asker.requests({KEY: [(5, 9)]}, now=1))
    asker.online("gw-9", now=2)  # another gateway: nothing changes
    assert asker.requests({KEY: [(5, 9)]}, now=3) == []
    asker.online("gw-1", now=4)
    (_, again), = asked(asker.requests({KEY: [(5, 9)]}, now=5))
    assert again["id"] != first["id"] and (again["first"], again["last"]) == (5, 9)


def test_a_collector_started_again_does_not_number_its_requests_as_the_run_before():
    """A gateway answers an id it answered lately with the same reply, not a replay: the
    first request of a new run must not be taken for the first of the last run."""
    before, after = Asker(grace=0, name="c1", run="aaaa"), Asker(grace=0, name="c1", run="bbbb")
    (_, first_before), = asked(before.requests({KEY: [(5, 9)]}, now=1))
    (_, first_after), = asked(after.requests({KEY: [(5, 9)]}, now=1))
    assert first_before["id"] != first_after["id"] and len(first_after["id"]) <= 64


def test_a_stream_missing_more_than_any_gateway_keeps_is_said_once_and_never_asked():
    """A forged or damaged seq (one event numbered 2^53 - 1) must not become a storm of
    requests, nor a list of pieces that fills the memory: the other streams are asked."""
    asker = Asker(grace=0, name="c1", run="r1")
    forged = ("gw-1", "lab", "pbx", "s2")
    holes = {forged: [(2, 2**53 - 2)], KEY: [(5, 9)]}
    assert asker.too_large(holes) == [(forged, 2**53 - 3)]
    assert [(r["stream"], r["first"], r["last"]) for _, r in asked(asker.requests(holes, now=1))] == [("s1", 5, 9)]
    assert asker.too_large(holes) == []  # said once
    at_limit = {forged: [(1, MAX_HOLE)]}
    assert asker.too_large(at_limit) == [] and len(asker.requests(at_limit, now=2)) == MAX_JOBS


def test_a_reply_counts_only_for_a_request_waiting_of_its_gateway_about_what_was_asked():
    asker = Asker(grace=0, name="c1", run="r1")
    (_, request), = asked(asker.requests({KEY: [(5, 9)]}, now=1))
    answer = {**request, "found": 0, "missing": [[5, 9]]}
    assert "no request this collector waits for" in asker.answered("gw-1", {**answer, "id": "c1-r1-99"})
    assert asker.answered("gw-2", answer) == "a reply from gw-2 to a request made of gw-1"
    assert asker.answered("gw-1", {**answer, "last": 1_000_000, "missing": [[5, 1_000_000]]}) == \
        "a reply about pbx s1 5..1000000 to a request for pbx s1 5..9"
    assert asker.lost == 0
    assert asker.answered("gw-1", answer) == "" and asker.lost == 5
    assert "no request this collector waits for" in asker.answered("gw-1", answer)  # (once)
