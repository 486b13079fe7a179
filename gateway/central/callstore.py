"""The ``calls`` table kept current: the spans of records stored since, assembled again.

Each batch the collector writes marks, in its own transaction, the span of starts of
each source's call records in ``calls_pending`` (:meth:`Database._calls_pending`).
:func:`refresh` takes those spans a piece at a time, at most :data:`PIECE_RECORDS` records
(and :data:`PIECE` seconds) a piece: it reads the records of the piece and those of a
margin either side (``window`` + :data:`LONGEST_CALL`, where records of one call can be)
that may be in a call with them, assembles them (:func:`gateway.central.calls.assemble`),
and replaces the calls that share a record with a call touching the piece. A late or
replayed record thus re-assembles its call, and a record stored twice changes nothing.

Records of one call share their join fields (``callid``), or their line (``trunk``): where
a profile joins by columns, the margin's
records are read only where they share one of those with the piece's, so that one new
record costs a few rows, not the hours around it. Where it joins by vendor fields, or
where a call stored before holds a record the piece did not read (rules that changed),
the whole margin is read, as the rules demand. The collector runs it every few seconds;
``pbxgw report`` runs it before it reads.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable

import orjson

from gateway.central.calls import CALL_COLUMNS, Call, call_of, chains
from gateway.central.database import Database, assembly_tables, json_value
from gateway.errors import ProfileError
from gateway.smdr import profiles
from gateway.smdr.profile import Assembly

#: The longest a call's records are apart beyond its family's window (legs and segments of
#: one call are minutes apart): records further apart are not joined again when a late
#: one comes.
LONGEST_CALL = 4 * 3600
log = logging.getLogger("pbxgw.collect")
#: Seconds of pending records assembled in one transaction, at most (bounds lock time; the
#: margins either side are read again by the next piece) ...
PIECE = 2 * 86400
#: ... and records, at most (bounds memory: a busy site's day of backlog is many pieces).
#: Records that start in one second are one piece, however many.
PIECE_RECORDS = 10_000
#: Values in one ``IN (...)`` list.
_IN_CHUNK = 500

#: The columns a call is read back from (its records are not: a report reads a year).
READ_COLUMNS = CALL_COLUMNS[:-1]
_RECORD_COLUMNS = ("gw", "src", "site", "stream", "seq", "rx", "profile", "start", "ring", "dur", "dir", "ext",
                   "trunk", "caller", "called", "disp", "callid", "x", "raw")


@functools.cache
def bundled_assembly(profile: str) -> Assembly:
    """A bundled profile's assembly rules; a profile the centre does not know makes each
    record a call of its own."""
    try:
        return profiles.find(profile).assembly
    except ProfileError:
        return Assembly()


class Assemblies:
    """The assembly rules of each gateway's profiles: those its retained status announces
    (a site's own copy, renamed or edited, joins as the site runs it), else the bundled
    profile's of the name (a gateway from before statuses said them)."""

    def __init__(self, db: Database):
        self._announced: dict[tuple[str, str], Assembly] = {}
        for gw, sources in db.fetch("SELECT gw, sources FROM gateways WHERE sources IS NOT NULL"):
            for profile, table in assembly_tables(json_value(sources)).items():
                written = orjson.dumps(table)
                try:
                    self._announced[(gw, profile)] = _announced(written)
                except Exception as exc:  # (it came over the network: whatever it holds, calls are assembled)
                    _refused(gw, profile, written, str(exc))

    def of(self, gw: str, profile: str) -> Assembly:
        return self._announced.get((gw, profile)) or bundled_assembly(profile)


@functools.lru_cache(maxsize=256)
def _refused(gw: str, profile: str, table: bytes, why: str) -> None:
    """Said once for each table that does not read, not at every refresh."""
    log.warning("gateway %s announces assembly rules for %s that do not read (%s): its records are joined by the "
                "bundled profile's, or each is a call of its own", gw, profile, why)


@functools.lru_cache(maxsize=256)
def _announced(table: bytes) -> Assembly:
    """A status's table read once, however many refreshes see it (the regular expressions
    are checked as a profile's are: it comes over the network)."""
    return profiles.assembly_from_table(orjson.loads(table), "status")


class Pass:
    """One pass of assembly over the sources pending when it began, a piece (at most
    :data:`PIECE_RECORDS` records) at a time, each in a transaction of its own, so that
    the collector stores what arrives between two pieces. What a pass needs of every
    source (which are pending, the gateways' assembly rules) is read once, at its
    beginning: a collector of thousands of sites must not read it again for each piece."""

    def __init__(self, db: Database):
        self._db = db
        self._assemblies = Assemblies(db)
        self._pending = db.fetch("SELECT gw, src FROM calls_pending")
        self._at = 0  # the source assembled next

    @property
    def over(self) -> bool:
        return self._at >= len(self._pending)

    def piece(self) -> int:
        """Assemble the next piece; the calls written."""
        db = self._db
        while not self.over:
            gw, src = self._pending[self._at]
            with db.transaction() as cur:
                cur.execute(db._sql("SELECT site, low, high FROM calls_pending WHERE gw = ? AND src = ?"
                                    + db.for_update), (gw, src))
                pending = cur.fetchone()
                if pending is None:  # (assembled by another pass meanwhile)
                    self._at += 1
                    continue
                site, low, high = pending
                span = _piece(db, cur, gw, src, site, low, high)
                written = 0 if span is None else _assemble_span(db, cur, self._assemblies, gw, src, site, *span)
                top = high if span is None else span[1]
                if top >= high:
                    cur.execute(db._sql("DELETE FROM calls_pending WHERE gw = ? AND src = ?"), (gw, src))
                    self._at += 1
                else:
                    cur.execute(db._sql("UPDATE calls_pending SET low = ? WHERE gw = ? AND src = ?"),
                                (top + 1, gw, src))
            return written
        return 0


def refresh(db: Database, pieces: int | None = None) -> tuple[int, bool]:
    """Assemble the pending spans, a piece at a time (at most ``pieces`` of them);
    ``(calls written, whether none is left pending)``."""
    assembly, written, done = Pass(db), 0, 0
    while not assembly.over and (pieces is None or done < pieces):
        written += assembly.piece()
        done += 1
    return written, not db.fetch("SELECT 1 FROM calls_pending LIMIT 1")


def _piece(db: Database, cur: Any, gw: str, src: str, site: str, low: int, high: int) -> tuple[int, int] | None:
    """The next piece of the pending span ``low..high``: from its first record's start, at
    most :data:`PIECE` seconds and (but for records of one second) :data:`PIECE_RECORDS`
    records; None when no record starts in the span. Time without records is skipped in
    one query, however long: one record dated years ahead must not hold assembly up for
    the thousands of pieces between."""
    where = "WHERE site = ? AND start BETWEEN ? AND ? AND gw = ? AND src = ? AND kind = 'call'"
    cur.execute(db._sql(f"SELECT min(start) FROM events {where}"), (site, low, high, gw, src))
    first = cur.fetchone()[0]
    if first is None:
        return None
    top = min(high, first + PIECE)
    cur.execute(db._sql(f"SELECT start FROM events {where} ORDER BY start LIMIT 1 OFFSET {PIECE_RECORDS}"),
                (site, first, top, gw, src))
    row = cur.fetchone()
    return first, top if row is None else max(first, row[0] - 1)


def _assemble_span(db: Database, cur: Any, assemblies: Assemblies, gw: str, src: str, site: str, low: int,
                   high: int) -> int:
    """Re-assemble the calls of one source that have a record starting in ``low..high``."""
    assembly_of = functools.partial(assemblies.of, gw)
    margin, names = _margin(db, cur, assembly_of, gw, src, site, low, high)
    # A call starts at most a margin before its last record, and that record's own call
    # (stored before this one came) may start a margin before it again.
    wide = (low - 2 * margin, high + margin)
    keys = _key_columns(assembly_of, names)
    if keys is not None:
        records = _records(db, cur, assembly_of, gw, src, site, low, high)
        records += _neighbours(db, cur, assembly_of, gw, src, site, wide, (low, high), keys, records)
        found, stored = _found_and_stored(db, cur, assembly_of, gw, src, records, wide)
        if found is not None:
            return _replace(db, cur, assembly_of, gw, src, low, high, found, stored)
    records = _records(db, cur, assembly_of, gw, src, site, *wide)
    found, stored = _found_and_stored(db, cur, assembly_of, gw, src, records, wide, whole=True)
    return _replace(db, cur, assembly_of, gw, src, low, high, found, stored)


def _found_and_stored(db: Database, cur: Any, assembly_of: Callable[[str], Assembly], gw: str, src: str,
                      records: list[dict], wide: tuple[int, int], whole: bool = False):
    """The chains of ``records`` and the stored calls sharing a record with them (key ->
    its records); ``(None, None)`` when a stored call holds records not among them and the
    margin was not read ``whole`` (its records must be read to be assembled again)."""
    by_profile: dict[str, list[dict]] = {}
    for r in records:
        by_profile.setdefault(r["profile"], []).append(r)
    found = [(chain, name) for name, rs in by_profile.items() for chain in chains(rs, assembly_of(name))]
    read = {(r["stream"], r["seq"]) for r in records}
    stored = {}
    # A stored call holding a record read has its last start at or after that record's:
    # only such calls are read (all of the margin's when it was read whole).
    since = min((r["start"] for r in records), default=wide[0])
    for key, recs in _stored_calls(db, cur, gw, src, *wide,
                                   ("", ()) if whole else (" AND last_start >= ?", (since,))).items():
        if not read.isdisjoint(recs):
            if not whole and not read.issuperset(recs):
                return None, None
            stored[key] = recs
    return found, stored


def _replace(db: Database, cur: Any, assembly_of: Callable[[str], Assembly], gw: str, src: str, low: int,
             high: int, found: list, stored: dict[str, list[tuple]]) -> int:
    """Write the calls touching ``low..high`` in place of the stored ones they share records with."""
    # The calls to write: those touching the span and then, as long as any are found,
    # those sharing a record with a stored call that shares one with a call to write.
    owner = {(r["stream"], r["seq"]): i for i, (chain, _) in enumerate(found) for r in (*chain.records, *chain.folded)}
    stored_of = {rec: key for key, recs in stored.items() for rec in recs}
    chosen = {i for i, (chain, _) in enumerate(found) if any(low <= r["start"] <= high for r in chain.records)}
    replaced: set[str] = set()
    todo = list(chosen)
    while todo:
        chain = found[todo.pop()][0]
        for r in (*chain.records, *chain.folded):
            old = stored_of.get((r["stream"], r["seq"]))
            if old is not None and old not in replaced:
                replaced.add(old)
                for i in {owner[rec] for rec in stored[old] if rec in owner} - chosen:
                    chosen.add(i)
                    todo.append(i)
    if replaced:
        cur.executemany(db._sql("DELETE FROM calls WHERE gw = ? AND src = ? AND key = ?"),
                        [(gw, src, key) for key in replaced])
    calls = [call_of(chain, assembly_of(name), name) for chain, name in map(found.__getitem__, chosen)]
    _insert(db, cur, calls)
    return len(calls)


def _key_columns(assembly_of: Callable[[str], Assembly], names: list[str]) -> tuple[str, ...] | None:
    """The columns records of one call share, under each of these profiles' rules (none:
    each record is a call of its own); None when a rule joins by a vendor field."""
    columns: set[str] = set()
    for name in names:
        a = assembly_of(name)
        columns.update(a.join or ((a.line,) if a.line else ()))
    if any(c not in _RECORD_COLUMNS or c.startswith("x.") for c in columns):
        return None
    return tuple(sorted(columns))


def _neighbours(db: Database, cur: Any, assembly_of: Callable[[str], Assembly], gw: str, src: str, site: str,
                wide: tuple[int, int], span: tuple[int, int], keys: tuple[str, ...], records: list[dict]) -> list[dict]:
    """The records of the margin ``wide`` (less the ``span`` read already) that share a key
    column with ``records``, picked out by the database: by a list of values when they are
    a few (a live pass), else through a temporary table of them (a backlog's piece). (A
    record printed twice starts when its first print does: both are in the span.)"""
    wanted = {column: sorted({r[column] for r in records} - {None, ""}) for column in keys}
    wanted = {column: values for column, values in wanted.items() if values}
    if not wanted:
        return []
    if sum(map(len, wanted.values())) <= _IN_CHUNK:
        condition = " OR ".join(f"{column} IN ({', '.join('?' * len(values))})" for column, values in wanted.items())
        values = tuple(v for vs in wanted.values() for v in vs)
    else:
        cur.execute("CREATE TEMP TABLE IF NOT EXISTS pbxgw_wanted (col TEXT NOT NULL, value TEXT NOT NULL)")
        cur.execute("DELETE FROM pbxgw_wanted")
        cur.executemany(db._sql("INSERT INTO pbxgw_wanted VALUES (?, ?)"),
                        [(column, v) for column, vs in wanted.items() for v in vs])
        condition = " OR ".join(f"{column} IN (SELECT value FROM pbxgw_wanted WHERE col = ?)" for column in wanted)
        values = tuple(wanted)
    return _records(db, cur, assembly_of, gw, src, site, *wide,
                    also=(f" AND NOT start BETWEEN ? AND ? AND ({condition})", (*span, *values)))


def _margin(db: Database, cur: Any, assembly_of: Callable[[str], Assembly], gw: str, src: str, site: str, low: int,
            high: int) -> tuple[int, list[str]]:
    """How far apart records of one call can start (its profiles' window plus
    :data:`LONGEST_CALL`), and the profiles of the records in ``low..high``."""
    cur.execute(db._sql("SELECT DISTINCT profile FROM events WHERE site = ? AND start BETWEEN ? AND ? "
                        "AND gw = ? AND src = ? AND kind = 'call'"), (site, low, high, gw, src))
    names = [name for (name,) in cur.fetchall()]
    return max((assembly_of(name).window for name in names), default=0) + LONGEST_CALL, names


def _records(db: Database, cur: Any, assembly_of: Callable[[str], Assembly], gw: str, src: str, site: str, low: int,
             high: int, also: tuple[str, tuple] = ("", ())) -> list[dict]:
    """The call records of a source starting in ``low..high`` (and meeting ``also``: a
    condition and its values)."""
    cur.execute(db._sql(f"SELECT {', '.join(_RECORD_COLUMNS)} FROM events WHERE site = ? AND start BETWEEN ? AND ? "
                        f"AND gw = ? AND src = ? AND kind = 'call'{also[0]}"), (site, low, high, gw, src, *also[1]))
    out = []
    for row in cur.fetchall():
        r = dict(zip(_RECORD_COLUMNS, row))
        x = r["x"]
        if x is not None:  # only the vendor fields assembly reads: a month is many records
            x = json_value(x)
            r["x"] = {k: x[k] for k in _x_fields(assembly_of(r["profile"])) if k in x}
        out.append(r)
    return out


@functools.lru_cache(maxsize=256)
def _x_fields(a: Assembly) -> tuple[str, ...]:
    """The ``x`` fields an assembly looks at."""
    named = [*a.join, *(f for f in (a.line, a.hold, a.name) if f),
             *(f for c in (a.ends, a.transfer, a.voicemail, a.not_calls) for alt in c for f, _ in alt)]
    return tuple(dict.fromkeys(f[2:] for f in named if f.startswith("x.")))


def _stored_calls(db: Database, cur: Any, gw: str, src: str, low: int, high: int,
                  also: tuple[str, tuple] = ("", ())) -> dict[str, list[tuple]]:
    """The stored calls of a source starting in ``low..high`` (and meeting ``also``): key ->
    its records."""
    cur.execute(db._sql("SELECT key, records FROM calls WHERE gw = ? AND src = ? AND start BETWEEN ? AND ?"
                        + also[0]), (gw, src, low, high, *also[1]))
    return {key: [tuple(r) for r in json_value(recs)]
            for key, recs in cur.fetchall()}


def _insert(db: Database, cur: Any, calls: list[Call]) -> None:
    if not calls:
        return
    columns = ", ".join(CALL_COLUMNS)
    updates = ", ".join(f"{c} = excluded.{c}" for c in CALL_COLUMNS[3:])
    cur.executemany(db._sql(f"INSERT INTO calls ({columns}) VALUES ({', '.join('?' * len(CALL_COLUMNS))}) "
                            f"ON CONFLICT (gw, src, key) DO UPDATE SET {updates}"),
                    [(*c.row()[:-2], orjson.dumps(c.legs).decode(), orjson.dumps(c.records).decode()) for c in calls])


def call_from_row(row: tuple) -> Call:
    """A call read back from its :data:`READ_COLUMNS`."""
    *columns, legs = row
    return Call(*columns, legs=tuple(map(tuple, json_value(legs))), records=())
