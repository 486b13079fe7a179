"""TCP PBX links: the gateway as client (Panasonic, Mitel: we connect to the PBX) or as
server (Avaya IP Office connects to us). A profile's ``[[transport.login]]`` dialogue runs
before records are read; its bytes never reach the parser. Its ``[[transport.reply]]``
requests (keep-alive tests) are answered while records flow.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import time
from dataclasses import dataclass

from gateway.config import credential
from gateway.repeats import Repeats
from gateway.smdr.profile import LoginStep
from gateway.smdr.responder import Responder
from gateway.sources.base import CHUNK, Source

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
        if step.send:
            writer.write(step.sent(password))
            await writer.drain()
    return received


async def pump(source: Source, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
               first: bytes = b"") -> None:
    """Move bytes from ``reader`` into the source's ingest until the peer closes, answering
    the profile's reply requests on the way. Cancelled (a reload, a stop, a replaced
    connection), it first commits what the PBX has already sent (:func:`_drain`), unless
    the connection is handed over to a successor, which reads on from the same reader."""
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
        if not source.ingest.hand_over:
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


class TcpClientSource(Source):
    """Connects to the PBX (and logs in, as its profile says). A reload that changes neither
    the address nor the login hands the connection, logged in, to the successor."""

    def __init__(self, settings, ingest, predecessor: Source | None = None):
        super().__init__(settings, ingest, predecessor)
        self.kept: Link | None = None  # for a successor
        self._adopted: Link | None = None
        if isinstance(predecessor, TcpClientSource) and predecessor.kept and predecessor.kept.key == _dial(settings):
            self._adopted, predecessor.kept = predecessor.kept, None

    def hands_over_to(self, successor) -> bool:
        return successor.type == "tcp-client" and _dial(successor) == _dial(self.settings)

    def release(self) -> None:
        if self.kept is not None:
            self.kept.close()
            self.kept = None

    async def run(self) -> None:
        where = f"{self.settings.host}:{self.settings.port}"
        while True:
            link, self._adopted = self._adopted, None
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
                await pump(self, link.reader, link.writer, first)
                error = f"{where} closed the connection"
                if self.ingest.records == records and any(step.password for step in self.settings.profile.login):
                    error += " after the login, before any record: a wrong login password (login_password_file)?"
            except (OSError, LoginFailed) as exc:
                error = f"{where}: {exc}"
            except asyncio.CancelledError:
                if self.ingest.hand_over:
                    self.kept, link = link, None
                raise
            finally:
                if link is not None:
                    link.close()
                self.ingest.end()
            await asyncio.sleep(self.waiting(error))


class TcpServerSource(Source):
    """Listens on ``host`` (every interface by default); the PBX connects.

    Only addresses in ``allow`` are served (any, when it is empty); others are closed at
    once, said in one log line per address per ``REFUSAL_LOG_S``. One connection is read at
    a time. A new one from the same address replaces it (a PBX that reconnects has given up
    on its old socket), as does one from elsewhere once the current one has been silent
    for ``LIVE_S``; otherwise the newcomer is refused and the PBX read on. A replaced or
    stopped connection commits what it had before the next one is read. A reload that keeps
    the address and port hands the listening socket and the PBX's connection (if ``allow``
    still admits it) to the successor: the PBX sees nothing.
    """

    def __init__(self, settings, ingest, predecessor: Source | None = None):
        super().__init__(settings, ingest, predecessor)
        self._current: tuple[asyncio.Task, str] | None = None  # the connection to read, and its address
        self._handlers: set[asyncio.Task] = set()
        self._reading = asyncio.Lock()  # held by the connection being read
        self._refusals = Repeats(self.log.warning, REFUSAL_LOG_S)  # by address
        self._listener: Listener | None = None
        self._kept_link: Link | None = None  # the connection being read when a stop came that hands it over
        self.kept: tuple[Listener, Link | None] | None = None  # for a successor
        self._adopted: Link | None = None
        if isinstance(predecessor, TcpServerSource) and predecessor.kept and predecessor.kept[0].key == _listen(settings):
            (self._listener, self._adopted), predecessor.kept = predecessor.kept, None
            self._listener.owner = self  # its connections come here now
            if self._adopted and self._refusal(self._adopted.peer[0]) is not None:
                self._adopted.close()  # ``allow`` no longer admits it
                self._adopted = None

    def hands_over_to(self, successor) -> bool:
        return successor.type == "tcp-server" and _listen(successor) == _listen(self.settings)

    def release(self) -> None:
        if self.kept is not None:
            listener, link = self.kept
            listener.server.close()
            if link is not None:
                link.close()
            self.kept = None

    async def run(self) -> None:
        s = self.settings
        while self._listener is None:
            listener = Listener(_listen(s), self)
            try:
                listener.server = await asyncio.start_server(lambda r, w: listener.owner._serve(r, w), s.host, s.port)
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
        if self._adopted is not None:
            link, self._adopted = self._adopted, None
            self._handlers.add(asyncio.get_running_loop().create_task(self._read(link, HANDED_OVER)))
        try:
            await asyncio.get_running_loop().create_future()  # connections are served until a stop
        finally:
            # Connections are not the server's to close: each commits what it had first
            # (or keeps its link for the successor).
            for task in self._handlers:
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            if self.ingest.hand_over:
                self.kept = (self._listener, self._kept_link)
            else:
                self._listener.server.close()
                self._listener = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Never ends with an exception: asyncio would log a traceback for each.
        peer = writer.get_extra_info("peername")
        host = _address(peer[0])
        if (why := self._refusal(host)) is not None:
            self._refused(host, why)
            writer.close()
            return
        await self._read(Link(_listen(self.settings), reader, writer, (host, peer[1])))

    async def _read(self, link: Link, how: str = "") -> None:
        """Read one PBX connection until it closes, another replaces it, or a stop."""
        me = asyncio.current_task()
        self._handlers.add(me)
        host = link.peer[0]
        previous, self._current = self._current, (me, host)
        if previous is not None:
            self.log.info("PBX connection from %s replaced by one from %s", previous[1], host)
            previous[0].cancel()
        kept = False
        try:
            async with self._reading:  # the previous one has committed and let go
                self.last_data = time.monotonic()
                self.reading(f"the PBX at {host}:{link.peer[1]}{how}")
                try:
                    await pump(self, link.reader, link.writer)
                except asyncio.CancelledError:
                    if self.ingest.hand_over and self._current is not None and self._current[0] is me:
                        self._kept_link, kept = link, True
                    raise
                finally:
                    self.ingest.end()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            if not kept:
                link.close()
            self._handlers.discard(me)
            if self._current is not None and self._current[0] is me:
                self._current = None
                if not kept:
                    self.state, self.error = "waiting", f"{host} disconnected"
    def _refusal(self, host: str) -> str | None:
        """Why a connection from ``host`` is not read, or None."""
        allow = self.settings.allow
        if allow and not any(ipaddress.ip_address(host) in net for net in allow):
            return "not in allow"
        if self._current is not None and self._current[1] != host \
                and time.monotonic() - self.last_data < LIVE_S:
            return f"the PBX at {self._current[1]} is sending"
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
