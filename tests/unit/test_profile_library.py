"""Every profile: whole and byte by byte, with garbage in between; real captures detected."""

import csv
import json
import random
from zoneinfo import ZoneInfo

import pytest

from gateway.commands import simulate
from gateway.smdr import offline, profiles
from gateway.smdr.stream import StreamParser
from gateway.wire.events import UnparsedEvent
from helpers import FIXTURES

MARK = "~garbage~"
GARBAGE = MARK + " {} is not a call record"


def parse(profile, chunks):
    rx = int(profile.test_received.timestamp() * 1000)
    stream = StreamParser(profile, ZoneInfo(profile.test_timezone), "gw", "src")
    events = []
    for chunk in chunks:
        events += stream.feed(chunk, rx)
    return events + stream.feed(b"", rx)


def garbage_unit(profile, n: int) -> bytes:
    line = GARBAGE.format(n).encode()
    framing = profile.framing
    if framing.terminator == "length32le":
        return len(line).to_bytes(4, "little") + line
    if framing.terminator == "block":  # a block of an unknown kind, NUL-padded
        return (framing.block_start + line).ljust(framing.block_len, b"\0")
    return line + simulate.LINE_ENDS[profile.framing.terminator]


@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "byte-by-byte"])
def test_samples_give_expected_events_with_garbage_interleaved(profile, bytewise):
    rng = random.Random(profile.name)
    stream, garbage = b"", 0
    for unit in simulate.printed_units(profile):
        stream += unit
        if rng.random() < 0.5:
            garbage += 1
            stream += garbage_unit(profile, garbage)
    chunks = [stream[i:i + 1] for i in range(len(stream))] if bytewise else [stream]
    events = parse(profile, chunks)
    junk = [e for e in events if MARK in e.raw]
    assert len(junk) == garbage and all(isinstance(e, UnparsedEvent) for e in junk)
    good = [offline.comparable(e) for e in events if e not in junk]
    expected = [json.loads(line) for line in profile.expected_path.read_text().splitlines()]
    assert good == expected


def manifest():
    with open(FIXTURES / "smdr" / "MANIFEST.tsv", newline="") as fh:
        return [(row["file"], row["profile"]) for row in csv.DictReader(fh, delimiter="\t")]


@pytest.mark.parametrize("capture, name", manifest())
def test_detect_ranks_the_right_profile_first_on_real_captures(capture, name):
    data = (FIXTURES / "smdr" / capture).read_bytes()
    ranked = offline.rank(profiles.load_all(), data, ZoneInfo("UTC"), 1768478400000)
    assert ranked[0].profile == name and ranked[0].score >= offline.FITS
    assert ranked[1].score < offline.FITS
