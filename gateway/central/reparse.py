"""``pbxgw reparse``'s work: a source's stored records read again with a fixed profile.

A source read with the wrong profile, at the wrong baud rate, or after a PBX upgrade
that its profile did not know stores its records as ``unparsed``, raw bytes kept. Once
the profile is fixed, each stored record (the unparsed ones, or every one) is parsed
again as the gateway would have: the rows that now read become calls in place (their key
unchanged, so a replay of the same event stays one row), each row's previous form is
kept in ``reparsed`` (auditable: what it was, when and with which profile it changed),
and the calls of the spans touched are assembled again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import msgpack
import orjson

from gateway.central import callstore
from gateway.central.database import Database
from gateway.central.ingest import EVENT_COLUMNS, Rows
from gateway.smdr.framer import Record
from gateway.smdr.parser import RecordParser
from gateway.smdr.profile import PbxProfile
from gateway.wire.events import CallEvent, to_wire
from gateway.wire import topics

#: Rows read and rewritten in one transaction.
PIECE = 2000
#: The columns a reparse rewrites (the key, the receipt and ``hist`` stay).
REWRITTEN = ("kind", "profile", "start", "ring", "dur", "dir", "ext", "trunk", "caller", "called", "acct", "disp",
             "callid", "raw", "reason", "x", "unsynced")
_KEY = ("gw", "src", "stream", "seq")


@dataclass
class Outcome:
    """What a reparse did."""

    read: int = 0  # rows parsed again
    now_calls: int = 0  # rows that were unparsed and now are calls
    changed_calls: int = 0  # calls whose fields changed (with every row)
    still_unread: int = 0
    reasons: dict[str, int] = field(default_factory=dict)  # why those still do not read


def reparse(db: Database, gw: str, src: str, profile: PbxProfile, zone: ZoneInfo, since_ms: int | None,
            every: bool, now_ms: int, progress: Callable[[str], None] = lambda text: None) -> Outcome:
    """Parse again the stored records of ``gw``/``src`` (the unparsed ones, or ``every``
    one) received since ``since_ms``, with ``profile``; then assemble the calls touched."""
    out = Outcome()
    site = None
    after = (gw, src, "", -1)
    while True:
        with db.transaction() as cur:
            rows = _piece(db, cur, after, since_ms, every)
            if not rows:
                break
            after = tuple(rows[-1][c] for c in _KEY)
            site = rows[0]["site"]
            spans: list[int] = []
            for row in rows:
                changed = _again(db, cur, row, profile, zone, now_ms, out)
                if changed is not None:
                    spans += [s for s in (row["start"] if row["kind"] == "call" else None, changed) if s is not None]
            if spans:
                _mark(db, cur, gw, src, site, min(spans), max(spans))
        progress(f"reparse: {out.read} records read again, {out.now_calls} now calls")
    assembly = callstore.Pass(db)
    while not assembly.over:
        assembly.piece()
        progress("reparse: assembling the calls again")
    return out


def _piece(db: Database, cur, after: tuple, since_ms: int | None, every: bool) -> list[dict]:
    kinds = "kind IN ('unparsed', 'call')" if every else "kind = 'unparsed'"
    since = "" if since_ms is None else " AND rx >= ?"
    cur.execute(db._sql(f"SELECT {', '.join(EVENT_COLUMNS)} FROM events WHERE gw = ? AND src = ? "
                        f"AND (stream > ? OR (stream = ? AND seq > ?)) AND {kinds}{since} "
                        f"ORDER BY stream, seq LIMIT {PIECE}"),
                (after[0], after[1], after[2], after[2], after[3], *(() if since_ms is None else (since_ms,))))
    return [dict(zip(EVENT_COLUMNS, r)) for r in cur.fetchall()]


def _again(db: Database, cur, row: dict, profile: PbxProfile, zone: ZoneInfo, now_ms: int,
           out: Outcome) -> int | None:
    """Parse one row again; rewrite it if it reads otherwise now. The new call's start, or
    None when nothing changed."""
    out.read += 1
    parser = RecordParser(profile, zone, row["gw"], row["src"], row["stream"] or None)
    parser.synchronized = not row["unsynced"]
    event = parser.parse(Record(row["raw"].encode("utf-8")), row["rx"], row["seq"])
    if not isinstance(event, CallEvent):
        out.still_unread += 1
        out.reasons[event.reason] = out.reasons.get(event.reason, 0) + 1
        return None
    rows = Rows()
    rows.add(topics.topic(row["site"], row["gw"], topics.KIND_TOPICS[event.KIND]), msgpack.packb([to_wire(event)]),
             row["received_at"])
    if not rows.events:  # (what the collector would refuse: kept as it was)
        out.still_unread += 1
        reason = rows.rejected[0][2] if rows.rejected else "refused"
        out.reasons[reason] = out.reasons.get(reason, 0) + 1
        return None
    new = dict(zip(EVENT_COLUMNS, rows.events[0]))
    old = {c: row[c] for c in REWRITTEN}
    if all(_same(old[c], new[c]) for c in REWRITTEN):
        return None
    cur.execute(db._sql("INSERT INTO reparsed (gw, src, stream, seq, at, profile, was) VALUES (?, ?, ?, ?, ?, ?, ?)"),
                (*(row[c] for c in _KEY), now_ms, profile.name,
                 orjson.dumps({c: _plain(row[c]) for c in EVENT_COLUMNS}).decode()))
    cur.execute(db._sql(f"UPDATE events SET {', '.join(f'{c} = ?' for c in REWRITTEN)} "
                        "WHERE gw = ? AND src = ? AND stream = ? AND seq = ?"),
                (*(new[c] for c in REWRITTEN), *(row[c] for c in _KEY)))
    if row["kind"] == "unparsed":
        out.now_calls += 1
    else:
        out.changed_calls += 1
    return new["start"]


def _same(a, b) -> bool:
    return _plain(a) == _plain(b)


def _plain(value):
    """A column as JSON would hold it (text JSON from SQLite, decoded from PostgreSQL)."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return bool(value) if isinstance(value, bool) else value


def _mark(db: Database, cur, gw: str, src: str, site: str, low: int, high: int) -> None:
    """The span to assemble again (as a batch marks it)."""
    cur.execute(db._sql(
        "INSERT INTO calls_pending (gw, src, site, low, high) VALUES (?, ?, ?, ?, ?) "
        f"ON CONFLICT (gw, src) DO UPDATE SET low = {db._least}(calls_pending.low, excluded.low), "
        f"high = {db._greatest}(calls_pending.high, excluded.high)"), (gw, src, site, low, high))


def sources_of(db: Database, site: str, src: str) -> list[str]:
    """The gateways of ``site`` that have a source ``src`` stored."""
    return [gw for (gw,) in db.fetch("SELECT DISTINCT gw FROM sources WHERE site = ? AND src = ? AND kind = 'pbx' "
                                     "ORDER BY gw", (site, src))]


def zone_of(db: Database, gw: str, src: str) -> str | None:
    """The zone the gateway's status gives the source."""
    for (sources,) in db.fetch("SELECT sources FROM gateways WHERE gw = ? AND sources IS NOT NULL", (gw,)):
        for s in orjson.loads(sources) if isinstance(sources, str) else sources:
            if isinstance(s, dict) and s.get("name") == src and isinstance(s.get("timezone"), str):
                return s["timezone"]
    return None
