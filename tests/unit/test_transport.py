"""Transport replies: keep-alive requests found in the byte stream, however it is split."""

import random

from gateway.smdr.profile import Reply
from gateway.smdr.responder import Responder

TEST = Reply(b"\x00\x08TEST_REQ", b"\x00\x08TEST_RSP")
PING = Reply(b"PING", b"PONG")


def test_each_request_is_answered_once_whatever_the_reads():
    stream = b"\x03\x04" + b"x" * 50 + TEST.receive + b"PING" + b"y" * 20 + TEST.receive + b"PIN"
    rng = random.Random(7)
    for _ in range(200):
        responder, answers, at = Responder((TEST, PING)), b"", 0
        while at < len(stream):
            size = rng.randint(1, 12)
            answers += responder.feed(stream[at:at + size])
            at += size
        assert answers == TEST.send + PING.send + TEST.send  # the last PIN is not a request yet


def test_byte_by_byte_and_whole_give_the_same_answers():
    stream = TEST.receive * 3
    whole = Responder((TEST,)).feed(stream)
    bytewise = Responder((TEST,))
    assert whole == b"".join(bytewise.feed(stream[i:i + 1]) for i in range(len(stream))) == TEST.send * 3


def test_a_profile_without_replies_answers_nothing():
    assert Responder(()).feed(TEST.receive) == b""
