"""Text from outside shown to a person: a gateway's names, a PBX's fields, what a broker
carried. On a terminal or in a log, a control character would move the cursor, clear the
screen, or start a line of its own that reads like one the program wrote (``ERROR:
database unavailable``); a bidirectional override would reorder what follows. So they are
shown as the escapes Python writes (``\\x1b``, ``\\n``, ``\\u202e``), and a name is cut to a
length.
"""

from __future__ import annotations

import logging
import re

#: C0 and C1 controls, DEL, the line and paragraph separators, and the bidirectional marks,
#: embeddings, overrides and isolates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
#: The longest name shown (a gateway's id, a source, a site), in characters.
NAME_LIMIT = 80
#: The longest log message, in characters (ranges of numbers can make long ones).
LOG_LIMIT = 4000


def printable(text: object, limit: int = NAME_LIMIT) -> str:
    """``text`` safe to print: cut to ``limit`` characters (then ``…``), every unsafe
    character as its escape."""
    text = str(text)
    if len(text) > limit:
        text = text[:limit] + "…"
    return _UNSAFE.sub(lambda m: ascii(m.group())[1:-1], text)


def json_printable(text: str) -> str:
    """A JSON text with every unsafe character in it as its ``\\uXXXX`` escape (the same
    JSON: they can only be in its strings)."""
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class _Formatter(logging.Formatter):
    """Log messages made printable (a traceback after them keeps its lines)."""

    def format(self, record: logging.LogRecord) -> str:
        saved = record.msg, record.args
        record.msg, record.args = printable(record.getMessage(), LOG_LIMIT), None
        try:
            return super().format(record)
        finally:
            record.msg, record.args = saved


def log_to_stderr(level: int = logging.INFO) -> None:
    """The daemons' logging: ``name: LEVEL: message`` on standard error (the journal's)."""
    handler = logging.StreamHandler()
    handler.setFormatter(_Formatter("%(name)s: %(levelname)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
