"""``pbxgw report``'s shell: calls read from the database, figures drawn, files written.

The figures are :mod:`gateway.central.kpi`'s; this module reads what they need (the
calls of the site and range, after assembling what is pending; its agents' headset
events), draws the charts with matplotlib's Agg backend (no display) into PNG images
inlined in ``report.html`` (one file that opens offline: no script, no font, no image
from elsewhere), and writes the same figures as CSV for spreadsheets.
"""

from __future__ import annotations

import base64
import functools
import csv
import html
import io
import operator
import re
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Callable, Iterable, Iterator
from zoneinfo import ZoneInfo

import orjson

from gateway.central import callstore, kpi
from gateway.central import summary as summaries
from gateway.central.calls import Call
from gateway.central.database import Database, json_value
from gateway.central.kpi import Figures, KpiSettings, Report
from gateway.central.privacy import PrivacySettings
from gateway.common.printable import printable
from gateway.common.zones import known_zone

#: Answer-time and abandon-time bands, seconds: ``(low, high)``, high None for open.
BANDS = ((0, 5), (5, 10), (10, 20), (20, 30), (30, 60), (60, 120), (120, None))
#: A day's service-level bar: at or above the target, below it.
MET, MISSED = "#3c9a3c", "#d9534f"
#: The schema version that keeps summaries (:mod:`gateway.central.summary`).
SUMMARIES = 6


@dataclass(frozen=True, slots=True)
class Files:
    """What :func:`write` made."""

    html: Path
    csvs: tuple[Path, ...]  # and summary.json
    calls: int


def site_zone(db: Database, site: str, settings: KpiSettings) -> tuple[str, str]:
    """The site's time zone and where it comes from: the config's ``[kpi.site.<site>]``,
    else the zone its gateways' status gives its sources, else UTC (said so)."""
    configured = dict(settings.site_zones).get(site)
    if configured:
        return configured, "the collector's config"
    zones, unknown = [], set()
    for (sources,) in db.fetch("SELECT sources FROM gateways WHERE site = ? AND sources IS NOT NULL", (site,)):
        for source in json_value(sources) or ():
            if isinstance(source, dict) and source.get("timezone"):
                name = source["timezone"]
                (zones.append(name) if known_zone(name) else unknown.add(printable(name)))
    if zones:
        zone = max(set(zones), key=zones.count)
        return zone, "its gateways' status" + (" (its sources differ: the most common)" if len(set(zones)) > 1 else "")
    if unknown:
        return "UTC", f"its gateways' status names no known zone ({', '.join(sorted(unknown))}): UTC"
    return "UTC", "no gateway of the site has said its zone: UTC"


def build(db: Database, site: str, first: date, last: date, settings: KpiSettings,
          progress: Callable[[str], None] = lambda text: None) -> tuple[Report, str]:
    """Assemble what is pending and make its summaries, then the figures of ``site`` for
    the local dates ``first``..``last``, and where its zone came from. The figures are
    put together from the stored quarter-hour parts (:mod:`gateway.central.summary`),
    or from the calls where parts cannot serve: business hours that open or close
    between quarter-hours, a database from before summaries, or parts still due that a
    report reader (who may not write) cannot make."""
    reader = not db.may_write()  # (a report reader's user may only read: the collector assembles)
    summarised = db.schema_version() >= SUMMARIES
    zone_name, zone_from = site_zone(db, site, settings)
    start, end = kpi.local_range(first, last, ZoneInfo(zone_name))
    if not reader:
        assembly, pieces = callstore.Pass(db), 0
        while not assembly.over:
            assembly.piece()
            pieces += 1
            progress(f"assembling calls: {pieces} piece(s) of records")
        made = 0
        while summarised and (step := summaries.make_due(db, of=(site, start - start % kpi.PART_SLOT, end))):
            made += step
            progress(f"summarising calls: {made} quarter-hour(s)")
    progress("reading calls")
    headsets = db.fetch("SELECT agent, ext, ts, ev FROM headset_events WHERE site = ? AND ts >= ? AND ts < ? "
                        "AND agent IS NOT NULL ORDER BY agent, ts, seq", (site, start * 1000, end * 1000))
    slot = kpi.slot_for(settings.hours_of(site))
    if (summarised and slot == kpi.PART_SLOT and start % slot == end % slot == 0
            and not summaries.due(db, site, start, end)):
        parts = summaries.stored(db, site, start, end)
    else:
        parts = kpi.parts(calls(db, site, start, end), slot)
    figures = kpi.report_of(parts, site, zone_name, first, last, settings, headsets, unread(db, site, start, end))
    figures.unshown = unshown(db, figures.sources)
    if reader:
        figures.unassembled = db.fetch("SELECT count(*) FROM calls_pending WHERE site = ?", (site,))[0][0]
    return figures, zone_from


def unshown(db: Database, sources: set[tuple[str, str, str]]) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """What the records of each source and profile do not show (:data:`kpi.UNSHOWN`), by
    the assembly rules that built its calls (``sources``: ``(gw, src, rules)``)."""
    assemblies = callstore.Assemblies(db)
    found = {}
    for gw, src, rules in sources:
        profile = rules.split("/")[0]
        if missing := kpi.unshown_by(assemblies.of(gw, profile)):
            found[(src, profile)] = missing
    return tuple((src, profile, missing) for (src, profile), missing in sorted(found.items()))


def unread(db: Database, site: str, start: int, end: int) -> list[tuple[str, str, int]]:
    """The records of a site no profile could read, by source and profile, that belong in
    ``[start, end)``: by the start of the call their source read before them, or, read
    before any call, by when they arrived (both on the index of starts)."""
    counts: dict[tuple[str, str], int] = {}
    for sql, params in (("start >= ? AND start < ?", (start, end)),
                        ("start IS NULL AND rx >= ? AND rx < ?", (start * 1000, end * 1000))):
        for src, profile, n in db.fetch(f"SELECT src, profile, COUNT(*) FROM events WHERE site = ? AND {sql} "
                                        "AND kind = 'unparsed' GROUP BY src, profile", (site, *params)):
            counts[(src, profile)] = counts.get((src, profile), 0) + int(n)
    return [(src, profile, n) for (src, profile), n in sorted(counts.items())]


def calls(db: Database, site: str, start: int, end: int) -> Iterator[Call]:
    """The calls of a site starting in ``[start, end)`` (UTC s), in order, read a few
    thousand at a time."""
    yield from map(callstore.call_from_row, db.stream(
        f"SELECT {', '.join(callstore.READ_COLUMNS)} FROM calls WHERE site = ? AND start >= ? AND start < ? "
        "ORDER BY start", (site, start, end)))  # (the index's order: no sort)


def write(out: Path, figures: Report, calls: Iterable[Call] | None, zone_from: str,
          progress: Callable[[str], None] = lambda text: None) -> Files:
    """``report.html`` and the CSVs into directory ``out`` (made if missing); ``calls``
    are the report's, for calls.csv (None: no calls.csv, and an earlier report's is
    removed, so that the directory holds one report)."""
    out.mkdir(parents=True, exist_ok=True)
    if calls is None:
        (out / "calls.csv").unlink(missing_ok=True)
    else:
        progress("writing calls.csv")
    csvs = (*(() if calls is None else (_calls_csv(out / "calls.csv", calls, figures),)),
            _extensions_csv(out / "extensions.csv", figures),
            _intervals_csv(out / "intervals.csv", figures), _days_csv(out / "days.csv", figures),
            _numbers_csv(out / "numbers.csv", figures), _groups_csv(out / "groups.csv", figures),
            _summary_json(out / "summary.json", figures))
    charts = []
    for i, (title, draw) in enumerate(_CHARTS, 1):
        progress(f"drawing chart {i} of {len(_CHARTS)}")
        charts.append((title, _png(draw, figures)))
    page = out / "report.html"
    page.write_text(_html(figures, charts, zone_from, [p.name for p in csvs]), encoding="utf-8")
    return Files(page, csvs, figures.total.calls + figures.out_of_hours.calls)


# -- the figures as text ------------------------------------------------------------------

def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def _secs(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} s"


def summary_figures(figures: Report) -> dict:
    """Every summary figure under its stable key (``summary.json``; docs/central.md): the
    page's summary is written from these."""
    t, s = figures.total, figures.settings
    busy = figures.busy_hour()
    return {
        "site": figures.site, "first": figures.first.isoformat(), "last": figures.last.isoformat(),
        "zone": figures.zone, "business_hours": str(s.hours_of(figures.site)), "formula": s.formula,
        "answer_within_s": s.answer_within, "short_abandon_s": s.short_abandon, "target": s.target,
        "offered": t.offered, "answered": t.answered, "answered_within_t": t.answered_within,
        "abandoned": t.abandoned, "abandoned_short": t.short_abandons, "abandoned_no_ring": t.unknown_abandon,
        "answered_no_ring": t.unknown_wait, "voicemail": t.voicemail, "busy": t.busy, "other": t.other,
        "service_level": t.service_level(s.formula),
        "service_level_left_out": dict(t.left_out(s.formula)),
        "abandon_rate": t.abandon_rate, "abandon_rate_after_short": t.abandon_rate_after_short,
        "answer_rate": t.answer_rate, "asa_s": t.average_wait, "p90_wait_s": t.p90_wait,
        "average_talk_s": t.average_talk, "aht_s": t.average_handling, "transfers": t.transfers,
        "outside_hours": figures.out_of_hours.offered,
        "outbound": figures.outbound.calls, "outbound_connected": figures.outbound.answered,
        "outbound_talk_s": figures.outbound.talk,
        "not_understood": figures.not_understood_count(),
        "not_understood_by_source": [{"src": src, "profile": profile, "records": n}
                                     for src, profile, n in figures.not_understood],
        "not_shown_by_source": [{"src": src, "profile": profile, "not_shown": list(missing)}
                                for src, profile, missing in figures.unshown],
        "folded_duplicates": figures.folded, "orphans": figures.orphans, "incomplete": figures.incomplete,
        "calls_over_a_day": figures.over_a_day,
        "unassembled_sources": figures.unassembled,
        "peak_trunks": max(figures.peak_trunks.values(), default=0),
        "busy_hour": None if busy is None else {
            "start": f"{busy.hour:02}:00", "erlangs_open_days": busy.erlangs_open_days, "open_days": busy.open_days,
            "peak_day": busy.peak_day.isoformat(), "erlangs_peak_day": busy.erlangs_peak_day},
    }


def summary(figures: Report) -> list[tuple[str, str]]:
    """The summary's lines: (what, figure), as the page shows them."""
    f = summary_figures(figures)
    left_out = f["service_level_left_out"]
    outside = (f"; left out of its formula: {sum(left_out.values())} offered calls ("
               + ", ".join(f"{n} {why}" for why, n in left_out.items()) + ")") if left_out else ""
    busy = f["busy_hour"]
    unread = "".join(f"; {u['records']} from {u['src']} ({u['profile']})" for u in f["not_understood_by_source"])
    return [
        ("Calls offered", str(f["offered"])),
        ("Answered", f"{f['answered']} (answer rate {_pct(f['answer_rate'])})"),
        (f"Answered within {f['answer_within_s']} s", str(f["answered_within_t"])),
        ("Abandoned", f"{f['abandoned']} ({f['abandoned_short']} short, under {f['short_abandon_s']} s"
                      + (f"; {f['abandoned_no_ring']} of no printed ring)" if f["abandoned_no_ring"] else ")")),
        ("Abandon rate", f"{_pct(f['abandon_rate'])}; after the short-abandon cut "
                         f"{_pct(f['abandon_rate_after_short'])}"),
        ("Voicemail / busy / other", f"{f['voicemail']} / {f['busy']} / {f['other']}"),
        ("Service level", f"{_pct(f['service_level'])} (target {_pct(f['target'])}){outside}"),
        ("Average speed of answer (ring)", _secs(f["asa_s"])),
        ("90th percentile answer wait", _secs(f["p90_wait_s"])),
        ("Average handling time (talk and hold)", _secs(f["aht_s"])),
        ("Transfers (hand-offs between people)", str(f["transfers"])),
        ("Busy hour", "n/a (no open day)" if busy is None else
         f"{busy['start']}, {busy['erlangs_open_days']:.2f} Erlangs on the mean of {busy['open_days']} open day(s); "
         f"{busy['erlangs_peak_day']:.2f} on the peak day, {busy['peak_day']}"),
        ("Most calls on trunks at once", str(f["peak_trunks"])),
        ("Outbound calls", f"{f['outbound']} ({f['outbound_connected']} connected, "
                           f"{f['outbound_talk_s'] / 3600:.1f} h talk)"),
        ("Offered calls outside business hours (not counted above)", str(f["outside_hours"])),
        ("Records that could not be read (not counted above)", f"{f['not_understood']}{unread}"),
        ("Records printed twice (folded, counted once)", str(f["folded_duplicates"])),
        ("Records joining no call though their PBX prints an id", str(f["orphans"])),
        ("Calls whose last record has not come yet", str(f["incomplete"])),
    ] + ([("Calls whose records say they lasted over a day (counted in traffic and trunks for their first day only)",
           str(f["calls_over_a_day"]))] if f["calls_over_a_day"] else []) + (
        [("Sources whose latest records are not in calls yet (not counted above: the collector assembles them "
          "within seconds; this report's user may only read)", str(f["unassembled_sources"]))]
        if f["unassembled_sources"] else [])


def definitions(figures: Report, zone_from: str) -> list[tuple[str, str]]:
    s = figures.settings
    return [
        ("Service level", f"{kpi.FORMULAS[s.formula]}; T = {s.answer_within} s (formula {s.formula!r}); the "
                          "summary says how many offered calls the formula leaves out, and why"),
        ("Short abandon", f"a call abandoned within {s.short_abandon} s of ringing"),
        ("Offered", "inbound calls, and calls whose PBX prints no direction but a number; one call however many "
                    "records (legs, transfers) its PBX printed"),
        ("Rates", "answer rate: answered / offered; abandon rate: abandoned / offered; after the cut: (abandoned - "
                  "short abandons) / (offered - short abandons)"),
        ("Answer wait", "from the call's start until an extension answered (or, abandoned, until it stopped "
                        "ringing): legs of a ring group ring at once, segments one after another add up; calls whose "
                        "PBX prints no ring time are left out of service level and waits"),
        ("Handling time", "talk and hold of every leg of an answered call, over answered calls (after-call work "
                          "is not in SMDR)"),
        ("Transfers", "hand-offs from one answered leg of an offered call to the next; a roll-over to voicemail "
                      "is voicemail, not a transfer"),
        ("Extensions", "over every call of the range, in business hours or not: presented, the offered calls that "
                       "rang there (once a call); answered there; missed, presented and not answered there (the "
                       "caller gave up, or the call moved on); talk and hold of the legs answered there; outbound "
                       "calls made from there"),
        ("Business hours", f"{s.hours_of(figures.site)} (the summary counts calls that started within them; "
                           "the charts and extensions show every call)"),
        ("Time zone", f"{figures.zone}, from {zone_from}; times are local, DST included"),
        ("Erlangs", "every call's time on the line (ring, talk and hold of all its legs, a voicemail message "
                    "included; inbound, outbound and internal), each clock hour taking the part of a call inside "
                    "it, over the hour's length; the busy hour is the hour of the day with the most, averaged over "
                    "the open days (days with offered calls in business hours)"),
        ("Not shown", kpi.NOT_FROM_SMDR),
        ("Personal data", (figures.privacy or "callers' and called numbers and the record text kept whole "
                           "([privacy] sets how long)") + ("; this report shows numbers masked to their last 4 digits"
                                                           if figures.masked else "")),
    ]


# -- charts -------------------------------------------------------------------------------

def _png(draw: Callable, figures: Report) -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6), dpi=96, layout="constrained")
    draw(fig.add_subplot(), figures)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _per_half_hour(ax, figures: Report) -> None:
    answered = {(h, m): 0 for h in range(24) for m in (0, 30)}
    abandoned = dict(answered)
    zone = ZoneInfo(figures.zone)
    for start, f in figures.half_hours.items():
        at = kpi.local(start, zone)
        answered[(at.hour, at.minute)] += f.answered
        abandoned[(at.hour, at.minute)] += f.abandoned
    x = range(len(answered))
    ax.bar(x, list(answered.values()), color="#2a7ab0", label="answered")
    ax.bar(x, list(abandoned.values()), bottom=list(answered.values()), color="#d9534f", label="abandoned")
    ax.set_xticks(list(x)[::4], [f"{h:02}:{m:02}" for h, m in list(answered)[::4]])
    ax.set_ylabel("calls")
    ax.set_title(f"Offered calls per half-hour of the day, {figures.day_count} day(s)")
    ax.legend()


def _heatmap(ax, figures: Report) -> None:
    days = [figures.first + timedelta(days=i) for i in range(figures.day_count)]
    grid = [[figures.day_hours[(d, h)].offered if (d, h) in figures.day_hours else 0 for h in range(24)]
            for d in days]
    image = ax.imshow(grid, aspect="auto", cmap="YlOrRd", interpolation="nearest")
    ax.set_xticks(range(0, 24, 2), [f"{h:02}" for h in range(0, 24, 2)])
    step = max(1, len(days) // 10)
    ax.set_yticks(range(0, len(days), step), [f"{d:%a %d %b}" for d in days[::step]])
    ax.set_xlabel("hour of the day")
    ax.set_title("Offered calls, day by hour")
    ax.figure.colorbar(image, ax=ax, label="calls")


def _service_level(ax, figures: Report) -> None:
    s = figures.settings
    days = [figures.first + timedelta(days=i) for i in range(figures.day_count)]
    levels = [figures.days[d].service_level(s.formula) if d in figures.days else None for d in days]
    measured = [(i, 100 * v) for i, v in enumerate(levels) if v is not None]
    ax.bar([i for i, _ in measured], [v for _, v in measured],
           color=[MET if v >= 100 * s.target else MISSED for _, v in measured])
    for i, v in enumerate(levels):
        if v is None:  # no call whose wait is known: nothing to measure, which is not 0 %
            ax.text(i, 2, "n/a", ha="center", color="#777")
    ax.set_xlim(-0.5, len(days) - 0.5)
    ax.axhline(100 * s.target, color="#333", linestyle="--", label=f"target {100 * s.target:.0f} %")
    step = max(1, len(days) // 10)
    ax.set_xticks(range(0, len(days), step), [f"{d:%d %b}" for d in days[::step]])
    ax.set_ylim(0, 100)
    ax.set_ylabel("%")
    ax.set_title(f"Service level per day (answered within {s.answer_within} s)")
    ax.legend(loc="lower right")


def _band_names() -> list[str]:
    return [f"{low}-{high} s" if high is not None else f"{low} s +" for low, high in BANDS]


def _banded(waits: Counter) -> list[int]:
    """How many calls waited within each band (waits: seconds -> calls)."""
    return [sum(n for v, n in waits.items() if v >= low and (high is None or v < high)) for low, high in BANDS]


def _answer_bands(ax, figures: Report) -> None:
    ax.bar(_band_names(), _banded(figures.total.waits), color="#2a7ab0")
    ax.set_ylabel("calls")
    ax.set_title("Answered calls by answer wait (business hours)")


def _abandon_bands(ax, figures: Report) -> None:
    ax.bar(_band_names(), _banded(figures.total.abandon_waits), color="#d9534f")
    ax.set_ylabel("calls")
    ax.set_title("Abandoned calls by how long they rang (business hours)")


def _trunks(ax, figures: Report) -> None:
    from matplotlib.dates import AutoDateLocator, DateFormatter

    zone = ZoneInfo(figures.zone)
    clock = kpi.LocalClock(zone)
    start, end = kpi.local_range(figures.first, figures.last, zone)
    # Every half-hour of the range, 0 where no call was on a trunk (a line drawn only
    # through the half-hours that had some would hold their figure through the night).
    peaks = sorted({clock.half_hour(t): figures.peak_trunks.get(clock.half_hour(t), 0) for t in range(start, end, 1800)}
                   .items())
    # Aware times, labelled in the site's zone: a day that falls back does not run backwards.
    ax.plot([kpi.local(at, zone) for at, _ in peaks], [n for _, n in peaks], drawstyle="steps-post", color="#8e44ad")
    ax.xaxis.set_major_locator(AutoDateLocator(tz=zone))
    ax.xaxis.set_major_formatter(DateFormatter("%d %b %H:%M", tz=zone))
    ax.set_ylabel("calls on trunks")
    ax.set_title("Most calls on trunks at once, per half-hour")
    ax.figure.autofmt_xdate()


_CHARTS = (("Calls per half-hour: answered and abandoned", _per_half_hour), ("Day by hour", _heatmap),
           ("Service level per day against the target", _service_level), ("Answer-time bands", _answer_bands),
           ("Abandons by wait time", _abandon_bands), ("Trunks busy per half-hour", _trunks))


# -- the page -----------------------------------------------------------------------------

_STYLE = """body{font-family:sans-serif;margin:2em auto;padding:0 1em;color:#222;max-width:70em;overflow-wrap:anywhere}
table{border-collapse:collapse;margin:1em 0;max-width:100%}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f3f3f3}td.n{text-align:right}img{display:block;max-width:100%;margin:.5em 0 1.5em}
dt{font-weight:bold}dd{margin:0 0 .5em 1.5em}"""


def _table(head: list[str], rows: list[list[str]], names: int = 1) -> str:
    """A table; its first ``names`` columns name, the others hold figures (right-aligned)."""
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td{' class=n' if i >= names else ''}>{html.escape(c)}</td>"
                                    for i, c in enumerate(row))
                   + "</tr>" for row in rows)
    return f"<table>{f'<tr>{cells}</tr>' if head else ''}{body}</table>"


_EXTENSION_HEAD = ["extension", "name", "presented", "answered", "missed", "talk_s", "hold_s", "outbound",
                   "outbound_talk_s"]


def _extension_values(figures: Report) -> list[list]:
    """Per extension (by its number), then a totals row."""
    rows = [[ext, e.name or "", e.presented, e.answered, e.missed, e.talk, e.hold, e.outbound, e.outbound_talk]
            for ext, e in sorted(figures.extensions.items())]
    return rows + [["total", "", *(sum(r[i] for r in rows) for i in range(2, len(_EXTENSION_HEAD)))]]


def _agent_rows(figures: Report) -> list[list[str]]:
    return [[agent, a.ext or "", str(a.calls), f"{a.off_hook / 3600:.1f} h", f"{a.talk / 3600:.1f} h",
             _pct(a.share_talking)] for agent, a in sorted(figures.agents.items())]


def _html(figures: Report, charts: list[tuple[str, bytes]], zone_from: str, csv_names: list[str]) -> str:
    title = f"Calls and service level: {figures.site}, {figures.first:%d %b %Y} to {figures.last:%d %b %Y}"
    parts = [f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
             f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
             "<h2>Definitions</h2><dl>"]
    parts += [f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in definitions(figures, zone_from)]
    parts.append("</dl><h2>Summary</h2>")
    parts.append(_table([], [[k, v] for k, v in summary(figures)]))
    parts.append("<h2>Charts</h2>")
    for name, png in charts:
        data = base64.b64encode(png).decode()
        parts.append(f"<h3>{html.escape(name)}</h3><img alt=\"{html.escape(name)}\" src=\"data:image/png;base64,{data}\">")
    parts.append("<h2>Extensions</h2>")
    parts.append(_table(["extension", "name", "presented", "answered", "missed", "talk", "hold", "outbound",
                         "outbound talk"],
                        [[str(v) if i < 5 or i == 7 else f"{v / 3600:.1f} h" for i, v in enumerate(row)]
                         for row in _extension_values(figures)], names=2)
                 if figures.extensions else "<p>No call rang at an extension.</p>")
    parts += [f"<p>What the records of {html.escape(src)} ({html.escape(profile)}) do not show, so not in this "
              f"table: {html.escape('; '.join(kpi.UNSHOWN[m] for m in missing))}.</p>"
              for src, profile, missing in figures.unshown]
    o = figures.outbound
    parts.append("<h2>Outbound calls</h2>")
    parts.append(_table(["", "calls", "connected", "talk", "average talk"],
                        [["every hour of the range", str(o.calls), str(o.answered), f"{o.talk / 3600:.1f} h",
                          _secs(o.talk / o.answered if o.answered else None)]])
                 + "<p>Per extension: the outbound columns of the table above.</p>")
    parts.append("<h2>Numbers called (DDI, hunt group or queue, as the PBX prints it)</h2>")
    parts.append(_offered_table("number called", figures.numbers, figures, numbers=True)
                 if figures.numbers else "<p>No call was offered in business hours.</p>")
    parts.append("<h2>Hunt groups and queues</h2>")
    unnamed = figures.total.offered - sum(f.offered for f in figures.groups.values())
    parts.append(_offered_table("hunt group or queue", figures.groups, figures)
                 + f"<p>Offered calls whose records named none: {unnamed}.</p>"
                 if figures.groups else "<p>The PBX named no hunt group or queue in these calls' records (IP Office "
                                        "and most families print none: the numbers called above stand for them).</p>")
    parts.append("<h2>Agents (headsets)</h2>")
    parts.append(_table(["agent", "extension", "calls", "off hook", "talk", "talk / off hook"], _agent_rows(figures))
                 if figures.agents else "<p>No headset mapped to an agent reported in this range.</p>")
    parts.append(f"<p>For spreadsheets, beside this file: {html.escape(', '.join(csv_names))}.</p>")
    made = datetime.now().astimezone(ZoneInfo(figures.zone))
    parts.append(f"<p><small>Made by pbxgw report on {made:%Y-%m-%d %H:%M %Z}.</small></p></body></html>")
    return "".join(parts)


# -- CSV ----------------------------------------------------------------------------------

#: How a text cell may begin that a spreadsheet takes for a formula (OWASP, "CSV Injection").
FORMULA_HEADS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?\Z")


def spreadsheet_cell(value: object) -> object:
    """A cell as a spreadsheet may open it. The text in these files comes from a PBX's
    records and a gateway's names, so anyone who can dial or name an extension writes it:
    text that a spreadsheet would run as a formula (``=HYPERLINK(...)``, ``+cmd|...``,
    ``@SUM(...)``) gets a ``'`` before it, as OWASP advises, which spreadsheets show as text.
    A plain number (``+441234567``, ``-3``) is left as it is: it runs nothing."""
    if isinstance(value, str) and value.startswith(FORMULA_HEADS) and not _NUMBER.match(value):
        return "'" + value
    return value


class _Cells:
    """A CSV writer whose every cell is a :func:`spreadsheet_cell`."""

    def __init__(self, fh):
        self._writer = csv.writer(fh)

    def writerow(self, row: Iterable[object]) -> None:
        self._writer.writerow([spreadsheet_cell(v) for v in row])

    def writerows(self, rows: Iterable[Iterable[object]]) -> None:
        for row in rows:
            self.writerow(row)


def _writer(path: Path, head: list[str]):
    fh = path.open("w", newline="", encoding="utf-8")
    w = _Cells(fh)
    w.writerow(head)
    return fh, w


def _calls_csv(path: Path, calls: Iterable[Call], figures: Report) -> Path:
    zone, utc = ZoneInfo(figures.zone), ZoneInfo("UTC")
    columns = [c for c in callstore.READ_COLUMNS if c not in ("gw", "src", "key", "start")]
    values = operator.attrgetter(*columns)
    fh, w = _writer(path, ["start_local", "start_utc", "gw", "src", "key", *columns])
    # (csv writes None as ""; the two flags as 0 or 1 on either engine; the legs as JSON)
    shown = {"orphan": int, "complete": int, "legs": lambda legs: orjson.dumps(legs).decode(),
             "caller": functools.partial(_number, figures), "called": functools.partial(_number, figures)}
    cells = [shown.get(c, lambda v: v) for c in columns]
    with fh:
        for c in calls:
            at = datetime.fromtimestamp(c.start, utc)
            w.writerow([at.astimezone(zone).isoformat(), at.isoformat(), c.gw, c.src, c.key,
                        *(cell(v) for cell, v in zip(cells, values(c)))])
    return path


def _figure_cells(f: Figures, formula: str) -> list[str]:
    return [str(f.offered), str(f.answered), str(f.answered_within), str(f.abandoned), str(f.short_abandons),
            str(f.busy), str(f.voicemail), str(f.other), _num(f.service_level(formula)), _num(f.average_wait),
            _num(f.p90_wait), _num(f.average_talk)]


_FIGURE_HEAD = ["offered", "answered", "answered_within_t", "abandoned", "short_abandons", "busy", "voicemail",
                "other", "service_level", "average_wait_s", "p90_wait_s", "average_talk_s"]


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def _extensions_csv(path: Path, figures: Report) -> Path:
    fh, w = _writer(path, _EXTENSION_HEAD)
    with fh:
        w.writerows(_extension_values(figures))
    return path


def _intervals_csv(path: Path, figures: Report) -> Path:
    """Every half-hour of the range, those without calls as zeros, and whether it is in
    business hours."""
    fh, w = _writer(path, ["half_hour_local", "business_hours", "calls", "erlangs", "peak_trunks", *_FIGURE_HEAD])
    zone = ZoneInfo(figures.zone)
    clock = kpi.LocalClock(zone)
    hours = figures.settings.hours_of(figures.site)
    start, end = kpi.local_range(figures.first, figures.last, zone)
    with fh:
        for at in sorted({clock.half_hour(t) for t in range(start, end, 900)}):
            f = figures.half_hours.get(at) or Figures()
            local = kpi.local(at, zone)
            w.writerow([local.isoformat(), int(local in hours), f.calls, f"{figures.traffic.get(at, 0) / 1800:.3f}",
                        figures.peak_trunks.get(at, 0), *_figure_cells(f, figures.settings.formula)])
    return path


def _offered_table(head: str, rows: dict[str, Figures], figures: Report, numbers: bool = False) -> str:
    """Offered calls in business hours by a key (number called, hunt group), busiest first."""
    return _table([head, "offered", "answered", "abandoned", "voicemail", "service level", "average speed of answer"],
                  [[(_number(figures, n) if numbers else n) or "(none printed)", str(f.offered), str(f.answered),
                    str(f.abandoned), str(f.voicemail),
                    _pct(f.service_level(figures.settings.formula)), _secs(f.average_wait)]
                   for n, f in sorted(rows.items(), key=lambda kv: (-kv[1].offered, kv[0]))])


def _groups_csv(path: Path, figures: Report) -> Path:
    """The summary's offered calls by the hunt group or queue the PBX printed (none where
    it prints none)."""
    fh, w = _writer(path, ["hunt_group", *_FIGURE_HEAD])
    with fh:
        for group, f in sorted(figures.groups.items()):
            w.writerow([group, *_figure_cells(f, figures.settings.formula)])
    return path


#: How ``pbxgw report --mask-numbers`` shows a number: its last four digits.
READER_MASK = PrivacySettings(numbers="mask", keep_digits=4)


def _number(figures: Report, number: str | None) -> str | None:
    return READER_MASK.hidden(number) if figures.masked else number


def _numbers_csv(path: Path, figures: Report) -> Path:
    """The summary's offered calls by the number they called (the DDI, hunt group or queue,
    as the PBX prints it; "" where it prints none)."""
    fh, w = _writer(path, ["called", *_FIGURE_HEAD])
    with fh:
        for number, f in sorted(figures.numbers.items()):
            w.writerow([_number(figures, number), *_figure_cells(f, figures.settings.formula)])
    return path


def _days_csv(path: Path, figures: Report) -> Path:
    """Every day of the range, business hours or not (the summary counts only those)."""
    fh, w = _writer(path, ["day", "open_day", *_FIGURE_HEAD])
    with fh:
        for i in range(figures.day_count):
            day = figures.first + timedelta(days=i)
            f = figures.days.get(day) or Figures()
            w.writerow([day.isoformat(), int(day in figures.open_days), *_figure_cells(f, figures.settings.formula)])
    return path


def _summary_json(path: Path, figures: Report) -> Path:
    path.write_bytes(orjson.dumps(summary_figures(figures), option=orjson.OPT_INDENT_2) + b"\n")
    return path


def terminal_progress(stream=sys.stderr) -> Callable[[str], None]:
    """A progress line rewritten in place on a terminal; nothing elsewhere (a log, a pipe)."""
    if not stream.isatty():
        return lambda text: None

    def say(text: str) -> None:
        stream.write(f"\r\x1b[K{text}")
        stream.flush()
    return say
