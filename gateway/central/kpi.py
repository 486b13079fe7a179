"""Sans-I/O: calls in, a contact centre's service figures out, each with its definition.

Service level has many formulas in use; the one applied is named in the settings and
printed with the report, as are the answer threshold, the short-abandon cut, business
hours and the site's time zone. Buckets (half-hours, days, hours of the day) are in the
site's local time, DST included: a half-hour is a local clock half-hour, so a day that
falls back has 50 of them. What SMDR cannot say is not made up: queue wait and after-call
work need ACD data (:data:`NOT_FROM_SMDR`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from gateway.central.calls import Call

#: Named service-level formulas: what the report prints, and the denominator's parts.
FORMULAS = {
    "answered_and_abandoned": "calls answered within T / (calls answered + calls abandoned after the short-abandon cut)",
    "offered": "calls answered within T / calls offered",
    "answered": "calls answered within T / calls answered (abandoned calls left out, as Avaya CMS does)",
    "offered_less_short": "calls answered within T / (calls offered - short abandons) (as Cisco does)",
}
NOT_FROM_SMDR = ("queue wait before ringing an extension and after-call work need the ACD's own data, which SMDR "
                 "does not carry: they are not shown")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True, slots=True)
class BusinessHours:
    """Days of the week (0 = Monday) and local clock times ``[opens, closes)``."""

    days: frozenset[int] = frozenset(range(5))
    opens: time = time(8)
    closes: time = time(18)

    def __contains__(self, local: datetime) -> bool:
        return self.covers(local.weekday(), local.hour * 3600 + local.minute * 60 + local.second)

    def covers(self, weekday: int, second_of_day: int) -> bool:
        """Whether a local weekday (0 = Monday) and second of the day are within them."""
        return (weekday in self.days and
                _seconds(self.opens) <= second_of_day < _seconds(self.closes))

    def __str__(self) -> str:
        days = sorted(self.days)
        if days == list(range(days[0], days[-1] + 1)) and len(days) > 1:
            named = f"{WEEKDAYS[days[0]]}-{WEEKDAYS[days[-1]]}"
        else:
            named = ",".join(WEEKDAYS[d] for d in days)
        return f"{named} {self.opens:%H:%M}-{self.closes:%H:%M}"


def _seconds(t: time) -> int:
    return t.hour * 3600 + t.minute * 60 + t.second


def business_hours(text: str) -> BusinessHours:
    """``"Mon-Fri 08:00-18:00"`` or ``"Mon,Wed,Sat 07:30-12:00"``.

    :raises ValueError: saying what is expected.
    """
    expected = f'expected days and hours such as "Mon-Fri 08:00-18:00"; got {text!r}'
    try:
        days_text, hours_text = text.split()
        days: set[int] = set()
        for part in days_text.split(","):
            first, _, last = part.partition("-")
            a, b = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
            days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
        opens, closes = (time.fromisoformat(t) for t in hours_text.split("-"))
    except ValueError:
        raise ValueError(expected) from None
    if opens >= closes:
        raise ValueError(f"{expected} (opening before closing)")
    return BusinessHours(frozenset(days), opens, closes)


@dataclass(frozen=True, slots=True)
class KpiSettings:
    """``[kpi]`` of the collector's config."""

    answer_within: int = 20  # T, seconds: answered within T counts toward service level
    formula: str = "answered_and_abandoned"
    short_abandon: int = 5  # abandoned before this many seconds: a short abandon
    target: float = 0.8  # the service-level target drawn on the chart
    hours: BusinessHours = BusinessHours()
    site_hours: tuple[tuple[str, BusinessHours], ...] = ()  # per site, over ``hours``
    site_zones: tuple[tuple[str, str], ...] = ()  # per site, over its gateway's status

    def hours_of(self, site: str) -> BusinessHours:
        return dict(self.site_hours).get(site, self.hours)


@dataclass
class Figures:
    """The figures of a set of calls (a bucket, an extension, a trunk, the whole range)."""

    calls: int = 0
    offered: int = 0  # inbound calls (and calls whose direction the PBX does not print)
    answered: int = 0
    answered_within: int = 0
    abandoned: int = 0
    short_abandons: int = 0
    busy: int = 0
    voicemail: int = 0
    other: int = 0
    unknown_wait: int = 0  # answered calls whose PBX printed no ring time: not in service level
    unknown_abandon: int = 0  # abandoned calls of no printed ring time: not in it either (short or not?)
    waits: list[int] = field(default_factory=list)  # answer waits of answered calls
    abandon_waits: list[int] = field(default_factory=list)
    talk: int = 0  # seconds, answered calls
    busy_seconds: int = 0  # start to end, every call: the traffic carried

    def add(self, call: Call, settings: KpiSettings) -> None:
        self.calls += 1
        self.busy_seconds += max(0, call.end_at - call.start)
        if not offered(call):
            return
        self.offered += 1
        outcome = call.outcome
        if outcome == "answered":
            self.answered += 1
            self.talk += call.talk
            if call.wait is None:
                self.unknown_wait += 1
            else:
                self.waits.append(call.wait)
                self.answered_within += call.wait <= settings.answer_within
        elif outcome == "abandoned":
            self.abandoned += 1
            if call.wait is None:
                self.unknown_abandon += 1
            else:
                self.abandon_waits.append(call.wait)
                self.short_abandons += call.wait < settings.short_abandon
        else:
            setattr(self, outcome, getattr(self, outcome) + 1)

    def service_level(self, formula: str) -> float | None:
        """The share named by ``formula`` (:data:`FORMULAS`); None when nothing to measure."""
        within = self.answered_within
        measured = self.answered - self.unknown_wait
        offered_known = self.offered - self.unknown_wait - self.unknown_abandon
        denominator = {
            "answered_and_abandoned": measured + self.abandoned - self.unknown_abandon - self.short_abandons,
            "offered": offered_known,
            "answered": measured,
            "offered_less_short": offered_known - self.short_abandons,
        }[formula]
        return within / denominator if denominator > 0 else None

    @property
    def average_wait(self) -> float | None:
        return sum(self.waits) / len(self.waits) if self.waits else None

    @property
    def p90_wait(self) -> float | None:
        return percentile(self.waits, 0.9)

    @property
    def average_talk(self) -> float | None:
        return self.talk / self.answered if self.answered else None

    def erlangs(self, seconds: float) -> float:
        """The traffic over a period of ``seconds``: calls' busy time over its length."""
        return self.busy_seconds / seconds if seconds else 0.0


def offered(call: Call) -> bool:
    """Whether a call counts as offered to the centre: inbound, or of no printed direction."""
    return call.dir in ("in", None)


def percentile(values: list[int], share: float) -> float | None:
    """The nearest-rank percentile (the smallest value at least ``share`` of them are at or
    below): a wait that was really measured, not an interpolation."""
    if not values:
        return None
    ordered = sorted(values)
    return float(ordered[max(0, math.ceil(share * len(ordered)) - 1)])


@dataclass
class Report:
    """Every figure the report shows, for one site and a range of local dates."""

    site: str
    zone: str
    first: date
    last: date
    settings: KpiSettings
    total: Figures = field(default_factory=Figures)  # in business hours
    out_of_hours: Figures = field(default_factory=Figures)
    half_hours: dict[int, Figures] = field(default_factory=dict)  # a local half-hour's start, UTC s -> figures
    days: dict[date, Figures] = field(default_factory=dict)
    day_hours: dict[tuple[date, int], Figures] = field(default_factory=dict)
    hours_of_day: dict[int, Figures] = field(default_factory=dict)
    extensions: dict[str, Figures] = field(default_factory=dict)  # offered calls, by first point of answer
    final_extensions: dict[str, int] = field(default_factory=dict)  # offered calls ended at each extension
    trunks: dict[str, Figures] = field(default_factory=dict)
    peak_trunks: dict[int, int] = field(default_factory=dict)  # per half-hour: calls on trunks at once, at most
    agents: dict[str, "Agent"] = field(default_factory=dict)
    orphans: int = 0
    incomplete: int = 0
    transferred: int = 0

    @property
    def day_count(self) -> int:
        return (self.last - self.first).days + 1

    def busy_hour(self) -> tuple[int, float] | None:
        """The local hour of the day with the most traffic, and its Erlangs (averaged over
        the range's days)."""
        if not self.hours_of_day:
            return None
        hour = max(self.hours_of_day, key=lambda h: (self.hours_of_day[h].busy_seconds, -h))
        return hour, self.hours_of_day[hour].erlangs(3600 * self.day_count)


@dataclass
class Agent:
    """An agent's headset time against their calls: the only occupancy signal of a site
    that has SMDR only."""

    ext: str | None
    off_hook: int = 0  # seconds
    talk: int = 0  # seconds talked on calls first answered at their extension
    calls: int = 0

    @property
    def share_talking(self) -> float | None:
        return self.talk / self.off_hook if self.off_hook else None


def local_range(first: date, last: date, zone: ZoneInfo) -> tuple[int, int]:
    """The UTC seconds ``[start, end)`` of local dates ``first`` to ``last`` inclusive."""
    start = datetime.combine(first, time(), zone)
    end = datetime.combine(last + timedelta(days=1), time(), zone)
    return int(start.timestamp()), int(end.timestamp())


class LocalClock:
    """A zone's local time of UTC seconds, by arithmetic on its offset, which is looked up
    once per quarter-hour (offsets change on one): the report buckets every call."""

    def __init__(self, zone: ZoneInfo):
        self.zone = zone
        self._offsets: dict[int, int] = {}

    def offset(self, ts: int) -> int:
        quarter = ts // 900
        offset = self._offsets.get(quarter)
        if offset is None:
            at = datetime.fromtimestamp(quarter * 900, timezone.utc).astimezone(self.zone)
            offset = self._offsets[quarter] = int(at.utcoffset().total_seconds())
        return offset

    def wall(self, ts: int) -> int:
        """Local wall-clock seconds since 1970-01-01 00:00 local."""
        return ts + self.offset(ts)

    def half_hour(self, ts: int) -> int:
        """The local half-hour ``ts`` falls in, as the UTC seconds it starts at: the two
        01:30 of a day that falls back are two (aware datetimes of one zone that differ
        only in their fold compare equal, so they make no key)."""
        return ts - self.wall(ts) % 1800


def local(ts: int, zone: ZoneInfo) -> datetime:
    """A UTC time (s) as a local, aware datetime."""
    return datetime.fromtimestamp(ts, timezone.utc).astimezone(zone)


_EPOCH = date(1970, 1, 1).toordinal()


def report(calls: Iterable[Call], site: str, zone_name: str, first: date, last: date, settings: KpiSettings,
           headsets: Iterable[tuple[str, str | None, int, str]] = ()) -> Report:
    """The figures of ``calls`` (of one site, starting within the local dates) and of the
    headset events ``(agent, ext, ts ms, ev)`` of its agents, in time order."""
    zone = ZoneInfo(zone_name)
    clock = LocalClock(zone)
    out = Report(site, zone_name, first, last, settings)
    hours = settings.hours_of(site)
    trunk_spans: list[tuple[int, int]] = []
    days: dict[int, date] = {}
    for call in calls:
        wall = clock.wall(call.start)
        day_number, second = divmod(wall, 86400)
        day = days.get(day_number) or days.setdefault(day_number, date.fromordinal(_EPOCH + day_number))
        hour = second // 3600
        (out.total if hours.covers((day_number + 3) % 7, second) else out.out_of_hours).add(call, settings)
        for bucket, key in ((out.half_hours, call.start - wall % 1800), (out.days, day),
                            (out.day_hours, (day, hour)), (out.hours_of_day, hour)):
            figures = bucket.get(key)
            if figures is None:
                figures = bucket[key] = Figures()
            figures.add(call, settings)
        if offered(call):  # (an extension's figures are those of the centre's calls it took)
            if call.first_ext is not None:
                out.extensions.setdefault(call.first_ext, Figures()).add(call, settings)
            if call.final_ext is not None:
                out.final_extensions[call.final_ext] = out.final_extensions.get(call.final_ext, 0) + 1
        if call.trunk is not None:
            out.trunks.setdefault(call.trunk, Figures()).add(call, settings)
            trunk_spans.append((call.start, max(call.start + 1, call.end_at)))
        out.orphans += call.orphan
        out.incomplete += not call.complete
        out.transferred += call.transfers > 0
    out.peak_trunks = _peaks(trunk_spans, clock)
    out.agents = _agents(headsets, out.extensions, *local_range(first, last, zone))
    return out


def _peaks(spans: list[tuple[int, int]], clock: LocalClock) -> dict[int, int]:
    """Per local half-hour, the most calls on trunks at once within it (a call that ends
    as another starts is not at once with it)."""
    changes = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    peaks: dict[int, int] = {}
    now = previous = 0
    for at, step in changes:
        if now:  # held since the previous change: so in each half-hour begun meanwhile
            boundary = clock.half_hour(previous) + 1800
            while boundary < at:
                key = clock.half_hour(boundary)
                peaks[key] = max(peaks.get(key, 0), now)
                boundary += 1800
        now += step
        if step > 0:
            key = clock.half_hour(at)
            peaks[key] = max(peaks.get(key, 0), now)
        previous = at
    return peaks


def _agents(events: Iterable[tuple[str, str | None, int, str]], extensions: dict[str, Figures],
            start: int, end: int) -> dict[str, Agent]:
    """Each agent's off-hook seconds (off_hook to on_hook or disconnected, cut at the
    range's ends) and the talk of calls first answered at their extension."""
    agents: dict[str, Agent] = {}
    since: dict[str, float] = {}
    for agent, ext, ts, ev in events:
        a = agents.setdefault(agent, Agent(ext))
        a.ext = a.ext or ext
        at = min(max(ts / 1000, start), end)
        if ev == "off_hook":
            since.setdefault(agent, at)
        elif ev in ("on_hook", "disconnected") and agent in since:
            a.off_hook += round(at - since.pop(agent))
    for agent, at in since.items():
        agents[agent].off_hook += round(end - at)
    for a in agents.values():
        figures = extensions.get(a.ext) if a.ext else None
        if figures is not None:
            a.talk, a.calls = figures.talk, figures.answered
    return agents
