"""Serial PBX links through pyserial's ``serial_for_url``: device paths
(``/dev/serial/by-id/...``, ptys) and URLs (``socket://``, ``rfc2217://``, ``loop://``).

A port with a file descriptor (devices, ``socket://``) is watched on the event loop. A URL
port without one (``rfc2217://``, ``loop://``) is read with a short timeout in the loop's
executor. After each read the source pauses ``read_delay`` before the next, so that at
high rates one read (and one disk commit) takes many records, while a lone record is
still read at once.
"""

from __future__ import annotations

import asyncio
import errno
import io
import os

import serial

from gateway.edge.sources.base import CHUNK, Source

#: Why a port cannot be opened when another process holds its lock.
BUSY = "port busy: another program holds it (is the pbxgw service running?)"
#: How long an executor read of a URL port without a descriptor waits for data.
URL_READ_TIMEOUT_S = 0.5


def open_port(device: str, options: dict, timeout: float | None) -> serial.SerialBase:
    """A serial port (device or URL), opened exclusively (flock): a second reader, the
    gateway's or ``pbxgw parse``'s, is refused rather than fed half the bytes.

    :raises OSError: with the reason in words, not pyserial's message (which names the
        device twice more).
    """
    try:
        return serial.serial_for_url(device, timeout=timeout, exclusive=True, **options)
    except (serial.SerialException, OSError, ValueError) as exc:
        number = getattr(exc, "errno", None)
        raise OSError(number, BUSY if number == errno.EWOULDBLOCK else os.strerror(number) if number
                      else str(exc)) from None


class SerialSource(Source):
    """Reads a serial line. Restarted by a reload with the same device and line settings,
    it hands its open port (and the start of a record it had read) to its successor:
    closing and reopening would lose what arrives in between, since opening a port
    flushes its input."""

    def __init__(self, settings, ingest, predecessor: Source | None = None):
        super().__init__(settings, ingest, predecessor)
        # The open port held for reading next: a predecessor's, or, stopped, this one's for
        # a successor (also when it was stopped before it ever ran).
        self._port: serial.SerialBase | None = None
        if isinstance(predecessor, SerialSource) and predecessor._port is not None \
                and _line(predecessor.settings) == _line(settings):
            self._port, predecessor._port = predecessor._port, None

    def hands_over_to(self, successor) -> bool:
        return successor.type == "serial" and _line(successor) == _line(self.settings)

    def release(self) -> None:
        if self._port is not None:
            self._port.close()
            self._port = None

    async def run(self) -> None:
        while True:
            self.state = "connecting"
            try:
                port, self._port = self._port or self._open(), None
            except OSError as exc:
                await asyncio.sleep(self.waiting(f"cannot open {self.settings.device}: {exc.strerror}"))
                continue
            try:
                self.reading(f"{self.settings.device} at {port.baudrate} baud")
                await self._read(port)
            except asyncio.CancelledError:
                # (A URL port is read by an executor thread, which may still be in a read.)
                if self.ingest.hand_over and _has_fd(port):
                    self._port, port = port, None
                raise
            finally:
                if port is not None:
                    port.close()
                self.ingest.end()
            await asyncio.sleep(self.waiting(f"{self.settings.device} went away"))

    def _open(self) -> serial.SerialBase:
        options = dict(self.settings.profile.serial)
        if self.settings.baudrate:
            options["baudrate"] = self.settings.baudrate
        return open_port(self.settings.device, options, timeout=0)

    async def _read(self, port: serial.SerialBase) -> None:
        """Read until the device hangs up or goes away."""
        if not _has_fd(port):
            await self._read_without_fd(port)
            return
        try:
            await self._read_fd(port)
        except asyncio.CancelledError:  # a reload or a stop: what has arrived is committed first
            try:
                if waiting := port.in_waiting:
                    self.ingest.data(port.read(waiting))
            except (serial.SerialException, OSError):
                pass
            raise

    async def _read_fd(self, port: serial.SerialBase) -> None:
        loop = asyncio.get_running_loop()
        while True:
            readable = loop.create_future()
            # (A reload may cancel the wait after the loop has already called for it.)
            loop.add_reader(port.fileno(), lambda: readable.done() or readable.set_result(None))
            try:
                await readable
            finally:
                loop.remove_reader(port.fileno())
            try:
                data = port.read(max(port.in_waiting, 1) + CHUNK)
            except (serial.SerialException, OSError):
                return
            if not data:
                return  # readable but empty: hung up
            self.ingest.data(data)
            await asyncio.sleep(self.settings.read_delay)

    async def _read_without_fd(self, port: serial.SerialBase) -> None:
        loop = asyncio.get_running_loop()
        port.timeout = URL_READ_TIMEOUT_S
        while True:
            try:
                data = await loop.run_in_executor(None, port.read, CHUNK)
            except (serial.SerialException, OSError):
                return
            if data:
                self.ingest.data(data)
                await asyncio.sleep(self.settings.read_delay)


def _line(s) -> tuple:
    """What a port is opened with: a successor adopts its predecessor's only if these match."""
    return s.device, s.baudrate, tuple(sorted(s.profile.serial.items()))


def _has_fd(port: serial.SerialBase) -> bool:
    """Whether the port has a file descriptor the event loop can watch."""
    try:
        port.fileno()
    except (AttributeError, io.UnsupportedOperation, serial.SerialException):
        return False
    return True
