"""One parser API, two engines, chosen here and nowhere else.

The compiled engine (``gateway.smdr._smdr_c``, built from ``native/_smdr_c.pyx``) runs
unless ``PBXGW_PUREPYTHON`` is set or it was not built (no compiler where pbxgw was
installed); the pure-Python reference (:class:`gateway.smdr.parser.RecordParser`) runs
otherwise. Both give the same events, byte for byte on the wire: the test suite runs on
each, and a differential test compares them record by record.
"""

from __future__ import annotations

import os

from gateway.smdr.framer import Framer as ReferenceFramer
from gateway.smdr.parser import RecordParser

#: The engine that runs: "cython" or "python".
ENGINE: str
#: The record parser and the framer of that engine.
Parser: type
Framer: type

if os.environ.get("PBXGW_PUREPYTHON"):
    Parser, Framer, ENGINE = RecordParser, ReferenceFramer, "python"
else:
    try:
        from gateway.smdr._smdr_c import Engine as Parser, Framer
        ENGINE = "cython"
    except ImportError:
        Parser, Framer, ENGINE = RecordParser, ReferenceFramer, "python"
