"""The collector's storage: one small interface, two engines (SQLite, PostgreSQL).

Everything above this module speaks one SQL (``?`` placeholders, ``ON CONFLICT``,
window functions), which both engines read; what differs is here: how a connection is
made and kept, how a batch's new rows are inserted (SQLite, one writer: the stored keys
looked up, the new rows given to ``executemany``; PostgreSQL: ``COPY`` straight into the
table when no key can be stored already, else into a staging table, then ``INSERT ...
ON CONFLICT DO NOTHING RETURNING``), the JSON and binary column types, and ``max``/``min``
of two values. The schema is versioned: :data:`MIGRATIONS` are applied in order at
start, each once (``pbxgw collect --migrate-only`` applies them and exits).

A batch is written in one transaction and only then acknowledged (see
:mod:`gateway.central.collector`): every queued kind has a unique key (an event's
``(gw, src, stream, seq)``), inserted with ``ON CONFLICT DO NOTHING``, so a message
delivered twice, or replayed, is stored once.
"""

from __future__ import annotations

import operator
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from gateway.central.ingest import (ALARM_COLUMNS, EVENT_COLUMNS, GAP_COLUMNS, HEADSET_COLUMNS, REJECTED_COLUMNS, Rows,
                                    json_text)
from gateway.central.settings import database_kind
from gateway.errors import GatewayError
from gateway.wire import topics
from gateway.wire.events import STREAM_ID


class Unavailable(GatewayError):
    """The database cannot be reached or written now (down, restarting, locked, disk
    full): the same batch is tried again later."""

    exit_status = 69  # EX_UNAVAILABLE


class Refused(GatewayError):
    """The database refused what a batch holds: written message by message, the one it
    refuses goes to ``rejected``."""


#: A migration's last steps when what a call holds changed: every call is assembled again.
_ASSEMBLE_ALL_AGAIN = [
    "DELETE FROM calls",
    "DELETE FROM calls_pending",
    """INSERT INTO calls_pending (gw, src, site, low, high)
        SELECT gw, src, MIN(site), MIN(start), MAX(start) FROM events
        WHERE kind = 'call' AND start IS NOT NULL GROUP BY gw, src""",
]


#: A call's quarter-hour (``kpi.PART_SLOT``), as Python floors it: SQL's % keeps the sign
#: of a start before 1970. Given to the migrations as ``{slot}``, and for a trigger's rows
#: as ``{old_slot}`` and ``{new_slot}``.
_QUARTER_HOUR = "{0}start - ({0}start % 900 + 900) % 900"
_SLOTS = {"slot": _QUARTER_HOUR.format(""), "old_slot": _QUARTER_HOUR.format("OLD."),
          "new_slot": _QUARTER_HOUR.format("NEW.")}

#: The schema, version by version; ``{json}``, ``{blob}``, ``{bool}``, ``{serial}`` are
#: each engine's types. Never edit a version once released: add one.
MIGRATIONS: list[tuple[int, str, list[str | dict[str, str]]]] = [
    (1, "events, headset events, gaps, alarms, gateways, boots, sources, rejected", [
        """CREATE TABLE events (
            gw TEXT NOT NULL, src TEXT NOT NULL, stream TEXT NOT NULL, seq BIGINT NOT NULL, kind TEXT NOT NULL,
            site TEXT NOT NULL, rx BIGINT NOT NULL, profile TEXT NOT NULL, start BIGINT, ring BIGINT, dur BIGINT,
            dir TEXT, ext TEXT, trunk TEXT, caller TEXT, called TEXT, acct TEXT, disp TEXT, callid TEXT,
            raw TEXT NOT NULL, reason TEXT, x {json}, hist {bool} NOT NULL, unsynced {bool} NOT NULL,
            received_at BIGINT NOT NULL,
            PRIMARY KEY (gw, src, stream, seq))""",
        "CREATE INDEX events_by_rx ON events (gw, src, rx)",
        "CREATE INDEX events_by_start ON events (site, start)",
        """CREATE TABLE headset_events (
            gw TEXT NOT NULL, src TEXT NOT NULL, stream TEXT NOT NULL, seq BIGINT NOT NULL, site TEXT NOT NULL,
            ts BIGINT NOT NULL, vid BIGINT NOT NULL, pid BIGINT NOT NULL, model TEXT, serial TEXT, agent TEXT,
            ext TEXT, ev TEXT NOT NULL, detail TEXT, hist {bool} NOT NULL, unsynced {bool} NOT NULL,
            received_at BIGINT NOT NULL,
            PRIMARY KEY (gw, src, stream, seq))""",
        """CREATE TABLE gaps (
            gw TEXT NOT NULL, src TEXT NOT NULL, stream TEXT NOT NULL, first BIGINT NOT NULL, last BIGINT NOT NULL,
            count BIGINT NOT NULL, rx BIGINT NOT NULL, first_rx BIGINT, last_rx BIGINT, reason TEXT NOT NULL,
            site TEXT NOT NULL, received_at BIGINT NOT NULL,
            PRIMARY KEY (gw, src, stream, first, last))""",
        """CREATE TABLE alarms (
            gw TEXT NOT NULL, src TEXT NOT NULL, rx BIGINT NOT NULL, alarm TEXT NOT NULL, state TEXT NOT NULL,
            last_rx BIGINT, quiet_s DOUBLE PRECISION, skew_s DOUBLE PRECISION, site TEXT NOT NULL,
            received_at BIGINT NOT NULL,
            PRIMARY KEY (gw, src, alarm, state, rx))""",
        """CREATE TABLE gateways (
            gw TEXT PRIMARY KEY, site TEXT NOT NULL, state TEXT, since BIGINT, boot BIGINT, version TEXT,
            status_rx BIGINT, sources {json}, metrics {json}, metrics_rx BIGINT, last_seen BIGINT NOT NULL)""",
        """CREATE TABLE boots (
            gw TEXT NOT NULL, boot BIGINT NOT NULL, rx BIGINT NOT NULL, PRIMARY KEY (gw, boot))""",
        """CREATE TABLE sources (
            gw TEXT NOT NULL, src TEXT NOT NULL, stream TEXT NOT NULL, kind TEXT NOT NULL, site TEXT NOT NULL,
            first_seq BIGINT NOT NULL, high_seq BIGINT NOT NULL, received BIGINT NOT NULL, last_rx BIGINT NOT NULL,
            PRIMARY KEY (gw, src, stream))""",
        """CREATE TABLE rejected (
            id {serial}, topic TEXT NOT NULL, payload {blob} NOT NULL, reason TEXT NOT NULL,
            received_at BIGINT NOT NULL)""",
    ]),
    (2, "calls assembled from records; the sources whose calls are to be assembled again", [
        """CREATE TABLE calls (
            gw TEXT NOT NULL, src TEXT NOT NULL, key TEXT NOT NULL, site TEXT NOT NULL, rules TEXT NOT NULL,
            start BIGINT NOT NULL, last_start BIGINT NOT NULL, end_at BIGINT NOT NULL, dir TEXT, trunk TEXT,
            caller TEXT, called TEXT, first_ext TEXT, final_ext TEXT, ring BIGINT, wait BIGINT,
            talk BIGINT NOT NULL, hold BIGINT, transfers BIGINT NOT NULL, outcome TEXT NOT NULL,
            orphan {bool} NOT NULL, complete {bool} NOT NULL, records {json} NOT NULL,
            PRIMARY KEY (gw, src, key))""",
        "CREATE INDEX calls_by_source ON calls (gw, src, start)",
        "CREATE INDEX calls_by_site ON calls (site, start)",
        """CREATE TABLE calls_pending (
            gw TEXT NOT NULL, src TEXT NOT NULL, site TEXT NOT NULL, low BIGINT NOT NULL, high BIGINT NOT NULL,
            PRIMARY KEY (gw, src))""",
    ]),
    (3, "calls: duplicate records folded, each leg's extension and part; every call assembled again; "
        "the unparsed alarm's share; records parsed again (pbxgw reparse), as they were", [
        "ALTER TABLE alarms ADD COLUMN unparsed_share DOUBLE PRECISION",
        """CREATE TABLE reparsed (
            gw TEXT NOT NULL, src TEXT NOT NULL, stream TEXT NOT NULL, seq BIGINT NOT NULL, at BIGINT NOT NULL,
            profile TEXT NOT NULL, was {json} NOT NULL,
            PRIMARY KEY (gw, src, stream, seq, at))""",
        "ALTER TABLE calls ADD COLUMN folded BIGINT NOT NULL DEFAULT 0",
        "ALTER TABLE calls ADD COLUMN legs {json} NOT NULL DEFAULT '[]'",
        *_ASSEMBLE_ALL_AGAIN,
    ]),
    (4, "calls: the hunt group or queue each was offered to; every call assembled again", [
        "ALTER TABLE calls ADD COLUMN hunt_group TEXT",
        *_ASSEMBLE_ALL_AGAIN,
    ]),
    (5, "gateways: the latest status and metrics by their arrival, not the sender's clock", [
        # (status_rx and metrics_rx now say when they arrived: a sender's time in the future
        # no longer holds the latest in place)
        "UPDATE gateways SET status_rx = last_seen WHERE status_rx IS NOT NULL",
        "UPDATE gateways SET metrics_rx = last_seen WHERE metrics_rx IS NOT NULL",
        # (what each gateway had kept in rejected, and not, hour by hour: see REJECTED_PER_HOUR)
        """CREATE TABLE rejected_counts (
            gw TEXT NOT NULL, hour BIGINT NOT NULL, kept BIGINT NOT NULL, kept_bytes BIGINT NOT NULL,
            dropped BIGINT NOT NULL, PRIMARY KEY (gw, hour))""",
        # (what a collector found wrong in how it is set up, for pbxgw fleet to say)
        "CREATE TABLE findings (name TEXT PRIMARY KEY, said TEXT NOT NULL, at BIGINT NOT NULL)",
    ]),
    (6, "summaries: each site's calls, a quarter-hour a part; the quarter-hours whose calls changed", [
        # (gateway.central.summary; {slot}, {old_slot}, {new_slot}: see _QUARTER_HOUR)
        "CREATE TABLE summaries (site TEXT NOT NULL, slot BIGINT NOT NULL, part {blob} NOT NULL, "
        "PRIMARY KEY (site, slot))",
        "CREATE TABLE summaries_due (site TEXT NOT NULL, slot BIGINT NOT NULL, PRIMARY KEY (site, slot))",
        {"sqlite": "CREATE TRIGGER calls_inserted AFTER INSERT ON calls BEGIN "
                   "INSERT OR IGNORE INTO summaries_due VALUES (NEW.site, {new_slot}); END",
         "postgresql": """CREATE FUNCTION pbxgw_summary_due() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP <> 'INSERT' THEN
                    INSERT INTO summaries_due VALUES (OLD.site, {old_slot}) ON CONFLICT DO NOTHING;
                END IF;
                IF TG_OP <> 'DELETE' THEN
                    INSERT INTO summaries_due VALUES (NEW.site, {new_slot}) ON CONFLICT DO NOTHING;
                END IF;
                RETURN NULL;
            END $$"""},
        {"sqlite": "CREATE TRIGGER calls_deleted AFTER DELETE ON calls BEGIN "
                   "INSERT OR IGNORE INTO summaries_due VALUES (OLD.site, {old_slot}); END",
         "postgresql": "CREATE TRIGGER calls_changed AFTER INSERT OR UPDATE OR DELETE ON calls "
                       "FOR EACH ROW EXECUTE FUNCTION pbxgw_summary_due()"},
        # (PostgreSQL's one trigger above covers updates too)
        {"sqlite": "CREATE TRIGGER calls_updated AFTER UPDATE ON calls BEGIN "
                   "INSERT OR IGNORE INTO summaries_due VALUES (OLD.site, {old_slot}); "
                   "INSERT OR IGNORE INTO summaries_due VALUES (NEW.site, {new_slot}); END"},
        "INSERT INTO summaries_due (site, slot) SELECT DISTINCT site, {slot} FROM calls",
    ]),
]

#: PostgreSQL roles (``pbxgw collect --migrate-only --roles``): one that writes (the
#: collector's login is made a member), one that reads (report readers'); the tables' owner
#: applies the migrations.
ROLES = ("pbxgw_writer", "pbxgw_reader")

#: What ``rejected`` keeps of one gateway's refused messages in an hour (by the topic's
#: gateway; "" for a topic that names none), at most: messages, and payload bytes. Past
#: either, a refused message is only counted (``rejected_counts.dropped``): stolen
#: credentials sending garbage fill no disk, and ``pbxgw fleet`` says how many were not kept.
REJECTED_PER_HOUR = 1000
REJECTED_BYTES_PER_HOUR = 8 * 1024 * 1024
HOUR_MS = 3_600_000


def assembly_tables(sources: Any) -> dict[str, Any]:
    """Profile -> the ``[assembly]`` table a status's sources announce for it."""
    return {s["profile"]: s["assembly"] for s in sources if isinstance(sources, list) and isinstance(s, dict)
            and isinstance(s.get("profile"), str) and "assembly" in s}


@dataclass(frozen=True, slots=True)
class Written:
    """What a batch changed: new rows, duplicates absorbed by the keys, rejected messages."""

    new: int
    duplicates: int
    rejected: int


class Database:
    """One connection to the collector's database (not shared between threads)."""

    kind: str
    _table_named: str  # a query: whether a table of this name exists
    _types: dict[str, str]
    engine: str  # "sqlite" or "postgresql": which of a migration's statements for each engine apply
    _greatest: str
    _least: str
    for_update: str  # what locks the rows a SELECT reads until the transaction ends

    @staticmethod
    def open(url: str, create: bool = True) -> "Database":
        """A connection to ``url`` (``sqlite:///PATH`` or ``postgresql://...``); a SQLite
        file is made unless ``create`` is false (a reader's: it says there is none).

        :raises Unavailable: it cannot be opened now.
        """
        return SqliteDatabase(url, create) if database_kind(url) == "sqlite" else PostgresDatabase(url)

    # -- what each engine provides ------------------------------------------------------

    def close(self) -> None:
        raise NotImplementedError

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A cursor inside one transaction, committed at the end (errors translated)."""
        raise NotImplementedError

    def _insert_new(self, cur: Any, table: str, columns: tuple[str, ...], rows: list[tuple],
                    time_column: str) -> dict[tuple, tuple]:
        """Insert the rows whose key ``(gw, src, stream, seq)`` is new (the first four
        columns); per ``(gw, src, stream)``, what was inserted: ``(site, first seq, highest
        seq, how many, latest time)``."""
        raise NotImplementedError

    def stream(self, sql: str, params: tuple | list = (), size: int = 5000) -> Iterator[tuple]:
        """Rows of a query, read ``size`` at a time (a month of calls is not held at once),
        without holding up the collector's writes."""
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        return sql

    # -- shared ---------------------------------------------------------------------------

    def fetch(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        """Rows of a query (``?`` placeholders)."""
        with self.transaction() as cur:
            cur.execute(self._sql(sql), params)
            return cur.fetchall()

    def migrate(self) -> list[int]:
        """Apply the migrations not applied yet, each in its own transaction; the versions
        applied now."""
        applied = []
        if not self.fetch(self._table_named, ("schema_migrations",)):  # (a writer may not create tables)
            with self.transaction() as cur:
                cur.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, "
                            "applied_at BIGINT NOT NULL, what TEXT NOT NULL)")
        for version, what, statements in MIGRATIONS:
            with self.transaction() as cur:
                self._lock_schema(cur)
                cur.execute(self._sql("SELECT 1 FROM schema_migrations WHERE version = ?"), (version,))
                if cur.fetchone():
                    continue
                for statement in statements:
                    if isinstance(statement, dict):  # (each engine's own: triggers)
                        if self.engine not in statement:
                            continue
                        statement = statement[self.engine]
                    cur.execute(statement.format(**self._types, **_SLOTS))
                cur.execute(self._sql("INSERT INTO schema_migrations VALUES (?, ?, ?)"),
                            (version, int(time.time() * 1000), what))
                applied.append(version)
        return applied

    def create_roles(self) -> list[str]:
        """Create the roles that separate who writes from who reads (PostgreSQL's), and
        grant them this schema's tables, now and to come; what was done.

        :raises Refused: this engine has no roles, or this user may not create them."""
        raise Refused("roles are PostgreSQL's: who may read a SQLite file is who may read the file")

    def may_write(self) -> bool:
        """Whether this user may write the calls (a report reader may only read)."""
        return True

    def _lock_schema(self, cur: Any) -> None:
        """Keep two collectors starting at once from applying one migration twice."""

    def schema_version(self) -> int:
        """The schema's version: 0 when no migration was ever applied."""
        if not self.fetch(self._table_named, ("schema_migrations",)):
            return 0
        return self.fetch("SELECT max(version) FROM schema_migrations")[0][0] or 0

    def write(self, rows: Rows) -> Written:
        """Store a batch in one transaction, committed when this returns.

        :raises Unavailable: nothing was written; try again later.
        :raises Refused: nothing was written; something in the batch cannot be stored.
        """
        with self.transaction() as cur:
            events = self._insert_new(cur, "events", EVENT_COLUMNS, rows.events, "rx")
            headsets = self._insert_new(cur, "headset_events", HEADSET_COLUMNS, rows.headsets, "ts")
            self._insert(cur, "gaps", GAP_COLUMNS, rows.gaps)
            self._insert(cur, "alarms", ALARM_COLUMNS, rows.alarms)
            self._insert_rejected(cur, rows.rejected)
            self._count_sources(cur, events, "pbx")
            self._count_sources(cur, headsets, "headset")
            self._gateways(cur, rows)
            self._calls_pending(cur, rows.events)
        new = sum(n for *_, n, _ in events.values()) + sum(n for *_, n, _ in headsets.values())
        return Written(new, len(rows.events) + len(rows.headsets) - new, len(rows.rejected))

    def finding(self, name: str, said: str | None, at_ms: int) -> None:
        """Keep what a collector found wrong in its set-up (``said``), or that it is wrong
        no more (None)."""
        with self.transaction() as cur:
            cur.execute(self._sql("DELETE FROM findings WHERE name = ?"), (name,))
            if said is not None:
                cur.execute(self._sql("INSERT INTO findings VALUES (?, ?, ?)"), (name, said, at_ms))

    def _insert_rejected(self, cur: Any, rejected: list[tuple]) -> None:
        """Keep refused messages within each gateway's hourly allowance; count the rest."""
        by_hour: dict[tuple[str, int], list[tuple]] = {}
        for row in rejected:
            parts = topics.parse(row[0])
            by_hour.setdefault((parts[1] if parts else "", row[3] // HOUR_MS), []).append(row)
        for (gw, hour), group in by_hour.items():
            cur.execute(self._sql(f"SELECT kept, kept_bytes FROM rejected_counts WHERE gw = ? AND hour = ? "
                                  f"{self.for_update}"), (gw, hour))
            kept, size = cur.fetchone() or (0, 0)
            keep = []
            for row in group:
                if kept + len(keep) >= REJECTED_PER_HOUR or size + len(row[1]) > REJECTED_BYTES_PER_HOUR:
                    break
                keep.append(row)
                size += len(row[1])
            self._insert(cur, "rejected", REJECTED_COLUMNS, keep, keyed=False)
            cur.execute(self._sql(
                "INSERT INTO rejected_counts VALUES (?, ?, ?, ?, ?) ON CONFLICT (gw, hour) DO UPDATE SET "
                "kept = rejected_counts.kept + excluded.kept, kept_bytes = excluded.kept_bytes, "
                "dropped = rejected_counts.dropped + excluded.dropped"),
                (gw, hour, len(keep), size, len(group) - len(keep)))

    def _maybe_stored(self, cur: Any, table: str, groups: dict[tuple, list[tuple]]) -> list[tuple]:
        """The streams of ``groups`` some of whose rows may be stored already: a stored row
        within their seqs' span, or a seq twice in the batch. (A drain, the bulk of the
        work, has none: its rows are inserted without a second look.)"""
        maybe, spans = [], []
        for key, group in groups.items():
            seqs = list(map(_SEQ, group))
            if len(set(seqs)) < len(seqs):
                maybe.append(key)
            else:
                spans.append((*key, min(seqs), max(seqs)))
        return maybe + (self._maybe_stored_spans(cur, table, spans) if spans else [])

    def _maybe_stored_spans(self, cur: Any, table: str, spans: list[tuple]) -> list[tuple]:
        """Of ``spans`` ``(gw, src, stream, low seq, high seq)``, the streams with a row
        stored in ``table`` within the span: in one statement for many (live traffic brings
        a message from each of thousands of sites), not one each."""
        raise NotImplementedError

    def _upsert(self, cur: Any, table: str, columns: tuple[str, ...], rows: list[tuple], conflict: str) -> None:
        """Insert ``rows`` (whose keys differ) into ``table``, ``ON CONFLICT`` as
        ``conflict`` says."""
        raise NotImplementedError

    def _insert(self, cur: Any, table: str, columns: tuple[str, ...], rows: list[tuple], keyed: bool = True) -> None:
        """Insert ``rows``; into a ``keyed`` table, those whose key is stored already are not."""
        if rows:
            marks = ", ".join("?" * len(columns))
            cur.executemany(self._sql(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
                                      + (" ON CONFLICT DO NOTHING" if keyed else "")), rows)

    def _count_sources(self, cur: Any, inserted: dict[tuple, tuple], kind: str) -> None:
        """What arrived per ``(gw, src, stream)``: first and highest seq, how many, when."""
        if not inserted:
            return
        g, l_ = self._greatest, self._least
        self._upsert(
            cur, "sources", ("gw", "src", "stream", "kind", "site", "first_seq", "high_seq", "received", "last_rx"),
            [(*key, kind, *summary) for key, summary in inserted.items()],
            f"(gw, src, stream) DO UPDATE SET first_seq = {l_}(sources.first_seq, excluded.first_seq), "
            f"high_seq = {g}(sources.high_seq, excluded.high_seq), received = sources.received + excluded.received, "
            f"last_rx = {g}(sources.last_rx, excluded.last_rx)")

    def _streams_begun(self, cur: Any, status: dict) -> None:
        """Where a gateway says each source's numbers begin in a stream new with its run
        (``stream``, ``first_seq``): the stream's first numbers, should the broker lose
        them, are then this stream's holes, not the tail of the stream before
        (:func:`gateway.central.fleet.holes`)."""
        begun = [(status["gw"], entry["name"], entry["stream"], "pbx", status["site"], entry["first_seq"],
                  entry["first_seq"] - 1, 0, 0)
                 for entry in status.get("sources") or [] if isinstance(entry, dict)
                 and isinstance(entry.get("name"), str) and STREAM_ID.fullmatch(str(entry.get("stream")))
                 and type(entry.get("first_seq")) is int and 1 <= entry["first_seq"] < 2**62]
        if begun:
            l_, g = self._least, self._greatest
            cur.executemany(self._sql(
                "INSERT INTO sources (gw, src, stream, kind, site, first_seq, high_seq, received, last_rx) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (gw, src, stream) DO UPDATE SET "
                f"first_seq = {l_}(sources.first_seq, excluded.first_seq), "
                f"high_seq = {g}(sources.high_seq, excluded.high_seq)"), begun)

    def _calls_pending(self, cur: Any, events: list[tuple]) -> None:
        """Mark the span of starts of each source's call records, new or not (a duplicate
        re-assembles to the same calls), for :mod:`gateway.central.callstore`: in the
        batch's transaction, so a record stored is a record assembled, crash or not."""
        spans: dict[tuple, list] = {}
        for row in events:
            start = row[_START]
            if start is not None and row[_KIND] == "call":
                span = spans.get(row[:2])
                if span is None:
                    spans[row[:2]] = [row[_SITE], start, start]
                elif start < span[1]:
                    span[1] = start
                elif start > span[2]:
                    span[2] = start
        if spans:
            self._upsert(cur, "calls_pending", ("gw", "src", "site", "low", "high"),
                         [(*key, *span) for key, span in spans.items()],
                         f"(gw, src) DO UPDATE SET low = {self._least}(calls_pending.low, excluded.low), "
                         f"high = {self._greatest}(calls_pending.high, excluded.high)")

    def _assembly_changes(self, cur: Any, status: dict) -> None:
        """A newer status that joins a profile's records otherwise than the one before (a
        gateway upgraded to say it, a profile edited at the site): the records of that
        profile are assembled again, those that came before the status included."""
        cur.execute(self._sql("SELECT sources, status_rx FROM gateways WHERE gw = ?"), (status["gw"],))
        row = cur.fetchone()
        if row is not None and row[1] is not None and row[1] > status["received_at"]:
            return
        before = assembly_tables(json_value(row[0]) if row is not None and row[0] is not None else [])
        now = assembly_tables(status.get("sources") or [])
        changed = [profile for profile, table in now.items() if before.get(profile) != table]
        if changed:
            cur.executemany(self._sql(
                "INSERT INTO calls_pending (gw, src, site, low, high) "
                "SELECT gw, src, MIN(site), MIN(start), MAX(start) FROM events "
                "WHERE gw = ? AND profile = ? AND kind = 'call' AND start IS NOT NULL GROUP BY gw, src "
                f"ON CONFLICT (gw, src) DO UPDATE SET low = {self._least}(calls_pending.low, excluded.low), "
                f"high = {self._greatest}(calls_pending.high, excluded.high)"),
                [(status["gw"], profile) for profile in changed])

    def _gateways(self, cur: Any, rows: Rows) -> None:
        """The latest status and metrics of each gateway (by their arrival here: the order a
        broker keeps on a topic, whatever the sender's clock says), its boots, when it was
        last heard."""
        g = self._greatest
        for s in rows.statuses:
            self._assembly_changes(cur, s)
            sources = json_text(s.get("sources", []))[0]  # (each checked as its message was read)
            cur.execute(self._sql(
                "INSERT INTO gateways (gw, site, state, since, boot, version, status_rx, sources, last_seen) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (gw) DO UPDATE SET "
                "site = excluded.site, state = excluded.state, boot = excluded.boot, version = excluded.version, "
                "sources = excluded.sources, status_rx = excluded.status_rx, "
                "since = CASE WHEN gateways.state = excluded.state THEN gateways.since ELSE excluded.since END, "
                f"last_seen = {g}(gateways.last_seen, excluded.last_seen) "
                "WHERE gateways.status_rx IS NULL OR gateways.status_rx <= excluded.status_rx"),
                (s["gw"], s["site"], s["state"], s["rx"], s["boot"], s["version"], s["received_at"], sources,
                 s["received_at"]))
            if s["state"] == "online":
                cur.execute(self._sql("INSERT INTO boots VALUES (?, ?, ?) ON CONFLICT DO NOTHING"),
                            (s["gw"], s["boot"], s["rx"]))
                self._streams_begun(cur, s)
        for m in rows.metrics:
            metrics = json_text({k: m[k] for k in ("up_s", "sources", "queue", "broker", "headsets")})[0]
            cur.execute(self._sql(
                "INSERT INTO gateways (gw, site, metrics, metrics_rx, last_seen) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (gw) DO UPDATE SET metrics = excluded.metrics, metrics_rx = excluded.metrics_rx, "
                f"last_seen = {g}(gateways.last_seen, excluded.last_seen) "
                "WHERE gateways.metrics_rx IS NULL OR gateways.metrics_rx <= excluded.metrics_rx"),
                (m["gw"], m["site"], metrics, m["received_at"], m["received_at"]))
        if rows.heard:
            self._upsert(cur, "gateways", ("gw", "site", "last_seen"),
                         [(gw, site, at) for gw, (site, at) in rows.heard.items()],
                         f"(gw) DO UPDATE SET last_seen = {g}(gateways.last_seen, excluded.last_seen)")


class SqliteDatabase(Database):
    """``sqlite:///PATH``: one file, WAL, ``synchronous=FULL`` (a commit is on the disk
    before it is acknowledged); one writer, readers beside it."""

    kind = "sqlite"
    _table_named = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    engine = "sqlite"
    _types = {"json": "TEXT", "blob": "BLOB", "bool": "INTEGER", "serial": "INTEGER PRIMARY KEY AUTOINCREMENT"}
    _greatest, _least = "max", "min"
    for_update = ""  # (a transaction holds the whole database: BEGIN IMMEDIATE)

    def __init__(self, url: str, create: bool = True):
        self.path = Path(url[len("sqlite:///"):])
        if not create and not self.path.exists():
            raise Unavailable(f"no database at {self.path}: has `pbxgw collect` run with this config?")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
        except (OSError, sqlite3.Error) as exc:
            raise Unavailable(f"cannot open {self.path}: {exc}") from None

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        cur = self._conn.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE")
            yield cur
            cur.execute("COMMIT")
        except BaseException as exc:
            if self._conn.in_transaction:
                self._conn.rollback()
            if isinstance(exc, sqlite3.OperationalError):
                raise Unavailable(f"{self.path}: {exc}") from None
            if isinstance(exc, (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.InterfaceError)):
                raise Refused(str(exc)) from None
            raise
        finally:
            cur.close()

    def stream(self, sql: str, params: tuple | list = (), size: int = 5000) -> Iterator[tuple]:
        # A read transaction (BEGIN, not IMMEDIATE): in WAL mode it keeps one snapshot and
        # holds no lock, so the collector writes on meanwhile.
        cur = self._conn.cursor()
        try:
            cur.execute("BEGIN")
            cur.execute(sql, params)
            while rows := cur.fetchmany(size):
                yield from rows
        except sqlite3.OperationalError as exc:
            raise Unavailable(f"{self.path}: {exc}") from None
        finally:
            if self._conn.in_transaction:
                self._conn.rollback()
            cur.close()

    def _maybe_stored_spans(self, cur: Any, table: str, spans: list[tuple]) -> list[tuple]:
        # (each span looked up in the key's index)
        found = []
        for i in range(0, len(spans), _SPANS_AT_ONCE):
            part = spans[i:i + _SPANS_AT_ONCE]
            cur.execute(f"WITH span (gw, src, stream, low, high) AS (VALUES {', '.join(['(?, ?, ?, ?, ?)'] * len(part))}) "
                        f"SELECT gw, src, stream FROM span WHERE EXISTS (SELECT 1 FROM {table} AS t WHERE t.gw = span.gw "
                        "AND t.src = span.src AND t.stream = span.stream AND t.seq BETWEEN span.low AND span.high)",
                        [value for span in part for value in span])
            found += [tuple(row) for row in cur.fetchall()]
        return found

    def _upsert(self, cur: Any, table: str, columns: tuple[str, ...], rows: list[tuple], conflict: str) -> None:
        # (in the process: a statement a row costs no round trip)
        cur.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
                        f"ON CONFLICT {conflict}", rows)

    def _insert_new(self, cur: Any, table: str, columns: tuple[str, ...], rows: list[tuple],
                    time_column: str) -> dict[tuple, tuple]:
        # One writer (BEGIN IMMEDIATE holds the lock): where a stream's seqs may be stored
        # already, the stored ones are looked up and left out; the rest go to one
        # executemany, as fast as a plain one.
        groups = _by_stream(rows)
        for key in self._maybe_stored(cur, table, groups):
            groups[key] = self._unstored(cur, table, key, groups[key])
        new = [row for group in groups.values() for row in group]
        cur.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", new)
        return _summaries(groups, columns, time_column)

    def _unstored(self, cur: Any, table: str, key: tuple, group: list[tuple]) -> list[tuple]:
        """The rows of one ``(gw, src, stream)`` whose seq is not stored yet, each once."""
        stored: set[int] = set()
        seqs = sorted({row[3] for row in group})
        for i in range(0, len(seqs), 500):
            part = seqs[i:i + 500]
            cur.execute(f"SELECT seq FROM {table} WHERE gw = ? AND src = ? AND stream = ? AND seq IN "
                        f"({', '.join('?' * len(part))})", (*key, *part))
            stored.update(seq for (seq,) in cur.fetchall())
        out = []
        for row in group:
            if row[3] not in stored:
                stored.add(row[3])  # (and a second copy within the batch is not new either)
                out.append(row)
        return out


_SEQ = operator.itemgetter(3)
#: Streams looked up in one statement (five parameters each: SQLite takes 32 766).
_SPANS_AT_ONCE = 500
_START, _SITE, _KIND = EVENT_COLUMNS.index("start"), EVENT_COLUMNS.index("site"), EVENT_COLUMNS.index("kind")


def _by_stream(rows: list[tuple]) -> dict[tuple, list[tuple]]:
    """Rows by ``(gw, src, stream)``, their first three columns."""
    groups: dict[tuple, list[tuple]] = {}
    for row in rows:
        groups.setdefault(row[:3], []).append(row)
    return groups


def _summaries(groups: dict[tuple, list[tuple]], columns: tuple[str, ...], time_column: str) -> dict[tuple, tuple]:
    """Per ``(gw, src, stream)`` of rows inserted: ``(site, first seq, highest seq, how
    many, latest time)``."""
    at, site = columns.index(time_column), columns.index("site")
    summaries = {}
    for key, group in groups.items():
        if group:
            seqs = list(map(_SEQ, group))
            summaries[key] = (group[0][site], min(seqs), max(seqs), len(seqs), max(row[at] for row in group))
    return summaries


class PostgresDatabase(Database):
    """``postgresql://...`` through psycopg 3: batches ``COPY``\\ ed in (through a
    temporary table and ``ON CONFLICT DO NOTHING`` where keys may be stored already);
    several collectors may share one."""

    kind = "postgresql"
    _table_named = "SELECT 1 FROM pg_tables WHERE schemaname = current_schema() AND tablename = ?"
    engine = "postgresql"
    _types = {"json": "JSONB", "blob": "BYTEA", "bool": "BOOLEAN", "serial": "BIGSERIAL PRIMARY KEY"}
    _greatest, _least = "GREATEST", "LEAST"
    for_update = " FOR UPDATE"

    def __init__(self, url: str):
        try:
            import psycopg
        except ImportError:
            raise Unavailable("PostgreSQL needs psycopg: pip install 'pbxgw[central]'") from None
        self._psycopg = psycopg
        self.url = url
        self._types_of: dict[str, dict[str, str]] = {}  # (see _column_types)
        try:
            self._conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise Unavailable(f"cannot connect to PostgreSQL: {_first_line(exc)}") from None

    def close(self) -> None:
        self._conn.close()

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s")

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        psycopg = self._psycopg
        if self._conn.closed or self._conn.broken:
            try:
                self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
            except psycopg.Error as exc:
                raise Unavailable(f"cannot connect to PostgreSQL: {_first_line(exc)}") from None
        try:
            with self._conn.transaction(), self._conn.cursor() as cur:
                yield cur
        except (psycopg.DataError, psycopg.IntegrityError) as exc:
            if self._conn.broken:
                raise Unavailable(f"PostgreSQL: {_first_line(exc)}") from None
            raise Refused(_first_line(exc)) from None
        except psycopg.Error as exc:  # down, restarting, disk full; a missing table (said, retried)
            raise Unavailable(f"PostgreSQL: {_first_line(exc)}") from None

    def stream(self, sql: str, params: tuple | list = (), size: int = 5000) -> Iterator[tuple]:
        # A named (server-side) cursor: psycopg's own would fetch every row at execute.
        with self.transaction(), self._conn.cursor(name="pbxgw_stream") as cur:
            cur.execute(self._sql(sql), params)
            while rows := cur.fetchmany(size):
                yield from rows

    def create_roles(self) -> list[str]:
        sql = self._psycopg.sql
        done = []
        try:
            with self._conn.transaction(), self._conn.cursor() as cur:
                cur.execute("SELECT current_schema()")
                schema = sql.Identifier(cur.fetchone()[0])
                for role in ROLES:
                    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
                    if not cur.fetchone():
                        cur.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
                        done.append(f"created role {role}")
                writer, reader = (sql.Identifier(role) for role in ROLES)
                for statement in (
                        "GRANT USAGE ON SCHEMA {s} TO {w}, {r}",
                        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {w}",
                        "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {w}",
                        "GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {r}",
                        "ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {w}",
                        "ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT USAGE, SELECT ON SEQUENCES TO {w}",
                        "ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT SELECT ON TABLES TO {r}"):
                    cur.execute(sql.SQL(statement).format(s=schema, w=writer, r=reader))
                done.append(f"granted {ROLES[0]} writing and {ROLES[1]} reading every table of schema "
                            f"{schema.as_string(cur)}, now and to come")
        except self._psycopg.errors.InsufficientPrivilege as exc:
            raise Refused(f"{_first_line(exc)}: run it as the tables' owner, with CREATEROLE (or have a superuser "
                          f"create the roles {', '.join(ROLES)} first)") from None
        except self._psycopg.Error as exc:
            raise Unavailable(f"PostgreSQL: {_first_line(exc)}") from None
        return done

    def may_write(self) -> bool:
        return bool(self.fetch("SELECT has_table_privilege('calls', 'INSERT')")[0][0])

    # Many rows go as one array a column (unnest): one short statement, whose parsing
    # psycopg caches, where a VALUES list of thousands of parameters is parsed again each
    # time, and executemany runs a statement a row.

    def _maybe_stored_spans(self, cur: Any, table: str, spans: list[tuple]) -> list[tuple]:
        # LATERAL ... LIMIT 1: a look in the key's index for each span, where the planner
        # could join the spans to the whole table.
        cur.execute(f"SELECT span.gw, span.src, span.stream FROM unnest(%s::text[], %s::text[], %s::text[], "
                    f"%s::bigint[], %s::bigint[]) AS span (gw, src, stream, low, high) CROSS JOIN LATERAL "
                    f"(SELECT 1 FROM {table} AS t WHERE t.gw = span.gw AND t.src = span.src AND t.stream = span.stream "
                    "AND t.seq BETWEEN span.low AND span.high LIMIT 1) AS hit", [list(c) for c in zip(*spans)])
        return [tuple(row) for row in cur.fetchall()]

    def _upsert(self, cur: Any, table: str, columns: tuple[str, ...], rows: list[tuple], conflict: str) -> None:
        types = self._column_types(cur, table)
        arrays = ", ".join(f"%s::{types[c]}[]" for c in columns)
        cur.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({arrays}) ON CONFLICT {conflict}",
                    [list(c) for c in zip(*rows)])

    def _column_types(self, cur: Any, table: str) -> dict[str, str]:
        """The SQL type of each column of ``table``, as the schema made it (read once)."""
        if table not in self._types_of:
            cur.execute("SELECT column_name, format_type(atttypid, atttypmod) FROM information_schema.columns "
                        "JOIN pg_attribute ON attrelid = to_regclass(table_name) AND attname = column_name "
                        "WHERE table_schema = current_schema() AND table_name = %s", (table,))
            self._types_of[table] = dict(cur.fetchall())
        return self._types_of[table]

    def _lock_schema(self, cur: Any) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(7240001)")  # any fixed number: pbxgw's migrations

    def _insert_new(self, cur: Any, table: str, columns: tuple[str, ...], rows: list[tuple],
                    time_column: str) -> dict[tuple, tuple]:
        # Rows none of which can be stored already are COPYed straight in, the database's
        # fastest path. Otherwise (or when another collector stored some in the meantime:
        # the key refuses the COPY, which the server logs), COPY into a staging table and
        # one INSERT ... ON CONFLICT DO NOTHING: the keys decide, inside the database.
        if not rows:
            return {}
        groups = _by_stream(rows)
        if not self._maybe_stored(cur, table, groups):
            try:
                with self._conn.transaction():  # a savepoint: a refused COPY undoes only itself
                    self._copy(cur, table, columns, rows)
                return _summaries(groups, columns, time_column)
            except self._psycopg.errors.UniqueViolation:
                pass
        cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS stage_{table} (LIKE {table}) ON COMMIT DELETE ROWS")
        self._copy(cur, f"stage_{table}", columns, rows)
        returned = ("gw", "src", "stream", "seq", "site", time_column)
        cur.execute(f"INSERT INTO {table} SELECT * FROM stage_{table} ON CONFLICT DO NOTHING "
                    f"RETURNING {', '.join(returned)}")
        return _summaries(_by_stream(cur.fetchall()), returned, time_column)

    @staticmethod
    def _copy(cur: Any, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
        with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def json_value(value: Any) -> Any:
    """A JSON column as read back: text from SQLite, already decoded by psycopg from
    PostgreSQL's ``jsonb``; None for text that is no JSON (a row written by hand, or by an
    older version)."""
    if not isinstance(value, str):
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return None


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
