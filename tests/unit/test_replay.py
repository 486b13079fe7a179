"""Replay requests: taken, bounded, refused with a reason; served at a rate; answered with
what was found and what is missing."""

import msgpack
import pytest

from gateway.edge import replay
from gateway.edge.replay import Replays
from gateway.wire.replay import MAX_JOBS, MAX_RANGE


def ask(**fields) -> bytes:
    return msgpack.packb({"v": 1, "id": "r1", "src": "pbx", "stream": "s1", "first": 1, "last": 100, **fields})


@pytest.mark.parametrize("payload, reason", [
    (b"\xc1", "not msgpack"),
    (msgpack.packb([1, 2]), "expected a map"),
    (msgpack.packb({"v": 1, "src": "pbx", "first": 1, "last": 2}), "'id'"),
    (ask(v=2), "'v': expected 1"),
    (ask(first=5, last=4), "1 <= first <= last"),
    (ask(first=0), "1 <= first <= last"),
    (ask(last="9"), "whole numbers"),
    (ask(src=""), "'src'"),
    (ask(colour="red"), "unknown key 'colour'"),
    (ask(first=1, last=MAX_RANGE + 1), f"at most {MAX_RANGE}"),
])
def test_a_malformed_request_is_answered_with_its_reason_and_not_to_be_retried(payload, reason):
    replays = Replays("s1", rate=100)
    reply = replays.request(payload, now=0.0)
    assert reason in reply["error"] and reply["retry"] is False and not replays.jobs


def test_requests_past_the_bounds_are_refused_as_busy_and_a_repeated_one_is_taken_once():
    replays = Replays("s1", rate=100)
    assert replays.request(ask(id="a"), 0.0) is None
    assert replays.request(ask(id="a"), 0.5) is None and len(replays.jobs) == 1  # the same id: once
    for n in range(1, MAX_JOBS):
        assert replays.request(ask(id=f"r{n}"), 1.0) is None
    refused = replays.request(ask(id="more"), 1.0)
    assert refused["retry"] is True and "busy" in refused["error"] and refused["id"] == "more"


def test_at_most_per_minute_requests_are_taken_in_any_minute():
    replays = Replays("s1", rate=100)
    for n in range(replay.PER_MINUTE):
        assert replays.request(ask(id=f"r{n}"), float(n)) is None
        replays.finish(replays.jobs[0], None)
    assert "last minute" in replays.request(ask(id="late"), 59.5)["error"]
    assert replays.request(ask(id="later"), 61.0) is None  # the first ones are a minute old


def test_a_request_without_a_stream_means_the_current_one_and_its_reply_names_what_is_missing():
    replays = Replays("current", rate=100)
    replays.request(msgpack.packb({"v": 1, "id": "x", "src": "pbx", "first": 10, "last": 20}), 0.0)
    job = replays.jobs[0]
    assert job.stream == "current"
    replays.sent(job, [(101, 10), (102, 11), (105, 15)])
    replays.sent(job, [(107, 17)])
    reply = replays.finish(job, 30)
    assert reply == {"v": 1, "id": "x", "src": "pbx", "stream": "current", "first": 10, "last": 20, "found": 4,
                     "missing": [[12, 14], [16, 16], [18, 20]]}
    assert job.after == 107 and not replays.jobs


@pytest.mark.parametrize("numbered, missing", [(15, [[12, 14]]), (9, []), (None, [[12, 14], [16, 20]])])
def test_a_number_the_source_has_not_used_yet_is_not_missing(numbered, missing):
    """A request for numbers not used yet (asked early, or made to make the gateway say
    so) must not have them stored as lost: they may come yet."""
    replays = Replays("current", rate=100)
    replays.request(msgpack.packb({"v": 1, "id": "x", "src": "pbx", "first": 10, "last": 20}), 0.0)
    replays.sent(replays.jobs[0], [(101, 10), (102, 11), (105, 15)])
    reply = replays.finish(replays.jobs[0], numbered)
    assert (reply["first"], reply["last"], reply["found"], reply["missing"]) == (10, 20, 3, missing)


def test_the_rate_allows_a_second_of_events_and_refills_with_time():
    replays = Replays("s1", rate=100)
    assert replays.allowance(0.0) == 100
    replays.request(ask(), 0.0)
    replays.sent(replays.jobs[0], [(n, n) for n in range(1, 101)])
    assert replays.allowance(0.0) == 0 and replays.wait() == pytest.approx(0.01)
    assert replays.allowance(0.5) == 50
    assert replays.allowance(10.0) == 100  # never more than a second's worth


def test_a_request_answered_lately_gets_its_reply_again_not_a_second_replay():
    replays = Replays("s1", rate=100)
    replays.request(ask(id="a"), 0.0)
    first = replays.finish(replays.jobs[0], None)
    assert replays.request(ask(id="a"), 1.0) == first and not replays.jobs
