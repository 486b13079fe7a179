"""The queue's file format, in one place: the file's name, the row that keeps the confirmed
prefix, and its segment tables, for the writer (:mod:`.store`), its salvage of a damaged
file (:mod:`.salvage`), and the read-only view that ``pbxgw status``, ``dead`` and
``export`` take (:mod:`.view`)."""

from __future__ import annotations

#: The queue's SQLite file, in the state directory.
DB_NAME = "queue.db"
#: The ``sources`` row that keeps the confirmed prefix (every id up to it is confirmed):
#: it shares the page that every append writes anyway, so keeping it costs no write.
#: ('*' cannot start a source name.)
CONFIRMED = "*confirmed*"
#: The segment tables' names (SQL GLOB): one table per sync interval.
SEGMENT_GLOB = "seg_[0-9]*"
#: A segment table's columns.
SEGMENT_COLUMNS = """id INTEGER PRIMARY KEY, src TEXT NOT NULL, seq INTEGER, kind TEXT NOT NULL,
    rx INTEGER NOT NULL, payload BLOB NOT NULL"""


def segment_table(n: int) -> str:
    """The name of segment ``n``'s table."""
    return f"seg_{n}"


def segment_number(table: str) -> int:
    """The number of a segment table (:data:`SEGMENT_GLOB`)."""
    return int(table[len("seg_"):])
