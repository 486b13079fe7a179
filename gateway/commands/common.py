"""What several commands share: the default config path, the time zone of ``--tz``, and
reading a capture (a file, stdin or a serial device)."""

from __future__ import annotations

import argparse
import os
import stat
import sys
from collections.abc import Iterator
from typing import BinaryIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.errors import GatewayError
from gateway.smdr import profiles
from gateway.smdr.profile import PbxProfile

#: Where the service's config lives (``--config``'s default).
CONFIG = "/etc/pbxgw/config.toml"
#: How much of a capture is read at a time: large enough for the batch path, small
#: enough to stream.
CHUNK = 1024 * 1024


def find_profile(name: str) -> PbxProfile:
    """The profile a technician names on the command line (bundled, a path, or a directory
    here), with a warning on stderr when its name is not its directory's."""
    profile = profiles.find(name, here=True)
    if warning := profiles.misnamed(profile):
        print(f"pbxgw: warning: {warning}", file=sys.stderr)
    return profile


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


def add_line_options(p: argparse.ArgumentParser) -> None:
    """``--baudrate``, ``--bytesize``, ``--parity``, ``--stopbits``: a serial line's settings,
    to try another when the records come out garbled (see :func:`line_options`)."""
    g = p.add_argument_group("serial line (when reading a device)")
    g.add_argument("--baudrate", type=int, help="line speed, e.g. 19200 (default: the profile's [serial], else 9600)")
    g.add_argument("--bytesize", type=int, choices=(5, 6, 7, 8), help="data bits (default 8)")
    g.add_argument("--parity", choices=("N", "E", "O", "M", "S"), help="parity (default N)")
    g.add_argument("--stopbits", type=float, choices=(1, 1.5, 2), help="stop bits (default 1)")


def line_options(args: argparse.Namespace, profile_serial: dict | None = None) -> dict:
    """The serial settings to open a device with: the profile's ``[serial]``, then the
    command line's."""
    options = dict(profile_serial or {})
    for key in ("baudrate", "bytesize", "parity", "stopbits"):
        if getattr(args, key, None) is not None:
            options[key] = getattr(args, key)
    return options


def open_capture(name: str, line: dict | None = None, idle: float | None = None) -> Iterator[bytes]:
    """The bytes of a capture: stdin, a serial device (opened with ``line``'s settings) or
    a file; with ``idle``, an empty piece each time a device was quiet that long.

    Opens at once, so that a missing file is an error before anything is printed.
    """
    if name == "-":
        return iter(lambda: sys.stdin.buffer.read1(CHUNK), b"")
    try:
        if is_device(name):
            return serial_chunks(name, line or {}, idle)
        fh = open(name, "rb")
    except OSError as exc:
        raise GatewayError(f"{name}: {exc.strerror}") from None
    return _file_chunks(fh)


def is_device(name: str) -> bool:
    """Whether ``name`` is a character device (a serial port, a pty), not a file."""
    try:
        return stat.S_ISCHR(os.stat(name).st_mode)
    except OSError:
        return False


def _file_chunks(fh: BinaryIO) -> Iterator[bytes]:
    with fh:
        yield from iter(lambda: fh.read(CHUNK), b"")


def serial_chunks(name: str, line: dict, idle: float | None = None) -> Iterator[bytes]:
    """Read a serial port until it hangs up (a pty whose other end closed) or Ctrl-C; with
    ``idle``, an empty piece each time the line was quiet that long.

    :raises GatewayError: it cannot be opened (busy, missing, a setting it refuses).
    """
    import serial  # (with the gateway's way of opening a port: asyncio, only for a device)

    from gateway.edge.sources.serial import open_port

    try:
        port = open_port(name, line, timeout=idle)
    except OSError as exc:
        raise GatewayError(f"{name}: {exc.strerror}") from None

    def chunks() -> Iterator[bytes]:
        with port:
            while True:
                try:
                    data = port.read(port.in_waiting or 1)
                except (serial.SerialException, OSError):  # EIO: a pty whose other end closed
                    return  # the device went away or hung up: the end of this capture
                if not data and idle is None:
                    return
                yield data  # (empty: quiet for ``idle`` seconds)

    return chunks()
