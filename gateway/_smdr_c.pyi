"""The compiled SMDR engine (built from native/smdr_engine.pyx; optional).

Chosen by :mod:`gateway.smdr.engine`, never imported directly except by the parity test
and the benchmark. Everything here gives exactly what the pure-Python reference gives:
:class:`Program` as :func:`gateway.smdr.split.split_record`, :class:`Engine` as
:class:`gateway.smdr.parser.RecordParser`, :class:`Framer` as
:class:`gateway.smdr.framer.Framer`.
"""

from datetime import tzinfo

from gateway.events import Event, UnparsedEvent
from gateway.profiles import Layout, PbxProfile
from gateway.smdr import framer

class Program:
    """A layout compiled once: per variant its admission test and its column slices."""

    layout: Layout
    def __init__(self, layout: Layout) -> None: ...
    def split(self, text: str) -> tuple[str, ...]:
        """Column texts, stripped, in layout order.

        :raises RecordError: no variant admits the record, or too few fields, or bad quoting.
        """

class Engine:
    """One profile's parser for one source.

    Records run through the compiled program with memoized dates, times, durations and
    time-zone offsets; a record the fast path cannot read exactly as the reference does
    (cut short, or any error) is read by the reference, so the reasons of unparsed
    events are the reference's own.
    """

    profile: PbxProfile
    tz: tzinfo
    gw: str
    src: str
    def __init__(self, profile: PbxProfile, tz: tzinfo, gw: str, src: str) -> None: ...
    def parse(self, record: framer.Record, rx: int, seq: int) -> Event:
        """The event for ``record``, received at ``rx`` (ms since the epoch) as number ``seq``."""
    def pack(self, records: list[framer.Record], rx: int, seq: int) -> tuple[bytes, list[UnparsedEvent]]:
        """The batch path: the msgpack of the events of ``records`` (numbered from
        ``seq``) concatenated, written without event objects, and the unparsed events."""

class Framer(framer.Framer):
    """The reference framer with ``records()`` compiled for terminated records (line,
    CR, LF, CR LF, NUL): one pass over the buffer, one cut of it per call."""
