# Byte-level text checks: what the C path must know of a record's bytes to read them as
# the reference reads the decoded text (str.strip()'s white space, strict UTF-8).

#: What the reference's blank-line pattern ([\s\x00]*) matches.
cdef bytes BLANK_BYTES = b" \t\n\r\x0b\x0c\x00"
cdef enum:
    BYTE_NUL = 0
    BYTE_LF = 10
    BYTE_CR = 13
    BYTE_SPACE = 32
    BYTE_PLUS = 43
    BYTE_MINUS = 45
    BYTE_0 = 48
    BYTE_9 = 57
    ASCII_END = 0x80


cdef inline uint64_t _hash(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    """FNV-1a, 64 bits: the cache slot of a column's text."""
    cdef uint64_t h = 1469598103934665603ULL  # the FNV offset basis
    cdef Py_ssize_t i
    for i in range(n):
        h = (h ^ p[i]) * 1099511628211ULL  # the FNV prime
    return h


cdef inline bint _is_space(unsigned char c) noexcept nogil:
    """What Python's str.strip() removes from ASCII text."""
    return c == BYTE_SPACE or (9 <= c <= 13) or (28 <= c <= 31)  # \t..\r, and the file/group/record/unit separators


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


cdef inline bint _c_int(const unsigned char* p, Py_ssize_t m, int64_t* number) noexcept:
    """[+-]?[0-9]+ of at most 18 digits, as int() reads it."""
    cdef Py_ssize_t i = 1 if m and (p[0] == BYTE_PLUS or p[0] == BYTE_MINUS) else 0
    cdef int64_t value = 0
    if i == m or m - i > 18:
        return False
    for i in range(i, m):
        if not BYTE_0 <= p[i] <= BYTE_9:
            return False
        value = value * 10 + (p[i] - BYTE_0)
    number[0] = -value if p[0] == BYTE_MINUS else value
    return True


cdef inline bint _blank(const unsigned char* p, Py_ssize_t n) noexcept:
    """Whether every byte is one of BLANK_BYTES (a line the framer skips)."""
    cdef Py_ssize_t i
    for i in range(n):
        if not (p[i] == BYTE_SPACE or 9 <= p[i] <= 13 or p[i] == BYTE_NUL):
            return False
    return True
