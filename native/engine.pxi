# The engine: a profile compiled into C arrays, and the C path of one record. A record the
# C path cannot take (FAST_NO: nothing written) goes whole to the reference parser.

# The call event's keys, from events.py (the one place of their order): the head the
# engine writes as constant msgpack pieces, the fields a profile fills (plan.FILLED), then
# raw, then the keys left out when empty. A schema this engine was not built for fails the
# import, and the selector (gateway/smdr/engine.py) runs the reference.
cdef list CALL_KEYS = [f.name for f in dataclasses.fields(CallEvent)]
cdef tuple HEAD = ("gw", "src", "stream", "seq", "rx", "profile", "start")
cdef tuple FILLED = plan.FILLED
if tuple(CALL_KEYS[:len(HEAD)]) != HEAD or CALL_KEYS[len(HEAD) + len(FILLED):] != ["raw", *OPTIONAL_KEYS]:
    raise ImportError(f"the compiled engine does not know this call event: {CALL_KEYS}")
cdef list SLOT_KEYS = [_msgpack_str(k) for k in FILLED]
#: Pairs in a call event's map: v and kind, then every key but the optional ones.
cdef int CALL_PAIRS = 2 + len(CALL_KEYS) - len(OPTIONAL_KEYS)
cdef bytes HEAD_V_KIND = _msgpack_str("v") + msgpack.packb(SCHEMA_VERSION) + _msgpack_str("kind") + _msgpack_str("call")
cdef bytes RAW_KEY = _msgpack_str("raw")
cdef bytes X_KEY = _msgpack_str("x")

# The plan's codes (gateway/smdr/plan.py is their one place).
cdef int CONV_TEXT = plan.CONV_TEXT, CONV_INT = plan.CONV_INT
cdef int OP_ANY = plan.OP_ANY, OP_NONEMPTY = plan.OP_NONEMPTY, OP_PREFIX = plan.OP_PREFIX, OP_PLAIN = plan.OP_PLAIN
cdef int TARGET_X = plan.TARGET_X, DATE_CACHE = plan.DATE_CACHE, TIME_CACHE = plan.TIME_CACHE

cdef enum:
    NSLOTS = 10           # len(FILLED), checked below
    FAST_NO = 0
    FAST_DONE = 1
    KEY_MAX = 40          # text bytes a cache entry holds; longer texts go to Python
    CACHE_SLOTS = 1024    # entries per cache (direct-mapped: a bound on memory)
    OFFSET_SLOTS = 4096   # zone offsets cached, one per local minute
    MAX_COLUMNS = 128
    MAX_DELIMITERS = 511  # fields a delimited record may have on the C path
    MAX_TARGETS = 96      # event fields and vendor fields a profile can fill
    MAX_FOUND = 32
    MAX_OPS = 256
    SECONDS_PER_DAY = 86400
    NO_DATE_AHEAD_S = 3600  # a time-only record more than this ahead of receipt is yesterday's
    EPOCH_ORDINAL = 719163  # date(1970, 1, 1).toordinal()

if len(FILLED) != NSLOTS:
    raise ImportError(f"the compiled engine fills {NSLOTS} call fields, the schema has {len(FILLED)}")

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

# What a rule's column pattern gives on a record.
cdef enum:
    OP_FAILS = 0     # the rule does not apply
    OP_HOLDS = 1
    OP_BAIL = 2      # the C path cannot tell: FAST_NO

cdef struct Op:
    int column, kind, target, plus, cache, index

cdef struct Conv:
    int target, column, code, cache

cdef struct Setting:
    int target, const_index  # const_index -1: null

cdef struct RuleC:
    int first_op, n_ops, first_set, n_sets

# Cache entry states.
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

# Zone offset states (per local minute).
cdef enum:
    OFFSET_UNKNOWN = 0
    OFFSET_KNOWN = 1
    OFFSET_CHANGES = 2  # a zone change inside the minute: the reference reads it exactly

# One record on the C path: where its columns are, and what it has filled so far.
cdef struct Row:
    bint ascii
    Py_ssize_t ca[MAX_COLUMNS]
    Py_ssize_t cn[MAX_COLUMNS]
    Val slots[NSLOTS]
    int nx
    int xt[MAX_TARGETS]
    Val xv[MAX_TARGETS]
    char decided[NSLOTS + MAX_TARGETS]

# What one rule has found (names in the reference's dict order: a name found again keeps
# its place and takes the new value).
cdef struct Found:
    int n
    int target[MAX_FOUND]
    Val value[MAX_FOUND]


cdef inline void _find(Found* found, int target, Val value) noexcept:
    cdef int i
    for i in range(found.n):
        if found.target[i] == target:
            found.value[i] = value
            return
    found.target[found.n], found.value[found.n] = target, value
    found.n += 1


cdef void* _int_table(list rows, size_t width) except NULL:
    """A plan's table (rows of ``width`` ints) as a C array of structs made of ints only."""
    cdef bytes data = array("i", [value for row in rows for value in row]).tobytes()
    if len(data) != sizeof(int) * width * len(rows):
        raise ValueError(f"a plan's table has rows of other widths than {width}")
    cdef void* memory = _alloc(len(data))
    memcpy(memory, PyBytes_AS_STRING(data), len(data))
    return memory


cdef void* _alloc(size_t size) except NULL:
    cdef void* memory = PyMem_Malloc(size if size else 1)
    if memory == NULL:
        raise MemoryError()
    return memory


cdef void* _zeroed(size_t count, size_t size) except NULL:
    cdef void* memory = PyMem_Calloc(count if count else 1, size)
    if memory == NULL:
        raise MemoryError()
    return memory


@cython.final
cdef class Engine:
    """One profile's parser for one source: same API and same events as
    :class:`gateway.smdr.parser.RecordParser`, plus the batch paths :meth:`pack` and
    :meth:`pack_framed`."""

    cdef readonly object profile, tz
    cdef readonly str gw, src
    cdef readonly object stream
    cdef object reference
    cdef bint c_ok, c_fixed, unsynced
    cdef int date_col, time_col
    cdef bint same_column, end_time, epoch, no_date
    cdef str date_order
    cdef object received
    cdef int64_t received_ms, received_day, received_local
    cdef _Buffer out
    cdef list objs  # the current record's regex captures (V_OBJ)
    # The profile's plan as C arrays (see _compile).
    cdef int n_columns, n_variants, n_convs, n_ops, n_rules, n_sets, n_caches
    cdef int* var_max
    cdef int* var_pos
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
    cdef list caches_how  # per cache: a duration format, a groupless pattern, or None (dates, times)
    cdef list skip_required
    cdef list var_match  # per variant, its pattern or None
    cdef bint any_match  # some variant is chosen by a pattern
    cdef bytes head_seq, head_rx, head_start  # the map's constant pieces, as msgpack
    cdef list x_keys, const_values  # vendor field names and rule constants, as msgpack

    def __dealloc__(self):  # (the pointers start NULL: a new object's memory is zeroed)
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
        spec = profile.start
        self.date_order = spec.date_order
        self.epoch = spec.date_order == "epoch"
        self.no_date = spec.date is None
        self.date_col = -1 if spec.date is None else spec.date
        self.time_col = -1 if spec.time is None else spec.time
        self.same_column = spec.date is not None and spec.date == spec.time
        self.end_time = spec.time_is == "end"
        self.received_ms = self.received_day = -1
        self.out = _Buffer()
        self.objs = []
        self.head_seq = (HEAD_V_KIND + _msgpack_str("gw") + _msgpack_str(gw) + _msgpack_str("src")
                         + _msgpack_str(src) + _msgpack_str("stream")
                         + (bytes([MP_NIL]) if stream is None else _msgpack_str(stream)) + _msgpack_str("seq"))
        self.head_rx = _msgpack_str("rx")
        self.head_start = _msgpack_str("profile") + _msgpack_str(profile.name) + _msgpack_str("start")
        tables = plan.plan(profile)
        self.skip_required, self.caches_how, self.patterns = tables.skip_required, tables.caches, tables.patterns
        self.var_match = tables.var_match
        self.any_match = any(pattern is not None for pattern in tables.var_match)
        self.quick_first, self.quick_required = [q[0] for q in tables.quick], [q[1] for q in tables.quick]
        self.regex_targets, self.prefixes, self.consts, self.x_names = \
            tables.regex_targets, tables.prefixes, tables.consts, tables.x_names
        self.x_keys = [_msgpack_str(name) for name in self.x_names]
        self.const_values = [_msgpack_str(value) for value in self.consts]
        self._compile(tables)

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
        """The event for ``record`` (see RecordParser.parse), read by the C path or, when
        it cannot, by the reference."""
        cdef bytes data = record.data
        cdef Row row
        cdef int64_t start
        if record.truncated or record.page or not self._c_read(data, len(data), rx, &row, &start):
            return self.reference.parse(record, rx, seq)
        return self._event(data, &row, seq, rx, start)

    def pack(self, records, rx: int, seq: int):
        """msgpack of the events of ``records`` (numbered from ``seq``), concatenated,
        and the unparsed events among them (for their reasons)."""
        cdef list unparsed = []
        cdef bytes data
        for record in records:
            data = record.data
            if record.truncated or record.page or not self._c_record(data, len(data), rx, seq):
                self._reference_record(record, rx, seq, unparsed)
            seq += 1
        return self.out.take(), unparsed

    def pack_framed(self, framer, rx: int, seq: int):
        """The records ``framer`` has complete, framed, filtered and parsed in one pass
        over its buffer: (msgpack, unparsed events, number of records)."""
        cdef list unparsed = []
        rules = framer.rules
        code = TERMINATOR_CODES.get(rules.terminator, -1)
        if code < 0 or type(framer) is not Framer or rules is not self.profile.framing or rules.strip \
                or rules.page_date is not None or rules.continuation:  # (page dates, joined lines: the framer's)
            framed = framer.records()
            packed, unparsed = self.pack(framed, rx, seq)
            return packed, unparsed, len(framed)
        buffer, searched_from, eof = framer.scan_state()
        cdef bytearray buf = buffer
        cdef Py_ssize_t n = len(buf), pos = 0, limit = rules.max_record_len
        cdef Py_ssize_t searched = searched_from, record_end, next_pos, length
        cdef bint truncated
        cdef const unsigned char* p = buf
        cdef const unsigned char* r
        cdef tuple skip = rules.skip
        cdef int64_t records = 0, skipped = 0, cut_short = 0, first = seq
        cdef int term = code
        while pos < n and _next_cut(p, n, pos, &searched, eof, term, limit, &record_end, &next_pos, &truncated):
            r, length = p + pos, record_end - pos
            if term != TERM_NUL and length and memchr(r, BYTE_NUL, length) != NULL:
                # NUL padding: the framer's own filter, then the record as usual.
                record = framer.filter(Record(bytes(buf[pos:record_end]), truncated))
                pos = next_pos
                if record is not None:
                    self._record(record, rx, seq, unparsed)
                    seq += 1
                continue
            if _blank(r, length) or self._skipped(r, length, buf, pos, record_end, skip):
                skipped += 1
                pos = next_pos
                continue
            records += 1
            cut_short += truncated
            if truncated or not self._c_record(r, length, rx, seq):
                self._reference_record(Record(bytes(buf[pos:record_end]), truncated), rx, seq, unparsed)
            seq += 1
            pos = next_pos
        framer.consume(pos, searched)
        stats = framer.stats
        stats.records += records
        stats.skipped += skipped
        stats.truncated += cut_short
        return self.out.take(), unparsed, seq - first

    cdef void _record(self, record, int64_t rx, int64_t seq, list unparsed) except *:
        cdef bytes data = record.data
        if record.truncated or record.page or not self._c_record(data, len(data), rx, seq):
            self._reference_record(record, rx, seq, unparsed)

    cdef void _reference_record(self, record, int64_t rx, int64_t seq, list unparsed) except *:
        event = self.reference.parse(record, rx, seq)
        data = packb(event)
        self.out.raw(data, len(data))
        if event.KIND == "unparsed":
            unparsed.append(event)

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

    # ---- the profile's plan as C arrays ---------------------------------------------

    cdef void _compile(self, tables) except *:
        """Copy the plan (gateway/smdr/plan.py) into C arrays; ``c_ok`` False when the C
        path cannot read the profile or the plan does not fit the arrays."""
        self.c_ok = tables.supported and tables.n_columns <= MAX_COLUMNS and len(tables.ops) <= MAX_OPS \
            and len(tables.x_names) <= MAX_TARGETS - NSLOTS and tables.found_most <= MAX_FOUND
        if not self.c_ok:
            return
        self.c_fixed, self.n_columns, self.n_variants = tables.fixed, tables.n_columns, len(tables.var_max)
        self.delimiter, self.quote, self.min_fields = tables.delimiter, tables.quote, tables.min_fields
        self.var_max = <int*>_int_table([tables.var_max], len(tables.var_max))
        self.var_pos = <int*>_int_table([tables.var_pos], len(tables.var_pos))
        self.n_convs, self.n_ops = len(tables.conversions), len(tables.ops)
        self.n_sets, self.n_rules = len(tables.sets), len(tables.rules)
        self.convs = <Conv*>_int_table(tables.conversions, sizeof(Conv) // sizeof(int))
        self.ops = <Op*>_int_table(tables.ops, sizeof(Op) // sizeof(int))
        self.sets = <Setting*>_int_table(tables.sets, sizeof(Setting) // sizeof(int))
        self.rules_c = <RuleC*>_int_table(tables.rules, sizeof(RuleC) // sizeof(int))
        self.n_caches = len(tables.caches)
        # Zeroed (empty entries, OFFSET_UNKNOWN) by calloc, which leaves the pages of a large
        # table to the kernel until an entry is written: an idle source costs none of them.
        self.caches = <CacheEntry*>_zeroed(CACHE_SLOTS * self.n_caches, sizeof(CacheEntry))
        self.offset_key = <int64_t*>_zeroed(OFFSET_SLOTS, sizeof(int64_t))
        self.offset_value = <int64_t*>_zeroed(OFFSET_SLOTS, sizeof(int64_t))
        self.offset_state = <char*>_zeroed(OFFSET_SLOTS, 1)

    # ---- the C path: one record ---------------------------------------------------------

    cdef int _c_record(self, const unsigned char* p, Py_ssize_t n, int64_t rx, int64_t seq) except -1:
        """Write the event of the record ``p[:n]``; FAST_NO (nothing written) when the
        reference must read it."""
        cdef Row row
        cdef int64_t start
        if not self._c_read(p, n, rx, &row, &start):
            return FAST_NO
        self._write_event(p, n, &row, seq, rx, start)
        return FAST_DONE

    cdef bint _c_read(self, const unsigned char* p, Py_ssize_t n, int64_t rx, Row* row, int64_t* start) except -1:
        """Read the record ``p[:n]`` into ``row`` and ``start``; False when the reference
        must read it."""
        if not self.c_ok or self.unsynced or not _readable_text(p, n, self.c_fixed, &row.ascii):
            return False
        if self.objs:
            del self.objs[:]
        if not (self._c_fixed_columns(p, n, row) if self.c_fixed else self._c_fields(p, n, row)):
            return False
        if not self._c_conversions(p, row) or not self._c_rules(p, row) or not self._c_start(p, row, rx, start):
            return False
        if self.end_time:
            start[0] -= (row.slots[0].i if row.slots[0].kind == V_INT else 0) \
                + (row.slots[1].i if row.slots[1].kind == V_INT else 0)
        return True

    cdef int _variant(self, const unsigned char* p, Py_ssize_t n, Py_ssize_t length) except -2:
        """The first variant that admits the record ``p[:n]`` of ``length`` characters
        (by its length, and by its pattern where it has one), or -1."""
        cdef int i
        cdef object text = None
        for i in range(self.n_variants):
            if self.var_max[i] >= 0 and length > self.var_max[i]:
                continue
            if self.any_match and self.var_match[i] is not None:
                if text is None:
                    text = PyUnicode_DecodeUTF8(<const char*>p, n, NULL)
                if (<object>self.var_match[i]).search(text) is None:
                    continue
            return i
        return -1

    cdef int _c_fixed_columns(self, const unsigned char* p, Py_ssize_t n, Row* row) except -1:
        """Fixed-width columns (ASCII: a byte is a character); False when no variant fits."""
        cdef int v = self._variant(p, n, n), i
        cdef Py_ssize_t a, m, base
        if v < 0:
            return False
        for i in range(self.n_columns):
            base = 2 * (v * self.n_columns + i)
            a = self.var_pos[base] if self.var_pos[base] < n else n
            m = (self.var_pos[base + 1] if self.var_pos[base + 1] < n else n) - a
            _strip(p, &a, &m)
            row.ca[i], row.cn[i] = a, m
        return True

    cdef int _c_fields(self, const unsigned char* p, Py_ssize_t n, Row* row) except -1:
        """Delimited columns without quoting; False when the reference must split."""
        cdef Py_ssize_t starts[MAX_DELIMITERS + 1]
        cdef Py_ssize_t count = 1, i, index, a, m, v = -1, length = n
        if not row.ascii:  # variants compare lengths in characters
            length = 0
            for i in range(n):
                length += (p[i] & 0xC0) != 0x80  # not a UTF-8 continuation byte
        if self.quote >= 0:
            for i in range(n):
                if p[i] == self.quote or p[i] == BYTE_CR or p[i] == BYTE_LF or p[i] == BYTE_NUL:
                    return False
        starts[0] = 0
        for i in range(n):
            if p[i] == self.delimiter:
                if count == MAX_DELIMITERS:
                    return False
                starts[count] = i + 1
                count += 1
        starts[count] = n + 1
        if count < self.min_fields:
            return False
        v = self._variant(p, n, length)
        if v < 0:
            return False
        for i in range(self.n_columns):
            index = self.var_pos[2 * (v * self.n_columns + i)]
            a, m = 0, 0
            if index < count:
                a, m = starts[index], starts[index + 1] - 1 - starts[index]
                _strip(p, &a, &m)
                if not row.ascii and _unicode_space_at_edge(p, a, m):
                    return False  # str.strip() would remove more than ASCII blanks
            row.ca[i], row.cn[i] = a, m
        return True

    cdef bint _c_conversions(self, const unsigned char* p, Row* row) except -1:
        """The [fields] conversions into the row's slots and vendor fields."""
        cdef int i, state
        cdef int64_t number
        cdef Py_ssize_t a, m
        cdef Val value
        cdef Conv* conv
        for i in range(NSLOTS):
            row.slots[i].kind = V_NONE
        row.nx = 0
        memset(row.decided, 0, sizeof(row.decided))
        for i in range(self.n_convs):
            conv = &self.convs[i]
            a, m = row.ca[conv.column], row.cn[conv.column]
            value.kind = V_NONE
            if m and conv.code == CONV_TEXT:
                value.kind, value.a, value.n = V_SPAN, a, m
            elif m and conv.code == CONV_INT:
                if not _c_int(p + a, m, &number):
                    return False
                value.kind, value.i = V_INT, number
            elif m:
                state = self._cached(conv.cache, p + a, m, &number)
                if state == C_ERROR:
                    return False
                if state == C_VALUE:
                    value.kind, value.i = V_INT, number
            if conv.target < TARGET_X:
                row.slots[conv.target] = value
            elif value.kind != V_NONE:
                row.xt[row.nx], row.xv[row.nx] = conv.target, value
                row.nx += 1
        return True

    cdef bint _c_rules(self, const unsigned char* p, Row* row) except -1:
        """Every rule in order; a field a rule decided stays decided. False: FAST_NO."""
        cdef int i, j, holds
        cdef Found found
        cdef Val value
        cdef RuleC* rule
        for i in range(self.n_rules):
            rule = &self.rules_c[i]
            found.n = 0
            holds = OP_HOLDS
            for j in range(rule.first_op, rule.first_op + rule.n_ops):
                holds = self._c_op(&self.ops[j], p, row, &found)
                if holds != OP_HOLDS:
                    break
            if holds == OP_BAIL:
                return False
            if holds == OP_FAILS:
                continue
            for j in range(rule.first_set, rule.first_set + rule.n_sets):
                value.kind = V_NONE if self.sets[j].const_index < 0 else V_CONST
                value.i = self.sets[j].const_index
                _find(&found, self.sets[j].target, value)
            _decide(row, &found)
        return True

    cdef inline int _c_op(self, Op* op, const unsigned char* p, Row* row, Found* found) except -1:
        """One column pattern of a rule on the row: OP_HOLDS (its captures found),
        OP_FAILS or OP_BAIL."""
        cdef Py_ssize_t a = row.ca[op.column], m = row.cn[op.column], k
        cdef int64_t number
        cdef Val value
        if op.kind == OP_ANY or op.kind == OP_NONEMPTY:
            if _has_byte(p + a, m, BYTE_LF):
                return OP_BAIL  # "." does not match a line end: the reference decides
            if op.kind == OP_NONEMPTY and not m:
                return OP_FAILS
            value.kind, value.a, value.n = (V_SPAN if m else V_NONE), a, m
            _find(found, op.target, value)
            return OP_HOLDS
        if op.kind == OP_PREFIX:
            prefix = <bytes>self.prefixes[op.index]
            k = len(prefix)
            if m < k or memcmp(p + a, <const char*>prefix, k) != 0 or (op.plus and m == k):
                return OP_FAILS
            if _has_byte(p + a, m, BYTE_LF):
                return OP_BAIL
            value.a, value.n = a + k, m - k
            _strip(p, &value.a, &value.n)
            if not row.ascii and _unicode_space_at_edge(p, value.a, value.n):
                return OP_BAIL
            value.kind = V_SPAN if value.n else V_NONE
            _find(found, op.target, value)
            return OP_HOLDS
        if op.kind == OP_PLAIN:
            if self._cached(op.cache, p + a, m, &number) == C_ERROR:
                return OP_BAIL
            return OP_HOLDS if number else OP_FAILS
        return self._regex(op.index, p + a, m, found)

    cdef int _regex(self, int index, const unsigned char* p, Py_ssize_t m, Found* found) except -1:
        """Run a rule's regex on a column (after its quick test): OP_HOLDS, its groups
        found, or OP_FAILS."""
        cdef Val value
        value.a = value.n = value.i = 0
        first = self.quick_first[index]
        if first is not None and (m == 0 or (<const unsigned char*>(<bytes>first))[p[0]] == 0):
            return OP_FAILS
        required = <bytes>self.quick_required[index]
        if required and not _contains(p, m, required):
            return OP_FAILS
        match = (<object>self.patterns[index]).fullmatch(PyUnicode_DecodeUTF8(<const char*>p, m, NULL))
        if match is None:
            return OP_FAILS
        targets = <dict>self.regex_targets[index]
        for name, captured in match.groupdict().items():
            captured = (captured.strip() or None) if captured else None
            value.kind = V_NONE
            if captured is not None:
                value.kind, value.i = V_OBJ, len(self.objs)
                self.objs.append(captured)
            _find(found, <int>targets[name], value)
        return OP_HOLDS

    cdef int _cached(self, int cache, const unsigned char* p, Py_ssize_t m, int64_t* number) except -1:
        """C_VALUE (``number`` set), C_NULL or C_ERROR for a text, from the cache or, on a
        miss, from the reference's function."""
        cdef CacheEntry* entry = NULL
        if m <= KEY_MAX:
            entry = &self.caches[cache * CACHE_SLOTS + (_hash(p, m) & (CACHE_SLOTS - 1))]
            if entry.state != C_EMPTY and entry.length == m and memcmp(entry.key, p, m) == 0:
                number[0] = entry.value
                return entry.state
        how = self.caches_how[cache]
        text = PyUnicode_DecodeUTF8(<const char*>p, m, NULL)
        state, value = C_VALUE, 0
        try:
            if cache == DATE_CACHE:
                value = parse_date(text, self.date_order, self.received.date()).toordinal()
            elif cache == TIME_CACHE:
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

    cdef bint _c_start(self, const unsigned char* p, Row* row, int64_t rx, int64_t* start) except -1:
        """The call's start, epoch seconds; False when the reference must read it."""
        cdef Py_ssize_t da, dn, ta, tn, i
        cdef int64_t day, seconds, number
        if rx != self.received_ms:
            self._receive(rx)
        if self.epoch:
            da, dn = row.ca[self.date_col], row.cn[self.date_col]
            if not dn or not _c_int(p + da, dn, &number) or number <= 0:
                return False
            start[0] = number
            return True
        if self.no_date:
            ta, tn = row.ca[self.time_col], row.cn[self.time_col]
            if not tn or self._cached(TIME_CACHE, p + ta, tn, &seconds) != C_VALUE:
                return False
            day = self.received_day
            if day * SECONDS_PER_DAY + seconds - self.received_local > NO_DATE_AHEAD_S:
                day -= 1
            return self._c_utc(day, seconds, start)
        da, dn = row.ca[self.date_col], row.cn[self.date_col]
        if self.same_column:  # "date time" in one column
            ta, tn = da + dn, 0
            for i in range(dn):
                if p[da + i] == BYTE_SPACE:
                    ta, tn, dn = da + i + 1, dn - i - 1, i
                    break
        else:
            ta, tn = row.ca[self.time_col], row.cn[self.time_col]
        _strip(p, &ta, &tn)
        if not dn or not tn:
            return False
        if self._cached(DATE_CACHE, p + da, dn, &day) != C_VALUE:
            return False
        if self._cached(TIME_CACHE, p + ta, tn, &seconds) != C_VALUE:
            return False
        return self._c_utc(day, seconds, start)

    cdef bint _c_utc(self, int64_t day, int64_t seconds, int64_t* start) except -1:
        """Epoch seconds of a local wall time, as ``datetime.combine(...).timestamp()``:
        the zone's offset is looked up once per local minute."""
        cdef int64_t minute = day * 1440 + seconds // 60
        cdef int slot = minute & (OFFSET_SLOTS - 1)
        if self.offset_state[slot] == OFFSET_UNKNOWN or self.offset_key[slot] != minute:
            offset = self._offset_of_minute(day, seconds // 60)
            self.offset_key[slot] = minute
            self.offset_state[slot] = OFFSET_CHANGES if offset is None else OFFSET_KNOWN
            self.offset_value[slot] = 0 if offset is None else offset
        if self.offset_state[slot] == OFFSET_CHANGES:
            return False
        start[0] = (day - EPOCH_ORDINAL) * SECONDS_PER_DAY + seconds - self.offset_value[slot]
        return True

    cdef object _offset_of_minute(self, int64_t day, int64_t minute):
        """The zone's offset (s) through one local minute; None when it changes inside it."""
        d = date.fromordinal(day)
        first = datetime.combine(d, _time_of_day(minute * 60), self.tz)
        last = datetime.combine(d, _time_of_day(minute * 60 + 59), self.tz)
        naive = (day - EPOCH_ORDINAL) * SECONDS_PER_DAY + minute * 60
        offset = naive - int(first.timestamp())
        if naive + 59 - int(last.timestamp()) != offset:
            return None
        return offset

    cdef void _receive(self, int64_t rx) except *:
        """Receive-time state: the dates read so far depend on the receive day."""
        self.received_ms = rx
        r = self.received = datetime.fromtimestamp(rx / 1000, self.tz)
        self.received_local = r.toordinal() * SECONDS_PER_DAY + r.hour * 3600 + r.minute * 60 + r.second
        day = r.date().toordinal()
        if day != self.received_day:
            self.received_day = day
            if self.caches != NULL:
                memset(&self.caches[DATE_CACHE * CACHE_SLOTS], 0, sizeof(CacheEntry) * CACHE_SLOTS)

    # ---- writing the event -------------------------------------------------------------

    cdef void _write_event(self, const unsigned char* p, Py_ssize_t n, Row* row, int64_t seq, int64_t rx,
                           int64_t start) except *:
        cdef _Buffer out = self.out
        cdef int i
        out.map_header(CALL_PAIRS + (1 if row.nx else 0))
        out.bytes_(self.head_seq)
        out.int64(seq)
        out.bytes_(self.head_rx)
        out.int64(rx)
        out.bytes_(self.head_start)
        out.int64(start)
        for i in range(NSLOTS):
            out.bytes_(<bytes>SLOT_KEYS[i])
            self._write_value(&row.slots[i], p)
        out.bytes_(RAW_KEY)
        out.span(<const char*>p, n)
        if row.nx:
            out.bytes_(X_KEY)
            out.map_header(row.nx)
            for i in range(row.nx):
                out.bytes_(<bytes>self.x_keys[row.xt[i] - TARGET_X])
                self._write_value(&row.xv[i], p)

    cdef object _event(self, bytes data, Row* row, int64_t seq, int64_t rx, int64_t start):
        """The event object of a row the C path read (the daemon's path: no msgpack)."""
        cdef const unsigned char* p = data
        cdef int i
        values = {FILLED[i]: self._value(&row.slots[i], p) for i in range(NSLOTS)}
        x = {self.x_names[row.xt[i] - TARGET_X]: self._value(&row.xv[i], p) for i in range(row.nx)}
        raw = data.decode("ascii") if row.ascii else data.decode("utf-8")
        return CallEvent(gw=self.gw, src=self.src, stream=self.stream, seq=seq, rx=rx, profile=self.profile.name,
                         start=start, raw=raw, x=x, **values)

    cdef object _value(self, Val* value, const unsigned char* p):
        if value.kind == V_NONE:
            return None
        if value.kind == V_SPAN:
            return PyUnicode_DecodeUTF8(<const char*>p + value.a, value.n, NULL)
        if value.kind == V_INT:
            return value.i
        if value.kind == V_CONST:
            return self.consts[value.i]
        return self.objs[value.i]

    cdef inline void _write_value(self, Val* value, const unsigned char* p) except *:
        if value.kind == V_NONE:
            self.out.nil()
        elif value.kind == V_SPAN:
            self.out.span(<const char*>p + value.a, value.n)
        elif value.kind == V_INT:
            self.out.int64(value.i)
        elif value.kind == V_CONST:
            self.out.bytes_(<bytes>self.const_values[value.i])
        else:
            self.out.string(<str>self.objs[value.i])


cdef inline void _decide(Row* row, Found* found) noexcept:
    """A rule's found values into the row, for the fields no earlier rule decided."""
    cdef int j, target, k
    for j in range(found.n):
        target = found.target[j]
        k = target if target < TARGET_X else NSLOTS + target - TARGET_X
        if row.decided[k]:
            continue
        row.decided[k] = 1
        if target < TARGET_X:
            row.slots[target] = found.value[j]
        elif found.value[j].kind != V_NONE:
            row.xt[row.nx], row.xv[row.nx] = target, found.value[j]
            row.nx += 1


cdef inline bint _readable_text(const unsigned char* p, Py_ssize_t n, bint fixed, bint* ascii) noexcept:
    """Whether the C path reads these bytes as the reference reads their text: ASCII, or
    (for delimited columns, found by bytes, not by character offsets) valid UTF-8 without
    a byte-order mark, which is what the reference decodes."""
    cdef Py_ssize_t i
    ascii[0] = True
    for i in range(n):
        if p[i] >= ASCII_END:
            ascii[0] = False
            break
    if ascii[0]:
        return True
    return not fixed and _utf8(p, n) and not (n >= 3 and p[0] == 0xEF and p[1] == 0xBB and p[2] == 0xBF)


cdef object _time_of_day(int64_t seconds):
    return time(<int>(seconds // 3600), <int>(seconds // 60 % 60), <int>(seconds % 60))
