# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""gateway.smdr._smdr_c, the compiled engine (its API: gateway/smdr/_smdr_c.pyi).

Theory of operation
-------------------
A profile is planned once (:mod:`gateway.smdr.plan`: column slices per layout variant,
field conversions as small codes, rules as match operations) and copied into C arrays. A record's bytes then run
through them (the C path) and its event goes straight into msgpack, with no Python
object for what repeats in every capture: dates, times, durations, zone offsets and the
answers of groupless rule patterns come from fixed-size caches that the reference's own
functions fill. Whatever the C path cannot read exactly as the reference does (a cut
record, a quoted field, fixed-width text beyond ASCII, a zone change inside the minute,
any error) goes whole to the reference parser, so both engines give the same events byte
for byte and unparsed events carry the reference's reasons. There is one normalization,
the reference's; this module only reads the records it is sure of faster.

The module is split by concern, as msgpack's ``_cmsgpack.pyx`` is:

* ``buffer.pxi``: the msgpack output buffer;
* ``text.pxi``: byte-level text checks (white space as ``str.strip()`` sees it, UTF-8);
* ``cut.pxi``: the framer's cut of terminated records, shared by :class:`Framer` and
  :meth:`Engine.pack_framed`;
* ``engine.pxi``: the profile's plan (gateway/smdr/plan.py, plain Python) as C arrays,
  and the C path of one record.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_DecodeUTF8
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memchr, memcmp, memcpy, memset


cdef extern from "string.h" nogil:
    void* memmem(const void* haystack, size_t haystacklen, const void* needle, size_t needlelen)


cdef extern from "Python.h":
    void* PyMem_Calloc(size_t nelem, size_t elsize)  # (its zeroed pages are not resident until used)

import dataclasses
from array import array
from datetime import date, datetime, time

import msgpack

from gateway.errors import RecordError
from gateway.wire.events import OPTIONAL_KEYS, SCHEMA_VERSION, CallEvent, packb
from gateway.smdr.fields import parse_date, parse_duration, parse_time
from gateway.smdr.framer import Framer as ReferenceFramer, Record
from gateway.smdr.parser import RecordParser
from gateway.smdr import plan

include "buffer.pxi"
include "text.pxi"
include "cut.pxi"
include "engine.pxi"
