"""Sans-I/O framer: a PBX byte stream in, bounded records out.

Theory of operation
-------------------
A PBX prints records separated by a terminator (CR, LF, CR LF, any of those, or NUL).
``feed(data)`` only appends to a buffer; ``next_record()`` returns the next
:class:`Record`, :data:`NEED_DATA` when more bytes are needed, or :data:`END` once
``feed(b"")`` has marked the end of the stream and everything has been returned.

Two rules keep a long-running gateway safe on any input:

* The terminator search is incremental: ``_searched`` remembers how far the buffer has
  been scanned, so bytes that arrive one at a time are never rescanned (O(n) overall).
* A record never grows past ``max_record_len``. A stream without terminators (wrong
  line-end setting, wrong baud rate, noise) is cut there and the piece is returned as a
  ``Record(truncated=True)``; the parser turns it into an ``unparsed`` event.

Lines that are not call records are dropped here and counted: blank lines, form feeds,
and whatever matches the profile's ``skip`` patterns (page headers, rulers, login
prompts and echo). ``strip`` patterns cut text out of a record (a page header glued in
front of it). NUL bytes are removed (some PBXes pad records with them) and counted,
unless NUL is the terminator.

A line a PBX prints to continue the record before it (NEC's caller name on a line of its
own) matches one of the profile's ``continuation`` patterns: it is joined to that record
after a ``\n``, and the parser reads its named groups. So the framer holds each record
until the next line shows it is not continued (or the stream ends, or the I/O shell's
idle timer calls :meth:`Framer.release`); :attr:`Framer.buffered` counts the held bytes
too, so a file's committed offset stays before them.

A ``block`` framing reads fixed-size blocks that begin with a mark (Alcatel OXE tickets:
772 bytes after ``01 00``). Bytes between blocks (link marks, keep-alive requests) are not
records: they are dropped and counted in ``noise_bytes``, and a stream out of step finds
the next mark again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


class _Sentinel:
    def __init__(self, name: str):
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: Returned by :meth:`Framer.next_record` when a whole record has not arrived yet.
NEED_DATA = _Sentinel("NEED_DATA")
#: Returned by :meth:`Framer.next_record` after end of stream, once the buffer is empty.
END = _Sentinel("END")

#: Terminator name -> pattern. ``line`` accepts CR, LF and CR LF alike, which is what a
#: technician wants when a PBX's "new line code" setting is unknown. ``length32le`` is not
#: a terminator: each record comes after its length, 4 bytes little-endian (Mitel 5000).
#: ``block`` is not one either: records are ``block_len`` bytes starting with ``block_start``.
TERMINATORS = {
    "line": rb"\r\n?|\n",
    "crlf": rb"\r\n",
    "cr": rb"\r",
    "lf": rb"\n",
    "nul": rb"\x00",
    "length32le": None,
    "block": None,
}

#: How long a record waits for lines that would continue it (``continuation``) before an
#: I/O shell lets it go (:meth:`Framer.release`): a PBX prints them with the record, so a
#: quiet link this long means none is coming.
CONTINUATION_WAIT_S = 2.0

#: No profile may allow records longer than this: it bounds the framer's memory.
MAX_RECORD_LEN_CEILING = 64 * 1024


@dataclass(frozen=True, slots=True)
class Record:
    """One framed record: its bytes without terminator, whether it was cut short, and
    the date of the page header above it (``b""``: none, or the profile reads none)."""

    data: bytes
    truncated: bool = False
    page: bytes = b""


@dataclass(slots=True)
class FramerStats:
    """Counters a technician reads to diagnose a link (wrong settings show up here)."""

    records: int = 0
    skipped: int = 0
    truncated: int = 0
    nul_bytes: int = 0
    noise_bytes: int = 0
    continued: int = 0  # lines joined to the record before them (not counted in ``records``)


@dataclass(frozen=True, slots=True)
class Continuation:
    """A line that continues the record before it: the pattern it matches (searched in its
    text; its named groups are event fields the parser fills from it) and, with ``join``, the
    separator it adds its values to the record's with (without: they replace them)."""

    match: re.Pattern[str]
    join: str | None = None


@dataclass(frozen=True, slots=True)
class FramingRules:
    """The framing part of a profile, compiled."""

    terminator: str = "line"
    max_record_len: int = 512
    skip: tuple[re.Pattern[bytes], ...] = field(default=())
    strip: tuple[re.Pattern[bytes], ...] = field(default=())
    block_len: int = 0
    block_start: bytes = b""
    #: A page header line (not a record) whose ``date`` group dates the records after it,
    #: for PBXes that print no date in their records; the date's order.
    page_date: re.Pattern[bytes] | None = None
    page_date_order: str = "MDY"
    #: Lines joined to the record before them (only with a ``line`` or ``lf`` terminator,
    #: so that the ``\n`` joining them is never part of a record).
    continuation: tuple[Continuation, ...] = field(default=())


#: A record of only these bytes is a blank line, skipped (a form feed, NUL padding).
BLANK = b" \t\n\r\x0b\x0c\x00"


def decode(data: bytes) -> str:
    """UTF-8 when the bytes are valid UTF-8, else latin-1 (which decodes every byte); a
    leading byte-order mark is dropped."""
    return read_text(data)[0]


def read_text(data: bytes) -> tuple[str, bool]:
    """:func:`decode`'s text, and whether it was read as latin-1 (so that its bytes can be
    had back: ``text.encode("latin-1" if latin1 else "utf-8")``)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1"), True
    return text.removeprefix("\ufeff"), False  # a byte-order mark (files saved by Windows tools)


class Framer:
    """Splits a byte stream into records according to :class:`FramingRules`."""

    def __init__(self, rules: FramingRules, as_framed: bool = False):
        """:param as_framed: return records exactly as framed, NULs and all, nothing
            skipped or stripped (the simulator replays them)."""
        self._rules = rules
        self._as_framed = as_framed
        pattern = TERMINATORS[rules.terminator]
        self._terminator = re.compile(pattern) if pattern else None
        # With "line", a CR that is the last byte so far may be the first half of CR LF.
        self._cr_may_continue = rules.terminator == "line"
        self._buffer = bytearray()
        self._searched = 0
        self._eof = False
        self._page = b""
        self._held: Record | None = None  # the last record, until a line shows it is not continued
        self._held_span = 0  # the bytes it and the lines after it took from the stream
        self._consumed = 0  # the bytes the last record cut took
        self.stats = FramerStats()

    def feed(self, data: bytes) -> None:
        """Append bytes from the stream; ``feed(b"")`` marks the end of the stream."""
        if data:
            self._buffer += data
        else:
            self._eof = True

    def next_record(self) -> Record | _Sentinel:
        """Return the next record, :data:`NEED_DATA`, or :data:`END`."""
        while True:
            record = self._maybe_extract()
            if record is None:
                if not self._eof or self._buffer:
                    return NEED_DATA
                held = self.release()
                return END if held is None else held
            if not self._as_framed:
                record = self.filter(record, self._consumed)
            if record is not None:
                return record

    @property
    def rules(self) -> FramingRules:
        return self._rules

    @property
    def buffered(self) -> int:
        """Bytes fed but not yet returned in a record (a record held for its continuation
        lines, the start of an incomplete one)."""
        return self._held_span + len(self._buffer)

    @property
    def holding(self) -> bool:
        """Whether a record waits for continuation lines (see :meth:`release`)."""
        return self._held is not None

    def release(self) -> Record | None:
        """The record held for its continuation lines, now: the stream ended, or no line
        came in the time the PBX prints one in (the I/O shell's idle timer)."""
        held, self._held, self._held_span = self._held, None, 0
        if held is not None:
            self._count(held)
        return held

    def take_buffered(self) -> bytes:
        """Remove and return the bytes fed but not yet in a record: a serial source that a
        reload restarts hands them to its successor, so a record the restart cut is read
        whole."""
        data, self._buffer, self._searched = bytes(self._buffer), bytearray(), 0
        return data

    def scan_state(self) -> tuple[bytearray, int, bool]:
        """For a compiled cut of terminated records (``gateway.smdr._smdr_c``): the buffer, where
        the terminator search resumes, and whether the stream has ended. The cut frames
        records as :meth:`next_record` would, passes them through :meth:`filter` (or
        counts them in :attr:`stats` as it does), and ends with :meth:`consume`."""
        return self._buffer, self._searched, self._eof

    def consume(self, count: int, searched: int) -> None:
        """A compiled cut took the first ``count`` bytes as records; its terminator search
        had reached ``searched`` (a position in the buffer before)."""
        del self._buffer[:count]
        self._searched = max(0, searched - count)

    def records(self) -> list[Record]:
        """All records available now (a convenience for loops and tests)."""
        out = []
        while isinstance(record := self.next_record(), Record):
            out.append(record)
        return out

    def _maybe_extract(self) -> Record | None:
        if self._rules.terminator == "block":
            return self._maybe_extract_block()
        if self._terminator is None:
            return self._maybe_extract_sized()
        buf, limit = self._buffer, self._rules.max_record_len
        match = self._terminator.search(buf, self._searched)
        waiting_cr = False  # a CR that is the last byte may be the start of CR LF
        if self._cr_may_continue and match and match.end() == len(buf) and match.group() == b"\r":
            if not self._eof:
                match, waiting_cr = None, True
        if match is None:
            waiting_cr = waiting_cr or (self._rules.terminator == "crlf" and buf.endswith(b"\r") and not self._eof)
            # Resume the next search where this one stopped, less one byte so that a
            # two-byte terminator split across feeds is still found.
            self._searched = max(0, len(buf) - 1)
            # Cut only what no later byte can end in time: a terminator may still come at
            # index ``limit`` (or be the CR waiting at the end), as a whole feed would see.
            if len(buf) - waiting_cr > limit:
                return self._cut(limit, limit, truncated=True)
            if self._eof and buf:
                return self._cut(len(buf), len(buf), truncated=False)
            return None
        start, end = match.span()
        if start > limit:
            return self._cut(limit, limit, truncated=True)
        return self._cut(start, end, truncated=False)

    def _maybe_extract_sized(self) -> Record | None:
        """A length-prefixed record; its own CR LF, if any, is not part of it."""
        buf, limit = self._buffer, self._rules.max_record_len
        if len(buf) < 4:
            if self._eof and buf:
                return self._cut(len(buf), len(buf), truncated=True)
            return None
        size = int.from_bytes(buf[:4], "little")
        if size > limit:  # not a length we accept: the stream is out of step
            if len(buf) < 4 + limit and not self._eof:
                return None  # cut at the limit, as any split of the same bytes would
            return Record(self._take(min(len(buf), 4 + limit))[4:], truncated=True)
        if len(buf) < 4 + size:
            if self._eof:
                return Record(self._take(len(buf))[4:], truncated=True)
            return None
        return Record(self._take(4 + size)[4:].rstrip(b"\r\n"))

    def _maybe_extract_block(self) -> Record | None:
        """A block of ``block_len`` bytes from its start mark; what comes before is noise."""
        buf, mark, size = self._buffer, self._rules.block_start, self._rules.block_len
        at = buf.find(mark)
        if at < 0:
            # Keep only what may be the first bytes of a mark split across feeds.
            noise = len(buf) if self._eof else max(0, len(buf) - len(mark) + 1)
            self.stats.noise_bytes += noise
            del buf[:noise]
            return None
        if at:
            self.stats.noise_bytes += at
            del buf[:at]
        if len(buf) < size:
            if self._eof:
                return Record(self._take(len(buf)), truncated=True)
            return None
        return Record(self._take(size))

    def _take(self, count: int) -> bytes:
        self._consumed = count
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    def _cut(self, record_end: int, consumed: int, truncated: bool) -> Record:
        data = bytes(self._buffer[:record_end])
        del self._buffer[:consumed]
        self._searched, self._consumed = 0, consumed
        return Record(data, truncated)

    def filter(self, record: Record, consumed: int = 0) -> Record | None:
        """A framed record as the parser gets it: NUL padding and ``strip`` patterns cut
        out; None (counted) for a line that is not a record. With ``continuation`` lines,
        the record framed before this one, or None while this one is held.

        :param consumed: the bytes the record took from the stream, its terminator included."""
        rules, stats = self._rules, self.stats
        if rules.terminator != "nul" and b"\x00" in record.data:
            stats.nul_bytes += record.data.count(b"\x00")
            record = Record(record.data.replace(b"\x00", b""), record.truncated)
        for pattern in rules.strip:  # e.g. a page header glued in front of a record
            record = Record(pattern.sub(b"", record.data), record.truncated)
        page = rules.page_date.search(record.data) if rules.page_date is not None else None
        if page is not None:
            self._page = page["date"]
        if page is not None or not record.data.strip(BLANK) or any(p.search(record.data) for p in rules.skip):
            stats.skipped += 1
            self._held_span += consumed if self._held is not None else 0
            return None
        if self._page:
            record = Record(record.data, record.truncated, self._page)
        if rules.continuation:
            return self._hold(record, consumed)
        self._count(record)
        return record

    def _hold(self, record: Record, consumed: int) -> Record | None:
        """Join ``record`` to the held one when it continues it (within ``max_record_len``);
        else hold it instead, and return the one held before."""
        held = self._held
        if held is not None and not held.truncated and not record.truncated \
                and len(held.data) + 1 + len(record.data) <= self._rules.max_record_len \
                and any(c.match.search(decode(record.data)) for c in self._rules.continuation):
            self._held = Record(held.data + b"\n" + record.data, False, held.page)
            self._held_span += consumed
            self.stats.continued += 1
            return None
        released = self.release()
        self._held, self._held_span = record, consumed
        return released

    def _count(self, record: Record) -> None:
        self.stats.records += 1
        self.stats.truncated += record.truncated
