"""Transport: keep-alive requests found in the byte stream, however it is split; the login
dialogue's prompt kept out of the first record."""

import asyncio
import random

from gateway.edge.sources.tcp import login
from gateway.smdr import profiles
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


def test_the_first_record_after_a_login_prompt_is_not_glued_to_the_prompts_tail():
    """A PBX that prints its records straight after "password: " (the simulator does):
    the prompt's ": " is the prompt's, and the first record reads whole."""
    async def dialogue() -> bytes:
        async def pbx(reader, writer):
            writer.write(b"password: ")
            await reader.readline()  # "SMDR", the first step's
            await reader.readline()  # the password
            writer.write(b"11/23/26  3:15AM 2002  9010 <D>7002<I>0676261667")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(pbx, "127.0.0.1", 0)
        async with server:
            reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
            first = await login(reader, writer, profiles.find("panasonic-kx-tda").login)
            rest = await reader.read()
            writer.close()
            return first + rest

    assert asyncio.run(asyncio.wait_for(dialogue(), 30)) == b"11/23/26  3:15AM 2002  9010 <D>7002<I>0676261667"
