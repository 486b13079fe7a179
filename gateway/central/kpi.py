"""Sans-I/O: calls in, a contact centre's service figures out, each with its definition.

Service level has many formulas in use; the one applied is named in the settings and
printed with the report, as are the answer threshold, the short-abandon cut, business
hours and the site's time zone. Buckets (half-hours, days, hours of the day) are in the
site's local time, DST included: a half-hour is a local clock half-hour, so a day that
falls back has 50 of them. What SMDR cannot say is not made up: queue wait and after-call
work need ACD data (:data:`NOT_FROM_SMDR`).
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from gateway.central.calls import Call
from gateway.common import schedule
from gateway.common.schedule import Schedule
from gateway.smdr.profile import Assembly

#: Named service-level formulas: what the report prints, and the denominator's parts.
FORMULAS = {
    "answered_and_abandoned": "calls answered within T / (calls answered + calls abandoned after the short-abandon cut)",
    "offered": "calls answered within T / calls offered",
    "answered": "calls answered within T / calls answered (abandoned calls left out, as Avaya CMS does)",
    "offered_less_short": "calls answered within T / (calls offered - short abandons) (as Cisco does)",
}
NOT_FROM_SMDR = ("queue wait before ringing an extension and after-call work need the ACD's own data, which SMDR "
                 "does not carry: they are not shown")
DEFAULT_HOURS = "Mon-Fri 08:00-18:00"
#: The longest a call counts as on the line (traffic, trunks): a record that says more (a
#: crafted or garbled duration) is counted up to it, and the report says how many did.
LONGEST_ON_LINE = 86400


@dataclass(frozen=True, slots=True)
class KpiSettings:
    """``[kpi]`` of the collector's config."""

    answer_within: int = 20  # T, seconds: answered within T counts toward service level
    formula: str = "answered_and_abandoned"
    short_abandon: int = 5  # abandoned before this many seconds: a short abandon
    target: float = 0.8  # the service-level target drawn on the chart
    hours: Schedule = schedule.parse(DEFAULT_HOURS)
    site_hours: tuple[tuple[str, Schedule], ...] = ()  # per site, over ``hours``
    site_zones: tuple[tuple[str, str], ...] = ()  # per site, over its gateway's status

    def hours_of(self, site: str) -> Schedule:
        return dict(self.site_hours).get(site, self.hours)


#: The counts of :class:`Figures` a part adds as they are.
COUNTS = ("calls", "offered", "answered", "abandoned", "busy", "voicemail", "other", "unknown_wait",
           "unknown_abandon", "talk", "hold", "transfers")


@dataclass
class Figures:
    """The figures of a set of calls (a bucket, a trunk, the whole range).

    A part's figures (:meth:`add`, one call at a time) hold no setting: the waits are kept
    as how many calls waited each second. The answer threshold T and the short-abandon cut
    are applied when the parts are put together (:meth:`absorb`), so that stored parts
    serve whatever the settings say when the report is made."""

    calls: int = 0
    offered: int = 0  # see :func:`offered`
    answered: int = 0
    answered_within: int = 0  # (counted by :meth:`absorb`)
    abandoned: int = 0
    short_abandons: int = 0  # (counted by :meth:`absorb`)
    busy: int = 0
    voicemail: int = 0
    other: int = 0
    unknown_wait: int = 0  # answered calls whose PBX printed no ring time: not in service level
    unknown_abandon: int = 0  # abandoned calls of no printed ring time: not in it either (short or not?)
    waits: Counter = field(default_factory=Counter)  # answer waits of answered calls: seconds -> calls
    abandon_waits: Counter = field(default_factory=Counter)
    talk: int = 0  # seconds, answered calls, every leg
    hold: int = 0  # seconds, answered calls, every leg (where the PBX prints it)
    transfers: int = 0  # hand-offs between answered legs, offered calls

    def add(self, call: Call) -> None:
        self.calls += 1
        if not offered(call):
            return
        self.offered += 1
        self.transfers += call.transfers
        outcome = call.outcome
        if outcome == "answered":
            self.answered += 1
            self.talk += call.talk
            self.hold += call.hold or 0
            if call.wait is None:
                self.unknown_wait += 1
            else:
                self.waits[call.wait] += 1
        elif outcome == "abandoned":
            self.abandoned += 1
            if call.wait is None:
                self.unknown_abandon += 1
            else:
                self.abandon_waits[call.wait] += 1
        else:
            setattr(self, outcome, getattr(self, outcome) + 1)

    def absorb(self, part: "Figures", settings: KpiSettings) -> None:
        """Add a part's figures, counting its calls answered within T and its short abandons."""
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + getattr(part, name))
        within, short = settings.answer_within, settings.short_abandon
        for wait, n in part.waits.items():
            self.waits[wait] += n
            self.answered_within += n if wait <= within else 0
        for wait, n in part.abandon_waits.items():
            self.abandon_waits[wait] += n
            self.short_abandons += n if wait < short else 0

    def _denominator(self, formula: str) -> int:
        measured = self.answered - self.unknown_wait
        offered_known = self.offered - self.unknown_wait - self.unknown_abandon
        return {
            "answered_and_abandoned": measured + self.abandoned - self.unknown_abandon - self.short_abandons,
            "offered": offered_known,
            "answered": measured,
            "offered_less_short": offered_known - self.short_abandons,
        }[formula]

    def service_level(self, formula: str) -> float | None:
        """The share named by ``formula`` (:data:`FORMULAS`); None when nothing to measure."""
        denominator = self._denominator(formula)
        return self.answered_within / denominator if denominator > 0 else None

    def left_out(self, formula: str) -> list[tuple[str, int]]:
        """The offered calls outside ``formula``'s denominator, by why (none listed at 0):
        what a service level leaves out is said beside it."""
        parts = {
            "answered_and_abandoned": [("voicemail", self.voicemail), ("busy", self.busy), ("other", self.other),
                                       ("short abandons", self.short_abandons)],
            "offered": [],
            "answered": [("abandoned", self.abandoned - self.unknown_abandon), ("voicemail", self.voicemail),
                         ("busy", self.busy), ("other", self.other)],
            "offered_less_short": [("short abandons", self.short_abandons)],
        }[formula]
        parts += [("answered, no ring printed", self.unknown_wait), ("abandoned, no ring printed", self.unknown_abandon)]
        return [(name, n) for name, n in parts if n]

    @property
    def average_wait(self) -> float | None:
        """ASA: the mean answer wait of answered calls whose wait is known."""
        known = self.answered - self.unknown_wait
        return sum(wait * n for wait, n in self.waits.items()) / known if known else None

    @property
    def p90_wait(self) -> float | None:
        return percentile(self.waits, 0.9)

    @property
    def average_talk(self) -> float | None:
        return self.talk / self.answered if self.answered else None

    @property
    def average_handling(self) -> float | None:
        """AHT: talk and hold of every leg, over answered calls (no after-call work: SMDR
        does not carry it)."""
        return (self.talk + self.hold) / self.answered if self.answered else None

    @property
    def abandon_rate(self) -> float | None:
        return self.abandoned / self.offered if self.offered else None

    @property
    def abandon_rate_after_short(self) -> float | None:
        """Abandoned after the short-abandon cut over offered less short abandons."""
        rest = self.offered - self.short_abandons
        return (self.abandoned - self.short_abandons) / rest if rest > 0 else None

    @property
    def answer_rate(self) -> float | None:
        return self.answered / self.offered if self.offered else None


#: What a family's records may not show, by the key ``summary.json`` gives it, and how the
#: report says it.
UNSHOWN = {
    "earlier_extensions": "the extensions a call rang at before the one that took it or rang last: they are "
                          "not presented, nor missed, there",
    "hold": "hold apart from talk: it is in the talk",
}


def unshown_by(assembly: Assembly) -> tuple[str, ...]:
    """What records joined by ``assembly`` do not show (keys of :data:`UNSHOWN`)."""
    return tuple(key for key, shown in (("earlier_extensions", assembly.every_leg), ("hold", assembly.hold))
                 if not shown)


def offered(call: Call) -> bool:
    """Whether a call counts as offered to the centre: inbound, or of no printed direction
    with a number (a record with neither, an agent logging in say, is no call offered)."""
    return call.dir == "in" or (call.dir is None and bool(call.caller or call.called))


def percentile(counts: Counter, share: float) -> float | None:
    """The nearest-rank percentile of values counted (value -> how many): the smallest
    value at least ``share`` of them are at or below, a wait that was really measured, not
    an interpolation."""
    rank = max(1, math.ceil(share * sum(counts.values())))
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        if seen >= rank:
            return float(value)
    return None


@dataclass
class Extension:
    """One extension's part in the range's calls: offered calls it was presented (rang
    there, once a call), answered there, missed (presented, not answered there); the talk
    and hold of its answered legs; outbound calls made from it."""

    name: str | None = None  # as the PBX prints it (the latest)
    presented: int = 0
    answered: int = 0
    talk: int = 0
    hold: int = 0
    outbound: int = 0
    outbound_talk: int = 0

    @property
    def missed(self) -> int:
        return self.presented - self.answered

    def add_offered(self, legs: list[tuple]) -> None:
        """The legs of one offered call at this extension."""
        self.presented += 1
        answered = [leg for leg in legs if leg[1] == "answered"]
        self.answered += bool(answered)
        self.talk += sum(leg[2] for leg in answered)
        self.hold += sum(leg[3] for leg in answered)

    def absorb(self, part: "Extension") -> None:
        """Add its part in another set of calls (the name is the caller's to give)."""
        for name in EXTENSION_COUNTS:
            setattr(self, name, getattr(self, name) + getattr(part, name))


#: The counts of :class:`Extension` a part adds as they are.
EXTENSION_COUNTS = ("presented", "answered", "talk", "hold", "outbound", "outbound_talk")


@dataclass(frozen=True, slots=True)
class BusyHour:
    """The local clock hour that carried the most traffic on the mean open day."""

    hour: int
    erlangs_open_days: float  # its traffic, averaged over the open days
    open_days: int
    peak_day: date  # the open day it carried the most on
    erlangs_peak_day: float


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
    traffic: dict[int, int] = field(default_factory=dict)  # a local half-hour's start -> seconds on the line in it
    days: dict[date, Figures] = field(default_factory=dict)
    day_hours: dict[tuple[date, int], Figures] = field(default_factory=dict)
    open_days: set[date] = field(default_factory=set)  # days with offered calls in business hours
    extensions: dict[str, Extension] = field(default_factory=dict)
    numbers: dict[str, Figures] = field(default_factory=dict)  # offered calls in business hours, by number called
    groups: dict[str, Figures] = field(default_factory=dict)  # the same, by the hunt group or queue the PBX printed
    outbound: Figures = field(default_factory=Figures)  # outbound calls: answered = connected
    trunks: dict[str, Figures] = field(default_factory=dict)
    peak_trunks: dict[int, int] = field(default_factory=dict)  # per half-hour: calls on trunks at once, at most
    agents: dict[str, "Agent"] = field(default_factory=dict)
    orphans: int = 0
    incomplete: int = 0
    folded: int = 0  # records printed twice, folded into their call (every call of the range)
    over_a_day: int = 0  # calls whose records say they were on the line longer than LONGEST_ON_LINE
    not_understood: tuple[tuple[str, str, int], ...] = ()  # (source, profile, records) the PBX printed unread
    unshown: tuple[tuple[str, str, tuple[str, ...]], ...] = ()  # (source, profile, what its records do not show)
    unassembled: int = 0  # sources with records stored and not yet assembled into calls (a reader may not assemble)
    privacy: str = ""  # how long the centre keeps personal data ([privacy], said in the definitions)
    masked: bool = False  # numbers shown masked (pbxgw report --mask-numbers)
    sources: set[tuple[str, str, str]] = field(default_factory=set)  # (gw, src, rules) of its calls

    @property
    def day_count(self) -> int:
        return (self.last - self.first).days + 1

    def busy_hour(self) -> BusyHour | None:
        """The busy hour of the open days (None: no open day). Traffic is every call's
        time on the line, each clock hour taking the part of a call inside it."""
        if not self.open_days:
            return None
        clock = LocalClock(ZoneInfo(self.zone))
        by_day_hour: dict[tuple[date, int], int] = {}
        for start, seconds in self.traffic.items():
            day_number, second = divmod(clock.wall(start), 86400)
            key = (date.fromordinal(_EPOCH + day_number), second // 3600)
            by_day_hour[key] = by_day_hour.get(key, 0) + seconds
        totals = [sum(by_day_hour.get((d, h), 0) for d in self.open_days) for h in range(24)]
        hour = max(range(24), key=lambda h: (totals[h], -h))
        peak = max(sorted(self.open_days), key=lambda d: by_day_hour.get((d, hour), 0))
        return BusyHour(hour, totals[hour] / len(self.open_days) / 3600, len(self.open_days), peak,
                        by_day_hour.get((peak, hour), 0) / 3600)

    def not_understood_count(self) -> int:
        return sum(n for _, _, n in self.not_understood)


@dataclass
class Agent:
    """An agent's headset time against their calls: the only occupancy signal of a site
    that has SMDR only."""

    ext: str | None
    off_hook: int = 0  # seconds
    talk: int = 0  # seconds talked on offered calls answered at their extension
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


def slot_for(schedule: Schedule) -> int:
    """The slot of :class:`Part` that business hours never cut: a quarter-hour (every
    zone's offset is a multiple of one, so a local half-hour or day is a whole number of
    them), or a minute for hours that open or close between quarter-hours."""
    edges = [second for w in schedule.windows for second in (w.opens, w.closes)]
    return PART_SLOT if all(second % PART_SLOT == 0 for second in edges) else 60


#: The slot of the parts the collector stores (:mod:`gateway.central.summary`).
PART_SLOT = 900


@dataclass
class Part:
    """The figures of one site's calls that start in one slot of time (UTC seconds
    ``[at, at + slot)``), free of settings, zone and business hours: what the collector
    keeps for each quarter-hour (:mod:`gateway.central.summary`), and what a report puts
    together (:func:`report_of`), so that a year's report reads parts, not calls."""

    all: Figures = field(default_factory=Figures)
    groups: dict[str, Figures] = field(default_factory=dict)  # offered calls, by the hunt group or queue printed
    numbers: dict[str, Figures] = field(default_factory=dict)  # offered calls, by the number called
    trunks: dict[str, Figures] = field(default_factory=dict)
    extensions: dict[str, Extension] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # the latest name printed for an extension
    outbound: Figures = field(default_factory=Figures)  # calls, connected (answered) and talk
    traffic: dict[int, int] = field(default_factory=dict)  # a slot's start -> seconds on the line in it
    spans: list[tuple[int, int]] = field(default_factory=list)  # (start, end) of calls on trunks, in order
    orphans: int = 0
    incomplete: int = 0
    folded: int = 0
    over_a_day: int = 0
    sources: set[tuple[str, str, str]] = field(default_factory=set)  # (gw, src, rules) of its calls

    def add(self, call: Call, slot: int) -> None:
        """One more call (calls come in order of start)."""
        self.all.add(call)
        if offered(call):
            self.numbers.setdefault(call.called or "", Figures()).add(call)
            if call.hunt_group is not None:
                self.groups.setdefault(call.hunt_group, Figures()).add(call)
        end = min(call.end_at, call.start + LONGEST_ON_LINE)
        self.over_a_day += end < call.end_at
        at = call.start
        while at < end:  # its seconds on the line, each slot taking the part inside it
            upto = min(end, at - at % slot + slot)
            self.traffic[at - at % slot] = self.traffic.get(at - at % slot, 0) + upto - at
            at = upto
        _add_extensions(self, call)
        if call.trunk is not None:
            self.trunks.setdefault(call.trunk, Figures()).add(call)
            self.spans.append((call.start, max(call.start + 1, end)))
        self.orphans += call.orphan
        self.incomplete += not call.complete
        self.folded += call.folded
        self.sources.add((call.gw, call.src, call.rules))


def parts(calls: Iterable[Call], slot: int) -> Iterator[tuple[int, Part]]:
    """The parts of ``calls`` (in order of start), a slot at a time: ``(its start, part)``."""
    at, part = None, Part()
    for call in calls:
        begins = call.start - call.start % slot
        if begins != at:
            if at is not None:
                yield at, part
            at, part = begins, Part()
        part.add(call, slot)
    if at is not None:
        yield at, part


def report(calls: Iterable[Call], site: str, zone_name: str, first: date, last: date, settings: KpiSettings,
           headsets: Iterable[tuple[str, str | None, int, str]] = (),
           not_understood: Iterable[tuple[str, str, int]] = ()) -> Report:
    """The figures of ``calls`` (of one site, starting within the local dates, held at
    once): :func:`report_of` their parts."""
    in_order = sorted(calls, key=lambda call: call.start)
    return report_of(parts(in_order, slot_for(settings.hours_of(site))), site, zone_name, first, last, settings,
                     headsets, not_understood)


def report_of(parts_in_order: Iterable[tuple[int, Part]], site: str, zone_name: str, first: date, last: date,
              settings: KpiSettings, headsets: Iterable[tuple[str, str | None, int, str]] = (),
              not_understood: Iterable[tuple[str, str, int]] = ()) -> Report:
    """The figures of the parts of a site's calls (in order of their slots, each slot
    whole in or out of business hours: see :func:`slot_for`), of the headset events
    ``(agent, ext, ts ms, ev)`` of its agents, in time order, and of the records of the
    range no profile could read, ``(source, profile, count)``. What its sources' records
    do not show is for the caller to say, from :attr:`Report.sources`."""
    zone = ZoneInfo(zone_name)
    clock = LocalClock(zone)
    out = Report(site, zone_name, first, last, settings, not_understood=tuple(not_understood))
    hours = settings.hours_of(site)
    names: dict[str, str] = {}
    peaks = Peaks(clock)
    for at, part in parts_in_order:
        wall = clock.wall(at)
        day_number, second = divmod(wall, 86400)
        day = date.fromordinal(_EPOCH + day_number)
        in_hours = hours.covers(day, second)
        (out.total if in_hours else out.out_of_hours).absorb(part.all, settings)
        if in_hours:
            if part.all.offered:
                out.open_days.add(day)
            _absorb_each(out.numbers, part.numbers, settings)
            _absorb_each(out.groups, part.groups, settings)
        for bucket, key in ((out.half_hours, at - wall % 1800), (out.days, day),
                            (out.day_hours, (day, second // 3600))):
            _absorb_each(bucket, {key: part.all}, settings)
        _absorb_each(out.trunks, part.trunks, settings)
        for key, seconds in part.traffic.items():
            half_hour = clock.half_hour(key)
            out.traffic[half_hour] = out.traffic.get(half_hour, 0) + seconds
        for ext, e in part.extensions.items():
            out.extensions.setdefault(ext, Extension()).absorb(e)
        names.update(part.names)
        out.outbound.absorb(part.outbound, settings)
        for start, end in part.spans:
            peaks.add(start, end)
        out.orphans += part.orphans
        out.incomplete += part.incomplete
        out.folded += part.folded
        out.over_a_day += part.over_a_day
        out.sources |= part.sources
    for ext, e in out.extensions.items():
        e.name = names.get(ext)
    out.peak_trunks = peaks.done()
    out.agents = _agents(headsets, out.extensions, *local_range(first, last, zone))
    return out


def _absorb_each(into: dict, parts_by_key: dict[Any, Figures], settings: KpiSettings) -> None:
    for key, part in parts_by_key.items():
        figures = into.get(key)
        if figures is None:
            figures = into[key] = Figures()
        figures.absorb(part, settings)


def _add_extensions(part: Part, call: Call) -> None:
    """An offered call at each extension it rang at (voicemail is no extension); an
    outbound one at the extension it was made from."""
    if offered(call):
        at: dict[str, list[tuple]] = {}
        for leg in call.legs:
            if leg[0] is not None and leg[1] != "voicemail":
                at.setdefault(leg[0], []).append(leg)
        for ext, legs in at.items():
            part.extensions.setdefault(ext, Extension()).add_offered(legs)
    elif call.dir == "out":
        part.outbound.calls += 1
        part.outbound.answered += call.outcome == "answered"
        part.outbound.talk += call.talk
        ext = next((leg[0] for leg in call.legs if leg[0] is not None), None)
        if ext is not None:
            e = part.extensions.setdefault(ext, Extension())
            e.outbound += 1
            e.outbound_talk += call.talk
    for leg in call.legs:
        if leg[0] is not None and leg[4] is not None:
            part.names[leg[0]] = leg[4]


class Peaks:
    """Per local half-hour, the most calls on trunks at once within it (a call that ends
    as another starts is not at once with it), from the calls' ``(start, end)`` given in
    order of start: only the calls on at once are held, however long the range."""

    def __init__(self, clock: LocalClock):
        self._clock = clock
        self._ends: list[int] = []  # a heap
        self._previous = 0
        self.peaks: dict[int, int] = {}

    def add(self, start: int, end: int) -> None:
        while self._ends and self._ends[0] <= start:
            self._change(heapq.heappop(self._ends), -1)
        self._change(start, 1)
        heapq.heappush(self._ends, end)

    def done(self) -> dict[int, int]:
        while self._ends:
            self._change(heapq.heappop(self._ends), -1)
        return self.peaks

    def _change(self, at: int, step: int) -> None:
        now, clock, peaks = len(self._ends) + (step < 0), self._clock, self.peaks
        if now:  # held since the previous change: so in each half-hour begun meanwhile
            boundary = clock.half_hour(self._previous) + 1800
            while boundary < at:
                key = clock.half_hour(boundary)
                peaks[key] = max(peaks.get(key, 0), now)
                boundary += 1800
        if step > 0:
            key = clock.half_hour(at)
            peaks[key] = max(peaks.get(key, 0), now + 1)
        self._previous = at


def _agents(events: Iterable[tuple[str, str | None, int, str]], extensions: dict[str, Extension],
            start: int, end: int) -> dict[str, Agent]:
    """Each agent's off-hook seconds (off_hook to on_hook or disconnected, cut at the
    range's ends) and the talk of the offered calls answered at their extension."""
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
