"""Work on whole captures: parse one, check a profile against its samples, rank profiles.

Used by ``pbxgw profiles test`` and ``pbxgw detect``, and by the tests, so that the
technician's tools and the test suite judge a profile the same way. Captures come in as
bytes: the commands read them, and the loader a profile's own samples and expected events
(:func:`gateway.smdr.profiles.samples`, :func:`~gateway.smdr.profiles.expected`).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from datetime import date, tzinfo
from zoneinfo import ZoneInfo

from gateway.errors import RecordError
from gateway.smdr.fields import DATE_ORDERS
from gateway.smdr.fields import parse_date, parse_time
from gateway.smdr.framer import Framer, FramerStats, decode
from gateway.smdr.parser import convert
from gateway.smdr.profile import PbxProfile, with_date_order, with_framing
from gateway.smdr.split import split_record
from gateway.smdr.stream import StreamParser
from gateway.wire.events import CallEvent, Event, to_json_dict

#: A profile "fits" a capture when it parses at least this share of its records.
FITS = 0.5
#: Another date order that reads every record too, to dates within this of the receive
#: time, makes a capture's dates ambiguous (DD/MM or MM/DD with no day past 12).
AMBIGUOUS_WITHIN_S = 366 * 86400
#: Keys that depend on where and when a record was received, not on the record.
RECEIPT_KEYS = ("gw", "src", "stream", "seq", "rx")


def parse_capture(profile: PbxProfile, data: bytes, tz: tzinfo, rx: int,
                  src: str = "capture") -> list[Event]:
    """Every event of a whole capture, as if it all arrived at ``rx``."""
    stream = StreamParser(profile, tz, gw="offline", src=src)
    return stream.feed(data, rx) + stream.feed(b"", rx)


def sample_events(profile: PbxProfile, samples: bytes) -> list[Event]:
    """The events a profile gives for its own ``samples.txt`` (with its [test] settings)."""
    rx = int(profile.test_received.timestamp() * 1000)
    return parse_capture(profile, samples, ZoneInfo(profile.test_timezone), rx, src="samples")


def summary(profile: PbxProfile, stats: FramerStats, unparsed: int) -> str:
    """What a whole capture held, in one line (``pbxgw parse`` ends with it)."""
    blocks = f"; bytes between blocks {stats.noise_bytes}" if profile.framing.terminator == "block" else ""
    joined = f"; lines joined to the record before {stats.continued}" if profile.framing.continuation else ""
    return (f"profile {profile.name}: records {stats.records} (calls {stats.records - unparsed}, unparsed "
            f"{unparsed}){joined}; non-record lines skipped {stats.skipped}; records cut at "
            f"{profile.framing.max_record_len} bytes {stats.truncated}; NUL bytes removed {stats.nul_bytes}{blocks}")


def comparable(event: Event) -> dict:
    """An event's JSON form without the receipt keys: what expected.jsonl holds."""
    return {k: v for k, v in to_json_dict(event).items() if k not in RECEIPT_KEYS}


@dataclass(frozen=True, slots=True)
class ProfileCheck:
    """The outcome of :func:`check_profile`: how many sample events, and what differed."""

    events: int
    problems: list[str]


def check_profile(profile: PbxProfile, samples: bytes, expected: list[dict]) -> ProfileCheck:
    """Compare a profile's sample events with its expected ones (no problems: it passes)."""
    got = [comparable(e) for e in sample_events(profile, samples)]
    problems = []
    if len(got) != len(expected):
        problems.append(f"{len(got)} events from samples.txt, {len(expected)} lines in expected.jsonl")
    for number, (want, have) in enumerate(zip(expected, got), 1):
        for key in sorted(want.keys() | have.keys()):
            if want.get(key, "<absent>") != have.get(key, "<absent>"):
                problems.append(f"event {number}: {key}: expected {json.dumps(want.get(key, '<absent>'), ensure_ascii=False)},"
                                f" got {json.dumps(have.get(key, '<absent>'), ensure_ascii=False)}")
    return ProfileCheck(len(got), problems)


@dataclass(frozen=True, slots=True)
class Score:
    """How well a profile reads a capture: the share of its records that parse.

    ``fields`` is the share of its typed fields that read (what tells near misses apart
    when nothing parses); ``date_order`` is another order than the profile's own that
    reads the capture better (a site's DD/MM), ``ambiguous`` one that reads every date
    too, to other days (no day past 12: check one by hand).
    """

    profile: str
    score: float
    calls: int
    unparsed: int
    fields: float = 0.0
    date_order: str | None = None
    ambiguous: str | None = None


def rank(profiles: list[PbxProfile], data: bytes, tz: tzinfo, rx: int) -> list[Score]:
    """Profiles ranked best first (by score, then read in their own date order, then fields
    read, then calls, then name), each read in its own date order and in the others its
    dates allow."""
    return sorted((_score(profile, data, tz, rx) for profile in profiles),
                  key=lambda s: (-s.score, s.date_order is not None, -s.fields, -s.calls, s.profile))


def _score(profile: PbxProfile, data: bytes, tz: tzinfo, rx: int) -> Score:
    """The profile's best reading of the capture: most records parsed, then the dates
    nearest the receive time by whole years (15/01/26 reads as DMY and as YMD; 2026 is
    nearer than 2015), then its own date order (and another that reads every date within
    a year too makes it ambiguous)."""
    own = profile.start.date_order
    orders = [own, *(o for o in DATE_ORDERS if own in DATE_ORDERS and len(o) == len(own) and o != own)]
    readings = []
    for order in orders:
        events = parse_capture(profile if order == own else with_date_order(profile, order), data, tz, rx)
        starts = [e.start for e in events if isinstance(e, CallEvent)]
        away = statistics.median(abs(start - rx / 1000) for start in starts) if starts else float("inf")
        readings.append(_Reading(order, len(starts), len(events), away, starts))
    best = max(readings, key=lambda r: (r.share, r.calls, -(r.away // AMBIGUOUS_WITHIN_S), r.order == own))
    ambiguous = next((r.order for r in readings if r is not best and (r.share, r.calls) == (best.share, best.calls)
                      and r.starts != best.starts and r.away <= AMBIGUOUS_WITHIN_S), None)
    return Score(profile.name, best.share, best.calls, best.events - best.calls, _fields_read(profile, data),
                 None if best.order == own else best.order, ambiguous if best.share >= FITS else None)


@dataclass(frozen=True, slots=True)
class _Reading:
    """A capture read in one date order: calls of events, how far (median, s) their
    starts are from the receive time, and the starts."""

    order: str
    calls: int
    events: int
    away: float
    starts: list[int]

    @property
    def share(self) -> float:
        return self.calls / self.events if self.events else 0.0


#: What a capture may hold around its records that its profile does not expect, and the
#: ``[framing]`` key and pattern a site's copy of the profile would leave it out with.
SHAPES = (
    ("a counter column (a call record number?) at the start of each line", "strip", r"^ *\d{1,5} "),
    ("title and column-header lines (no digit in them)", "skip", r"^\D*$"),
    ("page headers (\"PAGE nnn\")", "skip", r"(?i)\bpage\s*\d+\s*$"),
    *((f"{n} character{'s' * (n > 1)} more at the start of each line (its columns {n} to the right)", "strip",
       f"^.{{{n}}}") for n in (1, 2, 3)),
)
#: A near miss is looked for in this much of a capture (the technician's first screenful
#: tells the shape; the whole of a large capture would be read a dozen times).
NEAR_MISS_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class NearMiss:
    """A profile that reads a capture once something the capture holds is left out."""

    profile: str
    score: float
    what: str  # what the capture holds, as the technician is told
    key: str  # the [framing] key, "skip" or "strip", that leaves it out
    pattern: str  # and its pattern
    date_order: str | None = None  # another date order the profile then reads it in best


def near_misses(profiles: list[PbxProfile], data: bytes, tz: tzinfo, rx: int) -> list[NearMiss]:
    """For a capture that no profile fits as it is: each shape of :data:`SHAPES` that makes
    one fit, with the profile that then reads it best, best first."""
    head = data[:NEAR_MISS_BYTES]
    found = []
    for what, key, pattern in SHAPES:
        best = rank([with_framing(p, key, pattern) for p in profiles], head, tz, rx)[0]
        if best.score >= FITS:
            found.append(NearMiss(best.profile, best.score, what, key, pattern, best.date_order))
    return sorted(found, key=lambda m: -m.score)


def first_record_cut(profile: PbxProfile, data: bytes, tz: tzinfo, rx: int) -> bool:
    """Whether a capture's first record does not read while the rest does: cut when the
    capture began (a serial tap opened mid-line)."""
    events = parse_capture(profile, data[:NEAR_MISS_BYTES], tz, rx)
    rest = events[1:]
    return bool(rest) and events[0].KIND == "unparsed" and sum(e.KIND == "call" for e in rest) / len(rest) >= FITS


def _fields_read(profile: PbxProfile, data: bytes) -> float:
    """The share of a capture's typed fields (numbers, durations, the start's date and
    time) that read in their format, over its records: how near a profile that parses
    nothing came (a fixed layout splits any line, but its durations do not read)."""
    framer = Framer(profile.framing)
    framer.feed(data)
    framer.feed(b"")
    read = typed = 0
    for record in framer.records():
        try:
            columns = split_record(profile.layout, decode(record.data))
        except RecordError:
            typed += 1  # a record the layout cannot split: one field that did not read
            continue
        for check in _typed_fields(profile, columns):
            typed += 1
            try:
                check()
                read += 1
            except RecordError:
                pass
    return read / typed if typed else 0.0


def _typed_fields(profile: PbxProfile, columns: tuple[str, ...]) -> list:
    """A check per non-blank typed field of a record (each raises RecordError or not)."""
    order = profile.start.date_order
    checks = [lambda text=columns[spec.column], fmt=spec.format: convert(text, fmt, order)
              for spec in profile.fields if spec.format != "text" and columns[spec.column]]
    start = profile.start
    if start.date_order == "epoch":
        return checks
    date_text, time_text = start.texts(columns)
    if date_text:
        received = date(2026, 1, 1)  # (any: only whether the date reads counts here)
        checks.append(lambda: parse_date(date_text, start.date_order, received))
    if time_text:
        checks.append(lambda: parse_time(time_text))
    return checks


def looks_binary(data: bytes) -> bool:
    """Whether a capture is not text at all (a wrong baud rate or parity gives bytes like
    these): not UTF-8, and more than a tenth of its bytes neither printable nor blank."""
    try:
        data.decode("utf-8")
        return False
    except UnicodeDecodeError:
        pass
    odd = sum(1 for b in data if not (32 <= b < 127 or b in b"\t\r\n\x0c\x00"))
    return odd > len(data) / 10
