"""Record parser: both layout kinds, transforms, rules, time zones, unparsed events."""

from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway.smdr import profiles
from gateway.smdr.framer import Record
from gateway.smdr.parser import RecordParser
from gateway.wire.events import CallEvent, UnparsedEvent

RX = int(datetime(2026, 1, 15, 12, tzinfo=timezone.utc).timestamp() * 1000)

CSV_PROFILE = """
[profile]
name = "csv-test"
title = "quoted CSV"
[layout]
kind = "delimited"
quote = '"'
min_fields = 5
[[layout.variant]]
name = "only"
columns = { when = 0, secs = 1, from = 2, to = 3, party = 4, name = 5 }
[fields]
start = { column = "when", date_order = "DMY" }
dur = { column = "secs", format = "seconds" }
caller = { column = "from" }
called = { column = "to" }
x = { name = { column = "name" } }
[[rules]]
when = { party = 'E(?P<ext>\\d+)' }
set = { dir = "out" }
[[rules]]
when = { party = 'T(?P<trunk>\\d+)' }
set = { dir = "in" }
"""


@pytest.fixture
def csv_profile(tmp_path: Path):
    path = tmp_path / "profile.toml"
    path.write_text(CSV_PROFILE)
    return profiles.load(path)


def parse(profile, line: bytes, tz="UTC", truncated=False):
    return RecordParser(profile, ZoneInfo(tz), "gw-01", "pbx1").parse(Record(line, truncated), RX, 7)


def test_quoted_csv_with_embedded_commas_and_prefix_stripping(csv_profile):
    event = parse(csv_profile, b'15/01/2026 09:00:00,65,"+4930 123",200,E4731,"THOMPSON,ALICIA"')
    assert isinstance(event, CallEvent)
    assert (event.caller, event.called, event.ext, event.dir, event.dur) == ("+4930 123", "200", "4731", "out", 65)
    assert event.x == {"name": "THOMPSON,ALICIA"}
    assert (event.gw, event.src, event.seq, event.rx, event.profile) == ("gw-01", "pbx1", 7, RX, "csv-test")


def test_variable_field_counts_missing_columns_are_null(csv_profile):
    event = parse(csv_profile, b"15/01/2026 09:00:00,5,1,2,T9001")
    assert (event.trunk, event.dir, event.x) == ("9001", "in", {})
    short = parse(csv_profile, b"15/01/2026 09:00:00,5,1,2")
    assert isinstance(short, UnparsedEvent) and short.reason == "4 fields, expected at least 5"


def test_an_unterminated_quote_is_unparsed_not_an_exception(csv_profile):
    """Read leniently, the quote takes the rest of the record: too few fields are left."""
    event = parse(csv_profile, b'15/01/2026 09:00:00,5,"unterminated,2,E1,x')
    assert isinstance(event, UnparsedEvent) and event.reason == "3 fields, expected at least 5"


def test_start_is_converted_from_the_source_zone_to_utc():
    ipo = profiles.find("avaya-ipo")
    line = b"2008/06/28 09:28:41,00:00:00,9,8004206,I,4324,4324,,0,1000014155,0,E4324,Joe Bloggs,T9161,LINE 5.1,0,0"
    taipei = parse(ipo, line, tz="Asia/Taipei")
    utc = parse(ipo, line, tz="UTC")
    assert utc.start - taipei.start == 8 * 3600
    assert utc.start == int(datetime(2008, 6, 28, 9, 28, 41, tzinfo=timezone.utc).timestamp())


def test_end_time_profiles_subtract_ring_and_talk_time():
    kx = profiles.find("panasonic-kx-tda")
    event = parse(kx, b"01/15/26  9:14AM 103   02 <D>CDE9876<I>Q COMPANY    0'12 00:07'48")
    end = int(datetime(2026, 1, 15, 9, 14, tzinfo=timezone.utc).timestamp())
    assert event.start == end - 12 - 468
    assert (event.ring, event.dur, event.called, event.caller, event.dir) == (12, 468, "CDE9876", "Q COMPANY", "in")


def test_invalid_utf8_is_kept_as_latin1_in_raw():
    ipo = profiles.find("avaya-ipo")
    event = parse(ipo, b"2008/06/28 09:28:41,00:00:00,9,800,I,43,43,,0,1,0,E43,M\xfcller,T9,L,0,0")
    assert isinstance(event, CallEvent) and event.x["party1_name"] == "Müller"
    assert "Müller" in event.raw


@pytest.mark.parametrize("line, reason", [
    (b"2008/13/28 09:28:41,00:00:00,9,1,I,4,4,,0,1,0,E4,J,T9,L,0,0", "date '2008/13/28' does not exist"),
    (b"2008/06/28 09:28:41,0:0,9,1,I,4,4,,0,1,0,E4,J,T9,L,0,0", "duration '0:0' is not hh:mm:ss"),
    (b"2008/06/28 09:28:41,00:00:00,nine,1,I,4,4,,0,1,0,E4,J,T9,L,0,0", "'nine' is not a whole number"),
    (b",00:00:00,9,1,I,4,4,,0,1,0,E4,J,T9,L,0,0", "no call date and time"),
])
def test_bad_fields_become_unparsed_with_a_reason(line, reason):
    event = parse(profiles.find("avaya-ipo"), line)
    assert isinstance(event, UnparsedEvent)
    assert event.reason == reason and event.raw == line.decode()


def test_truncated_record_is_unparsed_and_says_so():
    event = parse(profiles.find("avaya-ipo"), b"x" * 1024, truncated=True)
    assert isinstance(event, UnparsedEvent) and "no record end within 1024 bytes" in event.reason
