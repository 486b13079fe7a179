"""The compiled engine against the reference: the same records, events, bytes and counts.

Both engines are imported here by name, whatever ``PBXGW_PUREPYTHON`` says, so this test
compares them in either run of the suite where the compiled engine is built (where it is
not, as on a box without a compiler, there is nothing to compare: skipped, and the
compiled run of ``make test`` allows no skip).
"""

import random
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.commands import simulate
from gateway.smdr import profiles

compiled = pytest.importorskip("gateway.smdr._smdr_c", reason="the compiled engine is not built here")
from gateway.smdr.framer import Framer as ReferenceFramer
from gateway.smdr.parser import RecordParser

ZONES = ["UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Pacific/Chatham"]
ALL = profiles.load_all()


def run(framer_class, parser_class, profile, chunks, zone, rx):
    """Events (single-record path), msgpack of the framed records and msgpack of the
    one-pass path (the two batch paths), their unparsed reasons and the framer counts."""
    framer, one_pass = framer_class(profile.framing), framer_class(profile.framing)
    parser = parser_class(profile, ZoneInfo(zone), "gw", "src")
    events, packed, reasons, seq = [], b"", [], 1
    fused, fused_reasons, fused_seq = b"", [], 1
    for chunk in [*chunks, b""]:
        framer.feed(chunk)
        records = framer.records()
        events += [parser.parse(record, rx, seq + i) for i, record in enumerate(records)]
        data, unparsed = parser.pack(records, rx, seq)
        packed += data
        reasons += [e.reason for e in unparsed]
        seq += len(records)
        one_pass.feed(chunk)
        data, unparsed, count = parser.pack_framed(one_pass, rx, fused_seq)
        fused += data
        fused_reasons += [e.reason for e in unparsed]
        fused_seq += count
    assert (fused, fused_reasons, one_pass.stats) == (packed, reasons, framer.stats)
    return events, packed, reasons, framer.stats


def assert_same(profile, chunks, zone="UTC", rx=None):
    rx = rx or int(profile.test_received.timestamp() * 1000)
    reference = run(ReferenceFramer, RecordParser, profile, chunks, zone, rx)
    assert run(compiled.Framer, compiled.Engine, profile, chunks, zone, rx) == reference
    return reference


def splits(data: bytes, rng: random.Random) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(0, 20)))) if len(data) > 1 else []
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]


@pytest.mark.parametrize("how", ["whole", "byte-by-byte", "random-splits"])
def test_every_profile_sample_gives_the_same_events_and_bytes(profile, how):
    data = b"".join(simulate.printed_units(profile))
    chunks = {"whole": [data], "byte-by-byte": [data[i:i + 1] for i in range(len(data))],
              "random-splits": splits(data, random.Random(profile.name))}[how]
    events, packed, _, _ = assert_same(profile, chunks, profile.test_timezone)
    assert events and packed  # the comparison was not between two empty outputs


#: What mutations put into sample records: digits and punctuation the layouts use, line
#: ends, NUL, invalid UTF-8, a byte-order mark, Cyrillic and non-ASCII white space.
PIECES = [bytes([b]) for b in b"0123456789 :/'*-.,\"<>@ET"] + [
    b"\0", b"\r", b"\n", b"\x1c", b"\xd0", b"\xe9", b"\xed\xa0\x80", b"\xef\xbb\xbf",
    "\u0416".encode(), "\u00a0".encode(), "\u2003".encode(), "\u3000".encode(), "\u0085".encode()]


@st.composite
def streams(draw):
    """A profile, and a stream of its sample units, mutated units and random bytes."""
    profile = draw(st.sampled_from(ALL))
    units = simulate.printed_units(profile)
    pieces = []
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["unit", "mutated", "garbage"]))
        if kind == "garbage":
            pieces.append(draw(st.binary(max_size=200)))
            continue
        unit = bytearray(draw(st.sampled_from(units)))
        if kind == "mutated":
            for _ in range(draw(st.integers(1, 4))):
                at = draw(st.integers(0, max(0, len(unit) - 1)))
                piece = draw(st.sampled_from(PIECES))
                op = draw(st.sampled_from(["replace", "insert", "delete"]))
                if op == "replace" and unit:
                    unit[at:at + 1] = piece
                elif op == "insert":
                    unit[at:at] = piece
                elif unit:
                    del unit[at]
        pieces.append(bytes(unit))
    data = b"".join(pieces)
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(data) - 1)), max_size=8)))) if len(data) > 1 else []
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]
    zone = draw(st.sampled_from(ZONES))
    received = datetime(2026, 1, 15, 12, tzinfo=timezone.utc) + timedelta(minutes=draw(st.integers(-400000, 400000)))
    return profile, chunks, zone, int(received.timestamp() * 1000)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_generated_records_and_garbage_give_the_same_output(stream):
    profile, chunks, zone, rx = stream
    assert_same(profile, chunks, zone, rx)


@pytest.mark.parametrize("zone", ["Europe/Paris", "America/New_York", "Australia/Lord_Howe"])
def test_every_minute_around_the_clock_changes_gives_the_same_start(zone):
    """Local times in the spring gap and the autumn repeat, minute by minute."""
    profile = profiles.find("panasonic-kx-tda")
    lines = []
    for day in ("03/08/26", "03/29/26", "04/05/26", "10/04/26", "10/25/26", "11/01/26"):
        for minute in range(0, 240):
            hour, mins = divmod(minute, 60)
            clock = f"{(hour + 11) % 12 + 1}:{mins:02d}{'AM' if hour < 12 else 'PM'}"
            lines.append(f"{day} {clock:>7} 101   05 0312345678                     00:02'17\r\n")
    events, _, _, _ = assert_same(profile, ["".join(lines).encode()], zone)
    assert len(events) == len(lines)


@pytest.mark.parametrize("name", [
    "Иван Петров", "\u00a0Joe", "Joe\u3000", "\u2003\u0416", "Jo\u0085", "Zoë ", "\u200bJoe",
    b"\xef\xbb\xbfJoe", b"J\xe9r\xf4me", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82"])
def test_names_beyond_ascii_read_the_same(name):
    """Delimited records with UTF-8 (valid or not, white space of every kind at the edges)."""
    ipo = profiles.find("avaya-ipo")
    raw = name if isinstance(name, bytes) else name.encode()
    line = (b"2008/06/28 09:28:41,00:00:05,9,8004206,I,4324,4324,,0,1000014155,0,E4324,"
            + raw + b",T9161,LINE 5.1,0,0\r\n")
    events, _, _, _ = assert_same(ipo, [line, raw + b"," + line])
    assert len(events) == 2
