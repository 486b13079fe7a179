"""The parts of each site's calls, a quarter-hour each, kept as the calls change: what a
report reads over a long range instead of every call.

A part (:class:`gateway.central.kpi.Part`) holds the figures of the calls of a site that
start in one UTC quarter-hour, free of settings, zone and business hours, so that a part
stays right when the answer threshold or the hours change. The database marks the
quarter-hour of every call inserted, changed or deleted in ``summaries_due``, by triggers
on ``calls`` (a call reassembled, a late record, numbers masked by ``[privacy]``: nothing
that writes calls can forget it). :func:`make_due` makes the parts of the slots due again
from their calls, a few dozen slots a transaction; the collector runs it after each
assembly pass, ``pbxgw report`` before it reads.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterator

import msgpack

from gateway.central.callstore import READ_COLUMNS, call_from_row
from gateway.central.database import Database
from gateway.central.kpi import COUNTS, EXTENSION_COUNTS, PART_SLOT, Extension, Figures, Part, parts

#: Slots made again in one transaction, at most (a day of one site: bounds lock time).
SLOTS_AT_ONCE = 96


def make_due(db: Database, at_most: int = SLOTS_AT_ONCE, of: tuple[str, int, int] | None = None) -> int:
    """Make again the parts of up to ``at_most`` slots due (``of``: those of a site in
    ``[start, end)`` UTC s only), in one transaction; how many (0: none was due)."""
    where, params = ("", ()) if of is None else (" WHERE site = ? AND slot >= ? AND slot < ?", of)
    with db.transaction() as cur:
        # Claimed by deleting them first: a call written meanwhile by another transaction
        # marks its slot due again (PostgreSQL's insert waits for this delete), rather
        # than finding it due and being left out of what is read here.
        lock = db.for_update and db.for_update + " SKIP LOCKED"
        cur.execute(db._sql("DELETE FROM summaries_due WHERE (site, slot) IN (SELECT site, slot FROM summaries_due"
                            f"{where} ORDER BY site, slot LIMIT {int(at_most)}{lock}) RETURNING site, slot"), params)
        due = sorted(cur.fetchall())
        made, empty = [], []
        for site, slot in due:
            cur.execute(db._sql(f"SELECT {', '.join(READ_COLUMNS)} FROM calls WHERE site = ? AND start >= ? "
                                "AND start < ? ORDER BY start"), (site, slot, slot + PART_SLOT))
            part = next(parts(map(call_from_row, cur.fetchall()), PART_SLOT), None)
            if part is None:
                empty.append((site, slot))
            else:
                made.append((site, slot, encode(part[1], slot)))
        cur.executemany(db._sql("DELETE FROM summaries WHERE site = ? AND slot = ?"), empty)
        if made:
            db._upsert(cur, "summaries", ("site", "slot", "part"), made, "(site, slot) DO UPDATE SET part = excluded.part")
    return len(due)


def due(db: Database, site: str, start: int, end: int) -> int:
    """How many slots of ``site`` in ``[start, end)`` (UTC s) wait to be made again."""
    return db.fetch("SELECT count(*) FROM summaries_due WHERE site = ? AND slot >= ? AND slot < ?",
                    (site, start - start % PART_SLOT, end))[0][0]


def stored(db: Database, site: str, start: int, end: int) -> Iterator[tuple[int, Part]]:
    """The parts of ``site`` whose slots lie in ``[start, end)``, in order (``start`` and
    ``end`` on slot edges), read a few thousand at a time."""
    for slot, data in db.stream("SELECT slot, part FROM summaries WHERE site = ? AND slot >= ? AND slot < ? "
                                "ORDER BY slot", (site, start, end)):
        yield slot, decode(bytes(data), slot)


# -- a part as bytes: msgpack, lists of numbers, times as offsets from the slot -------

def encode(part: Part, at: int) -> bytes:
    """A part of the slot that starts at ``at``, as bytes."""
    return msgpack.packb([
        _figures(part.all), {k: _figures(f) for k, f in part.groups.items()},
        {k: _figures(f) for k, f in part.numbers.items()}, {k: _figures(f) for k, f in part.trunks.items()},
        {k: [getattr(e, name) for name in EXTENSION_COUNTS] for k, e in part.extensions.items()}, part.names,
        _figures(part.outbound), [x for k, v in part.traffic.items() for x in (k - at, v)],
        [x for start, end in part.spans for x in (start - at, end - start)],
        part.orphans, part.incomplete, part.folded, part.over_a_day, sorted(part.sources)])


def decode(data: bytes, at: int) -> Part:
    (every, groups, numbers, trunks, extensions, names, outbound, traffic, spans, orphans, incomplete, folded,
     over_a_day, sources) = msgpack.unpackb(data)
    return Part(
        all=_figures_of(every), groups={k: _figures_of(v) for k, v in groups.items()},
        numbers={k: _figures_of(v) for k, v in numbers.items()},
        trunks={k: _figures_of(v) for k, v in trunks.items()},
        extensions={k: Extension(**dict(zip(EXTENSION_COUNTS, v))) for k, v in extensions.items()}, names=names,
        outbound=_figures_of(outbound), traffic={at + k: v for k, v in zip(traffic[::2], traffic[1::2])},
        spans=[(at + s, at + s + d) for s, d in zip(spans[::2], spans[1::2])], orphans=orphans,
        incomplete=incomplete, folded=folded, over_a_day=over_a_day, sources={tuple(s) for s in sources})


def _figures(f: Figures) -> list[Any]:
    return [*(getattr(f, name) for name in COUNTS), _flat(f.waits), _flat(f.abandon_waits)]


def _figures_of(values: list[Any]) -> Figures:
    *counts, waits, abandon_waits = values
    return Figures(**dict(zip(COUNTS, counts)), waits=_counter(waits), abandon_waits=_counter(abandon_waits))


def _flat(counter: Counter) -> list[int]:
    return [x for wait, n in counter.items() for x in (wait, n)]


def _counter(flat: list[int]) -> Counter:
    return Counter(dict(zip(flat[::2], flat[1::2])))
