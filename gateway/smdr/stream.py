"""Sans-I/O stream parser: the bytes of one source in, its events out, in order.

Joins the framer and the record parser and numbers the events (``seq``). The caller
supplies the receive time of each chunk; nothing here reads a clock or a file.
"""

from __future__ import annotations

from datetime import tzinfo

from gateway.smdr.engine import Framer, Parser
from gateway.smdr.profile import PbxProfile
from gateway.wire.events import Event, UnparsedEvent


class StreamParser:
    """Frames and parses one source's stream.

    :param profile: the PBX profile.
    :param tz: the zone the PBX prints local times in.
    :param gw: gateway id; :param src: source name (both stamped on events).
    :param next_seq: the sequence number of the next event (persisted by the caller).
    :param stream: the stream identity stamped on events (the queue's; None offline).
    """

    def __init__(self, profile: PbxProfile, tz: tzinfo, gw: str, src: str, next_seq: int = 1,
                 stream: str | None = None):
        self.framer = Framer(profile.framing)
        self.parser = Parser(profile, tz, gw, src, stream)
        self.next_seq = next_seq

    def feed(self, data: bytes, rx: int) -> list[Event]:
        """Events completed by ``data`` (received at ``rx``, ms since the epoch);
        ``feed(b"", rx)`` ends the stream and returns the last, unterminated record."""
        self.framer.feed(data)
        events = []
        for record in self.framer.records():
            events.append(self.parser.parse(record, rx, self.next_seq))
            self.next_seq += 1
        return events

    def release(self, rx: int) -> list[Event]:
        """The event of the record held for lines that would continue it, when none came in
        time (:meth:`Framer.release`): received at ``rx``, when it was known whole."""
        record = self.framer.release()
        if record is None:
            return []
        self.next_seq += 1
        return [self.parser.parse(record, rx, self.next_seq - 1)]

    def feed_packed(self, data: bytes, rx: int) -> tuple[bytes, list[UnparsedEvent]]:
        """As :meth:`feed`, for bulk work: the events as concatenated msgpack maps (no
        event objects on the compiled engine), and the unparsed ones among them."""
        self.framer.feed(data)
        packed, unparsed, count = self.parser.pack_framed(self.framer, rx, self.next_seq)
        self.next_seq += count
        return packed, unparsed
