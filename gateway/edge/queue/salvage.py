"""Reading what is left of a damaged queue: SQLite's WAL read frame by frame (where it is
damaged, where its whole frames end, its checksums recomputed so that SQLite reads the rest)
and a damaged database read table by table, row by row. The store sets the file aside and
starts a new one with what this gives back (:meth:`gateway.edge.queue.store.Store._salvage`)."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import sys
import time
from pathlib import Path

from gateway.edge.queue import marks
from gateway.edge.queue.row import Queued, payload_stream
from gateway.edge.queue.schema import CONFIRMED, DB_NAME, SEGMENT_GLOB, segment_number

log = logging.getLogger("pbxgw.store")


def wal_problem(path: Path, synced: tuple[bytes, int] | None) -> str | None:
    """Why the WAL of the queue at ``path`` is damaged, or None. SQLite reads a WAL up to
    its first frame with a bad checksum and quietly drops the rest; a bad frame *followed
    by* whole ones of the same WAL is damage, not a torn last write, and so is one within
    what the last sync made durable (``synced``: the WAL's salt and size then, from the
    marks). A torn last write is cut off here."""
    wal = Path(f"{path}-wal")
    try:
        data = wal.read_bytes()
    except FileNotFoundError:
        return None
    bad = wal_damage(data, synced)
    if bad is not None:
        return f"its WAL is damaged at byte {bad}"
    if 32 <= (end := wal_frames(data)[2]) < len(data):
        # A torn last write, or whole frames of a transaction that never committed:
        # SQLite ignores them and writes over them. Cut off, so that frames left past
        # what it writes next never read as damage later.
        os.truncate(wal, end)
    return None


def set_aside(path: Path, exc: Exception) -> Path:
    """Move a damaged queue's files aside (kept, under a name no other recovery takes), for
    :func:`read_back`; a new queue starts in their place, in a new stream."""
    aside = path.with_name(f"{DB_NAME}.damaged-{int(time.time())}-{os.getpid()}")
    log.error("queue %s is damaged (%s); moved to %s, starting a new one with what can be read of it",
              path, exc, aside.name)
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{path}{suffix}").exists():
            os.replace(f"{path}{suffix}", f"{aside}{suffix}")
    return aside


def read_back(aside: Path, work: Path) -> "Salvage":
    """What SQLite can still read of the queue set aside at ``aside``, read from a working
    copy at ``work`` (removed after) whose WAL checksums are recomputed, so that frames
    after a damaged one are read too.

    :raises OSError: the copy cannot be made (a full disk).
    :raises sqlite3.Error: the copy cannot be opened at all.
    """
    try:
        if aside.exists():
            shutil.copyfile(aside, work)
        if (wal := Path(f"{aside}-wal")).exists():
            Path(f"{work}-wal").write_bytes(repaired_wal(wal.read_bytes()))
        old = sqlite3.connect(work, isolation_level=None)
        try:
            return Salvage(old)
        finally:
            old.close()
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{work}{suffix}").unlink(missing_ok=True)


def wal_damage(data: bytes, synced: tuple[bytes, int] | None = None) -> int | None:
    """Where a SQLite WAL is damaged, or None: a frame whose checksum fails while a later
    frame of the same WAL is whole, or the end of its whole frames when that is before
    where they ended at its last fsync (``synced``: its salt and that offset)."""
    bad, end, _ = wal_frames(data)
    if bad is None and synced is not None and data[16:24] == synced[0] and end < synced[1]:
        return end  # frames it had made durable are gone: cut or overwritten, not torn
    return bad


def wal_frames(data: bytes) -> tuple[int | None, int, int]:
    """A SQLite WAL's damage and extent: the offset of a frame whose checksum fails while a
    later frame of the same WAL is whole (or None), where its whole frames end, and where
    its last whole commit frame ends (0, 0: no valid header). The format and its checksum
    are SQLite's (https://www.sqlite.org/fileformat2.html#walformat)."""
    if len(data) < 32 or int.from_bytes(data[:4], "big") not in (0x377F0682, 0x377F0683):
        return None, 0, 0
    order = "big" if data[3] == 0x83 else "little"
    page = int.from_bytes(data[8:12], "big")
    salts = data[16:24]
    s0, s1 = _wal_checksum(data[:24], 0, 0, order)
    if (s0, s1) != (int.from_bytes(data[24:28], "big"), int.from_bytes(data[28:32], "big")):
        return None, 0, 0  # a header that never got written whole: nothing in it counts
    frame, first_bad = 32 + 24 + page, None
    at = committed = 32
    while at + frame - 32 <= len(data):
        head = data[at:at + 24]
        if head[8:16] != salts:
            break  # frames of an earlier WAL generation: the end of this one
        stored = (int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big"))
        whole = _wal_checksum(head[:8] + data[at + 24:at + 24 + page], s0, s1, order) == stored
        if whole and first_bad is not None:
            return first_bad, first_bad, committed
        if not whole and first_bad is None:
            first_bad = at
        s0, s1 = stored  # each frame stores the running checksum: the next one goes on from it
        at += 24 + page
        if whole and first_bad is None and int.from_bytes(head[4:8], "big"):
            committed = at  # (a commit frame says the database's size after it)
    return None, at if first_bad is None else first_bad, committed


def wal_state(path: Path) -> tuple[bytes, int] | None:
    """A WAL's salt (which generation it is) and size, or None when it is empty or missing."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(32)
            size = os.fstat(fh.fileno()).st_size
    except OSError:
        return None
    return (head[16:24], size) if len(head) == 32 else None


def _wal_checksum(data: bytes, s0: int, s1: int, order: str) -> tuple[int, int]:
    if (order == "big") != (sys.byteorder == "big"):
        swapped = bytearray(data)
        swapped[0::4], swapped[1::4], swapped[2::4], swapped[3::4] = data[3::4], data[2::4], data[1::4], data[0::4]
        data = bytes(swapped)
    words = memoryview(data).cast("I")
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1


def repaired_wal(data: bytes) -> bytes:
    """A WAL whose frames all carry checksums recomputed from their contents, so that SQLite
    reads every frame of the current WAL, the damaged one included (for salvage only)."""
    if wal_damage(data) is None:
        return data
    order = "big" if data[3] == 0x83 else "little"
    page = int.from_bytes(data[8:12], "big")
    out = bytearray(data)
    s0, s1 = _wal_checksum(data[:24], 0, 0, order)
    at = 32
    while at + 24 + page <= len(data) and data[at + 8:at + 16] == data[16:24]:
        s0, s1 = _wal_checksum(data[at:at + 8] + data[at + 24:at + 24 + page], s0, s1, order)
        out[at + 16:at + 24] = s0.to_bytes(4, "big") + s1.to_bytes(4, "big")
        at += 24 + page
    return bytes(out)


class Salvage:
    """What can be read of a damaged queue, table by table, row by row; a part that
    raises is skipped and remembered, so that its events are reported as lost."""

    def __init__(self, old: sqlite3.Connection):
        self.failures = 0
        self.meta = dict(self._read(old, "SELECT key, value FROM meta"))
        stream = self.meta.get("stream")
        self.stream = f"{stream:016x}" if stream else ""
        sources = self._read(old, "SELECT name, next_seq, offset, identity FROM sources")
        confirmed = next((row[1] for row in sources if row[0] == CONFIRMED), 1) - 1
        self.sources = [row for row in sources if row[0] != CONFIRMED]
        self.lost = self._read(old, "SELECT * FROM lost")
        self.rows: list[Queued] = []  # as queued (a damaged file may give any type in any column)
        self.holes: list[tuple] = []  # (src, stream, first, last) not readable
        last: dict[str, tuple[str, int]] = {}  # src -> (stream, seq) of its last event read
        broken = False  # a part failed since: the next event of each source says where it resumed
        tables = self._read(old, "SELECT name FROM sqlite_master WHERE name GLOB ?", (SEGMENT_GLOB,))
        for (table,) in sorted(tables, key=lambda t: segment_number(t[0])):
            for row in self._read(old, f"SELECT src, seq, kind, rx, payload FROM {table} WHERE id > ? ORDER BY id",
                                  (confirmed,)):
                row = Queued(*row)
                src, seq = row.src, row.seq
                stream = payload_stream(row.payload)
                if seq is not None:
                    if broken and src in last and last[src][0] == stream and seq > last[src][1] + 1:
                        self.holes.append((src, stream, last[src][1] + 1, seq - 1))
                    last[src] = (stream, seq)
                self.rows.append(row)
            broken = broken or self._failed
        if broken:  # past the last event read of a source: up to its next seq, in the old stream
            for name, next_seq, _, _ in self.sources:
                stream, seen = last.get(name, (self.stream, None))
                if seen is not None and stream == self.stream and next_seq > seen + 1:
                    self.holes.append((name, stream, seen + 1, next_seq - 1))

    def unreadable(self, previous: marks.Marks) -> list[tuple[str, str, int, int]]:
        """The ranges ``(src, stream, first, last)`` lost with the damage: every ``seq`` the
        ``previous`` marks (raised to what the damaged queue still says of its own stream)
        say was committed and not delivered, that was not read; for streams no mark names,
        the holes between the events read."""
        bounds = {stream: dict(sources) for stream, sources in previous.streams.items()}
        marks.raise_to(bounds.get(self.stream, {}), {name: next_seq - 1 for name, next_seq, _, _ in self.sources})
        kept: dict[tuple[str, str], list[int]] = {}
        for src, seq, _, _, payload in self.rows:
            if seq is not None:
                kept.setdefault((src, payload_stream(payload)), []).append(seq)
        holes = marks.unaccounted(bounds, kept, {}, reach=2)
        return holes + [h for h in self.holes if h[0] not in bounds.get(h[1], {})]

    def _read(self, db: sqlite3.Connection, sql: str, args: tuple = ()) -> list[tuple]:
        """The rows ``sql`` gives until it fails (then ``_failed`` is set)."""
        rows, self._failed = [], False
        try:
            for row in db.execute(sql, args):
                rows.append(row)
        except sqlite3.Error:
            self._failed = True
            self.failures += 1
        return rows
