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

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_DecodeUTF8
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memchr, memcmp, memcpy, memset


cdef extern from "string.h" nogil:
    void* memmem(const void* haystack, size_t haystacklen, const void* needle, size_t needlelen)

import csv
import re
import re._parser as _parser
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
#: Their msgpack keys, and the map's first two pairs ("v": 1, "kind": "call").
cdef list SLOT_KEYS = [bytes([0xA0 | len(k)]) + k.encode() for k in FILLED]
cdef bytes HEAD_V_KIND = b"\xa1v\x01\xa4kind\xa4call"


cdef bytes _msgpack_str(str text):
    import msgpack
    return msgpack.packb(text, use_bin_type=True)

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


@cython.final
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

    cdef inline int reserve(self, Py_ssize_t more) except -1:
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

    cdef inline int raw(self, const char* p, Py_ssize_t n) except -1:
        cdef Py_ssize_t i
        cdef char* to
        self.reserve(n)
        to = self.data + self.length
        if n <= 16:  # most pieces of an event are short: no call for them
            for i in range(n):
                to[i] = p[i]
        else:
            memcpy(to, p, n)
        self.length += n
        return 0

    cdef inline int be(self, uint64_t value, int width) except -1:
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
        return self.span(p, n)

    cdef int integer(self, object number) except -1:
        if -2**63 <= number < 2**63:
            return self.int64(number)
        data = _packb_other(number)
        return self.raw(data, len(data))

    cdef inline int bytes_(self, bytes data) except -1:
        """Bytes already in msgpack form."""
        return self.raw(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))

    cdef int span(self, const char* p, Py_ssize_t n) except -1:
        """UTF-8 text as a msgpack str (str8 from 32 bytes on, as msgpack-python writes it)."""
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

    cdef int int64(self, int64_t v) except -1:
        """An integer as msgpack-python writes it (the smallest form)."""
        if v >= 0:
            if v < 128:
                return self.byte(<uint8_t>v)
            if v < 256:
                self.byte(0xCC)
                return self.be(v, 1)
            if v < 65536:
                self.byte(0xCD)
                return self.be(v, 2)
            if v < 4294967296:
                self.byte(0xCE)
                return self.be(v, 4)
            self.byte(0xCF)
            return self.be(<uint64_t>v, 8)
        if v >= -32:
            return self.byte(<uint8_t>(v & 0xFF))
        if v >= -128:
            self.byte(0xD0)
            return self.be(<uint64_t>v & 0xFF, 1)
        if v >= -32768:
            self.byte(0xD1)
            return self.be(<uint64_t>v & 0xFFFF, 2)
        if v >= -2147483648:
            self.byte(0xD2)
            return self.be(<uint64_t>v & 0xFFFFFFFF, 4)
        self.byte(0xD3)
        return self.be(<uint64_t>v, 8)

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


# ---------------------------------------------------------------------------------------
# The C path: a record's bytes in, its msgpack event out, with no Python object for what
# repeats: dates, times, durations, zone offsets and the answers of groupless rule
# patterns come from fixed-size caches that the reference's own functions fill. A record
# it cannot take (FAST_NO) goes to the Python path, which may hand it to the reference.

cdef enum:
    FAST_NO = 0
    FAST_DONE = 1

# A value of an event field on the C path.
cdef enum:
    V_NONE = 0
    V_SPAN = 1     # a stripped piece of the record: a, n
    V_INT = 2      # i
    V_OBJ = 3      # a Python str captured by a regex: objs[i]
    V_CONST = 4    # a rule's constant: consts[i]

cdef struct Val:
    int kind
    Py_ssize_t a, n
    int64_t i

# Rule operations on the C path.
cdef enum:
    OP_ANY = 0       # (?P<g>.*)
    OP_NONEMPTY = 1  # (?P<g>.+)
    OP_PREFIX = 2    # LITERAL(?P<g>.+) or LITERAL(?P<g>.*)
    OP_PLAIN = 3     # no groups: the answer per column text, cached
    OP_REGEX = 4     # the regex runs, unless a quick test rules the text out

cdef struct Op:
    int column, kind, target, plus, cache, index

cdef struct Conv:
    int target, column, code, cache

cdef struct Setting:
    int target, const_index  # const_index -1: null

cdef struct RuleC:
    int first_op, n_ops, first_set, n_sets

cdef enum:
    KEY_MAX = 40          # text bytes a cache entry holds; longer texts go to Python
    CACHE_SLOTS = 1024    # entries per cache (direct-mapped: a bound on memory)
    OFFSET_SLOTS = 4096   # zone offsets cached, one per local minute
    MAX_COLUMNS = 128
    MAX_TARGETS = 96      # event fields and vendor fields a profile can fill
    MAX_FOUND = 32
    MAX_OPS = 256
    TARGET_X = 100        # targets from here are vendor fields (x)

cdef enum:
    C_EMPTY = 0
    C_VALUE = 1
    C_NULL = 2
    C_ERROR = 3

cdef struct CacheEntry:
    int state
    int length
    int64_t value
    char key[KEY_MAX]


cdef inline uint64_t _hash(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    cdef uint64_t h = 1469598103934665603ULL
    cdef Py_ssize_t i
    for i in range(n):
        h = (h ^ p[i]) * 1099511628211ULL
    return h


cdef inline bint _is_space(unsigned char c) noexcept nogil:
    """What Python's str.strip() removes from ASCII text."""
    return c == 32 or (9 <= c <= 13) or (28 <= c <= 31)


cdef inline void _strip(const unsigned char* p, Py_ssize_t* a, Py_ssize_t* n) noexcept nogil:
    while n[0] > 0 and _is_space(p[a[0]]):
        a[0] += 1
        n[0] -= 1
    while n[0] > 0 and _is_space(p[a[0] + n[0] - 1]):
        n[0] -= 1


cdef inline bint _contains(const unsigned char* p, Py_ssize_t n, bytes text):
    return memmem(p, n, PyBytes_AS_STRING(text), len(text)) != NULL


cdef bint _utf8(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    """Whether Python's strict UTF-8 decoder takes these bytes."""
    cdef Py_ssize_t i = 0, j, more
    cdef unsigned char c, low, high
    while i < n:
        c = p[i]
        if c < 0x80:
            i += 1
            continue
        low, high = 0x80, 0xBF
        if 0xC2 <= c <= 0xDF:
            more = 1
        elif c == 0xE0:
            more, low = 2, 0xA0
        elif 0xE1 <= c <= 0xEC or c == 0xEE or c == 0xEF:
            more = 2
        elif c == 0xED:
            more, high = 2, 0x9F  # no surrogates
        elif c == 0xF0:
            more, low = 3, 0x90
        elif 0xF1 <= c <= 0xF3:
            more = 3
        elif c == 0xF4:
            more, high = 3, 0x8F
        else:
            return False
        if i + more >= n or not low <= p[i + 1] <= high:
            return False
        for j in range(2, more + 1):
            if not 0x80 <= p[i + j] <= 0xBF:
                return False
        i += more + 1
    return True


cdef inline uint32_t _code_point(const unsigned char* p, Py_ssize_t at, Py_ssize_t length) noexcept nogil:
    """The code point of the valid UTF-8 sequence at ``p[at:at+length]``."""
    cdef uint32_t value = p[at] & (0x7F if length == 1 else 0x1F if length == 2 else 0x0F if length == 3 else 0x07)
    cdef Py_ssize_t i
    for i in range(1, length):
        value = (value << 6) | (p[at + i] & 0x3F)
    return value


cdef inline bint _unicode_space(uint32_t c) noexcept nogil:
    """str.isspace() for code points above ASCII."""
    return c == 0x85 or c == 0xA0 or c == 0x1680 or 0x2000 <= c <= 0x200A or c == 0x2028 \
        or c == 0x2029 or c == 0x202F or c == 0x205F or c == 0x3000


cdef bint _unicode_space_at_edge(const unsigned char* p, Py_ssize_t a, Py_ssize_t m) noexcept nogil:
    """Whether the first or last character of valid UTF-8 ``p[a:a+m]`` is non-ASCII
    white space."""
    cdef Py_ssize_t length, end
    if m == 0:
        return False
    if p[a] >= 0x80:
        length = 2 if p[a] < 0xE0 else 3 if p[a] < 0xF0 else 4
        if _unicode_space(_code_point(p, a, length)):
            return True
    if p[a + m - 1] >= 0x80:
        end = a + m - 1
        while end > a and (p[end] & 0xC0) == 0x80:
            end -= 1
        if _unicode_space(_code_point(p, end, a + m - end)):
            return True
    return False


cdef inline bint _has_byte(const unsigned char* p, Py_ssize_t n, unsigned char b) noexcept nogil:
    return n > 0 and memchr(p, b, n) != NULL


# ---- quick tests that rule a regex out without running it -------------------------------

def _first_bytes(items):
    """The bytes a match of this parsed sequence may start with, and whether it may be
    empty; None when unknown (anything, a category, a case-insensitive part)."""
    first = set()
    for op, arg in items:
        if op is _parser.LITERAL:
            first.add(arg)
            return first, False
        if op is _parser.IN:
            if any(kind is not _parser.LITERAL and kind is not _parser.RANGE for kind, _ in arg):
                return None
            for kind, value in arg:
                first.update([value] if kind is _parser.LITERAL else range(value[0], value[1] + 1))
            return first, False
        if op is _parser.SUBPATTERN:
            if arg[1] & re.IGNORECASE:
                return None
            inner = _first_bytes(arg[3])
        elif op is _parser.BRANCH:
            inner, empty = set(), False
            for branch in arg[1]:
                got = _first_bytes(branch)
                if got is None:
                    return None
                inner |= got[0]
                empty = empty or got[1]
            inner = (inner, empty)
        elif op in (_parser.MAX_REPEAT, _parser.MIN_REPEAT):
            got = _first_bytes(arg[2])
            if got is None:
                return None
            inner = (got[0], got[1] or arg[0] == 0)
        elif op is _parser.AT:
            continue
        else:
            return None
        if inner is None:
            return None
        first |= inner[0]
        if not inner[1]:
            return first, False
    return first, True


def _required_text(items):
    """The longest run of ASCII text every match contains (consecutive literals of the
    top-level sequence; a repeated literal counts its minimum), or b""."""
    best, run = b"", b""
    for op, arg in items:
        if op is _parser.LITERAL and arg < 128:
            run += bytes([arg])
            continue
        if op in (_parser.MAX_REPEAT, _parser.MIN_REPEAT) and arg[0] >= 1 and len(arg[2]) == 1 \
                and arg[2][0][0] is _parser.LITERAL and arg[2][0][1] < 128:
            run += bytes([arg[2][0][1]]) * min(arg[0], 16)  # more may follow: the run ends here
        best, run = max(best, run, key=len), b""
    return max(best, run, key=len)


def quick_test(pattern):
    """(first bytes as a 256-byte table or None, text every match contains or b"") for
    ``pattern``: a text that fails either test cannot match."""
    if pattern.flags & re.IGNORECASE:
        return None, b""
    try:
        items = list(_parser.parse(pattern.pattern, pattern.flags))
    except Exception:  # noqa: BLE001 - no quick test; the regex always runs
        return None, b""
    first = _first_bytes(items)
    table = None
    if first is not None and not first[1] and all(b < 128 for b in first[0]):
        table = bytes(1 if b in first[0] else 0 for b in range(256))
    return table, _required_text(items)


@cython.final
cdef class Engine:
    """One profile's parser for one source: same API and same events as
    :class:`gateway.smdr.parser.RecordParser`, plus the batch paths :meth:`pack` and
    :meth:`pack_framed`."""

    cdef readonly object profile, tz
    cdef readonly str gw, src
    cdef readonly object stream
    cdef object reference
    cdef Program program
    cdef list conversions  # (slot or -1, x name or None, column, code, format)
    cdef list rules  # (list of (column, code, pattern, groups, memo), list of (name, value))
    cdef int date_col, time_col
    cdef bint same_column, end_time, epoch, no_date
    cdef str date_order
    cdef dict durations, dates, times, offsets
    cdef int64_t received_day  # the ordinal the date memos were filled for
    cdef object received
    cdef int64_t received_ms, received_local
    cdef _Buffer out
    # The C path (see the section above): the layout, conversions and rules as C arrays.
    cdef bint c_ok, c_fixed
    cdef bint unsynced  # see the synchronized property: every record then takes the reference's path
    cdef int n_columns, n_variants, n_convs, n_ops, n_rules, n_sets, n_caches, date_cache, time_cache
    cdef Py_ssize_t* var_max
    cdef Py_ssize_t* var_pos
    cdef unsigned char delimiter
    cdef int quote
    cdef Py_ssize_t min_fields
    cdef Conv* convs
    cdef Op* ops
    cdef RuleC* rules_c
    cdef Setting* sets
    cdef CacheEntry* caches
    cdef int64_t* offset_key
    cdef int64_t* offset_value
    cdef char* offset_state
    cdef list patterns, prefixes, quick_first, quick_required, regex_targets, consts, x_names
    cdef list cache_calls  # per cache: a function of the text giving the value or None
    cdef str name_text
    cdef list skip_required
    cdef bytes head_seq, head_rx, head_start  # the map's constant pieces, as msgpack
    cdef list x_keys, const_values  # vendor field names and rule constants, as msgpack

    def __cinit__(self):
        self.var_max = self.var_pos = NULL
        self.convs, self.ops, self.rules_c, self.sets, self.caches = NULL, NULL, NULL, NULL, NULL
        self.offset_key = self.offset_value = NULL
        self.offset_state = NULL

    def __dealloc__(self):
        PyMem_Free(self.var_max)
        PyMem_Free(self.var_pos)
        PyMem_Free(self.convs)
        PyMem_Free(self.ops)
        PyMem_Free(self.rules_c)
        PyMem_Free(self.sets)
        PyMem_Free(self.caches)
        PyMem_Free(self.offset_key)
        PyMem_Free(self.offset_value)
        PyMem_Free(self.offset_state)

    def __init__(self, profile, tz, str gw, str src, stream=None):
        self.profile, self.tz, self.gw, self.src, self.stream = profile, tz, gw, src, stream
        self.reference = RecordParser(profile, tz, gw, src, stream)
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
        self.received_day = -1
        self.out = _Buffer()
        self.name_text = profile.name
        self.head_seq = (HEAD_V_KIND + _msgpack_str("gw") + _msgpack_str(gw) + _msgpack_str("src")
                         + _msgpack_str(src) + _msgpack_str("stream")
                         + (b"\xc0" if stream is None else _msgpack_str(stream)) + _msgpack_str("seq"))
        self.head_rx = _msgpack_str("rx")
        self.head_start = _msgpack_str("profile") + _msgpack_str(profile.name) + _msgpack_str("start")
        self._compile_c()
        self.x_keys = [_msgpack_str(name) for name in self.x_names or ()]
        self.const_values = [_msgpack_str(value) for value in self.consts or ()]

    # ---- the API ----------------------------------------------------------------------

    @property
    def synchronized(self):
        """As :attr:`RecordParser.synchronized`. While false every record goes to the
        reference, which marks its event ``unsynced`` (rare, so not worth a fast path)."""
        return not self.unsynced

    @synchronized.setter
    def synchronized(self, bint value):
        self.unsynced = not value
        self.reference.synchronized = value

    def parse(self, record, rx: int, seq: int):
        """The event for ``record`` (see RecordParser.parse)."""
        values = self._values(record, rx)
        if values is None:
            return self.reference.parse(record, rx, seq)
        start, slots, x, raw = values
        return CallEvent(gw=self.gw, src=self.src, stream=self.stream, seq=seq, rx=rx, profile=self.profile.name,
                         start=start, raw=raw, x=x, **dict(zip(FILLED, slots)))

    def pack(self, records, rx: int, seq: int):
        """msgpack of the events of ``records`` (numbered from ``seq``), concatenated,
        and the unparsed events among them (for their reasons)."""
        cdef list unparsed = []
        cdef bytes data
        for record in records:
            data = record.data
            if record.truncated or not self._c_record(data, len(data), rx, seq):
                self._python_record(record, rx, seq, unparsed)
            seq += 1
        return self.out.take(), unparsed

    def pack_framed(self, framer, rx: int, seq: int):
        """The records ``framer`` has complete, framed, filtered and parsed in one pass
        over its buffer: (msgpack, unparsed events, number of records)."""
        cdef list unparsed = []
        code = LINE_TERMINATORS.get(framer._rules.terminator, -1)
        if code < 0 or type(framer) is not Framer or framer._rules is not self.profile.framing \
                or framer._rules.strip:
            framed = framer.records()
            packed, unparsed = self.pack(framed, rx, seq)
            return packed, unparsed, len(framed)
        cdef bytearray buf = framer._buffer
        cdef Py_ssize_t n = len(buf), pos = 0, limit = framer._rules.max_record_len
        cdef Py_ssize_t searched = framer._searched, record_end, next_pos, length
        cdef bint truncated, eof = framer._eof
        cdef const unsigned char* p = buf
        cdef const unsigned char* r
        cdef tuple skip = framer._rules.skip
        cdef int64_t records = 0, skipped = 0, cut_short = 0, first = seq
        cdef int term = code
        cdef Py_ssize_t k
        while pos < n and _next_cut(p, n, pos, &searched, eof, term, limit,
                                    &record_end, &next_pos, &truncated):
            r, length = p + pos, record_end - pos
            if term != 4 and length and memchr(r, 0, length) != NULL:
                # NUL padding: the framer's own filter, then the record as usual.
                record = framer._filter(Record(bytes(buf[pos:record_end]), truncated))
                pos = next_pos
                if record is not None:
                    data = record.data
                    if record.truncated or not self._c_record(data, len(data), rx, seq):
                        self._python_record(record, rx, seq, unparsed)
                    seq += 1
                continue
            if _blank(r, length) or self._skipped(r, length, buf, pos, record_end, skip):
                skipped += 1
                pos = next_pos
                continue
            records += 1
            cut_short += truncated
            if truncated or not self._c_record(r, length, rx, seq):
                self._python_record(Record(bytes(buf[pos:record_end]), truncated), rx, seq, unparsed)
            seq += 1
            pos = next_pos
        del buf[:pos]
        framer._searched = searched - pos if searched > pos else 0
        stats = framer.stats
        stats.records += records
        stats.skipped += skipped
        stats.truncated += cut_short
        return self.out.take(), unparsed, seq - first

    # ---- the Python path --------------------------------------------------------------

    cdef void _python_record(self, record, int64_t rx, int64_t seq, list unparsed) except *:
        cdef _Buffer out = self.out
        values = self._values(record, rx)
        if values is None:
            event = self.reference.parse(record, rx, seq)
            data = packb(event)
            out.raw(data, len(data))
            if event.KIND == "unparsed":
                unparsed.append(event)
            return
        start, slots, x, raw = values
        out.map_header(21 if x else 20)
        self._write_head(seq, rx, start)
        for i in range(NSLOTS):
            out.string(<str>FILLED[i])
            out.value(slots[i])
        out.string("raw")
        out.string(raw)
        if x:
            out.string("x")
            out.map_header(len(x))
            for key, value in (<dict>x).items():
                out.string(key)
                out.value(value)

    cdef inline void _write_head(self, int64_t seq, int64_t rx, int64_t start) except *:
        cdef _Buffer out = self.out
        out.bytes_(self.head_seq)
        out.int64(seq)
        out.bytes_(self.head_rx)
        out.int64(rx)
        out.bytes_(self.head_start)
        out.int64(start)

    # ---- the C path: compiling the profile ---------------------------------------------

    cdef void _compile_c(self) except *:
        """The profile as C arrays; ``c_ok`` False where the C path cannot read it."""
        profile, layout = self.profile, self.profile.layout
        self.c_ok = all(v.match is None for v in layout.variants) and len(layout.columns) <= MAX_COLUMNS \
            and all(c[3] != CONV_OTHER for c in self.conversions) \
            and (layout.kind == "fixed" or (len(layout.delimiter) == 1 and ord(layout.delimiter) < 128
                                           and (not layout.quote or ord(layout.quote) < 128)))
        self.skip_required = [quick_test(p)[1] for p in profile.framing.skip]
        if not self.c_ok:
            return
        self.c_fixed = layout.kind == "fixed"
        self.n_columns, self.n_variants = len(layout.columns), len(layout.variants)
        self.var_max = <Py_ssize_t*>_alloc(sizeof(Py_ssize_t) * self.n_variants)
        self.var_pos = <Py_ssize_t*>_alloc(sizeof(Py_ssize_t) * 2 * self.n_columns * self.n_variants)
        for v, variant in enumerate(layout.variants):
            self.var_max[v] = -1 if variant.max_length is None else variant.max_length
            for c, position in enumerate(variant.positions):
                base = 2 * (v * self.n_columns + c)
                self.var_pos[base], self.var_pos[base + 1] = \
                    (position if self.c_fixed else (position, position))
        self.delimiter = ord(layout.delimiter) if not self.c_fixed else 0
        self.quote = ord(layout.quote) if (not self.c_fixed and layout.quote) else -1
        self.min_fields = layout.min_fields
        self.x_names, self.consts, self.patterns, self.prefixes = [], [], [], []
        self.quick_first, self.quick_required, self.regex_targets, self.cache_calls = [], [], [], []
        self.date_cache = self._cache(None)
        self.time_cache = self._cache(None)
        self.n_convs = len(self.conversions)
        self.convs = <Conv*>_alloc(sizeof(Conv) * max(1, self.n_convs))
        for i, (slot, xname, column, code, fmt) in enumerate(self.conversions):
            self.convs[i].target = slot if slot >= 0 else self._x_target(xname)
            self.convs[i].column, self.convs[i].code = column, code
            self.convs[i].cache = self._cache(fmt) if code == CONV_DURATION else -1
        ops, sets, rules = [], [], []
        for rule in profile.rules:
            first_op, first_set = len(ops), len(sets)
            for column, pattern in rule.when:
                ops.append(self._op(column, pattern))
            for name, value in rule.set:
                sets.append((self._target(name), -1 if not value else self._const(value)))
            rules.append((first_op, len(ops) - first_op, first_set, len(sets) - first_set))
        found_most = max([n_ops + n_sets + sum(len(self.regex_targets[ops[i][5]]) for i in range(f, f + n_ops)
                                                if ops[i][1] == OP_REGEX)
                          for f, n_ops, _, n_sets in rules] or [0])
        if len(ops) > MAX_OPS or len(self.x_names) > MAX_TARGETS - 10 or found_most > MAX_FOUND:
            self.c_ok = False
            return
        self.n_ops, self.n_sets, self.n_rules = len(ops), len(sets), len(rules)
        self.ops = <Op*>_alloc(sizeof(Op) * max(1, self.n_ops))
        for i, (column, kind, target, plus, cache, index) in enumerate(ops):
            self.ops[i].column, self.ops[i].kind, self.ops[i].target = column, kind, target
            self.ops[i].plus, self.ops[i].cache, self.ops[i].index = plus, cache, index
        self.sets = <Setting*>_alloc(sizeof(Setting) * max(1, self.n_sets))
        for i, (target, const_index) in enumerate(sets):
            self.sets[i].target, self.sets[i].const_index = target, const_index
        self.rules_c = <RuleC*>_alloc(sizeof(RuleC) * max(1, self.n_rules))
        for i, (first_op, n_ops, first_set, n_sets) in enumerate(rules):
            self.rules_c[i].first_op, self.rules_c[i].n_ops = first_op, n_ops
            self.rules_c[i].first_set, self.rules_c[i].n_sets = first_set, n_sets
        self.n_caches = len(self.cache_calls)
        self.caches = <CacheEntry*>_alloc(sizeof(CacheEntry) * CACHE_SLOTS * self.n_caches)
        memset(self.caches, 0, sizeof(CacheEntry) * CACHE_SLOTS * self.n_caches)
        self.offset_key = <int64_t*>_alloc(sizeof(int64_t) * OFFSET_SLOTS)
        self.offset_value = <int64_t*>_alloc(sizeof(int64_t) * OFFSET_SLOTS)
        self.offset_state = <char*>_alloc(OFFSET_SLOTS)
        memset(self.offset_state, 0, OFFSET_SLOTS)

    cdef int _cache(self, fmt) except -1:
        """A new cache; ``fmt``: a duration format, or None (dates and times: the caller
        fills them)."""
        self.cache_calls.append(fmt)
        return len(self.cache_calls) - 1

    cdef int _x_target(self, str name) except -1:
        if name not in self.x_names:
            self.x_names.append(name)
        return TARGET_X + self.x_names.index(name)

    cdef int _target(self, str name) except -1:
        return self._x_target(name[2:]) if name.startswith("x_") else SLOT[name]

    cdef int _const(self, str value) except -1:
        self.consts.append(value)
        return len(self.consts) - 1

    cdef tuple _op(self, int column, pattern):
        """(column, kind, target, plus, cache, index) of one column pattern of a rule."""
        groups = tuple(pattern.groupindex)
        source = pattern.pattern
        if len(groups) == 1:
            target = self._target(groups[0])
            if source == f"(?P<{groups[0]}>.*)":
                return (column, OP_ANY, target, 0, -1, -1)
            if source == f"(?P<{groups[0]}>.+)":
                return (column, OP_NONEMPTY, target, 0, -1, -1)
            for plus, tail in ((1, f"(?P<{groups[0]}>.+)"), (0, f"(?P<{groups[0]}>.*)")):
                literal = source[:-len(tail)]
                if source.endswith(tail) and literal and literal.isalnum() and literal.isascii():
                    self.prefixes.append(literal.encode())
                    return (column, OP_PREFIX, target, plus, -1, len(self.prefixes) - 1)
        self.patterns.append(pattern)
        index = len(self.patterns) - 1
        if not groups:
            self.quick_first.append(None)
            self.quick_required.append(b"")
            self.regex_targets.append({})
            return (column, OP_PLAIN, -1, 0, self._cache(pattern), index)
        first, required = quick_test(pattern)
        self.quick_first.append(first)
        self.quick_required.append(required)
        self.regex_targets.append({g: self._target(g) for g in groups})
        return (column, OP_REGEX, -1, 0, -1, index)

    # ---- the C path: one record ---------------------------------------------------------

    cdef int _c_record(self, const unsigned char* p, Py_ssize_t n, int64_t rx, int64_t seq) except -1:
        """Write the event of the record ``p[:n]``; FAST_NO (nothing written) when the
        Python path must read it."""
        cdef Py_ssize_t ca[MAX_COLUMNS]
        cdef Py_ssize_t cn[MAX_COLUMNS]
        cdef Val slots[10]
        cdef int xt[MAX_TARGETS]
        cdef Val xv[MAX_TARGETS]
        cdef int nx = 0
        cdef char decided[10 + MAX_TARGETS]
        cdef int ft[MAX_FOUND]
        cdef Val fv[MAX_FOUND]
        cdef int nf, i, j, k, target, v
        cdef Py_ssize_t a, m, base
        cdef Val value
        cdef Conv* conv
        cdef Op* op
        cdef RuleC* rule
        cdef bint failed
        cdef int64_t number, start, day, seconds
        cdef list objs = None
        cdef _Buffer out = self.out
        cdef bint ascii = True
        if not self.c_ok or self.unsynced:
            return FAST_NO
        for i in range(n):
            if p[i] >= 128:
                ascii = False
                break
        if not ascii:
            # UTF-8 text reads the same by bytes when the columns are found by their
            # delimiter (not by character offsets) and the text is what the reference
            # decodes: valid UTF-8 without a byte-order mark.
            if self.c_fixed or not _utf8(p, n) or (n >= 3 and p[0] == 0xEF and p[1] == 0xBB and p[2] == 0xBF):
                return FAST_NO
        # Columns.
        if self.c_fixed:
            v = -1
            for i in range(self.n_variants):
                if self.var_max[i] < 0 or n <= self.var_max[i]:
                    v = i
                    break
            if v < 0:
                return FAST_NO
            for i in range(self.n_columns):
                base = 2 * (v * self.n_columns + i)
                a = self.var_pos[base] if self.var_pos[base] < n else n
                m = (self.var_pos[base + 1] if self.var_pos[base + 1] < n else n) - a
                _strip(p, &a, &m)
                ca[i], cn[i] = a, m
        elif not self._c_fields(p, n, ca, cn, ascii):
            return FAST_NO
        # Conversions from [fields].
        for i in range(10):
            slots[i].kind = V_NONE
        for i in range(self.n_convs):
            conv = &self.convs[i]
            a, m = ca[conv.column], cn[conv.column]
            value.kind = V_NONE
            if m:
                if conv.code == CONV_TEXT:
                    value.kind, value.a, value.n = V_SPAN, a, m
                elif conv.code == CONV_INT:
                    if not _c_int(p + a, m, &number):
                        return FAST_NO
                    value.kind, value.i = V_INT, number
                else:
                    k = self._cached(conv.cache, p + a, m, &number)
                    if k == C_ERROR:
                        return FAST_NO
                    if k == C_VALUE:
                        value.kind, value.i = V_INT, number
            if conv.target < TARGET_X:
                slots[conv.target] = value
            elif value.kind != V_NONE:
                xt[nx], xv[nx] = conv.target, value
                nx += 1
        # Rules.
        memset(decided, 0, sizeof(decided))
        for i in range(self.n_rules):
            rule = &self.rules_c[i]
            nf, failed = 0, False
            for j in range(rule.first_op, rule.first_op + rule.n_ops):
                op = &self.ops[j]
                a, m = ca[op.column], cn[op.column]
                if op.kind == OP_ANY or op.kind == OP_NONEMPTY:
                    if _has_byte(p + a, m, 10):
                        return FAST_NO
                    if op.kind == OP_NONEMPTY and not m:
                        failed = True
                        break
                    value.kind, value.a, value.n = (V_SPAN if m else V_NONE), a, m
                    nf = _found(ft, fv, nf, op.target, value)
                elif op.kind == OP_PREFIX:
                    prefix = <bytes>self.prefixes[op.index]
                    k = len(prefix)
                    if m < k or memcmp(p + a, <const char*>prefix, k) != 0 or (op.plus and m == k):
                        failed = True
                        break
                    if _has_byte(p + a, m, 10):
                        return FAST_NO
                    value.a, value.n = a + k, m - k
                    _strip(p, &value.a, &value.n)
                    if not ascii and _unicode_space_at_edge(p, value.a, value.n):
                        return FAST_NO
                    value.kind = V_SPAN if value.n else V_NONE
                    nf = _found(ft, fv, nf, op.target, value)
                elif op.kind == OP_PLAIN:
                    k = self._cached(op.cache, p + a, m, &number)
                    if k == C_ERROR:
                        return FAST_NO
                    if not number:
                        failed = True
                        break
                else:
                    if objs is None:
                        objs = []
                    k = self._regex(op.index, p + a, m, ft, fv, &nf, objs)
                    if k < 0:
                        failed = True
                        break
            if failed:
                continue
            for j in range(rule.first_set, rule.first_set + rule.n_sets):
                value.kind = V_NONE if self.sets[j].const_index < 0 else V_CONST
                value.i = self.sets[j].const_index
                nf = _found(ft, fv, nf, self.sets[j].target, value)
            for j in range(nf):
                target = ft[j]
                k = target if target < TARGET_X else 10 + target - TARGET_X
                if decided[k]:
                    continue
                decided[k] = 1
                if target < TARGET_X:
                    slots[target] = fv[j]
                elif fv[j].kind != V_NONE:
                    xt[nx], xv[nx] = target, fv[j]
                    nx += 1
        # The start.
        if not self._c_start(p, ca, cn, rx, &start):
            return FAST_NO
        if self.end_time:
            start -= (slots[0].i if slots[0].kind == V_INT else 0) + (slots[1].i if slots[1].kind == V_INT else 0)
        # The event.
        out.map_header(21 if nx else 20)
        self._write_head(seq, rx, start)
        for i in range(10):
            out.bytes_(<bytes>SLOT_KEYS[i])
            self._write_value(&slots[i], p, objs)
        out.raw(b"\xa3raw", 4)
        out.span(<const char*>p, n)
        if nx:
            out.raw(b"\xa1x", 2)
            out.map_header(nx)
            for i in range(nx):
                out.bytes_(<bytes>self.x_keys[xt[i] - TARGET_X])
                self._write_value(&xv[i], p, objs)
        return FAST_DONE

    cdef inline void _write_value(self, Val* value, const unsigned char* p, list objs) except *:
        if value.kind == V_NONE:
            self.out.nil()
        elif value.kind == V_SPAN:
            self.out.span(<const char*>p + value.a, value.n)
        elif value.kind == V_INT:
            self.out.int64(value.i)
        elif value.kind == V_CONST:
            self.out.bytes_(<bytes>self.const_values[value.i])
        else:
            self.out.string(<str>objs[value.i])

    cdef bint _c_fields(self, const unsigned char* p, Py_ssize_t n, Py_ssize_t* ca, Py_ssize_t* cn,
                        bint ascii) except -1:
        """Delimited columns without quoting; False when the Python path must split."""
        cdef Py_ssize_t starts[512]
        cdef Py_ssize_t count = 1, i, index, a, m, v = -1, length = n
        if not ascii:  # variants compare lengths in characters
            length = 0
            for i in range(n):
                length += (p[i] & 0xC0) != 0x80
        if self.quote >= 0:
            for i in range(n):
                if p[i] == self.quote or p[i] == 13 or p[i] == 10 or p[i] == 0:
                    return False
        starts[0] = 0
        for i in range(n):
            if p[i] == self.delimiter:
                if count == 511:
                    return False
                starts[count] = i + 1
                count += 1
        starts[count] = n + 1
        if count < self.min_fields:
            return False
        for i in range(self.n_variants):
            if self.var_max[i] < 0 or length <= self.var_max[i]:
                v = i
                break
        if v < 0:
            return False
        for i in range(self.n_columns):
            index = self.var_pos[2 * (v * self.n_columns + i)]
            if index < count:
                a, m = starts[index], starts[index + 1] - 1 - starts[index]
                _strip(p, &a, &m)
                if not ascii and _unicode_space_at_edge(p, a, m):
                    return False  # str.strip() would remove more than ASCII blanks
            else:
                a, m = 0, 0
            ca[i], cn[i] = a, m
        return True

    cdef int _regex(self, int index, const unsigned char* p, Py_ssize_t m, int* ft, Val* fv,
                    int* nf, list objs) except -2:
        """Run a rule's regex on a column (after its quick test): -1 no match, 0 matched
        (its groups added to the found values)."""
        cdef Val value
        value.a = value.n = value.i = 0
        first = self.quick_first[index]
        if first is not None and (m == 0 or (<const unsigned char*>(<bytes>first))[p[0]] == 0):
            return -1
        required = <bytes>self.quick_required[index]
        if required and not _contains(p, m, required):
            return -1
        match = (<object>self.patterns[index]).fullmatch(PyUnicode_DecodeUTF8(<const char*>p, m, NULL))
        if match is None:
            return -1
        targets = <dict>self.regex_targets[index]
        for name, captured in match.groupdict().items():
            target = <int>targets[name]
            captured = (captured.strip() or None) if captured else None
            if captured is None:
                value.kind = V_NONE
            else:
                value.kind, value.i = V_OBJ, len(objs)
                objs.append(captured)
            nf[0] = _found(ft, fv, nf[0], target, value)
        return 0

    cdef int _cached(self, int cache, const unsigned char* p, Py_ssize_t m, int64_t* number) except -1:
        """C_VALUE (``number`` set), C_NULL or C_ERROR for a text, from the cache or, on a
        miss, from the reference's function."""
        cdef CacheEntry* entry = NULL
        if m <= KEY_MAX:
            entry = &self.caches[cache * CACHE_SLOTS + (_hash(p, m) & (CACHE_SLOTS - 1))]
            if entry.state != C_EMPTY and entry.length == m and memcmp(entry.key, p, m) == 0:
                number[0] = entry.value
                return entry.state
        how = self.cache_calls[cache]
        text = PyUnicode_DecodeUTF8(<const char*>p, m, NULL)
        state, value = C_VALUE, 0
        try:
            if cache == self.date_cache:
                value = parse_date(text, self.date_order, self.received.date()).toordinal()
            elif cache == self.time_cache:
                t = parse_time(text)
                value = t.hour * 3600 + t.minute * 60 + t.second
            elif isinstance(how, str):
                value = parse_duration(text, how)
                if value is None:
                    state, value = C_NULL, 0
            else:
                value = 1 if how.fullmatch(text) is not None else 0
        except RecordError:
            state, value = C_ERROR, 0
        if entry != NULL:
            entry.state, entry.length, entry.value = state, m, value
            memcpy(entry.key, p, m)
        number[0] = value
        return state

    cdef bint _c_start(self, const unsigned char* p, Py_ssize_t* ca, Py_ssize_t* cn, int64_t rx,
                       int64_t* start) except -1:
        """The call's start, epoch seconds; False when the Python path must read it."""
        cdef Py_ssize_t da, dn, ta, tn, i
        cdef int64_t day, seconds, number
        if rx != self.received_ms:
            self._receive(rx)
        if self.epoch:
            if not cn[self.date_col] or not _c_int(p + ca[self.date_col], cn[self.date_col], &number) \
                    or number <= 0:
                return False
            start[0] = number
            return True
        if self.no_date:
            ta, tn = ca[self.time_col], cn[self.time_col]
            if not tn or self._cached(self.time_cache, p + ta, tn, &seconds) != C_VALUE:
                return False
            day = self.received_day
            if day * 86400 + seconds - self.received_local > 3600:
                day -= 1
            return self._c_utc(day, seconds, start)
        da, dn = ca[self.date_col], cn[self.date_col]
        if self.same_column:
            ta, tn = da + dn, 0
            for i in range(dn):
                if p[da + i] == 32:
                    ta, tn, dn = da + i + 1, dn - i - 1, i
                    break
        else:
            ta, tn = ca[self.time_col], cn[self.time_col]
        _strip(p, &ta, &tn)
        if not dn or not tn:
            return False
        if self._cached(self.date_cache, p + da, dn, &day) != C_VALUE:
            return False
        if self._cached(self.time_cache, p + ta, tn, &seconds) != C_VALUE:
            return False
        return self._c_utc(day, seconds, start)

    cdef bint _c_utc(self, int64_t day, int64_t seconds, int64_t* start) except -1:
        cdef int64_t minute = day * 1440 + seconds // 60
        cdef int slot = minute & (OFFSET_SLOTS - 1)
        if self.offset_state[slot] == 0 or self.offset_key[slot] != minute:
            offset = self._offset_of_minute(day, seconds // 60)
            self.offset_key[slot] = minute
            self.offset_state[slot] = 2 if offset is False else 1
            self.offset_value[slot] = 0 if offset is False else offset
        if self.offset_state[slot] == 2:
            return False  # a zone change inside this minute: the Python path reads it exactly
        start[0] = (day - EPOCH_ORDINAL) * 86400 + seconds - self.offset_value[slot]
        return True

    cdef bint _skipped(self, const unsigned char* r, Py_ssize_t n, bytearray buf, Py_ssize_t pos,
                       Py_ssize_t end, tuple skip) except -1:
        """Whether a skip pattern finds the record (the regex runs only when its quick
        test cannot rule the record out)."""
        cdef Py_ssize_t i
        for i in range(len(skip)):
            required = <bytes>self.skip_required[i]
            if required and not _contains(r, n, required):
                continue
            if (<object>skip[i]).search(bytes(buf[pos:end])) is not None:
                return True
        return False

    cdef object _values(self, record, int64_t rx):
        """(start, slots, x, raw) by the fast path, or None: the reference must read it."""
        cdef bytes data = record.data
        if record.truncated or self.unsynced:
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
        cdef int64_t start, day, seconds
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
            if day * 86400 + seconds - self.received_local > 3600:
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

    cdef void _receive(self, int64_t rx) except *:
        """Receive-time state: the dates read so far depend on the receive day."""
        self.received_ms = rx
        r = self.received = datetime.fromtimestamp(rx / 1000, self.tz)
        self.received_local = r.toordinal() * 86400 + r.hour * 3600 + r.minute * 60 + r.second
        day = r.date().toordinal()
        if day != self.received_day:
            self.received_day = day
            self.dates.clear()
            if self.caches != NULL:
                memset(&self.caches[self.date_cache * CACHE_SLOTS], 0, sizeof(CacheEntry) * CACHE_SLOTS)

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




cdef inline int _found(int* ft, Val* fv, int nf, int target, Val value) noexcept:
    """Add a rule's found value as the reference's dict does: a name found again keeps
    its place and takes the new value."""
    cdef int i
    for i in range(nf):
        if ft[i] == target:
            fv[i] = value
            return nf
    ft[nf], fv[nf] = target, value
    return nf + 1


cdef inline bint _c_int(const unsigned char* p, Py_ssize_t m, int64_t* number) noexcept:
    """[+-]?[0-9]+ of at most 18 digits, as int() reads it."""
    cdef Py_ssize_t i = 1 if m and (p[0] == 43 or p[0] == 45) else 0
    cdef int64_t value = 0
    if i == m or m - i > 18:
        return False
    for i in range(i, m):
        if not 48 <= p[i] <= 57:
            return False
        value = value * 10 + (p[i] - 48)
    number[0] = -value if p[0] == 45 else value
    return True


cdef inline bint _blank(const unsigned char* p, Py_ssize_t n) noexcept:
    cdef Py_ssize_t i
    for i in range(n):
        if not (p[i] == 32 or 9 <= p[i] <= 13 or p[i] == 0):
            return False
    return True


cdef void* _alloc(size_t size) except NULL:
    cdef void* memory = PyMem_Malloc(size if size else 1)
    if memory == NULL:
        raise MemoryError()
    return memory


# ---- the framer's cut, shared by Framer.records() and Engine.pack_framed() --------------

#: Terminators the compiled framer splits (the others: the reference framer's own code).
cdef dict LINE_TERMINATORS = {"line": 0, "crlf": 1, "cr": 2, "lf": 3, "nul": 4}
cdef bytes BLANK_BYTES = b" \t\n\r\x0b\x0c\x00"  # what the reference's [\s\x00]* matches


cdef int _next_cut(const unsigned char* p, Py_ssize_t n, Py_ssize_t pos, Py_ssize_t* searched,
                   bint eof, int term, Py_ssize_t limit, Py_ssize_t* record_end,
                   Py_ssize_t* next_pos, bint* truncated) noexcept nogil:
    """The next record from ``pos``, as the reference framer cuts it: 1 and its end, the
    position after it and whether it was cut short; 0 when more bytes are needed."""
    cdef Py_ssize_t i = searched[0] if searched[0] > pos else pos
    cdef Py_ssize_t start = -1, end = 0
    cdef const unsigned char* hit
    cdef const unsigned char* cr
    if term >= 2 and i < n:  # one terminator byte: memchr finds it
        hit = <const unsigned char*>memchr(p + i, 13 if term == 2 else 10 if term == 3 else 0, n - i)
        i = n if hit == NULL else hit - p
    elif term == 0 and i < n:  # the first CR or LF: memchr for each
        hit = <const unsigned char*>memchr(p + i, 10, n - i)
        cr = <const unsigned char*>memchr(p + i, 13, (n if hit == NULL else hit - p) - i)
        hit = cr if cr != NULL else hit
        i = n if hit == NULL else hit - p
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
        searched[0] = n - 1 if n - 1 > pos else pos
        if n - pos >= limit:
            record_end[0], next_pos[0], truncated[0] = pos + limit, pos + limit, True
        elif eof and n > pos:
            record_end[0], next_pos[0], truncated[0] = n, n, False
        else:
            return 0
    elif start - pos > limit:
        record_end[0], next_pos[0], truncated[0] = pos + limit, pos + limit, True
    else:
        record_end[0], next_pos[0], truncated[0] = start, end, False
    searched[0] = next_pos[0]
    return 1


class Framer(ReferenceFramer):
    """The reference framer with :meth:`records` compiled for terminated records: the
    same records, cuts and counts, found with one pass over the buffer."""

    def records(self):
        code = LINE_TERMINATORS.get(self._rules.terminator, -1)
        if code < 0:
            return super().records()
        cdef bytearray buf = self._buffer
        cdef Py_ssize_t n = len(buf), pos = 0, limit = self._rules.max_record_len
        cdef Py_ssize_t searched = self._searched, record_end, next_pos
        cdef bint truncated
        cdef const unsigned char* p = buf
        cdef list out = []
        while pos < n and _next_cut(p, n, pos, &searched, self._eof, code, limit,
                                    &record_end, &next_pos, &truncated):
            record = self._filter(Record(bytes(buf[pos:record_end]), truncated))
            pos = next_pos
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
