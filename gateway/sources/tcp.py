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

from gateway.config import credential
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
    connection), it first commits what the PBX has already sent (:func:`_drain`)."""
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
                first = await login(reader, writer, self.settings.profile.login, _login_password(self.settings))
                self.reading(f"{where}{', logged in' if self.settings.profile.login else ''}")
                records = self.ingest.records
                await pump(self, reader, writer, first)
                error = f"{where} closed the connection"
                if self.ingest.records == records and any(step.password for step in self.settings.profile.login):
                    error += " after the login, before any record: a wrong login password (login_password_file)?"
            except (OSError, LoginFailed) as exc:
                error = f"{where}: {exc}"
            finally:
                writer.close()
                self.ingest.end()
            await asyncio.sleep(self.waiting(error))


class TcpServerSource(Source):
    """Listens on ``host`` (every interface by default); the PBX connects.

    Only addresses in ``allow`` are served (any, when it is empty); others are closed at
    once, said in one log line per address per ``REFUSAL_LOG_S``. One connection is read at
    a time. A new one from the same address replaces it (a PBX that reconnects has given up
    on its old socket), as does one from elsewhere once the current one has been silent
    for ``LIVE_S``; otherwise the newcomer is refused and the PBX read on. A replaced or
    stopped connection commits what it had before the next one is read.
    """

    async def run(self) -> None:
        self._current: tuple[asyncio.Task, str] | None = None  # the connection to read, and its address
        self._handlers: set[asyncio.Task] = set()
        self._reading = asyncio.Lock()  # held by the connection being read
        self._refusals: dict[str, tuple[float, int]] = {}  # address -> (last said, refused since)
        s = self.settings
        while True:
            try:
                server = await asyncio.start_server(self._serve, s.host, s.port)
                break
            except OSError as exc:
                # (asyncio's own message repeats the address, as a Python tuple)
                why = os.strerror(exc.errno) if exc.errno else str(exc)
                await asyncio.sleep(self.waiting(f"cannot listen on {s.host}:{s.port}: {why}"))
        self.state, self.error = "waiting", ""
        self.log.info("listening on %s:%d%s", s.host, s.port,
                      f", for {', '.join(map(str, s.allow))}" if s.allow else
                      " for any address (set allow = [...] to the PBX's address)")
        try:
            async with server:
                await server.serve_forever()
        finally:
            # Connections are not the server's to close: each commits what it had first.
            for task in self._handlers:
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Never ends with an exception: asyncio would log a traceback for each.
        peer = writer.get_extra_info("peername")
        host = _address(peer[0])
        if (why := self._refusal(host)) is not None:
            self._refused(host, why)
            writer.close()
            return
        me = asyncio.current_task()
        self._handlers.add(me)
        previous, self._current = self._current, (me, host)
        if previous is not None:
            self.log.info("PBX connection from %s replaced by one from %s", previous[1], host)
            previous[0].cancel()
        try:
            async with self._reading:  # the previous one has committed and let go
                self.last_data = time.monotonic()
                self.reading(f"the PBX at {host}:{peer[1]}")
                try:
                    await pump(self, reader, writer)
                finally:
                    self.ingest.end()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._handlers.discard(me)
            if self._current is not None and self._current[0] is me:
                self._current = None
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
        now = time.monotonic()
        said, count = self._refusals.get(host, (-REFUSAL_LOG_S, 0))
        if now - said >= REFUSAL_LOG_S:
            more = f" ({count} more refused since)" if count else ""
            self.log.warning("refused a connection from %s: %s%s", host, why, more)
            self._refusals[host] = (now, 0)
        else:
            self._refusals[host] = (said, count + 1)


def _address(host: str) -> str:
    """An IPv4 peer as its plain address even on a dual-stack socket (``::ffff:a.b.c.d``)."""
    ip = ipaddress.ip_address(host.split("%")[0])
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped or ip)
