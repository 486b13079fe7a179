"""``pbxgw fleet``'s figures, read from the collector's database: per gateway its presence
and health, per source what arrived, what is missing and what was lost at the edge."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timezone
from typing import Any

from gateway.central.database import HOUR_MS, Database, json_value
from gateway.common.printable import printable
from gateway.common.zones import known_zone
from gateway.wire import ranges
from gateway.wire.replay import MAX_HOLE, too_large

DAY_MS = 86_400_000


def fleet(db: Database, now_ms: int) -> list[dict[str, Any]]:
    """One map per gateway (by site and id), each with its sources."""
    out = []
    for gw, site, state, since, boot, version, sources_json, metrics_json, last_seen in db.fetch(
            "SELECT gw, site, state, since, boot, version, sources, metrics, last_seen FROM gateways "
            "ORDER BY site, gw"):
        announced = {s.get("name"): s for s in json_value(sources_json) or [] if isinstance(s, dict)}
        metrics = json_value(metrics_json) or {}
        restarts = db.fetch("SELECT count(*) FROM boots WHERE gw = ? AND rx >= ?", (gw, now_ms - DAY_MS))[0][0]
        kept, dropped = db.fetch("SELECT COALESCE(SUM(kept), 0), COALESCE(SUM(dropped), 0) FROM rejected_counts "
                                 "WHERE gw = ? AND hour >= ?", (gw, (now_ms - DAY_MS) // HOUR_MS))[0]
        elsewhere, latest = db.fetch(
            "SELECT count(*), max(received_at) FROM rejected WHERE received_at >= ? AND reason LIKE ? ESCAPE '!'",
            (now_ms - DAY_MS, f"gateway {_like(gw)} belongs to site %"))[0]
        out.append({
            "gw": gw, "site": site, "state": state, "since": since, "version": version, "boot": boot,
            "starts_last_day": restarts, "last_seen": last_seen,
            "refused_last_day": int(kept) + int(dropped), "refused_not_kept_last_day": int(dropped),
            "under_another_site_last_day": elsewhere, "under_another_site_latest": latest,
            "queue_depth": (metrics.get("queue") or {}).get("depth") if isinstance(metrics, dict) else None,
            "sources": [_source(db, gw, src, kind, announced.get(src) or {}, now_ms)
                        for src, kind in db.fetch("SELECT DISTINCT src, kind FROM sources WHERE gw = ? ORDER BY src",
                                                  (gw,))],
        })
    return out


def findings(db: Database) -> list[str]:
    """What a collector found wrong in how the centre is set up, each as a line to print first."""
    return [f"WARNING: {said} (found {_when(at)})" for said, at in db.fetch("SELECT said, at FROM findings ORDER BY name")]


def holes(db: Database, gw: str, src: str, kind: str = "pbx") -> tuple[dict[str, list], dict[str, list]]:
    """Per stream: the ``seq`` ranges missing and not reported lost (the collector asks
    the gateway for them again), and those the gateway reported lost (``gap`` events, and
    what its replies said it does not have). Missing is anything from seq 1 (a gateway
    numbers each source from 1: the first events lost show too) to the highest stored or
    numbered at the gateway that is not in the table now (rows deleted by hand count too);
    a collector that joins a fleet late asks once for what came before it, and what the
    gateway no longer keeps becomes lost at the edge. So that the last events lost show too: the
    gateway's latest metrics say each source's latest seq in its current stream, and a
    stream went on at least to just below where the next one (by first seq) starts, as a
    gateway's new stream goes on from the seq its queue remembers (one below the old one's
    highest after a power cut is no hole). A damaged queue's gaps are bounds (from what was
    delivered to what may have been committed): of those, only the numbers missing here
    count as lost."""
    table = "events" if kind == "pbx" else "headset_events"
    rows = db.fetch("SELECT metrics FROM gateways WHERE gw = ?", (gw,))
    numbered = _numbered(rows[0][0] if rows else None, src)
    lost: dict[str, list] = {}  # the gateway's own count: every number in it lost
    bounds: dict[str, list] = {}  # a damaged queue's: lost, where missing here
    for stream, first, last, reason in db.fetch("SELECT stream, first, last, reason FROM gaps WHERE gw = ? AND src = ?",
                                                (gw, src)):
        (bounds if reason.startswith(DAMAGED) else lost).setdefault(stream, []).append((first, last))
    missing: dict[str, list] = {}
    streams = db.fetch("SELECT stream, first_seq, high_seq, received FROM sources WHERE gw = ? AND src = ? "
                       "ORDER BY first_seq", (gw, src))
    for stream, first, high, _ in _spans(streams, numbered):
        key = (gw, src, stream)
        count, low, top = db.fetch(f"SELECT count(*), min(seq), max(seq) FROM {table} WHERE gw = ? AND src = ? "
                                   "AND stream = ?", key)[0]
        if count == high - first + 1:
            continue  # every seq from the first to the highest is there: no need to look further
        if not count:
            found = [(first, high)]
        else:
            found = [(a, b) for a, b in db.fetch(
                f"SELECT seq + 1, next - 1 FROM (SELECT seq, lead(seq) OVER (ORDER BY seq) AS next FROM {table} "
                "WHERE gw = ? AND src = ? AND stream = ?) AS t WHERE next > seq + 1", key)]
            found += [r for r in ((first, low - 1), (top + 1, high)) if r[0] <= r[1]]
        left = ranges.subtract(found, lost.get(stream, []))
        if bounds.get(stream):
            gone = ranges.subtract(left, bounds[stream])
            lost.setdefault(stream, []).extend(ranges.subtract(left, gone))
            left = gone
        if left:
            missing[stream] = left
    return missing, {stream: ranges.merged(r) for stream, r in lost.items() if r}


#: How a gateway's gap reasons begin for what a damaged queue may have held (docs/events.md).
DAMAGED = "queue damaged"


def _like(text: str) -> str:
    """``text`` matched as it is by LIKE ... ESCAPE '!' (a gateway id may hold ``_``)."""
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")


def _spans(streams: list[tuple], numbered: dict[str, int]) -> list[tuple[str, int, int, int]]:
    """``(stream, first, high, received)`` of a source's streams (rows of ``sources``, by
    first seq): the numbers each should hold, from its first (1 for the earliest) to the
    highest stored, numbered at the gateway, or below where the next stream begins."""
    return [(stream, 1 if i == 0 else first,
             max(high, numbered.get(stream, high), streams[i + 1][1] - 1 if i + 1 < len(streams) else high), received)
            for i, (stream, first, high, received) in enumerate(streams)]


def _numbered(metrics_json: str | None, src: str) -> dict[str, int]:
    """The highest seq a gateway's latest metrics say a source has numbered, by stream."""
    metrics = json_value(metrics_json) if metrics_json else {}
    return {s["stream"]: s["seq"] for s in (metrics or {}).get("sources") or []
            if isinstance(s, dict) and s.get("name") == src and isinstance(s.get("stream"), str)
            and type(s.get("seq")) is int}


def open_holes(db: Database, recount: bool = True, open_before: Collection[tuple[str, str, str, str]] = ()
               ) -> dict[tuple[str, str, str, str], list[ranges.Range]]:
    """Every range missing and not lost, by ``(gw, site, src, stream)``: what to ask for.

    A source is looked at closely (:func:`holes`) only when its streams do not hold as many
    rows as their numbers span, or it had holes ``open_before`` (whose filling, or not,
    shows so). How many rows a stream holds is, by default, counted in the tables, in one
    pass over each; without ``recount``, the counter each write keeps is believed
    (``sources.received``), which reads a row per stream: a collector of thousands of
    sites and years of rows looks every half minute so, and recounts now and then to find
    rows deleted by hand."""
    again = {(gw, site, src) for gw, site, src, _ in open_before}
    by_source: dict[tuple[str, str, str, str], list[tuple]] = {}
    for gw, site, src, kind, *stream in db.fetch(
            "SELECT gw, site, src, kind, stream, first_seq, high_seq, received FROM sources ORDER BY gw, src, first_seq"):
        by_source.setdefault((gw, site, src, kind), []).append(tuple(stream))
    counted = {(gw, src, stream): count for table in ("events", "headset_events")
               for gw, src, stream, count in db.fetch(f"SELECT gw, src, stream, count(*) FROM {table} "
                                                      "GROUP BY gw, src, stream")} if recount else None
    metrics = dict(db.fetch("SELECT gw, metrics FROM gateways"))
    out = {}
    for (gw, site, src, kind), streams in by_source.items():
        whole = all((received if counted is None else counted.get((gw, src, stream), 0)) == high - first + 1
                    for stream, first, high, received in _spans(streams, _numbered(metrics.get(gw), src)))
        if whole and (gw, site, src) not in again:
            continue
        for stream, missing in holes(db, gw, src, kind)[0].items():
            out[(gw, site, src, stream)] = missing
    return out


def _source(db: Database, gw: str, src: str, kind: str, announced: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """A source's figures; ``announced``: what its gateway's retained status says of it."""
    zone = announced.get("timezone")
    received, last_rx = db.fetch("SELECT sum(received), max(last_rx) FROM sources WHERE gw = ? AND src = ?",
                                 (gw, src))[0]
    table, time_column = ("events", "rx") if kind == "pbx" else ("headset_events", "ts")
    midnight = _midnight_ms(now_ms, zone)
    today, unread = db.fetch(f"SELECT count(*), {'sum(CASE WHEN kind = ? THEN 1 ELSE 0 END)' if kind == 'pbx' else '0'} "
                             f"FROM {table} WHERE gw = ? AND src = ? AND {time_column} >= ?",
                             (*(("unparsed",) if kind == "pbx" else ()), gw, src, midnight))[0]
    missing, lost = holes(db, gw, src, kind)
    states = _alarms(db, gw, src, announced.get("alarms"))
    return {"src": src, "kind": kind, "timezone": zone, "records": int(received or 0), "last_rx": last_rx,
            "today": today, "unparsed_today": int(unread or 0), "missing": sum(map(ranges.size, missing.values())),
            "lost_at_edge": sum(map(ranges.size, lost.values())),
            "missing_ranges": {s: [list(r) for r in rs] for s, rs in missing.items()},
            "not_asked": sorted(s for s, rs in missing.items() if too_large(rs)),
            "alarms": [a["alarm"] for a in states if "active_since" in a], "alarm_states": states}


def _alarms(db: Database, gw: str, src: str, active: Any) -> list[dict[str, Any]]:
    """Each alarm the source has had: ``active_since`` (ms) while raised, else ``cleared_at``.
    Raised now is what the gateway's retained status says, where it says it (a collector
    that joined after an alarm was raised knows it so); else the latest alarm event."""
    latest: dict[str, tuple[int, str]] = {}
    for alarm, state, rx in db.fetch("SELECT alarm, state, rx FROM alarms WHERE gw = ? AND src = ?", (gw, src)):
        if alarm not in latest or rx >= latest[alarm][0]:
            latest[alarm] = (rx, state)
    if not isinstance(active, dict):
        active = {a: rx for a, (rx, state) in latest.items() if state == "raised"}
    out = []
    for alarm in sorted(set(latest) | set(active)):
        if alarm in active:
            since = active[alarm] if type(active[alarm]) is int else latest.get(alarm, (None,))[0]
            out.append({"alarm": alarm, "active_since": since})
        else:
            rx, state = latest[alarm]
            out.append({"alarm": alarm, "cleared_at": rx if state == "cleared" else None})
    return out


def _midnight_ms(now_ms: int, zone: str | None) -> int:
    """The start of today in the source's zone (UTC when it is not known)."""
    tz = known_zone(zone) or timezone.utc
    now = datetime.fromtimestamp(now_ms / 1000, tz)
    return int(now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000)


def text(gateways: list[dict[str, Any]], now_ms: int) -> str:
    """What ``pbxgw fleet`` prints: a line per gateway, one more per source (every name
    as a gateway sent it, so made printable)."""
    if not gateways:
        return "no gateway has been heard from yet\n"
    lines = []
    for g in gateways:
        state = f"{printable(g['state'])} since {_when(g['since'])}" if g["state"] else "no status yet"
        queue = "" if g["queue_depth"] is None else f", queue {g['queue_depth']}"
        if g["refused_last_day"]:
            queue += f", {g['refused_last_day']} messages refused in the last day"
            if g["refused_not_kept_last_day"]:
                queue += f" ({g['refused_not_kept_last_day']} past the hourly allowance, counted and not kept)"
        lines.append(f"{printable(g['gw'])} (site {printable(g['site'])}): {state}, pbxgw "
                     f"{printable(g['version'] or '?')}, boot {g['boot'] or '?'} "
                     f"({g['starts_last_day']} start(s) in the last day){queue}, last heard "
                     f"{_ago(g['last_seen'], now_ms)}")
        if g["under_another_site_last_day"]:
            lines.append(f"  ALARM: {g['under_another_site_last_day']} messages of {printable(g['gw'])} under another "
                         f"site in the last day (the latest {_when(g['under_another_site_latest'])}): stolen "
                         "credentials, or a gateway moved (say so in [gateways]); refused, kept in rejected")
        for s in g["sources"]:
            alarms = "; ".join(f"{printable(a['alarm'])} active since {_when(a['active_since'])}" if "active_since" in a
                               else f"{printable(a['alarm'])} cleared at {_when(a['cleared_at'])}"
                               for a in s["alarm_states"]) or "none"
            unread = f" ({s['unparsed_today']} not understood)" if s["unparsed_today"] else ""
            not_asked = (f" (stream {', '.join(map(printable, s['not_asked']))} misses more than {MAX_HOLE}, more than any gateway "
                         "keeps: a forged or damaged seq? not asked for)" if s["not_asked"] else "")
            lines.append(f"  {printable(s['src'])} ({s['kind']}): {s['records']} stored, last {_when(s['last_rx'])}, "
                         f"{s['today']} today{unread}, missing {s['missing']}{_ranges(s['missing_ranges'])}{not_asked}, "
                         f"lost at edge {s['lost_at_edge']}, alarms: {alarms}")
    return "\n".join(lines) + "\n"


def _ranges(by_stream: dict[str, list[list[int]]], shown: int = 3) -> str:
    """The first few ranges missing (seq), as ``" (201-500, 733)"``."""
    found = [f"{a}-{b}" if a != b else f"{a}" for ranges_ in by_stream.values() for a, b in ranges_]
    if not found:
        return ""
    return f" ({', '.join(found[:shown])}{', ...' if len(found) > shown else ''})"


def _when(ms: int | None) -> str:
    """A time as a UTC date; one no calendar holds (a gateway's, so it may be anything) as
    what it is."""
    if not ms:
        return "never"
    try:
        return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    except (ValueError, OverflowError, OSError):
        return f"{ms} ms (no date)"


def _ago(ms: int | None, now_ms: int) -> str:
    if not ms:
        return "never"
    seconds = max(0, (now_ms - ms) // 1000)
    return f"{seconds} s ago" if seconds < 120 else f"{seconds // 60} min ago" if seconds < 7200 else _when(ms)
