"""The compiled SMDR engine (built from native/_smdr_c.pyx; optional).

Chosen by :mod:`gateway.smdr.engine`, never imported directly except by the parity test
and the benchmark. Everything here gives exactly what the pure-Python reference gives:
:class:`Engine` as :class:`gateway.smdr.parser.RecordParser`, :class:`Framer` as
:class:`gateway.smdr.framer.Framer`.
"""

from datetime import tzinfo

from gateway.wire.events import Event, UnparsedEvent
from gateway.smdr.profile import PbxProfile
from gateway.smdr import framer

class Engine:
    """One profile's parser for one source.

    A record runs in C: columns, conversions and rules, with dates, times, durations,
    groupless patterns and zone offsets read once by the reference's own functions and
    cached in fixed-size tables. What the C path cannot read exactly as the reference
    does (fixed-width text beyond ASCII, a quoted field, a zone change inside the minute,
    any error) goes to the reference, so unparsed events carry the reference's reasons.
    """

    profile: PbxProfile
    tz: tzinfo
    gw: str
    src: str
    stream: str | None
    #: As :attr:`RecordParser.synchronized` (while false, the reference reads every record).
    synchronized: bool
    def __init__(self, profile: PbxProfile, tz: tzinfo, gw: str, src: str, stream: str | None = None) -> None: ...
    def parse(self, record: framer.Record, rx: int, seq: int) -> Event:
        """The event for ``record``, received at ``rx`` (ms since the epoch) as number ``seq``."""
    def pack(self, records: list[framer.Record], rx: int, seq: int) -> tuple[bytes, list[UnparsedEvent]]:
        """The msgpack of the events of ``records`` (numbered from ``seq``) concatenated,
        written without event objects, and the unparsed events."""
    def pack_framed(self, framer: framer.Framer, rx: int, seq: int) -> tuple[bytes, list[UnparsedEvent], int]:
        """The batch path: the records ``framer`` has complete, framed and parsed in one
        pass over its buffer (terminated records; others as :meth:`pack`): msgpack,
        unparsed events, and how many records."""

class Framer(framer.Framer):
    """The reference framer with ``records()`` compiled for terminated records (line,
    CR, LF, CR LF, NUL): one pass over the buffer, one cut of it per call."""
