# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The compiled engine (see gateway/_smdr_c.pyi for the documented API).

A profile compiles once into a :class:`Program`: column slices per variant, field
conversions as small codes, rules as match operations. Records then run through it with
memoized conversions (dates, times, durations and time-zone offsets repeat in every
capture) and go straight into msgpack. Whatever the fast path cannot read exactly as the
reference does (a cut record, any error) is handed to the reference parser, so both
engines give the same events byte for byte; the reasons of unparsed events are the
reference's own.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.string cimport memcpy

import csv
from datetime import date, datetime, timedelta

from gateway.errors import RecordError
from gateway.events import CallEvent, packb
from gateway.smdr.fields import parse_date, parse_duration, parse_time
from gateway.smdr.framer import Framer as ReferenceFramer, Record
from gateway.smdr.parser import RecordParser, decode

#: Event fields a profile fills, in wire order (after start); x follows raw.
cdef tuple FILLED = ("ring", "dur", "dir", "ext", "trunk", "caller", "called", "acct", "disp", "callid")
cdef dict SLOT = {name: i for i, name in enumerate(FILLED)}
cdef int NSLOTS = 10

# Field conversion codes.
cdef enum:
    CONV_TEXT = 0
    CONV_INT = 1
    CONV_DURATION = 2
    CONV_OTHER = 3

# Rule match codes: what a column pattern asks of the column's text.
cdef enum:
    MATCH_ANY = 0       # (?P<g>.*): always, captures the column
    MATCH_NONEMPTY = 1  # (?P<g>.+): a non-empty column, captured
    MATCH_PLAIN = 2     # no groups: the answer depends on the text only (memoized)
    MATCH_REGEX = 3     # anything else: the regex runs

#: Memo tables are cleared when they reach this many entries (a bound on memory).
cdef Py_ssize_t MEMO_MAX = 65536
cdef int64_t EPOCH_ORDINAL = 719163  # date(1970, 1, 1).toordinal()


cdef class Program:
    """A layout compiled for the engine: per variant, its admission test and slices."""

    cdef readonly object layout
    cdef bint fixed
    cdef list variants  # (max_length or -1, match or None, positions)
    cdef str delimiter, quote
    cdef Py_ssize_t min_fields

    def __init__(self, layout):
        self.layout = layout
        self.fixed = layout.kind == "fixed"
        self.variants = [(-1 if v.max_length is None else v.max_length, v.match, v.positions)
                         for v in layout.variants]
        self.delimiter, self.quote, self.min_fields = layout.delimiter, layout.quote, layout.min_fields

    cpdef tuple split(self, str text):
        """Column texts, as :func:`gateway.smdr.split.split_record` gives them."""
        cdef Py_ssize_t n = len(text), max_length, i, count
        cdef tuple positions = None
        for max_length, match, pos in self.variants:
            if (max_length < 0 or n <= max_length) and (match is None or match.search(text) is not None):
                positions = pos
                break
        if positions is None:
            raise RecordError(f"{n} characters, no layout variant reads it")
        if self.fixed:
            return tuple([text[<Py_ssize_t>span[0]:<Py_ssize_t>span[1]].strip() for span in positions])
        cdef list parts
        if self.quote and (self.quote in text or "\r" in text or "\n" in text or "\0" in text):
            try:
                parts = next(csv.reader([text], delimiter=self.delimiter, quotechar=self.quote, strict=True))
            except csv.Error as exc:
                raise RecordError(f"bad quoting: {exc}") from None
        else:  # no quote, line end or NUL in it: csv would split it the same way
            parts = text.split(self.delimiter)
        count = len(parts)
        if count < self.min_fields:
            raise RecordError(f"{count} fields, expected at least {self.min_fields}")
        return tuple([(<str>parts[i]).strip() if i < count else "" for i in positions])


cdef class _Buffer:
    """A growing byte buffer msgpack is written into."""

    cdef char* data
    cdef Py_ssize_t length, size

    def __cinit__(self):
        self.size = 1 << 16
        self.length = 0
        self.data = <char*>PyMem_Malloc(self.size)
        if self.data == NULL:
            raise MemoryError()

    def __dealloc__(self):
        PyMem_Free(self.data)

    cdef int reserve(self, Py_ssize_t more) except -1:
        cdef Py_ssize_t want = self.length + more
        cdef char* grown
        if want <= self.size:
            return 0
        while self.size < want:
            self.size *= 2
        grown = <char*>PyMem_Realloc(self.data, self.size)
        if grown == NULL:
            raise MemoryError()
        self.data = grown
        return 0

    cdef inline int byte(self, uint8_t b) except -1:
        self.reserve(1)
        self.data[self.length] = <char>b
        self.length += 1
        return 0

    cdef int raw(self, const char* p, Py_ssize_t n) except -1:
        self.reserve(n)
        memcpy(self.data + self.length, p, n)
        self.length += n
        return 0

    cdef int be(self, uint64_t value, int width) except -1:
        cdef int i
        self.reserve(width)
        for i in range(width):
            self.data[self.length + i] = <char>((value >> (8 * (width - 1 - i))) & 0xFF)
        self.length += width
        return 0

    cdef int nil(self) except -1:
        return self.byte(0xC0)

    cdef int map_header(self, Py_ssize_t n) except -1:
        if n < 16:
            return self.byte(0x80 | n)
        self.byte(0xDE)
        return self.be(n, 2)

    cdef int string(self, str text) except -1:
        cdef Py_ssize_t n
        cdef const char* p = PyUnicode_AsUTF8AndSize(text, &n)
        if n < 32:
            self.byte(0xA0 | n)
        elif n < 256:
            self.byte(0xD9)
            self.be(n, 1)
        elif n < 65536:
            self.byte(0xDA)
            self.be(n, 2)
        else:
            self.byte(0xDB)
            self.be(n, 4)
        return self.raw(p, n)

    cdef int integer(self, object number) except -1:
        cdef int64_t v
        if number >= 0:
            if number < 128:
                return self.byte(<uint8_t>number)
            if number < 256:
                self.byte(0xCC)
                return self.be(number, 1)
            if number < 65536:
                self.byte(0xCD)
                return self.be(number, 2)
            if number < 4294967296:
                self.byte(0xCE)
                return self.be(number, 4)
            self.byte(0xCF)
            return self.be(<uint64_t>number, 8)
        v = number
        if v >= -32:
            return self.byte(<uint8_t>(v & 0xFF))
        if v >= -128:
            self.byte(0xD0)
        elif v >= -32768:
            self.byte(0xD1)
            return self.be(<uint64_t>v & 0xFFFF, 2)
        elif v >= -2147483648:
            self.byte(0xD2)
            return self.be(<uint64_t>v & 0xFFFFFFFF, 4)
        else:
            self.byte(0xD3)
            return self.be(<uint64_t>v, 8)
        return self.be(<uint64_t>v & 0xFF, 1)

    cdef int value(self, object v) except -1:
        """A value of an event map: str, int or None (anything else through msgpack)."""
        if v is None:
            return self.nil()
        if type(v) is str:
            return self.string(<str>v)
        if type(v) is int:
            return self.integer(v)
        data = _packb_other(v)
        return self.raw(data, len(data))

    cdef bytes take(self):
        cdef bytes out = PyBytes_FromStringAndSize(self.data, self.length)
        self.length = 0
        return out


cdef bytes _packb_other(object v):
    import msgpack
    return msgpack.packb(v, use_bin_type=True)


cdef class Engine:
    """One profile's parser for one source: same API and same events as
    :class:`gateway.smdr.parser.RecordParser`, plus :meth:`pack`."""

    cdef readonly object profile, tz
    cdef readonly str gw, src
    cdef object reference
    cdef Program program
    cdef list conversions  # (slot or -1, x name or None, column, code, format)
    cdef list x_from_fields  # names of vendor fields from [fields.x], in order
    cdef list rules  # (list of (column, code, pattern, groups, memo), list of (name, value))
    cdef object start_spec
    cdef int date_col, time_col
    cdef bint same_column, end_time, epoch, no_date
    cdef str date_order
    cdef dict durations, dates, times, offsets
    cdef int64_t received_day  # the ordinal the date memo was filled for
    cdef object received
    cdef int64_t received_ms
    cdef _Buffer out

    def __init__(self, profile, tz, str gw, str src):
        self.profile, self.tz, self.gw, self.src = profile, tz, gw, src
        self.reference = RecordParser(profile, tz, gw, src)
        self.program = Program(profile.layout)
        self.conversions = []
        for spec in profile.fields:
            code = (CONV_TEXT if spec.format == "text" else CONV_INT if spec.format == "int"
                    else CONV_OTHER if spec.format == "ipv4-le" else CONV_DURATION)
            if spec.target.startswith("x_"):
                self.conversions.append((-1, spec.target[2:], spec.column, code, spec.format))
            else:
                self.conversions.append((SLOT[spec.target], None, spec.column, code, spec.format))
        self.rules = [([_match_op(col, pattern) for col, pattern in rule.when],
                       [(name, value or None) for name, value in rule.set]) for rule in profile.rules]
        spec = profile.start
        self.date_order = spec.date_order
        self.epoch = spec.date_order == "epoch"
        self.no_date = spec.date is None
        self.date_col = -1 if spec.date is None else spec.date
        self.time_col = -1 if spec.time is None else spec.time
        self.same_column = spec.date is not None and spec.date == spec.time
        self.end_time = spec.time_is == "end"
        self.durations, self.dates, self.times, self.offsets = {}, {}, {}, {}
        self.received_ms = -1
        self.out = _Buffer()

    def parse(self, record, rx: int, seq: int):
        """The event for ``record`` (see RecordParser.parse)."""
        values = self._values(record, rx)
        if values is None:
            return self.reference.parse(record, rx, seq)
        start, slots, x, raw = values
        return CallEvent(gw=self.gw, src=self.src, seq=seq, rx=rx, profile=self.profile.name,
                         start=start, raw=raw, x=x, **dict(zip(FILLED, slots)))

    def pack(self, records, rx: int, seq: int):
        """msgpack of the events of ``records`` (numbered from ``seq``), concatenated,
        and the unparsed events among them (for their reasons)."""
        cdef _Buffer out = self.out
        cdef list unparsed = []
        cdef Py_ssize_t i
        cdef tuple slots
        for record in records:
            values = self._values(record, rx)
            if values is None:
                event = self.reference.parse(record, rx, seq)
                data = packb(event)
                out.raw(data, len(data))
                if event.KIND == "unparsed":
                    unparsed.append(event)
            else:
                start, slots, x, raw = values
                out.map_header(20 if x else 19)
                out.string("v"); out.byte(1)
                out.string("kind"); out.string("call")
                out.string("gw"); out.string(self.gw)
                out.string("src"); out.string(self.src)
                out.string("seq"); out.integer(seq)
                out.string("rx"); out.integer(rx)
                out.string("profile"); out.string(self.profile.name)
                out.string("start"); out.integer(start)
                for i in range(NSLOTS):
                    out.string(<str>FILLED[i])
                    out.value(slots[i])
                out.string("raw"); out.string(raw)
                if x:
                    out.string("x")
                    out.map_header(len(x))
                    for key, value in (<dict>x).items():
                        out.string(key)
                        out.value(value)
            seq += 1
        return out.take(), unparsed

    cdef object _values(self, record, int64_t rx):
        """(start, slots, x, raw) by the fast path, or None: the reference must read it."""
        cdef bytes data = record.data
        if record.truncated:
            return None
        cdef str raw = data.decode("ascii") if data.isascii() else decode(data)
        try:
            columns = self.program.split(raw)
            return self._normalize(columns, rx, raw)
        except RecordError:
            return None

    cdef tuple _normalize(self, tuple columns, int64_t rx, str raw):
        cdef list slots = [None] * NSLOTS
        cdef dict x = {}
        cdef int slot
        cdef str text
        for slot, xname, col, code, fmt in self.conversions:
            text = columns[col]
            if code == CONV_TEXT:
                value = text or None
            elif code == CONV_DURATION:
                value = self._duration(text, fmt)
            elif code == CONV_INT:
                value = _integer(text)
            else:
                value = _reference_convert(text, fmt)
            if slot >= 0:
                slots[slot] = value
            elif value is not None:
                x[xname] = value
        cdef set decided = set()
        cdef list ops, settings
        cdef dict found
        for ops, settings in self.rules:
            found = self._match(ops, columns)
            if found is None:
                continue
            found.update(settings)
            for name, value in found.items():
                if name in decided:
                    continue
                decided.add(name)
                if name.startswith("x_"):
                    if value is not None:
                        x[name[2:]] = value
                else:
                    slots[<int>SLOT[name]] = value
        start = self._start(columns, rx, slots[0], slots[1])
        return start, tuple(slots), x, raw

    cdef dict _match(self, list ops, tuple columns):
        """The rule's captures (name -> text or None) when every column matches, else None."""
        cdef dict found = {}
        cdef int code
        cdef str text
        for col, code, pattern, groups, memo in ops:
            text = columns[col]
            if code == MATCH_ANY and "\n" not in text:
                found[groups[0]] = text or None
            elif code == MATCH_NONEMPTY and "\n" not in text:
                if not text:
                    return None
                found[groups[0]] = text
            elif code == MATCH_PLAIN:
                hit = (<dict>memo).get(text)
                if hit is None:
                    if len(<dict>memo) >= MEMO_MAX:
                        (<dict>memo).clear()
                    hit = (<dict>memo)[text] = pattern.fullmatch(text) is not None
                if not hit:
                    return None
            else:
                match = pattern.fullmatch(text)
                if match is None:
                    return None
                for name, captured in match.groupdict().items():
                    found[name] = (captured.strip() or None) if captured else None
        return found

    cdef object _duration(self, str text, str fmt):
        key = (fmt, text)
        value = self.durations.get(key, self)
        if value is self:
            if len(self.durations) >= MEMO_MAX:
                self.durations.clear()
            value = self.durations[key] = parse_duration(text, fmt)
        return value

    cdef int64_t _start(self, tuple columns, int64_t rx, object ring, object dur) except? -1:
        cdef int64_t start, day, seconds, local, received_local
        cdef str date_text, time_text, text
        if rx != self.received_ms:
            self._receive(rx)
        if self.epoch:
            text = columns[self.date_col]
            value = _integer(text) if text else None
            if value is None or value <= 0:
                raise RecordError(f"start {text!r} is not seconds since the epoch")
            start = value
        elif self.no_date:
            time_text = columns[self.time_col]
            if not time_text:
                raise RecordError("no call time")
            seconds = self._time(time_text)
            day = self.received_day
            received_local = self._received_local()
            if day * 86400 + seconds - received_local > 3600:
                day -= 1
            start = self._utc(day, seconds)
        else:
            date_text, time_text = columns[self.date_col], columns[self.time_col]
            if self.same_column:
                date_text, _, time_text = date_text.partition(" ")
            if not date_text or not time_text.strip():
                raise RecordError("no call date and time")
            day = self._date(date_text)
            start = self._utc(day, self._time(time_text.strip()))
        if self.end_time:
            start -= (ring or 0) + (dur or 0)
        return start

    cdef void _receive(self, int64_t rx):
        self.received_ms = rx
        self.received = datetime.fromtimestamp(rx / 1000, self.tz)
        day = self.received.date().toordinal()
        if day != self.received_day:
            self.received_day = day
            self.dates.clear()

    cdef int64_t _received_local(self):
        r = self.received
        return (r.toordinal() * 86400 + r.hour * 3600 + r.minute * 60 + r.second)

    cdef int64_t _date(self, str text) except? -1:
        day = self.dates.get(text)
        if day is None:
            if len(self.dates) >= MEMO_MAX:
                self.dates.clear()
            day = self.dates[text] = parse_date(text, self.date_order, self.received.date()).toordinal()
        return day

    cdef int64_t _time(self, str text) except? -1:
        seconds = self.times.get(text)
        if seconds is None:
            if len(self.times) >= MEMO_MAX:
                self.times.clear()
            t = parse_time(text)
            seconds = self.times[text] = t.hour * 3600 + t.minute * 60 + t.second
        return seconds

    cdef int64_t _utc(self, int64_t day, int64_t seconds) except? -1:
        """Epoch seconds of a local wall time, as ``datetime.combine(...).timestamp()``:
        the zone's offset is looked up once per local minute (and the minute is read
        exactly when the offset changes inside it)."""
        cdef int64_t minute = day * 1440 + seconds // 60
        offset = self.offsets.get(minute)
        if offset is None:
            if len(self.offsets) >= MEMO_MAX:
                self.offsets.clear()
            offset = self.offsets[minute] = self._offset_of_minute(day, seconds // 60)
        if offset is False:  # a transition inside this minute: read this time exactly
            local = datetime.combine(date.fromordinal(day), _clock(seconds), self.tz)
            return <int64_t>int(local.timestamp())
        return (day - EPOCH_ORDINAL) * 86400 + seconds - <int64_t>offset

    cdef object _offset_of_minute(self, int64_t day, int64_t minute):
        d = date.fromordinal(day)
        first = datetime.combine(d, _clock(minute * 60), self.tz)
        last = datetime.combine(d, _clock(minute * 60 + 59), self.tz)
        naive = (day - EPOCH_ORDINAL) * 86400 + minute * 60
        offset = naive - int(first.timestamp())
        if naive + 59 - int(last.timestamp()) != offset:
            return False
        return offset


cdef object _clock(int64_t seconds):
    from datetime import time
    return time(<int>(seconds // 3600), <int>(seconds // 60 % 60), <int>(seconds % 60))


cdef object _integer(str text):
    """As the reference's int conversion, for ASCII text: None when blank."""
    if not text:
        return None
    cdef Py_ssize_t i = 1 if text[0] in "+-" else 0
    cdef Py_ssize_t n = len(text)
    if i == n:
        raise RecordError(f"{text!r} is not a whole number")
    for j in range(i, n):
        if not ("0" <= text[j] <= "9"):
            raise RecordError(f"{text!r} is not a whole number")
    return int(text)


cdef object _reference_convert(str text, str fmt):
    from gateway.smdr.parser import _convert
    return _convert(text, fmt)


cdef tuple _match_op(int col, pattern):
    groups = tuple(pattern.groupindex)
    source = pattern.pattern
    if len(groups) == 1 and source == f"(?P<{groups[0]}>.*)":
        return (col, MATCH_ANY, pattern, groups, None)
    if len(groups) == 1 and source == f"(?P<{groups[0]}>.+)":
        return (col, MATCH_NONEMPTY, pattern, groups, None)
    if not groups:
        return (col, MATCH_PLAIN, pattern, groups, {})
    return (col, MATCH_REGEX, pattern, groups, None)


#: Terminators the compiled framer splits (the others: the reference framer's own code).
cdef dict LINE_TERMINATORS = {"line": 0, "crlf": 1, "cr": 2, "lf": 3, "nul": 4}
cdef bytes BLANK_BYTES = b" \t\n\r\x0b\x0c\x00"  # what the reference's [\s\x00]* matches


class Framer(ReferenceFramer):
    """The reference framer with :meth:`records` compiled for terminated records: the
    same records, cuts and counts, found with one pass over the buffer."""

    def records(self):
        code = LINE_TERMINATORS.get(self._rules.terminator, -1)
        if code < 0:
            return super().records()
        cdef bytearray buf = self._buffer
        cdef Py_ssize_t n = len(buf), pos = 0, limit = self._rules.max_record_len
        cdef Py_ssize_t searched = self._searched, i, start, end
        cdef bint eof = self._eof, cut
        cdef const unsigned char* p = buf
        cdef list out = []
        cdef int term = code
        while pos < n:
            # Find the next terminator at or after `searched`.
            start = -1
            i = searched if searched > pos else pos
            while i < n:
                if term == 0 and (p[i] == 13 or p[i] == 10):
                    start = i
                    break
                if term == 1 and p[i] == 13 and i + 1 < n and p[i + 1] == 10:
                    start = i
                    break
                if (term == 2 and p[i] == 13) or (term == 3 and p[i] == 10) or (term == 4 and p[i] == 0):
                    start = i
                    break
                i += 1
            if start >= 0:
                if term == 0 and p[start] == 13:
                    if start + 1 < n and p[start + 1] == 10:
                        end = start + 2
                    elif start + 1 == n and not eof:
                        start = -1  # a CR that is the last byte may be the start of CR LF
                    else:
                        end = start + 1
                elif term == 1:
                    end = start + 2
                else:
                    end = start + 1
            if start < 0:
                searched = n - 1 if n - 1 > pos else pos
                if n - pos >= limit:
                    record = Record(bytes(buf[pos:pos + limit]), True)
                    pos += limit
                elif eof:
                    record = Record(bytes(buf[pos:n]), False)
                    pos = n
                else:
                    break
            elif start - pos > limit:
                record = Record(bytes(buf[pos:pos + limit]), True)
                pos += limit
            else:
                record = Record(bytes(buf[pos:start]), False)
                pos = end
            searched = pos
            record = self._filter(record)
            if record is not None:
                out.append(record)
        del buf[:pos]
        self._searched = searched - pos if searched > pos else 0
        return out

    def _filter(self, record):
        """The reference's filter, with the blank test done without a regex."""
        rules, stats = self._rules, self.stats
        data = record.data
        if rules.terminator != "nul" and b"\x00" in data:
            stats.nul_bytes += data.count(b"\x00")
            record = Record(data.replace(b"\x00", b""), record.truncated)
        for pattern in rules.strip:
            record = Record(pattern.sub(b"", record.data), record.truncated)
        data = record.data
        if not data.strip(BLANK_BYTES) or any(pattern.search(data) for pattern in rules.skip):
            stats.skipped += 1
            return None
        stats.records += 1
        stats.truncated += record.truncated
        return record
