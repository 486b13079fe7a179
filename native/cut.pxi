# The framer's cut of terminated records, shared by Framer.records() and
# Engine.pack_framed(): the same records, cuts and counts as the reference framer's
# regex search, found with memchr in one pass over the buffer.

cdef enum:
    TERM_LINE = 0  # CR, LF or CR LF
    TERM_CRLF = 1
    TERM_CR = 2
    TERM_LF = 3
    TERM_NUL = 4

#: The terminators cut here (the others are the reference framer's own code).
cdef dict TERMINATOR_CODES = {"line": TERM_LINE, "crlf": TERM_CRLF, "cr": TERM_CR, "lf": TERM_LF, "nul": TERM_NUL}


cdef int _next_cut(const unsigned char* p, Py_ssize_t n, Py_ssize_t pos, Py_ssize_t* searched,
                   bint eof, int term, Py_ssize_t limit, Py_ssize_t* record_end,
                   Py_ssize_t* next_pos, bint* truncated) noexcept nogil:
    """The next record from ``pos``, as the reference framer cuts it: 1 and its end, the
    position after it and whether it was cut short; 0 when more bytes are needed."""
    cdef Py_ssize_t i = searched[0] if searched[0] > pos else pos
    cdef Py_ssize_t start = -1, end = 0
    cdef const unsigned char* hit
    cdef const unsigned char* cr
    if term >= TERM_CR and i < n:  # one terminator byte: memchr finds it
        hit = <const unsigned char*>memchr(p + i, BYTE_CR if term == TERM_CR else BYTE_LF if term == TERM_LF else BYTE_NUL, n - i)
        i = n if hit == NULL else hit - p
    elif term == TERM_LINE and i < n:  # the first CR or LF: memchr for each
        hit = <const unsigned char*>memchr(p + i, BYTE_LF, n - i)
        cr = <const unsigned char*>memchr(p + i, BYTE_CR, (n if hit == NULL else hit - p) - i)
        hit = cr if cr != NULL else hit
        i = n if hit == NULL else hit - p
    while i < n:
        if term == TERM_LINE and (p[i] == BYTE_CR or p[i] == BYTE_LF):
            start = i
            break
        if term == TERM_CRLF and p[i] == BYTE_CR and i + 1 < n and p[i + 1] == BYTE_LF:
            start = i
            break
        if (term == TERM_CR and p[i] == BYTE_CR) or (term == TERM_LF and p[i] == BYTE_LF) \
                or (term == TERM_NUL and p[i] == BYTE_NUL):
            start = i
            break
        i += 1
    if start >= 0:
        if term == TERM_LINE and p[start] == BYTE_CR:
            if start + 1 < n and p[start + 1] == BYTE_LF:
                end = start + 2
            elif start + 1 == n and not eof:
                start = -1  # a CR that is the last byte may be the start of CR LF
            else:
                end = start + 1
        elif term == TERM_CRLF:
            end = start + 2
        else:
            end = start + 1
    cdef bint waiting_cr  # a CR at the end may start a terminator: it is not yet the record's
    if start < 0:
        waiting_cr = n > pos and p[n - 1] == BYTE_CR and not eof and (term == TERM_LINE or term == TERM_CRLF)
        searched[0] = n - 1 if n - 1 > pos else pos
        # Cut only what no later byte can end in time (a terminator may still come at
        # pos + limit), as a whole feed would see it.
        if n - pos - waiting_cr > limit:
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
        code = TERMINATOR_CODES.get(self.rules.terminator, -1)
        if code < 0:
            return super().records()
        buffer, searched_from, eof = self.scan_state()
        cdef bytearray buf = buffer
        cdef Py_ssize_t n = len(buf), pos = 0, limit = self.rules.max_record_len
        cdef Py_ssize_t searched = searched_from, record_end, next_pos
        cdef bint truncated
        cdef const unsigned char* p = buf
        cdef list out = []
        while pos < n and _next_cut(p, n, pos, &searched, eof, code, limit, &record_end, &next_pos, &truncated):
            record = self.filter(Record(bytes(buf[pos:record_end]), truncated), next_pos - pos)
            pos = next_pos
            if record is not None:
                out.append(record)
        self.consume(pos, searched)
        if eof and not len(buf) and (held := self.release()) is not None:
            out.append(held)  # (the stream ended: no line can continue it now)
        return out
