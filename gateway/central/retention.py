"""The ``[privacy]`` schedule applied to the database (:mod:`gateway.central.privacy` says
what is hidden and how): what is due is hidden, a few thousand rows a transaction, and
nothing else is touched; nothing is hidden twice."""

from __future__ import annotations

from gateway.central.database import Database
from gateway.central.privacy import PrivacySettings

#: How often the collector applies the schedule.
EVERY_S = 3600.0
#: Rows changed in one transaction.
CHUNK = 2000


def apply(db: Database, settings: PrivacySettings, now_ms: int) -> tuple[int, int, int]:
    """Mask what is due and nothing else: ``(records whose numbers were masked, calls
    whose numbers were masked, records whose text was emptied)``."""
    records = calls = emptied = 0
    if settings.numbers_after:
        cutoff = now_ms - int(settings.numbers_after * 1000)
        while changed := _numbers_of_records(db, settings, cutoff):
            records += changed
        while changed := _numbers_of_calls(db, settings, cutoff // 1000):
            calls += changed
    if settings.raw_after:
        cutoff = now_ms - int(settings.raw_after * 1000)
        while changed := _empty_raw(db, cutoff):
            emptied += changed
    return records, calls, emptied


def _numbers_of_records(db: Database, settings: PrivacySettings, cutoff_ms: int) -> int:
    with db.transaction() as cur:
        cur.execute(db._sql(
            "SELECT gw, src, stream, seq, caller, called, raw FROM events WHERE rx < ? AND ((caller <> '' AND caller "
            f"NOT LIKE ?) OR (called <> '' AND called NOT LIKE ?)) LIMIT {CHUNK}" + db.for_update),
            (cutoff_ms, settings.mark, settings.mark))
        rows = cur.fetchall()
        updates = []
        for gw, src, stream, seq, caller, called, raw in rows:
            new_caller, new_called = settings.hidden(caller), settings.hidden(called)
            for old, new in ((caller, new_caller), (called, new_called)):
                if old and new != old:
                    raw = raw.replace(old, new)
            updates.append((new_caller, new_called, raw, gw, src, stream, seq))
        cur.executemany(db._sql("UPDATE events SET caller = ?, called = ?, raw = ? WHERE gw = ? AND src = ? "
                                "AND stream = ? AND seq = ?"), updates)
    return len(rows)


def _numbers_of_calls(db: Database, settings: PrivacySettings, cutoff_s: int) -> int:
    with db.transaction() as cur:
        cur.execute(db._sql(
            "SELECT gw, src, key, caller, called FROM calls WHERE end_at < ? AND ((caller <> '' AND caller NOT LIKE ?) "
            f"OR (called <> '' AND called NOT LIKE ?)) LIMIT {CHUNK}" + db.for_update),
            (cutoff_s, settings.mark, settings.mark))
        rows = cur.fetchall()
        cur.executemany(db._sql("UPDATE calls SET caller = ?, called = ? WHERE gw = ? AND src = ? AND key = ?"),
                        [(settings.hidden(caller), settings.hidden(called), gw, src, key)
                         for gw, src, key, caller, called in rows])
    return len(rows)


def _empty_raw(db: Database, cutoff_ms: int) -> int:
    with db.transaction() as cur:
        cur.execute(db._sql(f"SELECT gw, src, stream, seq FROM events WHERE rx < ? AND raw <> '' LIMIT {CHUNK}"
                            + db.for_update), (cutoff_ms,))
        rows = cur.fetchall()
        cur.executemany(db._sql("UPDATE events SET raw = '' WHERE gw = ? AND src = ? AND stream = ? AND seq = ?"),
                        rows)
    return len(rows)
