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
* Events live in *segments*: one table per sync interval (``seg_<n>``). A confirmed event
  is only marked; a segment whose events are all confirmed is dropped whole. Deleting rows
  one by one would rewrite every page that held them, doubling the bytes written to a
  flash card; dropping a table only returns its pages to the free list, where the next
  segments reuse them. The contiguous prefix of confirmed ids is written with each append
  (on a page the append writes anyway) and at each sync, so a restart sends again only what
  was confirmed since: duplicates with the same ``(gw, src, stream, seq)``, as the contract allows.
* Checkpoints (copying the WAL into the database file) are rare: automatic ones are off,
  and :meth:`sync` runs one only when the WAL has grown past ``CHECKPOINT_BYTES``. Since
  pages are reused, a checkpoint writes each of the few pages in use once.
* With an archive (``[archive]``: ``keep`` and ``max_bytes``), a wholly confirmed segment
  is not dropped at once: it is kept, read-only, for replays (:meth:`kept`) and ``pbxgw
  export``, until it is older than ``keep`` or the archive is over its budget; then the
  oldest go, without a report (they were delivered). Segments then close at a size or an
  age, a 32nd of the archive's budget or of ``keep`` (and at ``SEGMENT_ROWS``), not at each
  sync: so the tables stay few (about 64) however long the archive, each event is still
  written once, and fewer tables are made and dropped than without it. The queue's budget
  and the archive's are apart: the queue counts the bytes of the events not confirmed;
  a segment closed with every event confirmed counts against the archive.
* A message the broker rejected moves its events to the ``dead`` table.
* The queue has a byte budget. When an append would pass it, ``drop_oldest`` deletes the
  oldest numbered events (never an alarm or a gap report) and ``drop_newest`` refuses the
  new ones; either way the dropped ``seq``
  range is counted per source and stream in ``lost`` and later turned into a ``gap`` event.
* Every event carries the queue's *stream* identity beside its ``seq``. ``(gw, src, stream,
  seq)`` is never reused: a run continues the last run's stream only when that run stopped
  cleanly on this same file; after anything else (a crash, a power cut that rolled back the
  last commits, a damaged or recreated file) the sources' ``seq`` may restart below numbers
  already used, so the run takes a new random stream (see :meth:`_open_stream`).
* Startup never fails on a damaged file: a database that SQLite cannot read, or whose WAL
  is damaged, is moved aside (``queue.db.damaged-<time>-<pid>``), counted, and a new one is
  started with what can still be read of it, keys kept. What it cannot read, and what a WAL
  cut short took with it, is reported as a gap, as the high-water marks kept beside the
  queue (:mod:`gateway.edge.queue.marks`) bound it. Reading a damaged file back (its WAL
  frame by frame, its tables row by row) is :mod:`gateway.edge.queue.salvage`'s.
"""

from __future__ import annotations

import bisect
import logging
import os
import secrets
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


from gateway.edge.queue import marks
from gateway.edge.queue.row import Queued, Row, event_map, payload_stream
from gateway.edge.queue.salvage import Salvage, read_back, set_aside, wal_problem, wal_state
from gateway.edge.queue.schema import CONFIRMED, DB_NAME, SEGMENT_COLUMNS, segment_table
from gateway.errors import GatewayError
from gateway.wire.events import Event, GapEvent, packb

log = logging.getLogger("pbxgw.store")

#: The WAL is copied into the database (and truncated) once it is this large, or a quarter of
#: the budget if that is less, but never under WAL_MIN_BYTES (and when the queue closes):
#: rarely, since each checkpoint rewrites the pages in use.
CHECKPOINT_BYTES = 64 * 1024 * 1024
WAL_MIN_BYTES = 1024 * 1024
#: What the queue's files take on disk per payload byte, at most (see Store.set_budget).
DISK_FACTOR = 2
#: The WAL's limit is at most this share of the disk's room (a small card needs checkpoints sooner).
WAL_SHARE = 8
#: The least budget on a disk of any size: room for the events in flight while the broker
#: takes what is sent. A budget of nothing would drop every live record, broker up or not;
#: past what the disk really holds, a write fails and its events are reported as a gap.
MIN_BUDGET = 256 * 1024
#: First bytes of a msgpack map (fixmap, map16, map32): what every queued payload starts with.
_MAP_HEADS = {bytes((b,)) for b in (*range(0x80, 0x90), 0xDE, 0xDF)}
#: SQLite page size for a new queue (see _connect).
PAGE_SIZE = 1024

#: A segment is closed at each sync (with an archive: at a 32nd of its budget or of its
#: ``keep``), and also when it holds this many events.
SEGMENT_ROWS = 20_000
ARCHIVE_SEGMENTS = 32

_SCHEMA = """
CREATE TABLE IF NOT EXISTS segments (n INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS sources (
    name TEXT PRIMARY KEY, next_seq INTEGER NOT NULL, offset INTEGER, identity TEXT);
CREATE TABLE IF NOT EXISTS lost (
    src TEXT NOT NULL, stream TEXT NOT NULL, reason TEXT NOT NULL, first INTEGER, last INTEGER,
    count INTEGER, first_rx INTEGER, last_rx INTEGER, PRIMARY KEY (src, stream, reason));
CREATE TABLE IF NOT EXISTS dead (
    id INTEGER PRIMARY KEY, kind TEXT, payload BLOB, reason TEXT, at INTEGER);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class QueueWriteError(GatewayError):
    """A write to the queue failed (a full disk, an I/O error); nothing of it happened."""


@dataclass(slots=True)
class _Segment:
    """What the queue knows of one segment table without reading it."""

    n: int
    first: int
    last: int   # ids first..last were all inserted here
    bytes: int
    closed: bool
    done: set[int]  # ids confirmed (or moved to dead, or dropped when the queue was full)
    first_rx: int = 0  # the receive times of its events: oldest, newest (ms)
    last_rx: int = 0
    archived: bool = False  # closed, every event done: kept for replay (``done`` emptied)
    done_bytes: int = 0  # of ``bytes``, those of the events done (they count for the archive, not the queue)
    top: dict[str, int] = field(default_factory=dict)  # per source, the highest seq of this run's stream in it
    earlier: bool = False  # holds events of earlier streams (queued before a start, or salvaged)

    @property
    def pending(self) -> int:
        return 0 if self.archived else self.last - self.first + 1 - len(self.done)

    @property
    def table(self) -> str:
        return segment_table(self.n)


@dataclass(frozen=True, slots=True)
class QueueStats:
    depth: int
    bytes: int
    oldest_rx: int | None
    dropped: int
    dead: int
    corrupt_recoveries: int
    archive: "ArchiveStats"


@dataclass(frozen=True, slots=True)
class ArchiveStats:
    """What the archive holds: events the broker confirmed, kept for replay and export
    (with those of the segment still filling)."""

    events: int
    bytes: int
    max_bytes: int
    first_rx: int | None
    last_rx: int | None


class Store:
    """The queue in ``state_dir``; see the module docstring.

    :param state_dir: directory for ``queue.db`` (created, private).
    :param max_bytes: byte budget of queued payloads.
    :param when_full: ``drop_oldest`` or ``drop_newest``.
    :param keep: seconds the archive keeps confirmed events (0: no archive).
    :param archive_bytes: byte budget of the archive's payloads (0: no archive).
    """

    def __init__(self, state_dir: Path, max_bytes: int, when_full: str, keep: float = 0.0,
                 archive_bytes: int = 0):
        self.when_full = when_full
        self.keep_ms = int(keep * 1000) if archive_bytes else 0
        self._archive_wanted = archive_bytes if self.keep_ms else 0
        self.archived_bytes = 0
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = state_dir / DB_NAME
        self.set_budget(max_bytes)
        self.corrupt_recoveries = 0
        self._pending_lost: list[tuple] = []  # (src, seq, kind, rx, stream) not yet in ``lost``
        self._pending_reason = ""
        self.unreported = False  # drops recorded since the last gap report (the publisher reports them)
        self._dropping = 0  # events dropped in this episode of a full queue
        self._mark_path = state_dir / marks.MARK_NAME
        previous = marks.read(self._mark_path)  # before anything of this run is written
        self._previous_stream: str | None = None  # the stream of the run before, if known
        salvage_from: Path | None = None
        try:
            if (damage := wal_problem(self.path, previous.wal)) is not None:
                raise sqlite3.DatabaseError(damage)
            self._db = self._connect()
        except sqlite3.DatabaseError as exc:
            salvage_from = set_aside(self.path, exc)
            self.corrupt_recoveries = 1
            self._db = self._connect()
        self.stream = self._open_stream()
        self._confirmed = self.source_state(CONFIRMED)[0] - 1
        self._confirmed_saved = self._confirmed
        self._segments: list[_Segment] = []
        for (n,) in self._db.execute("SELECT n FROM segments ORDER BY n").fetchall():
            first, last, size, first_rx, last_rx = self._db.execute(
                f"SELECT MIN(id), MAX(id), COALESCE(SUM(length(payload)), 0), MIN(rx), MAX(rx) FROM {segment_table(n)}").fetchone()
            if first is None:
                continue
            seg = _Segment(n, first, last, size, True, set(), first_rx, last_rx, archived=last <= self._confirmed,
                           earlier=True)
            if not seg.archived:
                ids = [i for (i,) in self._db.execute(f"SELECT id FROM {segment_table(n)} WHERE id > ?", (self._confirmed,))]
                seg.done = set(range(seg.first, seg.last + 1)).difference(ids)
                seg.done_bytes = self._db.execute(f"SELECT COALESCE(SUM(length(payload)), 0) FROM {segment_table(n)} "
                                                  "WHERE id <= ?", (self._confirmed,)).fetchone()[0]
            self._segments.append(seg)
        self.bytes = sum(seg.bytes - seg.done_bytes for seg in self._segments if not seg.archived)
        self.archived_bytes = sum(seg.bytes for seg in self._segments if seg.archived)
        # New ids continue above everything ever confirmed, even when the queue is empty.
        self._last_id = max((seg.last for seg in self._segments), default=self._confirmed)
        if salvage_from is not None:
            self._salvage(salvage_from, previous)
        elif self._previous_stream in previous.streams:
            self._account_vanished(previous)
        self._start_marks(previous)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            # Small pages: a commit writes whole pages, and most commits carry one record.
            # (Takes effect when the file is created, before it switches to WAL.)
            db.execute(f"PRAGMA page_size={PAGE_SIZE}")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            # Debian builds SQLite with secure_delete on: every freed page would be zeroed
            # on disk, doubling the writes. FAST zeroes only what is written anyway.
            db.execute("PRAGMA secure_delete=FAST")
            db.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints come from sync()
            db.executescript(_SCHEMA)
            if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'drops'").fetchone():
                # A queue of pbxgw 0.x before streams: its drops become the stream-less kind.
                db.executescript("INSERT OR IGNORE INTO lost SELECT src, '', reason, first, last, count, "
                                 "first_rx, last_rx FROM drops; DROP TABLE drops;")
            if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("quick_check failed")
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def set_budget(self, max_bytes: int) -> None:
        """The queue's byte budget, the archive's and the WAL's limit, as :func:`disk_budget`
        makes them from ``max_bytes`` and the disk's room; the log says when the disk decides."""
        room = disk_room(self.path.parent, (self.path, Path(f"{self.path}-wal")))
        self.max_bytes, self.archive_max, self.wal_limit = disk_budget(room, max_bytes, self._archive_wanted)
        if self.max_bytes + self.archive_max < max_bytes + self._archive_wanted:
            archive = f", archive {self.archive_max} bytes, not {self._archive_wanted}" if self._archive_wanted else ""
            log.warning("queue budget %d bytes, not max_bytes %d%s: the disk under %s has room for %d bytes",
                        self.max_bytes, max_bytes, archive, self.path.parent, room)

    def _open_stream(self) -> str:
        """This run's stream identity: the last run's if it stopped cleanly on this very
        file (so its sequence numbers are known to be the last used), else a new random
        one. The clean mark is then cleared and fsynced before anything is queued, so a
        run that ends any other way (a crash, a power cut that rolls back its last
        commits, a damaged WAL, a copied or restored file) never hands its stream on."""
        clean, stream = self.counter("clean"), self.counter("stream")
        self._previous_stream = f"{stream:016x}" if stream else None
        if not (stream and clean == self._fingerprint() and not self.corrupt_recoveries):
            stream = secrets.randbits(63) or 1
            log.info("queue %s: a new stream %016x (the last run did not stop cleanly on this file)",
                     self.path, stream)
        try:
            with self._transaction():
                self._set("clean", 0)
                self._set("stream", stream)
            self._fsync_wal()
        except sqlite3.Error as exc:
            # A full disk: this run's stream lives only in memory; the next start, clean or
            # not, never continues it.
            stream = secrets.randbits(63) or 1
            log.error("queue %s: cannot write (%s); stream %016x for this run only", self.path, exc, stream)
        return f"{stream:016x}"

    def _fingerprint(self) -> int:
        """Which file this is (a copy or a restored backup is another): its inode."""
        return os.stat(self.path).st_ino

    def _salvage(self, aside: Path, previous: marks.Marks) -> None:
        """Copy into the new queue what SQLite can still read of the damaged one: the
        sources' sequence numbers and offsets, the counters, the unreported drops, and
        every unconfirmed event with its key (so a resent one is a duplicate, not a new
        record). The WAL's checksums are recomputed in a working copy, so that frames after
        a damaged one are read too. Every ``seq`` the marks say was committed and not
        delivered, that could not be read, is reported as a ``gap`` ("queue damaged"), as
        are the holes between the events read (for streams no mark names)."""
        try:
            salvaged = read_back(aside, self.path.with_name("salvage.db"))
            self._previous_stream = salvaged.stream or None
            holes = salvaged.unreadable(previous)
            self._keep(salvaged)
        except (OSError, sqlite3.Error, QueueWriteError) as exc:  # a full disk too
            log.error("queue salvage failed (%s); the damaged queue is kept as %s", exc, aside.name)
            return
        unread = self._report_unreadable(holes, "queue damaged: not readable (some may have been delivered, or never used)")
        log.error("queue salvage: %d events kept with their keys, %d sources; %d events not readable, "
                  "reported as gaps%s", len(salvaged.rows), len(salvaged.sources), unread,
                  f" ({salvaged.failures} tables or parts failed)" if salvaged.failures else "")

    def _keep(self, salvaged: Salvage) -> None:
        with self._all_or_nothing("salvaged queue", removes=True):
            for key in ("boot", "dropped", "dead", "corrupt_recoveries"):
                self._set(key, max(self.counter(key), salvaged.meta.get(key, 0)))
            self._bump("corrupt_recoveries", 1)
            self._db.executemany("INSERT OR REPLACE INTO sources VALUES (?, ?, ?, ?)", salvaged.sources)
            self._db.executemany("INSERT OR IGNORE INTO lost VALUES (?, ?, ?, ?, ?, ?, ?, ?)", salvaged.lost)
            for start in range(0, len(salvaged.rows), SEGMENT_ROWS):
                self._insert(salvaged.rows[start:start + SEGMENT_ROWS], earlier=True)
            self.bytes += sum(len(r.payload) for r in salvaged.rows)
            self.unreported = bool(salvaged.lost)
        if self._segments:  # this run's events go into segments of their own
            self._segments[-1].closed = True

    def _account_vanished(self, previous: marks.Marks) -> None:
        """A queue that opened without complaint can still have lost what its last run
        committed and made durable (a WAL cut short reads as a torn last write): what the
        marks say was committed past what its sources say now is reported as a gap."""
        stream = self._previous_stream
        committed = {(src, stream): self.source_state(src)[0] - 1 for src in previous.streams[stream]}
        gone = marks.unaccounted({stream: previous.streams[stream]}, {}, committed, reach=1)
        if gone:
            count = self._report_unreadable(gone, "queue damaged: committed events gone (its WAL cut short?)")
            log.error("queue %s: %d events its last run committed are gone (its WAL cut short?); reported as gaps",
                      self.path, count)

    def _report_unreadable(self, holes: list[tuple[str, str, int, int]], reason: str) -> int:
        """Record ``(src, stream, first, last)`` ranges lost to damage, for ``gap`` events;
        how many numbers they hold. (Not written, they are said in the log only.)"""
        if not holes:
            return 0
        try:
            with self._all_or_nothing("gaps of a damaged queue"):
                for src, stream, first, last in holes:
                    self._db.execute("INSERT INTO lost VALUES (?, ?, ?, ?, ?, ?, NULL, NULL) ON CONFLICT "
                                     "(src, stream, reason) DO UPDATE SET first = min(first, excluded.first), "
                                     "last = max(last, excluded.last), count = count + excluded.count",
                                     (src, stream, reason, first, last, last - first + 1))
        except QueueWriteError as exc:
            log.error("%s; the damaged queue's gaps are not reported", exc)
        self.unreported = True
        return sum(last - first + 1 for _, _, first, last in holes)

    def _start_marks(self, previous: marks.Marks) -> None:
        committed = {name: next_seq - 1 for name, next_seq, _, _ in self._db.execute(
            "SELECT name, next_seq, offset, identity FROM sources WHERE name != ?", (CONFIRMED,))}
        self._marks = marks.Keeper(self._mark_path, previous, self.stream, self._previous_stream, committed,
                                   self._delivered)
        self._fsync_wal()
        self._synced()

    def _synced(self) -> None:
        """Every commit so far is durable (the WAL just fsynced or checkpointed): the marks
        say so. (Written after the fsync: a mark never claims more is durable than is.)"""
        self._marks.durable(wal_state(Path(f"{self.path}-wal")))
        self._marks.write()

    def _delivered(self) -> tuple[list[dict[str, int]], bool]:
        """For the marks: the top seqs of the segments finished in order from the oldest,
        and whether nothing of an earlier stream waits (nor a loss to report)."""
        finished = []
        for seg in self._segments:
            if seg.pending or not seg.closed:
                break
            finished.append(seg.top)
        return finished, not self.unreported and not any(seg.earlier and seg.pending for seg in self._segments)

    # -- ingest --------------------------------------------------------------------------

    def stream_began(self, src: str) -> int | None:
        """The first ``seq`` of ``src`` in this run's stream, when the stream began with this
        run (the next seq the queue remembered then; 1 for a source it never had); None when
        the stream goes on from the last run's clean stop, which announced its beginning."""
        return self._marks.began(src)

    def source_state(self, src: str) -> tuple[int, int | None, str | None]:
        """``(next_seq, offset, identity)`` persisted for a source (``(1, None, None)`` if new)."""
        row = self._db.execute(
            "SELECT next_seq, offset, identity FROM sources WHERE name = ?", (src,)).fetchone()
        return row if row else (1, None, None)

    def append(self, src: str, events: list[Event], next_seq: int,
               offset: int | None = None, identity: str | None = None) -> None:
        """Queue one read's events with the source's state, in one transaction.

        :raises QueueWriteError: the write failed (a full disk): nothing of it happened,
            on disk or in memory.
        """
        rows = [Queued(src, getattr(e, "seq", None), e.KIND, e.rx, packb(e)) for e in events]
        excess = self.bytes + sum(len(r.payload) for r in rows) - self.max_bytes
        if excess <= 0 and self._dropping:  # one line per episode, not one per read
            log.warning("queue has room again: %d events were dropped (reported as gaps)", self._dropping)
            self._dropping = 0
        self._marks.committing(src, [r.seq for r in rows if r.seq is not None], next_seq - 1)
        with self._all_or_nothing("queue", drops=excess > 0):
            self._write_pending_lost()
            if excess > 0:
                if self.when_full == "drop_newest":
                    keep = _fitting(rows, self.max_bytes - self.bytes)
                    dropped, rows = [(r.src, r.seq, r.kind, r.rx, self.stream) for r in rows[keep:]], rows[:keep]
                else:
                    # The oldest queued go first; if this read alone is over the budget,
                    # its own oldest go too.
                    skip = _covering(rows, excess - self._drop_oldest(excess))
                    dropped, rows = [(r.src, r.seq, r.kind, r.rx, self.stream) for r in rows[:skip]], rows[skip:]
                self._record_drops(dropped, f"queue full: {self.when_full}")
            self._insert(rows, current=True)
            self._save_confirmed()
            self._db.execute(
                "INSERT INTO sources (name, next_seq, offset, identity) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET next_seq = excluded.next_seq, "
                "offset = excluded.offset, identity = excluded.identity",
                (src, next_seq, offset, identity))
            self.bytes += sum(len(r.payload) for r in rows)
        self._marks.committed(src, next_seq - 1)

    def lost(self, events: list[Event], reason: str) -> None:
        """Events a source could not queue (the write failed) and cannot read again: kept
        in memory, written to ``lost`` with the next write that succeeds, then reported as
        a ``gap`` like a full queue's drops."""
        self._pending_lost += [(e.src, e.seq, e.KIND, e.rx, self.stream) for e in events]
        self._pending_reason = reason
        log.warning("queue write failed: %d events lost (%s); reported as a gap once the queue is written again",
                    len(events), reason)

    def _write_pending_lost(self) -> None:
        if self._pending_lost:
            self._record_drops(self._pending_lost, self._pending_reason)
            self._pending_lost = []

    @contextmanager
    def _all_or_nothing(self, what: str, removes: bool = False, drops: bool = False):
        """A transaction whose failure leaves memory as it was: the byte count, the
        confirmed prefix, the segments' bounds (and their list, when the write ``removes``
        segments; and which of their ids are done, when it ``drops`` events). An ordinary
        write only changes the newest segment and may add one, so it saves no more: this
        runs for every append.

        :raises QueueWriteError: it failed.
        """
        saved = (self._last_id, self.bytes, self.archived_bytes, self._confirmed_saved, list(self._pending_lost))
        listed = list(self._segments) if removes or drops else len(self._segments)
        segments = [(seg, seg.last, seg.bytes, seg.closed, set(seg.done) if drops else seg.done)
                    for seg in (self._segments if drops else self._segments[-1:])]
        try:
            with self._transaction():
                yield
        except sqlite3.Error as exc:
            self._last_id, self.bytes, self.archived_bytes, self._confirmed_saved, self._pending_lost = saved
            self._segments = listed if isinstance(listed, list) else self._segments[:listed]
            for seg, last, size, closed, done in segments:
                seg.last, seg.bytes, seg.closed, seg.done = last, size, closed, done
            raise QueueWriteError(f"cannot write the {what} in {self.path}: {exc}") from exc

    def room(self) -> int:
        """Payload bytes that still fit in the budget (a source that can wait reads no more)."""
        return max(0, self.max_bytes - self.bytes)

    def _insert(self, rows: list[Queued], current: bool = False, earlier: bool = False) -> None:
        """Add rows to the newest segment (a new one when it is closed or full); rows of
        this run's stream are ``current`` (their seqs tell the marks' lows), those of
        ``earlier`` streams make the segment keep the marks of earlier streams."""
        if not rows:
            return
        seg = self._segments[-1] if self._segments else None
        if (seg is None or seg.closed or seg.last - seg.first + 1 >= SEGMENT_ROWS
                or (self.archive_max and seg.bytes >= self.archive_max // ARCHIVE_SEGMENTS)):
            if seg is not None:
                seg.closed = True
            seg = _Segment(seg.n + 1 if seg else 1, self._last_id + 1, self._last_id, 0, False, set(),
                           first_rx=min(_times(rows), default=0))
            self._db.execute(f"CREATE TABLE {segment_table(seg.n)} ({SEGMENT_COLUMNS})")
            self._db.execute("INSERT INTO segments VALUES (?)", (seg.n,))
            self._segments.append(seg)
        # Row ids only grow while the process lives (the publisher's cursors rely on it).
        first = self._last_id + 1
        self._db.executemany(f"INSERT INTO {seg.table} VALUES (?, ?, ?, ?, ?, ?)",
                             [(first + i, *row) for i, row in enumerate(rows)])
        self._last_id += len(rows)
        seg.last = self._last_id
        seg.bytes += sum(len(r.payload) for r in rows)
        if current:
            for src, seq, *_ in rows:
                if seq is not None and seq > seg.top.get(src, 0):
                    seg.top[src] = seq
        seg.earlier = seg.earlier or earlier
        seg.last_rx = max(seg.last_rx, *_times(rows))

    def _drop_oldest(self, excess: int) -> int:
        """Delete the oldest queued events of the sources' numbering until ``excess`` bytes
        are freed or none are left; the bytes freed. Alarms and gap reports are never
        dropped: they carry no ``seq``, so their loss could not be told as a range (and
        a gap's range would lose its bounds). (Confirmed events stay: they count for the
        archive, not the queue.)"""
        freed = 0
        for seg in list(self._segments):
            if freed >= excess:
                break
            if seg.archived:  # (the archive's budget, not the queue's)
                continue
            victims, lost = [], []
            for row_id, src, seq, kind, rx, length in self._db.execute(
                    f"SELECT id, src, seq, kind, rx, length(payload) FROM {seg.table} "
                    "WHERE seq IS NOT NULL ORDER BY id").fetchall():
                if freed >= excess:
                    break
                if row_id in seg.done:
                    continue
                victims.append(row_id)
                freed += length
                seg.bytes -= length
                lost.append((src, seq, kind, rx, self._stream_of(seg, row_id)))
            for start in range(0, len(victims), 500):
                chunk = victims[start:start + 500]
                self._db.execute(f"DELETE FROM {seg.table} WHERE id IN ({','.join('?' * len(chunk))})", chunk)
            seg.done.update(victims)
            self._record_drops(lost, "queue full: drop_oldest")
            if not seg.pending and seg.closed:
                self._drop_segment(seg)
        self.bytes -= freed
        return freed

    def _record_drops(self, rows: list[tuple], reason: str) -> None:
        """Count dropped rows ``(src, seq, kind, rx, stream)`` per source and stream."""
        for src, seq, _kind, rx, stream in rows:
            self._db.execute(
                "INSERT INTO lost VALUES (?, ?, ?, ?, ?, 1, ?, ?) ON CONFLICT (src, stream, reason) DO UPDATE "
                "SET first = min(first, excluded.first), last = max(last, excluded.last), "
                "count = count + 1, first_rx = min(first_rx, excluded.first_rx), "
                "last_rx = max(last_rx, excluded.last_rx)", (src, stream, reason, seq, seq, rx, rx))
        if rows:
            if reason.startswith("queue full"):  # (write failures were said when they happened)
                if not self._dropping:
                    log.warning("queue full (%d bytes): events dropped (%s) until there is room", self.max_bytes,
                                reason)
                self._dropping += len(rows)
            self._bump("dropped", len(rows))
            self.unreported = True

    def _stream_of(self, seg: _Segment, row_id: int) -> str:
        """The stream a queued row was numbered in (rows of earlier runs keep theirs)."""
        (payload,) = self._db.execute(f"SELECT payload FROM {seg.table} WHERE id = ?", (row_id,)).fetchone()
        return payload_stream(payload)

    def report_gaps(self, gw: str, now_ms: int) -> int:
        """Turn the recorded drops into queued ``gap`` events; return how many."""
        with self._all_or_nothing("gap reports"):
            self._write_pending_lost()
            drops = self._db.execute("SELECT * FROM lost ORDER BY src, stream, reason").fetchall()
            self._db.execute("DELETE FROM lost")
            gaps = [GapEvent(gw=gw, src=src, stream=stream or None, rx=now_ms, first=first, last=last,
                             count=count, first_rx=first_rx, last_rx=last_rx, reason=reason)
                    for src, stream, reason, first, last, count, first_rx, last_rx in drops]
            self.unreported = False
            self._enqueue(gaps, earlier=True)  # (a damaged queue would lose them: the marks stay until they go)
        return len(gaps)

    def enqueue(self, events: list[Event]) -> None:
        """Queue events outside any source's sequence (alarms), in one transaction.

        :raises QueueWriteError: the write failed; nothing was queued.
        """
        with self._all_or_nothing("queue"):
            self._enqueue(events)

    def _enqueue(self, events: list[Event], earlier: bool = False) -> None:
        rows = [Queued(e.src, None, e.KIND, e.rx, packb(e)) for e in events]
        self._insert(rows, earlier=earlier)
        self.bytes += sum(len(r.payload) for r in rows)

    # -- delivery ------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Events waiting for the broker's confirmation."""
        return sum(seg.pending for seg in self._segments)

    def max_id(self) -> int:
        """The id of the newest row queued (rows queued later have greater ids)."""
        return self._last_id

    def peek(self, after: int, upto: int | None, limit: int) -> list[Row]:
        """Up to ``limit`` rows with ``after < id <= upto`` (no upper bound if None), in order."""
        upto = upto if upto is not None else self._last_id
        after = max(after, self._confirmed)  # confirmed before a restart: not again
        rows: list[Row] = []
        for seg in self._segments:
            if len(rows) >= limit:
                break
            if seg.last <= after or seg.first > upto or not seg.pending:
                continue
            rows += map(Row._make, self._db.execute(
                f"SELECT id, kind, rx, payload FROM {seg.table} WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
                (after, upto, limit - len(rows))))
        damaged = [r.id for r in rows if r.payload[:1] not in _MAP_HEADS]
        if damaged:  # a flipped byte on the card: kept aside, and delivery goes on
            log.error("queue: %d damaged events (not a msgpack map) moved to the dead-letter table", len(damaged))
            self.dead_letter(damaged, "damaged in the queue: not a msgpack map", int(time.time() * 1000))
            rows = [r for r in rows if r.id not in set(damaged)]
        return rows

    def kept(self, src: str, stream: str, first: int, last: int, after: int, limit: int) -> list[tuple[Row, int]]:
        """Up to ``limit`` events of ``src`` in ``stream`` numbered ``first..last``, queued
        or archived, with row ids above ``after``, in id order: ``(row, seq)`` (for a replay).
        Segments are read by row id from ``after`` on, so a replay read batch by batch
        reads each segment once."""
        found: list[tuple[Row, int]] = []
        for seg in self._segments:
            if seg.last <= after:
                continue
            for row_id, kind, rx, payload, seq in self._db.execute(
                    f"SELECT id, kind, rx, payload, seq FROM {seg.table} WHERE id > ? AND src = ? "
                    "AND seq BETWEEN ? AND ? ORDER BY id", (after, src, first, last)):
                if payload_stream(payload) == stream and payload[:1] in _MAP_HEADS:
                    found.append((Row(row_id, kind, rx, payload), seq))
                    if len(found) >= limit:
                        return found
        return found

    def confirm(self, ids: list[int], sizes: list[int]) -> None:
        """The broker has these rows (``sizes``: their payloads' bytes, as :meth:`peek`
        gave them, which leave the queue's count). They are only marked (their segment goes
        once wholly confirmed); the confirmed prefix is written with the next append or sync."""
        # Called for every PUBACK: find each id's segment by bisection, not by scanning.
        firsts = [seg.first for seg in self._segments]
        for i, size in zip(ids, sizes):
            k = bisect.bisect_right(firsts, i) - 1
            seg = self._segments[k] if k >= 0 else None
            if seg is not None and i <= seg.last and not seg.archived and i not in seg.done:
                seg.done.add(i)
                seg.done_bytes += size
                self.bytes -= size
        for seg in self._segments:  # advance the contiguous confirmed prefix
            if seg.last <= self._confirmed:
                continue
            if seg.archived:
                self._confirmed = seg.last
                continue
            nxt = max(self._confirmed + 1, seg.first)
            while nxt <= seg.last and nxt in seg.done:
                nxt += 1
            self._confirmed = nxt - 1
            if nxt <= seg.last:
                break
        self._drop_finished()

    def _save_confirmed(self) -> None:
        if self._confirmed != self._confirmed_saved:
            self._db.execute("INSERT INTO sources (name, next_seq) VALUES (?, ?) ON CONFLICT (name) "
                             "DO UPDATE SET next_seq = excluded.next_seq", (CONFIRMED, self._confirmed + 1))
            self._confirmed_saved = self._confirmed

    def dead_letter(self, ids: list[int], reason: str, now_ms: int) -> None:
        """Move rows the broker rejected to the ``dead`` table (kept for an operator).
        If that cannot be written they stay queued (and are sent again after a restart)."""
        moved: list[tuple[int, int]] = []  # (id, payload bytes)
        try:
            with self._all_or_nothing("dead letters"):
                for seg in self._segments:
                    mine = [(reason, now_ms, i) for i in ids if seg.first <= i <= seg.last]
                    self._db.executemany(f"INSERT INTO dead (kind, payload, reason, at) SELECT kind, payload, ?, ? "
                                         f"FROM {seg.table} WHERE id = ?", mine)
                    moved += self._db.execute(f"SELECT id, length(payload) FROM {seg.table} WHERE id IN "
                                              f"({','.join('?' * len(mine))})", [i for *_, i in mine]).fetchall()
                self._bump("dead", len(ids))
        except QueueWriteError as exc:
            log.error("%s; the %d events stay queued", exc, len(ids))
            return
        self.confirm([i for i, _ in moved], [size for _, size in moved])

    def requeue_dead(self, ids: list[int] | None) -> int:
        """Queue dead letters again, as they were (their keys kept), for the next start to
        send; ``None``: all of them. How many.

        :raises QueueWriteError: nothing was requeued.
        """
        where, args = ("", ()) if ids is None else (f" WHERE id IN ({','.join('?' * len(ids))})", tuple(ids))
        with self._all_or_nothing("queue"):
            dead = self._db.execute(f"SELECT id, kind, payload FROM dead{where} ORDER BY id", args).fetchall()
            rows, taken = [], []
            for row_id, kind, payload in dead:
                event = event_map(payload)
                if event is None:  # damaged: it stays a dead letter
                    continue
                rows.append(Queued(event.get("src"), event.get("seq"), kind, event.get("rx") or event.get("ts") or 0,
                                   payload))
                taken.append(row_id)
            self._insert(rows, earlier=True)
            self.bytes += sum(len(r.payload) for r in rows)
            self._db.executemany("DELETE FROM dead WHERE id = ?", [(i,) for i in taken])
        return len(rows)

    def _drop_finished(self) -> None:
        """Move the closed segments whose events are all confirmed into the archive, and
        drop its oldest past ``keep`` or its budget (without an archive: all of them)."""
        for seg in self._segments:
            if seg.closed and not seg.archived and not seg.pending:
                seg.archived, seg.done = True, set()
                self.bytes -= seg.bytes - seg.done_bytes
                self.archived_bytes += seg.bytes
        finished, over = [], self.archived_bytes - self.archive_max
        oldest_kept = int(time.time() * 1000) - self.keep_ms
        for seg in self._segments:
            if seg.archived and (over > 0 or seg.last_rx < oldest_kept or not self.archive_max):
                finished.append(seg)
                over -= seg.bytes
        if finished:
            try:
                with self._all_or_nothing("queue", removes=True):
                    for seg in finished:
                        self._drop_segment(seg)
            except QueueWriteError as exc:  # tried again at the next confirmation or sync
                log.warning("%s; confirmed events are dropped later", exc)

    def _drop_segment(self, seg: _Segment) -> None:
        if all(not s.pending and s.closed for s in self._segments[:self._segments.index(seg)]):
            self._marks.dropped(seg.top)
        self._db.execute(f"DROP TABLE {seg.table}")
        self._db.execute("DELETE FROM segments WHERE n = ?", (seg.n,))
        self._segments.remove(seg)
        if seg.archived:
            self.archived_bytes -= seg.bytes
        else:
            self.bytes -= seg.bytes - seg.done_bytes

    # -- housekeeping --------------------------------------------------------------------

    def bump_boot(self) -> int:
        """Count one more start of the daemon; return the new count (for the status topic)."""
        try:
            with self._all_or_nothing("boot counter"):
                return self._bump("boot", 1)
        except QueueWriteError as exc:
            log.error("%s", exc)
            return self.counter("boot") + 1

    def counter(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else 0

    def _set(self, key: str, value: int) -> None:
        self._db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                         (key, value))

    def _bump(self, key: str, by: int) -> int:
        return self._db.execute(
            "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = value + ? "
            "RETURNING value", (key, by, by)).fetchone()[0]

    def stats(self) -> QueueStats:
        oldest = next((self._db.execute(f"SELECT MIN(rx) FROM {seg.table}").fetchone()[0]
                       for seg in self._segments if seg.pending), None)
        # Delivered events held: whole archived segments, and those confirmed in the rest.
        held = [(seg.last - seg.first + 1, seg.bytes, seg.first_rx, seg.last_rx) for seg in self._segments
                if seg.archived]
        held += [self._db.execute(f"SELECT count(*), COALESCE(SUM(length(payload)), 0), MIN(rx), MAX(rx) FROM "
                                  f"{seg.table} WHERE id <= ?", (self._confirmed,)).fetchone()
                 for seg in self._segments if not seg.archived and seg.first <= self._confirmed]
        held = [h for h in held if h[0]]
        archive = ArchiveStats(sum(h[0] for h in held), sum(h[1] for h in held), self.archive_max,
                               min((h[2] for h in held), default=None), max((h[3] for h in held), default=None))
        return QueueStats(self.depth, self.bytes, oldest, self.counter("dropped"),
                          self.counter("dead"), self.counter("corrupt_recoveries"), archive)

    def sync(self) -> None:
        """Close the current segment, drop finished ones, and make every commit so far
        survive a power cut: one fsync of the WAL."""
        if self._segments and self._closes_at_sync(self._segments[-1]):
            self._segments[-1].closed = True
        self._drop_finished()
        if self._confirmed != self._confirmed_saved:
            try:
                with self._all_or_nothing("confirmed prefix"):
                    self._save_confirmed()
            except QueueWriteError as exc:  # written with the next append or sync
                log.warning("%s", exc)
        if self._fsync_wal() >= self.wal_limit:
            self.checkpoint()
        self._synced()

    def _closes_at_sync(self, seg: _Segment) -> bool:
        """Whether the newest segment is closed now: at every sync without an archive
        (its confirmed events may go soon), else once a 32nd of ``keep`` old."""
        return not self.archive_max or time.time() * 1000 - seg.first_rx >= self.keep_ms / ARCHIVE_SEGMENTS

    def _fsync_wal(self) -> int:
        """Make every commit so far survive a power cut; the WAL's size."""
        try:
            fd = os.open(f"{self.path}-wal", os.O_RDONLY)
        except FileNotFoundError:
            return 0  # nothing written since the last checkpoint removed it
        try:
            os.fsync(fd)
            return os.fstat(fd).st_size
        finally:
            os.close(fd)

    def checkpoint(self) -> None:
        """Copy the WAL into the database file (which SQLite then fsyncs) and cut the WAL
        back to nothing, so that the disk holds it only up to ``wal_limit``."""
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            log.warning("queue checkpoint failed (%s); tried again at the next sync", exc)

    def close(self) -> None:
        """Drop what is confirmed, mark the stop clean (the next run may continue this
        stream), copy the WAL into the database, close."""
        self.sync()
        try:
            with self._transaction():
                self._set("clean", self._fingerprint())
            self._fsync_wal()
        except sqlite3.Error as exc:
            log.error("queue %s: cannot mark the stop clean (%s); the next run starts a new stream", self.path, exc)
        self.checkpoint()
        self._synced()
        self._db.close()

    def _transaction(self):
        return _Transaction(self._db)


def _times(rows: list[Queued]) -> list[int]:
    """The receive times of rows that are times (what a damaged queue gave back may not be)."""
    return [r.rx for r in rows if type(r.rx) is int]


def disk_room(directory: Path, own: tuple[Path, ...] = ()) -> int:
    """The bytes the queue's files may take under ``directory`` (or the nearest directory
    above it that exists): the free space, with what its own files (``own``) take already."""
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize + sum(f.stat().st_size for f in own if f.exists())


def disk_budget(room: int, max_bytes: int, archive_wanted: int = 0) -> tuple[int, int, int]:
    """``(queue budget, archive budget, WAL limit)`` for a disk with ``room`` bytes.

    The files hold more than the payloads (pages, row headers, the WAL between checkpoints):
    at most ``DISK_FACTOR`` times the payload bytes, plus the WAL's limit. The WAL's limit is
    a quarter of ``max_bytes`` up to ``CHECKPOINT_BYTES``, and at most an eighth of the room
    (so a small card checkpoints sooner rather than holding no queue at all). The queue comes
    first, never under ``MIN_BUDGET``; on a small disk the archive keeps less, or nothing.
    """
    wal_limit = max(WAL_MIN_BYTES, min(CHECKPOINT_BYTES, max_bytes // 4, room // WAL_SHARE))
    fits = max(0, (room - wal_limit) // DISK_FACTOR)
    queue = min(max_bytes, max(fits, MIN_BUDGET))
    return queue, max(0, min(archive_wanted, fits - queue)), wal_limit


def _fitting(rows: list[Queued], budget: int) -> int:
    """How many of ``rows``, from the first, fit in ``budget`` payload bytes."""
    used = 0
    for count, row in enumerate(rows):
        used += len(row.payload)
        if used > budget:
            return count
    return len(rows)


def _covering(rows: list[Queued], excess: int) -> int:
    """How many of ``rows``, from the first, free at least ``excess`` payload bytes."""
    freed = 0
    for count, row in enumerate(rows):
        if freed >= excess:
            return count
        freed += len(row.payload)
    return len(rows)


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on error."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
                return
            except sqlite3.Error:
                self._rollback()
                raise
        self._rollback()

    def _rollback(self) -> None:
        if self._db.in_transaction:  # SQLite may have rolled back by itself (a full disk)
            self._db.execute("ROLLBACK")
