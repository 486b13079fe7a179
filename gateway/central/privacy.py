"""Personal data kept only as long as the centre decides (``[privacy]``, docs/central.md).

Callers' numbers are personal data (Taiwan's PDPA, the GDPR), and so are the numbers they
called and the record text that prints both. After ``numbers_after`` the collector masks a
stored call record's ``caller`` and ``called`` (``•`` and the last ``keep_digits`` digits: a
mark no PBX prints, so a number masked already is known)
or replaces them with a keyed hash (``h:`` and an HMAC-SHA256: the same number gives the
same hash, so repeat callers still show, and no one without the key can reverse it), in
its record text too, and in the calls assembled from it. After ``raw_after`` it empties the
record text (``pbxgw reparse`` can then read those records no more). Both run at the
collector's start and every hour after, a few thousand rows a transaction. Sans-I/O here
but :func:`apply`, which takes the database.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # (the settings read this module, and the database reads the settings)
    from gateway.central.database import Database

#: How often the collector applies the schedule.
EVERY_S = 3600.0
#: Rows changed in one transaction.
CHUNK = 2000
#: What a masked number begins with (then its last digits), and a hashed one.
MASK, HASHED = "•", "h:"


@dataclass(frozen=True, slots=True)
class PrivacySettings:
    """``[privacy]``: 0 seconds keeps the data whole for good."""

    numbers_after: float = 0.0
    numbers: str = "mask"  # or "hash"
    keep_digits: int = 4
    hash_key: bytes = b""  # (read from hash_key_file)
    raw_after: float = 0.0

    @property
    def active(self) -> bool:
        return bool(self.numbers_after or self.raw_after)

    def hidden(self, number: str | None) -> str | None:
        """``number`` as it is kept after ``numbers_after`` (a number so kept already stays)."""
        if not number or self.done(number):
            return number
        if self.numbers == "hash":
            return HASHED + hmac.new(self.hash_key, number.encode(), hashlib.sha256).hexdigest()[:24]
        return MASK + number[-self.keep_digits:] if self.keep_digits else MASK

    def done(self, number: str) -> bool:
        return number.startswith(HASHED if self.numbers == "hash" else MASK)

    @property
    def mark(self) -> str:
        """A SQL LIKE pattern for a number kept so already."""
        return (HASHED if self.numbers == "hash" else MASK) + "%"

    def described(self) -> str:
        """What a report's definitions say of it."""
        numbers = ("kept whole" if not self.numbers_after else
                   f"kept whole for {_days(self.numbers_after)}, then " +
                   (f"masked to their last {self.keep_digits} digits" if self.numbers == "mask"
                    else "replaced with a keyed hash (the same number, the same hash)"))
        raw = "kept" if not self.raw_after else f"emptied after {_days(self.raw_after)}"
        return f"callers' and called numbers {numbers}; the record text {raw}"


def _days(seconds: float) -> str:
    return f"{seconds / 86400:g} days" if seconds >= 86400 else f"{seconds:g} s"


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
