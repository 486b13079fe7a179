# The msgpack output buffer: events are written here as msgpack-python writes them (the
# smallest integer form, str8 from 32 bytes on), so both engines give the same bytes.


# msgpack's type bytes (the msgpack spec's "formats").
cdef enum:
    MP_FIXMAP = 0x80
    MP_FIXSTR = 0xA0
    MP_NIL = 0xC0
    MP_UINT8 = 0xCC
    MP_UINT16 = 0xCD
    MP_UINT32 = 0xCE
    MP_UINT64 = 0xCF
    MP_INT8 = 0xD0
    MP_INT16 = 0xD1
    MP_INT32 = 0xD2
    MP_INT64 = 0xD3
    MP_STR8 = 0xD9
    MP_STR16 = 0xDA
    MP_STR32 = 0xDB
    MP_MAP16 = 0xDE


cdef bytes _msgpack_str(str text):
    return msgpack.packb(text, use_bin_type=True)


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
        return self.byte(MP_NIL)

    cdef int map_header(self, Py_ssize_t n) except -1:
        if n < 16:
            return self.byte(MP_FIXMAP | n)
        self.byte(MP_MAP16)
        return self.be(n, 2)

    cdef int string(self, str text) except -1:
        cdef Py_ssize_t n
        cdef const char* p = PyUnicode_AsUTF8AndSize(text, &n)
        return self.span(p, n)

    cdef inline int bytes_(self, bytes data) except -1:
        """Bytes already in msgpack form."""
        return self.raw(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))

    cdef int span(self, const char* p, Py_ssize_t n) except -1:
        """UTF-8 text as a msgpack str (str8 from 32 bytes on, as msgpack-python writes it)."""
        if n < 32:
            self.byte(MP_FIXSTR | n)
        elif n < 256:
            self.byte(MP_STR8)
            self.be(n, 1)
        elif n < 65536:
            self.byte(MP_STR16)
            self.be(n, 2)
        else:
            self.byte(MP_STR32)
            self.be(n, 4)
        return self.raw(p, n)

    cdef int int64(self, int64_t v) except -1:
        """An integer as msgpack-python writes it (the smallest form)."""
        if v >= 0:
            if v < 128:
                return self.byte(<uint8_t>v)
            if v < 256:
                self.byte(MP_UINT8)
                return self.be(v, 1)
            if v < 65536:
                self.byte(MP_UINT16)
                return self.be(v, 2)
            if v < 4294967296:
                self.byte(MP_UINT32)
                return self.be(v, 4)
            self.byte(MP_UINT64)
            return self.be(<uint64_t>v, 8)
        if v >= -32:
            return self.byte(<uint8_t>(v & 0xFF))
        if v >= -128:
            self.byte(MP_INT8)
            return self.be(<uint64_t>v & 0xFF, 1)
        if v >= -32768:
            self.byte(MP_INT16)
            return self.be(<uint64_t>v & 0xFFFF, 2)
        if v >= -2147483648:
            self.byte(MP_INT32)
            return self.be(<uint64_t>v & 0xFFFFFFFF, 4)
        self.byte(MP_INT64)
        return self.be(<uint64_t>v, 8)

    cdef bytes take(self):
        cdef bytes out = PyBytes_FromStringAndSize(self.data, self.length)
        self.length = 0
        return out
