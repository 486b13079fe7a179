"""TCP PBX links: the gateway as client (Panasonic, Mitel: we connect to the PBX) or as
server (Avaya IP Office connects to us). A profile's ``[[transport.login]]`` dialogue runs
before records are read; its bytes never reach the parser. Its ``[[transport.reply]]``
requests (keep-alive tests) are answered while records flow.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from gateway.common.mqtt import credential
from gateway.edge.repeats import Repeats
from gateway.edge.sources.base import CHUNK, Source
from gateway.smdr.profile import LoginStep
from gateway.smdr.responder import Responder

CONNECT_TIMEOUT_S = 10
#: A stopped or replaced connection ingests what has already arrived for at most this long,
DRAIN_S = 1.0
#: ... and stops as soon as nothing more comes for this long.
DRAIN_IDLE_S = 0.05
#: A tcp-server connection that received bytes this recently is not replaced by another address's.
LIVE_S = 60.0
#: What the log says of a connection a reload handed from a source to its successor.
HANDED_OVER = ", the connection kept over a reload"
#: Refusals of one address are said at most this often.
REFUSAL_LOG_S = 60.0


class LoginFailed(Exception):
    """The PBX did not say what the profile's login dialogue expects."""


#: What ends a prompt after its text ("password: ", "> "): part of the prompt, not of the
#: first record when the PBX prints its records straight after the login.
_PROMPT_TAIL = re.compile(rb"[:>]? ?")


async def login(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                steps: tuple[LoginStep, ...], password: bytes | None = None) -> bytes:
    """Run the dialogue (``password`` in place of the profile's factory one); return the
    bytes received after the last expected text."""
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
            received = received[_PROMPT_TAIL.match(received).end():]
        if step.send:
            writer.write(step.sent(password))
            await writer.drain()
    return received


async def pump(source: Source, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
               first: bytes = b"", kept: Callable[[], bool] = lambda: False) -> None:
    """Move bytes from ``reader`` into the source's ingest until the peer closes, answering
    the profile's reply requests on the way. Cancelled (a reload, a stop, a replaced
    connection), it first commits what the PBX has already sent (:func:`_drain`), unless
    the connection is ``kept`` for a successor, which reads on from the same reader."""
    responder = Responder(source.settings.profile.replies)
    data = first
    try:
        while True:
            if data:
                source.last_data = time.monotonic()
                source.ingest.data(data)
                if answer := responder.feed(data):
                    writer.write(answer)
                    await writer.drain()
            await asyncio.sleep(source.settings.read_delay)
            if not (data := await reader.read(CHUNK)):
                return
    except asyncio.CancelledError:
        if not kept():
            await _drain(source, reader)
        raise


async def _drain(source: Source, reader: asyncio.StreamReader) -> None:
    """Ingest what has arrived already (in the reader's buffer and the kernel's), for at
    most ``DRAIN_S``: bytes the PBX counts as sent are not thrown away on a reload."""
    deadline = asyncio.get_running_loop().time() + DRAIN_S
    try:
        async with asyncio.timeout_at(deadline):
            while True:
                async with asyncio.timeout(DRAIN_IDLE_S):
                    if not (data := await reader.read(CHUNK)):
                        return
                source.ingest.data(data)
    except (TimeoutError, OSError):
        pass


def _login_password(settings) -> bytes | None:
    """The source's ``login_password_file`` (a path, or a systemd credential), read at each
    login so that a changed password needs no restart; None: the profile's factory one.

    :raises LoginFailed: it cannot be read.
    """
    path = settings.login_password_file
    if not path:
        return None
    if (name := credential(path)) is not None:
        path = os.path.join(os.environ.get("CREDENTIALS_DIRECTORY", ""), name)
    try:
        with open(path, "rb") as fh:
            return fh.read().strip()
    except OSError as exc:
        raise LoginFailed(f"cannot read login_password_file {path}: {exc.strerror}") from None


@dataclass
class Link:
    """An open PBX connection, kept by a stopped source for its successor (a reload)."""

    key: tuple  # the settings it was made with; a successor takes it only with the same
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    peer: tuple  # (address, port)

    def close(self) -> None:
        self.writer.close()


@dataclass
class Listener:
    """A tcp-server source's listening socket; its connections go to the source that owns
    it now (a successor after a reload takes it over)."""

    key: tuple  # where it listens
    owner: "TcpServerSource"
    server: asyncio.Server | None = None

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # (The owner is the one when this runs, not when the PBX connected: a reload may
        # have handed the listener on in between.)
        await self.owner._serve(reader, writer)


class TcpClientSource(Source):
    """Connects to the PBX (and logs in, as its profile says). A reload that changes neither
    the address nor the login hands the connection, logged in, to the successor."""

    def __init__(self, settings, ingest, predecessor: Source | None = None):
        super().__init__(settings, ingest, predecessor)
        # The connection held for reading next: a predecessor's, or, stopped, this one's
        # for a successor (also when it was stopped before it ever ran).
        self._link: Link | None = None
        if isinstance(predecessor, TcpClientSource) and predecessor._link and predecessor._link.key == _dial(settings):
            self._link, predecessor._link = predecessor._link, None

    def hands_over_to(self, successor) -> bool:
        return successor.type == "tcp-client" and _dial(successor) == _dial(self.settings)

    def release(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None

    async def run(self) -> None:
        where = f"{self.settings.host}:{self.settings.port}"
        while True:
            link, self._link = self._link, None
            if link is None:
                self.state = "connecting"
                try:
                    async with asyncio.timeout(CONNECT_TIMEOUT_S):
                        reader, writer = await asyncio.open_connection(self.settings.host, self.settings.port)
                except (OSError, TimeoutError) as exc:
                    await asyncio.sleep(self.waiting(f"cannot connect to {where}: {exc or 'timed out'}"))
                    continue
                link = Link(_dial(self.settings), reader, writer, writer.get_extra_info("peername"))
                fresh = True
            else:
                fresh = False
            try:
                first = b""
                if fresh:
                    first = await login(link.reader, link.writer, self.settings.profile.login,
                                        _login_password(self.settings))
                self.reading(f"{where}{', logged in' if self.settings.profile.login and fresh else ''}"
                             f"{'' if fresh else HANDED_OVER}")
                records = self.ingest.records
                await pump(self, link.reader, link.writer, first, kept=lambda: self.ingest.hand_over)
                error = f"{where} closed the connection"
                if self.ingest.records == records and any(step.password for step in self.settings.profile.login):
                    error += " after the login, before any record: a wrong login password (login_password_file)?"
            except (OSError, LoginFailed) as exc:
                error = f"{where}: {exc}"
            except asyncio.CancelledError:
                if self.ingest.hand_over:
                    self._link, link = link, None
                raise
            finally:
                if link is not None:
                    link.close()
                self.ingest.end()
            await asyncio.sleep(self.waiting(error))


class TcpServerSource(Source):
    """Listens on ``host`` (every interface by default); the PBX connects.

    Only addresses in ``allow`` are served (any, when it is empty); others are closed at
    once, said in one log line per address per ``REFUSAL_LOG_S``. Connections are read one
    at a time, in the order they came. A new one from the same address replaces the one
    read (a PBX that reconnects has given up on its old socket), as does one from elsewhere
    once the current one has been silent for ``LIVE_S``; otherwise the newcomer is refused
    and the PBX read on. A replaced connection, and one replaced before its turn, commits
    what its PBX had sent (:func:`_drain`) before the next is read. A reload that keeps the
    address and port hands the listening socket and the connections (the one read and those
    waiting, if ``allow`` still admits them) to the successor, which reads on in the same
    order: the PBX sees nothing. A stop that does not hand them over commits what they had,
    for at most ``DRAIN_S`` in all, and closes them.
    """

    def __init__(self, settings, ingest, predecessor: Source | None = None):
        super().__init__(settings, ingest, predecessor)
        self._refusals = Repeats(self.log.warning, REFUSAL_LOG_S)  # by address
        self._host: str | None = None  # the address of the newest connection taken
        self._arrived = asyncio.Event()  # a connection joined ``_links``
        self._pumping: asyncio.Task | None = None  # the one being read
        # The listening socket, and the connections to read, oldest first: a predecessor's,
        # or, stopped, this one's for a successor (also when it was stopped before it ran).
        self._listener: Listener | None = None
        self._links: deque[Link] = deque()
        if isinstance(predecessor, TcpServerSource) and predecessor._listener \
                and predecessor._listener.key == _listen(settings):
            self._listener, links = predecessor._listener, predecessor._links
            predecessor._listener, predecessor._links = None, deque()
            self._listener.owner = self  # its connections come here now
            for link in links:
                if self._refusal(link.peer[0]) is None:
                    self._take(link)
                else:
                    link.close()  # ``allow`` no longer admits it

    def hands_over_to(self, successor) -> bool:
        return successor.type == "tcp-server" and _listen(successor) == _listen(self.settings)

    def release(self) -> None:
        if self._listener is not None:
            self._listener.server.close()
            self._listener = None
        while self._links:
            self._links.popleft().close()

    async def run(self) -> None:
        s = self.settings
        while self._listener is None:
            listener = Listener(_listen(s), self)
            try:
                listener.server = await asyncio.start_server(listener.accept, s.host, s.port)
            except OSError as exc:
                # (asyncio's own message repeats the address, as a Python tuple)
                why = os.strerror(exc.errno) if exc.errno else str(exc)
                await asyncio.sleep(self.waiting(f"cannot listen on {s.host}:{s.port}: {why}"))
                continue
            self._listener = listener
            self.state, self.error = "waiting", ""
            self.log.info("listening on %s:%d%s", s.host, s.port,
                          f", for {', '.join(map(str, s.allow))}" if s.allow else
                          " for any address (set allow = [...] to the PBX's address)")
        if self.state == "starting":  # (a listener taken over: as if just listening)
            self.state = "waiting"
        how = HANDED_OVER if self._links else ""
        try:
            while True:
                await self._arrived.wait()
                self._arrived.clear()
                while self._links:
                    link = self._links[0]
                    if len(self._links) > 1:  # replaced before its turn
                        await _drain(self, link.reader)
                        self.ingest.end()
                        self._links.popleft().close()
                        continue
                    await self._read(link, how)
                    how = ""
        finally:
            if self.ingest.hand_over:  # the successor reads them all, in order, and on from here
                self.ingest.end()
            else:
                await self._let_go()

    async def _read(self, link: Link, how: str) -> None:
        """Read the newest connection (first in ``_links``) until it closes (then it is
        taken off), or a newer one comes (it commits what it had and is taken off), or a
        stop (which leaves it in ``_links``)."""
        self.last_data = time.monotonic()
        self.reading(f"the PBX at {link.peer[0]}:{link.peer[1]}{how}")
        # (The pump leaves what is still to come to this reader: it may be cancelled before
        # it ever runs.)
        self._pumping = asyncio.get_running_loop().create_task(pump(self, link.reader, link.writer, kept=lambda: True))
        ended = False
        try:
            await self._pumping  # it ends when the PBX closes, or when a newer one cancels it
            ended = True
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():  # a stop: the link stays first in line
                raise
            await _drain(self, link.reader)  # it gave way to a newer one: what it had first
            ended = True
        except OSError:
            ended = True
        finally:
            self._pumping = None
            self.ingest.end()
            if ended:
                self._links.popleft().close()
                if not self._links:
                    self.state, self.error = "waiting", f"{link.peer[0]} disconnected"

    async def _let_go(self) -> None:
        """A stop that hands nothing over: the connections commit what they have (all of
        them in ``DRAIN_S`` at most) and close."""
        try:
            async with asyncio.timeout(DRAIN_S):
                for link in list(self._links):
                    await _drain(self, link.reader)
                    self.ingest.end()
        except TimeoutError:
            pass
        self.release()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Never ends with an exception: asyncio would log a traceback for each.
        peer = writer.get_extra_info("peername")
        host = _address(peer[0])
        if (why := self._refusal(host)) is not None:
            self._refused(host, why)
            writer.close()
            return
        if self._listener is None:  # stopped, handing nothing over
            writer.close()
            return
        self._take(Link(_listen(self.settings), reader, writer, (host, peer[1])))

    def _take(self, link: Link) -> None:
        """Queue a connection to read; the one being read gives way to it."""
        if self._host is not None and self._links:
            self.log.info("PBX connection from %s replaced by one from %s", self._host, link.peer[0])
        self._links.append(link)
        self._host = link.peer[0]
        self.last_data = time.monotonic()  # (a PBX that just connected is live: no stranger displaces it)
        self._arrived.set()
        if self._pumping is not None:
            self._pumping.cancel()  # it commits what it has and gives way

    def _refusal(self, host: str) -> str | None:
        """Why a connection from ``host`` is not read, or None."""
        allow = self.settings.allow
        if allow and not any(ipaddress.ip_address(host) in net for net in allow):
            return "not in allow"
        if self._links and self._host != host and time.monotonic() - self.last_data < LIVE_S:
            return f"the PBX at {self._host} is sending"
        return None

    def _refused(self, host: str, why: str) -> None:
        self._refusals(host, f"refused a connection from {host}: {why}", time.monotonic())


def _dial(s) -> tuple:
    """What a tcp-client connection is made with: a successor adopts it only if these match."""
    return s.host, s.port, s.profile.login, s.login_password_file


def _listen(s) -> tuple:
    """Where a tcp-server listens: a successor adopts the socket only if these match."""
    return s.host, s.port


def _address(host: str) -> str:
    """An IPv4 peer as its plain address even on a dual-stack socket (``::ffff:a.b.c.d``)."""
    ip = ipaddress.ip_address(host.split("%")[0])
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped or ip)
