"""Work on whole captures: parse one, check a profile against its samples, rank profiles.

Used by ``pbxgw profiles test`` and ``pbxgw detect``, and by the tests, so that the
technician's tools and the test suite judge a profile the same way. Captures come in as
bytes: the commands read them, and the loader a profile's own samples and expected events
(:func:`gateway.smdr.profiles.samples`, :func:`~gateway.smdr.profiles.expected`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import tzinfo
from zoneinfo import ZoneInfo

from gateway.events import CallEvent, Event, to_json_dict
from gateway.smdr.profile import PbxProfile
from gateway.smdr.framer import FramerStats
from gateway.smdr.stream import StreamParser

#: A profile "fits" a capture when it parses at least this share of its records.
FITS = 0.5
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
    return (f"profile {profile.name}: records {stats.records} (calls {stats.records - unparsed}, unparsed "
            f"{unparsed}); non-record lines skipped {stats.skipped}; records cut at "
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
    """How well a profile reads a capture: the share of its records that parse."""

    profile: str
    score: float
    calls: int
    unparsed: int


def rank(profiles: list[PbxProfile], data: bytes, tz: tzinfo, rx: int) -> list[Score]:
    """Profiles ranked best first by :class:`Score` (ties: more calls, then name)."""
    scores = []
    for profile in profiles:
        events = parse_capture(profile, data, tz, rx)
        calls = sum(isinstance(e, CallEvent) for e in events)
        unparsed = len(events) - calls
        scores.append(Score(profile.name, calls / len(events) if events else 0.0, calls, unparsed))
    return sorted(scores, key=lambda s: (-s.score, -s.calls, s.profile))
