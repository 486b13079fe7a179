"""The durable event queue: SQLite in WAL mode in the state directory.

Theory of operation
-------------------
The disk is the only durable copy of an event between the PBX and the broker's PUBACK
(paho's queue is memory). So:

* ``append()`` writes one read's events, the source's next ``seq`` and (for a followed
  file) its read offset in ONE transaction. A ``kill -9`` after it returns loses nothing;
  a kill before it loses the read, and the offset still points before it.
* Durability against power loss is batched. ``synchronous=NORMAL`` in WAL mode does not
  fsync on commit. :meth:`sync` (called every ``[queue] sync_interval``) fsyncs the WAL
  file: a power cut loses at most the commits of one interval; a process crash loses none.
* Checkpoints (copying the WAL into the database file) are rare: automatic ones are off,
  and :meth:`sync` runs one only when the WAL has grown past ``CHECKPOINT_BYTES``. Queue
  pages are freed and reused all the time, so between two checkpoints the same few pages
  change again and again, and the checkpoint writes each of them once: the bytes written
  to a flash card stay close to the bytes of the events themselves.
* Rows are deleted only when the broker acknowledged them (:meth:`delete`), or moved to
  the ``dead`` table when it rejected them.
* The queue has a byte budget. When an append would pass it, ``drop_oldest`` deletes the
  oldest events and ``drop_newest`` refuses the new ones; either way the dropped ``seq``
  range is counted per source in ``drops`` and later turned into a ``gap`` event.
* Startup never fails on a damaged file: a database that SQLite cannot read is renamed
  aside (``queue.db.corrupt-<time>``), counted, and a new one is started.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from gateway.events import Event, GapEvent, packb
from gateway.outbox import Row

log = logging.getLogger("pbxgw.store")

DB_NAME = "queue.db"
#: The WAL is copied into the database once it is this large (and when the queue closes).
CHECKPOINT_BYTES = 4 * 1024 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, src TEXT NOT NULL, seq INTEGER, kind TEXT NOT NULL,
    rx INTEGER NOT NULL, payload BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS sources (
    name TEXT PRIMARY KEY, next_seq INTEGER NOT NULL, offset INTEGER, identity TEXT);
CREATE TABLE IF NOT EXISTS drops (
    src TEXT NOT NULL, reason TEXT NOT NULL, first INTEGER, last INTEGER, count INTEGER,
    first_rx INTEGER, last_rx INTEGER, PRIMARY KEY (src, reason));
CREATE TABLE IF NOT EXISTS dead (
    id INTEGER PRIMARY KEY, kind TEXT, payload BLOB, reason TEXT, at INTEGER);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class QueueStats:
    depth: int
    bytes: int
    oldest_rx: int | None
    dropped: int
    dead: int
    corrupt_recoveries: int


class Store:
    """The queue in ``state_dir``; see the module docstring.

    :param state_dir: directory for ``queue.db`` (created, private).
    :param max_bytes: byte budget of queued payloads.
    :param when_full: ``drop_oldest`` or ``drop_newest``.
    """

    def __init__(self, state_dir: Path, max_bytes: int, when_full: str):
        self.max_bytes, self.when_full = max_bytes, when_full
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = state_dir / DB_NAME
        self.corrupt_recoveries = 0
        try:
            self._db = self._connect()
        except sqlite3.DatabaseError as exc:
            self._db = self._recover(exc)
        self.bytes, self.depth, self._last_id = self._db.execute(
            "SELECT COALESCE(SUM(length(payload)), 0), COUNT(*), COALESCE(MAX(id), 0) FROM events"
        ).fetchone()
        if self.corrupt_recoveries:
            self._bump("corrupt_recoveries", self.corrupt_recoveries)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints come from sync()
            db.executescript(_SCHEMA)
            if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("quick_check failed")
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def _recover(self, exc: Exception) -> sqlite3.Connection:
        aside = self.path.with_name(f"{DB_NAME}.corrupt-{int(time.time())}")
        log.error("queue database %s is unreadable (%s); moved to %s, starting a new one",
                  self.path, exc, aside.name)
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                os.replace(src, f"{aside}{suffix}")
        self.corrupt_recoveries = 1
        return self._connect()

    # -- ingest --------------------------------------------------------------------------

    def source_state(self, src: str) -> tuple[int, int | None, str | None]:
        """``(next_seq, offset, identity)`` persisted for a source (``(1, None, None)`` if new)."""
        row = self._db.execute(
            "SELECT next_seq, offset, identity FROM sources WHERE name = ?", (src,)).fetchone()
        return row if row else (1, None, None)

    def append(self, src: str, events: list[Event], next_seq: int,
               offset: int | None = None, identity: str | None = None) -> None:
        """Queue one read's events with the source's state, in one transaction."""
        rows = [(src, getattr(e, "seq", None), e.KIND, e.rx, packb(e)) for e in events]
        with self._transaction():
            excess = self.bytes + sum(len(r[4]) for r in rows) - self.max_bytes
            if excess > 0:
                if self.when_full == "drop_newest":
                    keep = _fitting(rows, self.max_bytes - self.bytes)
                    dropped, rows = rows[keep:], rows[:keep]
                else:
                    # The oldest queued go first; if this read alone is over the budget,
                    # its own oldest go too.
                    skip = _covering(rows, excess - self._drop_oldest(excess))
                    dropped, rows = rows[:skip], rows[skip:]
                self._record_drops(dropped, f"queue full: {self.when_full}")
            self._insert(rows)
            self._db.execute(
                "INSERT INTO sources (name, next_seq, offset, identity) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET next_seq = excluded.next_seq, "
                "offset = excluded.offset, identity = excluded.identity",
                (src, next_seq, offset, identity))
        self.bytes += sum(len(r[4]) for r in rows)
        self.depth += len(rows)

    def _insert(self, rows: list[tuple]) -> None:
        # Row ids only grow while the process lives (the publisher's cursors rely on it),
        # even when the queue empties; SQLite alone would reuse them.
        first = self._last_id + 1
        self._db.executemany("INSERT INTO events (id, src, seq, kind, rx, payload) VALUES (?, ?, ?, ?, ?, ?)",
                             [(first + i, *row) for i, row in enumerate(rows)])
        self._last_id += len(rows)

    def _drop_oldest(self, excess: int) -> int:
        """Delete the oldest queued events (never gap reports) until ``excess`` bytes are
        freed or none are left; the bytes freed."""
        victims, freed = [], 0
        cursor = self._db.execute(
            "SELECT id, src, seq, kind, rx, length(payload) FROM events WHERE kind != 'gap' ORDER BY id")
        for row in cursor:
            if freed >= excess:
                break
            victims.append(row)
            freed += row[5]
        cursor.close()
        self._db.executemany("DELETE FROM events WHERE id = ?", [(v[0],) for v in victims])
        self._record_drops([(v[1], v[2], v[3], v[4], b"") for v in victims], "queue full: drop_oldest")
        self.bytes -= freed
        self.depth -= len(victims)
        return freed

    def _record_drops(self, rows: list[tuple], reason: str) -> None:
        for src, seq, _kind, rx, _payload in rows:
            self._db.execute(
                "INSERT INTO drops VALUES (?, ?, ?, ?, 1, ?, ?) ON CONFLICT (src, reason) DO UPDATE "
                "SET first = min(first, excluded.first), last = max(last, excluded.last), "
                "count = count + 1, first_rx = min(first_rx, excluded.first_rx), "
                "last_rx = max(last_rx, excluded.last_rx)", (src, reason, seq, seq, rx, rx))
        if rows:
            log.warning("queue full (%d bytes): %d events dropped (%s)", self.max_bytes, len(rows), reason)
            self._bump("dropped", len(rows))

    def report_gaps(self, gw: str, now_ms: int) -> int:
        """Turn the recorded drops into queued ``gap`` events; return how many."""
        with self._transaction():
            drops = self._db.execute("SELECT * FROM drops ORDER BY src, reason").fetchall()
            self._db.execute("DELETE FROM drops")
            gaps = [GapEvent(gw=gw, src=src, rx=now_ms, first=first, last=last, count=count,
                             first_rx=first_rx, last_rx=last_rx, reason=reason)
                    for src, reason, first, last, count, first_rx, last_rx in drops]
            rows = [(g.src, None, g.KIND, g.rx, packb(g)) for g in gaps]
            self._insert(rows)
        self.bytes += sum(len(r[4]) for r in rows)
        self.depth += len(rows)
        return len(rows)

    # -- delivery ------------------------------------------------------------------------

    def max_id(self) -> int:
        """The id of the newest row queued (rows queued later have greater ids)."""
        return self._last_id

    def peek(self, after: int, upto: int | None, limit: int) -> list[Row]:
        """Up to ``limit`` rows with ``after < id <= upto`` (no upper bound if None), in order."""
        rows = self._db.execute(
            "SELECT id, kind, rx, payload FROM events WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
            (after, upto if upto is not None else 2**63 - 1, limit)).fetchall()
        return [Row(*r) for r in rows]

    def delete(self, ids: list[int]) -> None:
        """Forget rows the broker acknowledged."""
        if not ids:
            return
        with self._transaction():
            freed = self._delete(ids)
        self.bytes -= freed
        self.depth -= len(ids)

    def dead_letter(self, ids: list[int], reason: str, now_ms: int) -> None:
        """Move rows the broker rejected to the ``dead`` table (kept for an operator)."""
        with self._transaction():
            self._db.executemany(
                "INSERT INTO dead (kind, payload, reason, at) SELECT kind, payload, ?, ? "
                "FROM events WHERE id = ?", [(reason, now_ms, i) for i in ids])
            freed = self._delete(ids)
            self._bump("dead", len(ids))
        self.bytes -= freed
        self.depth -= len(ids)

    def _delete(self, ids: list[int]) -> int:
        freed = 0
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            freed += self._db.execute(
                f"SELECT COALESCE(SUM(length(payload)), 0) FROM events WHERE id IN ({marks})", chunk
            ).fetchone()[0]
            self._db.execute(f"DELETE FROM events WHERE id IN ({marks})", chunk)
        return freed

    # -- housekeeping --------------------------------------------------------------------

    def bump_boot(self) -> int:
        """Count one more start of the daemon; return the new count (for the status topic)."""
        with self._transaction():
            return self._bump("boot", 1)

    def counter(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else 0

    def _bump(self, key: str, by: int) -> int:
        return self._db.execute(
            "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = value + ? "
            "RETURNING value", (key, by, by)).fetchone()[0]

    def stats(self) -> QueueStats:
        oldest = self._db.execute("SELECT MIN(rx) FROM events").fetchone()[0]
        return QueueStats(self.depth, self.bytes, oldest, self.counter("dropped"),
                          self.counter("dead"), self.counter("corrupt_recoveries"))

    def sync(self) -> None:
        """Make every commit so far survive a power cut: one fsync of the WAL."""
        wal = f"{self.path}-wal"
        try:
            fd = os.open(wal, os.O_RDONLY)
        except FileNotFoundError:
            return  # nothing written since the last checkpoint removed it
        try:
            os.fsync(fd)
            if os.fstat(fd).st_size >= CHECKPOINT_BYTES:
                self.checkpoint()
        finally:
            os.close(fd)

    def checkpoint(self) -> None:
        """Copy the WAL into the database file (which SQLite then fsyncs)."""
        self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        self.checkpoint()
        self._db.close()

    def _transaction(self):
        return _Transaction(self._db)


def _fitting(rows: list[tuple], budget: int) -> int:
    """How many of ``rows``, from the first, fit in ``budget`` payload bytes."""
    used = 0
    for count, row in enumerate(rows):
        used += len(row[4])
        if used > budget:
            return count
    return len(rows)


def _covering(rows: list[tuple], excess: int) -> int:
    """How many of ``rows``, from the first, free at least ``excess`` payload bytes."""
    freed = 0
    for count, row in enumerate(rows):
        if freed >= excess:
            return count
        freed += len(row[4])
    return len(rows)


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on error."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
