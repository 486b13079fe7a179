"""hid-recorder files: a device's name (``N:``), bus and IDs (``I:``), report descriptor
(``R:``) and input reports with their times (``E:``), as the hid-tools recorder writes them.

A file of raw descriptor bytes (as read from sysfs ``report_descriptor``) is accepted too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gateway.errors import GatewayError


class RecordingError(GatewayError):
    """A recording that cannot be read; the message names the file and the line."""


@dataclass(frozen=True, slots=True)
class Recording:
    name: str | None
    bus: int | None
    vid: int | None
    pid: int | None
    descriptor: bytes
    #: (seconds since the recording started, report bytes as hidraw reads them)
    events: list[tuple[float, bytes]] = field(default_factory=list)


def load(path: Path) -> Recording:
    """Read a hid-recorder file, or raw descriptor bytes.

    :raises RecordingError: with the file, the line and what was expected.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RecordingError(f"{path}: {exc.strerror}") from None
    if not data.lstrip().startswith((b"#", b"N:", b"I:", b"R:", b"D:", b"E:")):
        return Recording(None, None, None, None, data)
    return parse(data.decode("utf-8", "replace"), str(path))


def parse(text: str, where: str = "<recording>") -> Recording:
    """A recording from the text of a hid-recorder file."""
    name = bus = vid = pid = None
    descriptor: bytes | None = None
    events: list[tuple[float, bytes]] = []
    for number, line in enumerate(text.splitlines(), 1):
        tag, _, rest = line.partition(":")
        parts = rest.split()
        try:
            if tag == "N":
                name = rest.strip()
            elif tag == "I":
                bus, vid, pid = (int(p, 16) for p in parts[:3])
            elif tag == "R":
                descriptor = _counted_bytes(parts)
            elif tag == "E":
                events.append((float(parts[0]), _counted_bytes(parts[1:])))
        except ValueError as exc:
            raise RecordingError(f"{where}: line {number}: expected {_EXPECTED[tag]}: {exc}") from None
    if descriptor is None:
        raise RecordingError(f"{where}: no 'R:' line (the report descriptor)")
    return Recording(name, bus, vid, pid, descriptor, events)


_EXPECTED = {
    "N": "a name",
    "I": "'I: bus vendor product' in hex",
    "R": "'R: length' and that many hex bytes",
    "E": "'E: seconds length' and that many hex bytes",
}


def _counted_bytes(parts: list[str]) -> bytes:
    count, data = int(parts[0]), bytes.fromhex("".join(parts[1:]))
    if len(data) != count:
        raise ValueError(f"{count} bytes announced, {len(data)} given")
    return data
