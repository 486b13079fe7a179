"""TCP PBX links: the gateway as client (Panasonic, Mitel: we connect to the PBX) or as
server (Avaya IP Office connects to us). A profile's ``[[transport.login]]`` dialogue runs
before records are read; its bytes never reach the parser. Its ``[[transport.reply]]``
requests (keep-alive tests) are answered while records flow.
"""

from __future__ import annotations

import asyncio

from gateway.profiles import LoginStep, Reply
from gateway.sources.base import Source

CHUNK = 64 * 1024
CONNECT_TIMEOUT_S = 10


class LoginFailed(Exception):
    """The PBX did not say what the profile's login dialogue expects."""


async def login(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                steps: tuple[LoginStep, ...]) -> bytes:
    """Run the dialogue; return the bytes received after the last expected text."""
    received = b""
    for step in steps:
        if step.expect:
            wanted = step.expect.lower().encode("latin-1")
            try:
                async with asyncio.timeout(step.timeout):
                    while (at := received.lower().find(wanted)) < 0:
                        chunk = await reader.read(CHUNK)
                        if not chunk:
                            raise LoginFailed(f"connection closed while waiting for {step.expect!r}")
                        received += chunk
            except TimeoutError:
                raise LoginFailed(f"no {step.expect!r} within {step.timeout:g} s") from None
            received = received[at + len(wanted):]
        if step.send:
            writer.write(step.send)
            await writer.drain()
    return received


class Responder:
    """Sans-I/O: finds the profile's reply requests in the incoming bytes, however they are
    split across reads, and says what to send back."""

    def __init__(self, replies: tuple[Reply, ...]):
        self._replies = replies
        self._keep = max((len(r.receive) for r in replies), default=1) - 1
        self._tail = b""

    def feed(self, data: bytes) -> bytes:
        """The answers due for ``data``, in the order their requests arrived."""
        if not self._replies:
            return b""
        window = self._tail + data
        found = sorted((at, reply.send) for reply in self._replies
                       for at in _occurrences(window, reply.receive, len(self._tail)))
        self._tail = window[-self._keep:] if self._keep else b""
        return b"".join(send for _, send in found)


def _occurrences(data: bytes, pattern: bytes, tail: int):
    """Where ``pattern`` ends past ``tail`` bytes of ``data`` (so a request that straddles
    two reads is found once, in the read that completes it)."""
    at = data.find(pattern)
    while at >= 0:
        if at + len(pattern) > tail:
            yield at
        at = data.find(pattern, at + 1)


async def pump(source: Source, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
               first: bytes = b"") -> None:
    """Move bytes from ``reader`` into the source's ingest until the peer closes, answering
    the profile's reply requests on the way."""
    responder = Responder(source.settings.profile.replies)
    data = first
    while True:
        if data:
            if answer := responder.feed(data):
                writer.write(answer)
                await writer.drain()
            source.ingest.data(data)
        await asyncio.sleep(source.settings.read_delay)
        if not (data := await reader.read(CHUNK)):
            return


class TcpClientSource(Source):
    async def run(self) -> None:
        where = f"{self.settings.host}:{self.settings.port}"
        while True:
            self.state = "connecting"
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    reader, writer = await asyncio.open_connection(self.settings.host, self.settings.port)
            except (OSError, TimeoutError) as exc:
                await asyncio.sleep(self.waiting(f"cannot connect to {where}: {exc or 'timed out'}"))
                continue
            try:
                first = await login(reader, writer, self.settings.profile.login)
                self.reading()
                await pump(self, reader, writer, first)
                error = f"{where} closed the connection"
            except (OSError, LoginFailed) as exc:
                error = f"{where}: {exc}"
            finally:
                writer.close()
                self.ingest.end()
            await asyncio.sleep(self.waiting(error))


class TcpServerSource(Source):
    """Listens; the PBX connects. A new connection replaces the old one (a PBX that
    reconnects has given up on the old socket)."""

    async def run(self) -> None:
        self._current: asyncio.Task | None = None
        server = await asyncio.start_server(self._serve, self.settings.host or None, self.settings.port)
        self.state = "waiting"
        self.log.info("listening on port %d", self.settings.port)
        async with server:
            await server.serve_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._current is not None:
            self._current.cancel()
        self._current = asyncio.current_task()
        peer = writer.get_extra_info("peername")
        self.log.info("PBX connected from %s", peer)
        self.reading()
        try:
            await pump(self, reader, writer)
        except OSError:
            pass
        finally:
            writer.close()
            self.ingest.end()
            if self._current is asyncio.current_task():
                self._current = None
                self.state, self.error = "waiting", f"{peer} disconnected"
