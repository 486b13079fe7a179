"""The queue on disk, read only: what ``pbxgw status`` (while no gateway runs), ``pbxgw
dead`` and ``pbxgw export`` read, whether or not the gateway is writing it meanwhile."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gateway.edge.queue.schema import CONFIRMED, DB_NAME, SEGMENT_GLOB, segment_table
from gateway.edge.queue.store import ArchiveStats


@dataclass(frozen=True, slots=True)
class OnDisk:
    """What the queue holds: its counters (``meta``), each source's next ``seq``, the events
    not yet confirmed (how many, their bytes, the oldest's receive time) and the archive's."""

    meta: dict[str, int]
    sources: list[tuple[str, int]]
    depth: int
    bytes: int
    oldest_rx: int | None
    kept: ArchiveStats


@contextmanager
def _read_only(state_dir: Path) -> Iterator[sqlite3.Connection]:
    """The queue database, opened read only (the gateway may be writing it).

    :raises OSError: it cannot be read (none there, or not by this user).
    """
    path = state_dir / DB_NAME
    if not path.exists():
        raise FileNotFoundError(f"no queue in {state_dir}")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            yield db
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise OSError(f"cannot read {path}: {exc}") from None


def dead_letters(state_dir: Path) -> list[tuple]:
    """The queue's dead letters, read only: ``(id, kind, reason, at_ms, payload)``.

    :raises OSError: the queue cannot be read.
    """
    with _read_only(state_dir) as db:
        return db.execute("SELECT id, kind, reason, at, payload FROM dead ORDER BY id").fetchall()


def held_events(state_dir: Path, src: str, seqs: tuple[int, int] | None = None,
                received: tuple[int | None, int | None] = (None, None)) -> Iterator[bytes]:
    """What the queue and the archive hold of source ``src``, read only, as one snapshot
    (the gateway may run): each event's payload, oldest first; only ``seq`` within
    ``seqs`` and receive time (ms) within ``received``, where given (for ``pbxgw export``).

    :raises OSError: the queue cannot be read.
    :raises LookupError: the queue never had a source of that name (its names said).
    """
    with _read_only(state_dir) as db:
        db.execute("BEGIN")  # one snapshot: segments the gateway drops meanwhile stay readable
        names = [n for (n,) in db.execute("SELECT name FROM sources WHERE name NOT LIKE '*%' ORDER BY name")]
        names += sorted({s for (t,) in db.execute("SELECT name FROM sqlite_master WHERE name GLOB ?", (SEGMENT_GLOB,))
                         for (s,) in db.execute(f"SELECT DISTINCT src FROM {t} WHERE seq IS NOT NULL")} - set(names))
        if src not in names:
            raise LookupError(f"no source named {src!r} in this queue; it has {', '.join(names) or 'none'}")
        low, high = seqs or (None, None)
        since, until = received
        for (n,) in db.execute("SELECT n FROM segments ORDER BY n").fetchall():
            for (payload,) in db.execute(
                    f"SELECT payload FROM {segment_table(n)} WHERE src = ? AND seq IS NOT NULL AND seq >= coalesce(?, seq) "
                    "AND seq <= coalesce(?, seq) AND rx >= coalesce(?, rx) AND rx <= coalesce(?, rx) ORDER BY id",
                    (src, low, high, since, until)):
                yield payload


def on_disk(state_dir: Path) -> OnDisk:
    """The queue's state as its file holds it.

    :raises OSError: the queue cannot be read.
    """
    with _read_only(state_dir) as db:
        meta = dict(db.execute("SELECT key, value FROM meta"))
        sources = db.execute("SELECT name, next_seq FROM sources WHERE name NOT LIKE '*%' ORDER BY name").fetchall()
        confirmed = (db.execute("SELECT next_seq FROM sources WHERE name = ?", (CONFIRMED,)).fetchone() or (1,))[0] - 1
        depth = size = 0
        oldest = None
        kept = ArchiveStats(0, 0, 0, None, None)
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE name GLOB ?", (SEGMENT_GLOB,)).fetchall():
            count, length, first = db.execute(f"SELECT COUNT(*), COALESCE(SUM(length(payload)), 0), MIN(rx) "
                                              f"FROM {table} WHERE id > ?", (confirmed,)).fetchone()
            depth, size = depth + count, size + length
            oldest = first if oldest is None or (first is not None and first < oldest) else oldest
            count, length, first, last = db.execute(f"SELECT COUNT(*), COALESCE(SUM(length(payload)), 0), MIN(rx), "
                                                    f"MAX(rx) FROM {table} WHERE id <= ?", (confirmed,)).fetchone()
            if count:
                kept = ArchiveStats(kept.events + count, kept.bytes + length, 0, min(first, kept.first_rx or first),
                                    max(last, kept.last_rx or last))
    return OnDisk(meta, sources, depth, size, oldest, kept)
