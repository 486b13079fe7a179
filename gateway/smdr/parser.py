"""Sans-I/O record parser: a framed record -> one call event or one unparsed event.

:meth:`RecordParser.parse` is the single boundary where a :class:`RecordError` becomes an
:class:`~gateway.wire.events.UnparsedEvent`. Any other exception leaving it is a bug, and the
property tests feed it random bytes to prove there is none.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from gateway.errors import RecordError
from gateway.smdr.fields import EARLIEST_TRUE, parse_date, parse_duration, parse_time
from gateway.smdr.framer import Framer, Record, read_text
from gateway.smdr.profile import PbxProfile
from gateway.smdr.split import split_record
from gateway.wire.events import CallEvent, Event, UnparsedEvent, packb

_INT = re.compile(r"[+-]?\d+")


class RecordParser:
    """Parses records of one source with one profile.

    :param profile: the PBX profile.
    :param tz: the time zone the PBX prints local times in.
    :param gw: gateway id stamped on events.
    :param src: source name stamped on events.
    :param stream: the queue's stream identity stamped on events (None offline).
    :ivar synchronized: whether the ``rx`` times given come from a synchronized clock; the
        caller (who reads the clock) sets it. While it is false every event is marked
        ``unsynced``, and no year is taken from an ``rx`` before :data:`EARLIEST_TRUE`.
    """

    def __init__(self, profile: PbxProfile, tz: tzinfo, gw: str, src: str, stream: str | None = None):
        self.profile, self.tz, self.gw, self.src, self.stream = profile, tz, gw, src, stream
        self.synchronized = True
        self._page: tuple[bytes, int, int] = (b"", 0, 0)  # page date, days rolled, last time of day

    def parse(self, record: Record, rx: int, seq: int) -> Event:
        """The event for ``record``, received at ``rx`` (ms since the epoch) as number ``seq``."""
        raw, latin1 = read_text(record.data)
        stamp = dict(gw=self.gw, src=self.src, stream=self.stream, seq=seq, rx=rx, profile=self.profile.name,
                     unsynced=not self.synchronized, latin1=latin1)
        if record.truncated:
            reason = f"no record end within {self.profile.framing.max_record_len} bytes; cut there"
            return UnparsedEvent(**stamp, raw=raw, reason=reason)
        head, *more = raw.split("\n") if self.profile.framing.continuation else (raw,)
        try:
            values = self._normalize(split_record(self.profile.layout, head), rx, record.page, more)
        except RecordError as exc:
            return UnparsedEvent(**stamp, raw=raw, reason=exc.reason)
        return CallEvent(**stamp, **values, raw=raw)

    def pack(self, records: list[Record], rx: int, seq: int) -> tuple[bytes, list[UnparsedEvent]]:
        """The msgpack of the events of ``records`` (numbered from ``seq``), concatenated,
        and the unparsed events among them (for their reasons)."""
        events = [self.parse(record, rx, seq + i) for i, record in enumerate(records)]
        return b"".join(map(packb, events)), [e for e in events if isinstance(e, UnparsedEvent)]

    def pack_framed(self, framer: Framer, rx: int, seq: int) -> tuple[bytes, list[UnparsedEvent], int]:
        """:meth:`pack` of the records ``framer`` has complete: (msgpack, unparsed events,
        number of records). The compiled engine frames and parses them in one pass."""
        records = framer.records()
        packed, unparsed = self.pack(records, rx, seq)
        return packed, unparsed, len(records)

    def _normalize(self, columns: tuple[str, ...], rx: int, page: bytes, more: list[str]) -> dict[str, Any]:
        """The event's fields from a record's columns, and from ``more``, the lines that
        continue it (:attr:`FramingRules.continuation`)."""
        values: dict[str, Any] = {}
        order = self.profile.start.date_order
        for spec in self.profile.fields:
            text = columns[spec.column]
            if spec.otherwise is not None and (not text or (spec.minus is not None and text == "0")):
                text = columns[spec.otherwise]  # (a time of 0, as Cisco prints "never", is none)
            value = convert(text, spec.format, order)
            if spec.minus is not None and value is not None:
                less = convert(columns[spec.minus], spec.format, order)
                value = None if less is None or less > value else value - less  # (never negative)
            values[spec.target] = value
        decided: set[str] = set()
        for rule in self.profile.rules:
            matches = [pattern.fullmatch(columns[col]) for col, pattern in rule.when]
            if not all(matches):
                continue
            found = {name: (text.strip() or None) if text else None
                     for match in matches for name, text in match.groupdict().items()}
            found.update((name, value or None) for name, value in rule.set)
            for name, value in found.items():
                if name not in decided:
                    decided.add(name)
                    values[name] = value
        for line in more:
            self._continue(values, line)
        values["start"] = self._start(columns, rx, values.get("ring"), values.get("dur"), page)
        vendor = {k: values.pop(k) for k in list(values) if k.startswith("x_")}
        values["x"] = {k[2:]: v for k, v in vendor.items() if v is not None}
        return values

    def _continue(self, values: dict[str, Any], line: str) -> None:
        """Fill fields from a line that continues the record (the first pattern it matches)."""
        for continuation in self.profile.framing.continuation:
            if (match := continuation.match.search(line)) is not None:
                break
        else:
            raise RecordError(f"a line of the record continues nothing the profile reads: {line[:40]!r}")
        for name, text in match.groupdict().items():
            if not (value := (text or "").strip()):
                continue
            before = values.get(name)
            values[name] = value if continuation.join is None or not before else before + continuation.join + value

    def _start(self, columns: tuple[str, ...], rx: int, ring: int | None, dur: int | None, page: bytes) -> int:
        spec = self.profile.start
        received = datetime.fromtimestamp(rx / 1000, self.tz)
        date_text, time_text = spec.texts(columns)
        if spec.date_order == "epoch":
            if not _INT.fullmatch(date_text) or int(date_text) <= 0:
                raise RecordError(f"start {date_text!r} is not seconds since the epoch")
            start = int(date_text)
        elif spec.date is None or (spec.date_optional and not date_text):
            if not time_text:
                raise RecordError("no call time")
            # No date in the record: the page header's date, when the PBX prints one, else
            # the receive day; the day before either when the time is more than an hour
            # ahead of the receive time (just past midnight; a page header printed after
            # midnight above a call begun before it).
            clock = parse_time(time_text)
            day = self._page_day(page, clock) if page else received.date()
            local = datetime.combine(day, clock, self.tz)
            if local - received > timedelta(hours=1):
                local = datetime.combine(day - timedelta(days=1), clock, self.tz)
            start = int(local.timestamp())
        else:
            if not date_text or not time_text:
                raise RecordError("no call date and time")
            false_clock = not self.synchronized and received.date() < EARLIEST_TRUE
            day = parse_date(date_text, spec.date_order, received.date(), EARLIEST_TRUE if false_clock else None)
            local = datetime.combine(day, parse_time(time_text), self.tz)
            start = int(local.timestamp())
        if spec.time_is == "end":
            start -= (ring or 0) + (dur or 0)
        return start

    def _page_day(self, page: bytes, clock: time) -> date:
        """The day of a call printed under a page header dated ``page``: the page's date,
        a day later once the times went back by more than half a day since the header (a
        page that runs past midnight; after that, a call begun before midnight but printed
        later keeps the day before)."""
        seconds = clock.hour * 3600 + clock.minute * 60 + clock.second
        text, days, last = self._page
        late = 0
        if page != text:
            days, last = 0, seconds
        elif seconds < last - 43200:
            days, last = days + 1, seconds
        elif days and seconds > last + 43200:
            late = 1
        else:
            last = seconds
        self._page = (page, days, last)
        framing = self.profile.framing
        day = parse_date(page.decode("latin-1"), framing.page_date_order, EARLIEST_TRUE)
        return day + timedelta(days=days - late)


def convert(text: str, fmt: str, date_order: str = "YMD") -> Any:
    """A column's value in its format (``[fields]``'s ``format``); a ``datetime`` ("date
    time", the date in ``date_order``) as seconds on a local count, only for differences.

    :raises RecordError: the text does not fit the format.
    """
    if fmt == "datetime":
        if not text:
            return None
        date_text, _, time_text = text.partition(" ")
        clock = parse_time(time_text.strip())
        day = parse_date(date_text, date_order, EARLIEST_TRUE).toordinal()  # (both ends read alike)
        return day * 86400 + clock.hour * 3600 + clock.minute * 60 + clock.second
    if fmt == "text":
        return text or None
    if fmt == "ipv4-le":
        # Cisco CDRs: an IPv4 address as a signed 32-bit integer, bytes in reverse order.
        if text in ("", "0"):
            return None  # no address
        if not _INT.fullmatch(text) or not -2**31 <= int(text) < 2**32:
            raise RecordError(f"{text!r} is not an IPv4 address as an integer")
        return ".".join(str(b) for b in (int(text) & 0xFFFFFFFF).to_bytes(4, "little"))
    if fmt == "int":
        if not text:
            return None
        if not _INT.fullmatch(text):
            raise RecordError(f"{text!r} is not a whole number")
        return int(text)
    return parse_duration(text, fmt)
