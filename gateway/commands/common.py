"""What several commands share: the default config path, the time zone of ``--tz``, and
reading a capture (a file, stdin or a serial device)."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from typing import BinaryIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.errors import GatewayError
from gateway.sources.serial import open_port

#: Where the service's config lives (``--config``'s default).
CONFIG = "/etc/pbxgw/config.toml"
#: How much of a capture is read at a time: large enough for the batch path, small
#: enough to stream.
CHUNK = 1024 * 1024


def zone(name: str | None) -> ZoneInfo:
    """The named zone, or this machine's (TZ, then /etc/localtime), or UTC."""
    if name is None:
        name = os.environ.get("TZ", "").lstrip(":")
        if not name:
            link = os.path.realpath("/etc/localtime")
            name = link.partition("zoneinfo/")[2] or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise GatewayError(f"--tz: unknown time zone {name!r} (expected e.g. Europe/Paris or UTC)") from None


def open_capture(name: str) -> Iterator[bytes]:
    """The bytes of a capture: stdin, a serial device or a file.

    Opens at once, so that a missing file is an error before anything is printed.
    """
    if name == "-":
        return iter(lambda: sys.stdin.buffer.read1(CHUNK), b"")
    try:
        if stat.S_ISCHR(os.stat(name).st_mode):
            return _serial_chunks(name)
        fh = open(name, "rb")
    except OSError as exc:
        raise GatewayError(f"{name}: {exc.strerror}") from None
    return _file_chunks(fh)


def _file_chunks(fh: BinaryIO) -> Iterator[bytes]:
    with fh:
        yield from iter(lambda: fh.read(CHUNK), b"")


def _serial_chunks(name: str) -> Iterator[bytes]:
    """Read a serial port until it hangs up (a pty whose other end closed) or Ctrl-C."""
    import serial

    try:
        port = open_port(name, {}, timeout=None)
    except OSError as exc:
        raise GatewayError(f"{name}: {exc.strerror}") from None

    def chunks() -> Iterator[bytes]:
        with port:
            while True:
                try:
                    data = port.read(port.in_waiting or 1)
                except (serial.SerialException, OSError):  # EIO: a pty whose other end closed
                    return  # the device went away or hung up: the end of this capture
                if not data:
                    return
                yield data

    return chunks()
