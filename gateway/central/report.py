"""``pbxgw report``'s shell: calls read from the database, figures drawn, files written.

The figures are :mod:`gateway.central.kpi`'s; this module reads what they need (the
calls of the site and range, after assembling what is pending; its agents' headset
events), draws the charts with matplotlib's Agg backend (no display) into PNG images
inlined in ``report.html`` (one file that opens offline: no script, no font, no image
from elsewhere), and writes the same figures as CSV for spreadsheets.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import operator
import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Callable, Iterable, Iterator
from zoneinfo import ZoneInfo

from gateway.central import callstore, kpi
from gateway.central.calls import CALL_COLUMNS, Call
from gateway.central.database import Database, json_value
from gateway.central.kpi import Figures, KpiSettings, Report

#: Answer-time and abandon-time bands, seconds: ``(low, high)``, high None for open.
BANDS = ((0, 5), (5, 10), (10, 20), (20, 30), (30, 60), (60, 120), (120, None))
_READ = CALL_COLUMNS[:-1]


@dataclass(frozen=True, slots=True)
class Files:
    """What :func:`write` made."""

    html: Path
    csvs: tuple[Path, ...]
    calls: int


def site_zone(db: Database, site: str, settings: KpiSettings) -> tuple[str, str]:
    """The site's time zone and where it comes from: the config's ``[kpi.site.<site>]``,
    else the zone its gateways' status gives its sources, else UTC (said so)."""
    configured = dict(settings.site_zones).get(site)
    if configured:
        return configured, "the collector's config"
    zones = []
    for (sources,) in db.fetch("SELECT sources FROM gateways WHERE site = ? AND sources IS NOT NULL", (site,)):
        for source in json_value(sources):
            if isinstance(source, dict) and source.get("timezone"):
                zones.append(source["timezone"])
    if zones:
        zone = max(set(zones), key=zones.count)
        return zone, "its gateways' status" + (" (its sources differ: the most common)" if len(set(zones)) > 1 else "")
    return "UTC", "no gateway of the site has said its zone: UTC"


def build(db: Database, site: str, first: date, last: date, settings: KpiSettings,
          progress: Callable[[str], None] = lambda text: None) -> tuple[Report, str]:
    """Assemble what is pending, then the figures of ``site`` for the local dates
    ``first``..``last``, and where its zone came from."""
    done = False
    pieces = 0
    while not done:
        _, done = callstore.refresh(db, 1)
        pieces += 1
        progress(f"assembling calls: {pieces} piece(s) of records")
    zone_name, zone_from = site_zone(db, site, settings)
    start, end = kpi.local_range(first, last, ZoneInfo(zone_name))
    progress("reading calls")
    headsets = db.fetch("SELECT agent, ext, ts, ev FROM headset_events WHERE site = ? AND ts >= ? AND ts < ? "
                        "AND agent IS NOT NULL ORDER BY agent, ts, seq", (site, start * 1000, end * 1000))
    figures = kpi.report(calls(db, site, start, end), site, zone_name, first, last, settings, headsets)
    return figures, zone_from


def calls(db: Database, site: str, start: int, end: int) -> Iterator[Call]:
    """The calls of a site starting in ``[start, end)`` (UTC s), in order, read a few
    thousand at a time."""
    for row in db.stream(f"SELECT {', '.join(_READ)} FROM calls WHERE site = ? AND start >= ? AND start < ? "
                         "ORDER BY start", (site, start, end)):  # (the index's order: no sort)
        yield Call(*row, records=())


def write(out: Path, figures: Report, calls: Iterable[Call], zone_from: str,
          progress: Callable[[str], None] = lambda text: None) -> Files:
    """``report.html`` and the CSVs into directory ``out`` (made if missing); ``calls``
    are the report's, for calls.csv."""
    out.mkdir(parents=True, exist_ok=True)
    progress("writing calls.csv")
    csvs = (_calls_csv(out / "calls.csv", calls, figures.zone), _extensions_csv(out / "extensions.csv", figures),
            _intervals_csv(out / "intervals.csv", figures))
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


def summary(figures: Report) -> list[tuple[str, str]]:
    """The summary's lines: (what, figure), as the page shows them."""
    t, s = figures.total, figures.settings
    busy = figures.busy_hour()
    return [
        ("Calls offered", str(t.offered)),
        ("Answered", str(t.answered)),
        (f"Answered within {s.answer_within} s", str(t.answered_within)),
        ("Abandoned", f"{t.abandoned} ({t.short_abandons} short, under {s.short_abandon} s"
                      + (f"; {t.unknown_abandon} of no printed ring)" if t.unknown_abandon else ")")),
        ("Busy / voicemail / other", f"{t.busy} / {t.voicemail} / {t.other}"),
        ("Service level", f"{_pct(t.service_level(s.formula))} (target {_pct(s.target)})"),
        ("Average answer wait (ring)", _secs(t.average_wait)),
        ("90th percentile answer wait", _secs(t.p90_wait)),
        ("Average talk", _secs(t.average_talk)),
        ("Busy hour", "n/a" if busy is None else f"{busy[0]:02}:00-{busy[0] + 1:02}:00, {busy[1]:.2f} Erlangs"),
        ("Most calls on trunks at once", str(max(figures.peak_trunks.values(), default=0))),
        ("Calls transferred", str(figures.transferred)),
        ("Calls outside business hours (not counted above)", str(figures.out_of_hours.calls)),
        ("Records joining no call though their PBX prints an id", str(figures.orphans)),
        ("Calls whose last record has not come yet", str(figures.incomplete)),
    ]


def definitions(figures: Report, zone_from: str) -> list[tuple[str, str]]:
    s = figures.settings
    return [
        ("Service level", f"{kpi.FORMULAS[s.formula]}; T = {s.answer_within} s (formula {s.formula!r})"),
        ("Short abandon", f"a call abandoned within {s.short_abandon} s of ringing"),
        ("Offered", "inbound calls, and calls whose PBX prints no direction; one call however many records "
                    "(legs, transfers) its PBX printed"),
        ("Answer wait", "from the call's start until an extension answered (or, abandoned, until it stopped "
                        "ringing): legs of a ring group ring at once, segments one after another add up; calls whose "
                        "PBX prints no ring time are left out of service level and waits"),
        ("Extensions", "the offered calls each extension answered first (first point of answer), and those that "
                       "ended there after transfers"),
        ("Business hours", f"{s.hours_of(figures.site)} (the summary counts calls that started within them; "
                           "the charts show every call)"),
        ("Time zone", f"{figures.zone}, from {zone_from}; times are local, DST included"),
        ("Erlangs", "the time calls were up (ring and talk) over the length of the period"),
        ("Not shown", kpi.NOT_FROM_SMDR),
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
    ax.bar([i for i, _ in measured], [v for _, v in measured], color="#5cb85c")
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


def _banded(values: list[int]) -> list[int]:
    return [sum(1 for v in values if v >= low and (high is None or v < high)) for low, high in BANDS]


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

_STYLE = """body{font-family:sans-serif;margin:2em;color:#222;max-width:70em}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f3f3f3}td.n{text-align:right}img{display:block;max-width:100%;margin:.5em 0 1.5em}
dt{font-weight:bold}dd{margin:0 0 .5em 1.5em}"""


def _table(head: list[str], rows: list[list[str]]) -> str:
    """A table; its first column names, the others hold figures (right-aligned)."""
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td{' class=n' if i else ''}>{html.escape(c)}</td>" for i, c in enumerate(row))
                   + "</tr>" for row in rows)
    return f"<table>{f'<tr>{cells}</tr>' if head else ''}{body}</table>"


def _extension_rows(figures: Report) -> list[list[str]]:
    rows = []
    for ext in sorted(figures.extensions, key=lambda e: (-figures.extensions[e].answered, e)):
        f = figures.extensions[ext]
        rows.append([ext, str(f.answered), str(figures.final_extensions.get(ext, 0)), _secs(f.average_wait),
                     _secs(f.average_talk), f"{f.talk / 3600:.1f} h"])
    return rows


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
    parts.append("<h2>Extensions (first point of answer)</h2>")
    parts.append(_table(["extension", "answered first", "ended at", "average wait", "average talk", "talk"],
                        _extension_rows(figures)) if figures.extensions else "<p>No call was answered.</p>")
    parts.append("<h2>Agents (headsets)</h2>")
    parts.append(_table(["agent", "extension", "calls", "off hook", "talk", "talk / off hook"], _agent_rows(figures))
                 if figures.agents else "<p>No headset mapped to an agent reported in this range.</p>")
    parts.append(f"<p>For spreadsheets, beside this file: {html.escape(', '.join(csv_names))}.</p>")
    made = datetime.now().astimezone(ZoneInfo(figures.zone))
    parts.append(f"<p><small>Made by pbxgw report on {made:%Y-%m-%d %H:%M %Z}.</small></p></body></html>")
    return "".join(parts)


# -- CSV ----------------------------------------------------------------------------------

def _writer(path: Path, head: list[str]):
    fh = path.open("w", newline="", encoding="utf-8")
    w = csv.writer(fh)
    w.writerow(head)
    return fh, w


def _calls_csv(path: Path, calls: Iterable[Call], zone_name: str) -> Path:
    zone, utc = ZoneInfo(zone_name), ZoneInfo("UTC")
    columns = [c for c in _READ if c not in ("gw", "src", "key", "start")]
    values = operator.attrgetter(*columns)
    fh, w = _writer(path, ["start_local", "start_utc", "gw", "src", "key", *columns])
    with fh:
        for c in calls:  # (csv writes None as ""; the two flags as 0 or 1 on either engine)
            at = datetime.fromtimestamp(c.start, utc)
            w.writerow([at.astimezone(zone).isoformat(), at.isoformat(), c.gw, c.src, c.key, *values(c)[:-2],
                        int(c.orphan), int(c.complete)])
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
    fh, w = _writer(path, ["extension", "ended_at", "talk_s", *_FIGURE_HEAD])
    with fh:
        for ext, f in sorted(figures.extensions.items()):
            w.writerow([ext, figures.final_extensions.get(ext, 0), f.talk, *_figure_cells(f, figures.settings.formula)])
    return path


def _intervals_csv(path: Path, figures: Report) -> Path:
    fh, w = _writer(path, ["half_hour_local", "calls", "erlangs", "peak_trunks", *_FIGURE_HEAD])
    with fh:
        zone = ZoneInfo(figures.zone)
        for at, f in sorted(figures.half_hours.items()):
            w.writerow([kpi.local(at, zone).isoformat(), f.calls, f"{f.erlangs(1800):.3f}", figures.peak_trunks.get(at, 0),
                        *_figure_cells(f, figures.settings.formula)])
    return path


def terminal_progress(stream=sys.stderr) -> Callable[[str], None]:
    """A progress line rewritten in place on a terminal; nothing elsewhere (a log, a pipe)."""
    if not stream.isatty():
        return lambda text: None

    def say(text: str) -> None:
        stream.write(f"\r\x1b[K{text}")
        stream.flush()
    return say
