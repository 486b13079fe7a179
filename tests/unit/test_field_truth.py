"""What real PBXes print, read right by the engine this run of the suite runs (so through
both engines): one test per shape a family's documentation allows."""

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from gateway.events import CallEvent
from gateway.smdr import offline, profiles
from gateway.smdr.stream import StreamParser

RX = int(datetime(2026, 1, 15, 12, tzinfo=timezone.utc).timestamp() * 1000)


def events(profile: str, *lines: bytes):
    stream = StreamParser(profiles.find(profile), ZoneInfo("UTC"), "gw", "pbx")
    return stream.feed(b"".join(line + b"\r\n" for line in lines), RX)


def asterisk_row(clid: bytes, duration: int, billsec: int, disposition: bytes = b"ANSWERED") -> bytes:
    return (b'"","2105551234","4001","from-pstn",' + clid + b',"SIP/trunk-1a","SIP/4001-1b","Dial","SIP/4001,30",'
            b'"2018-09-07 11:08:03","2018-09-07 11:08:09","2018-09-07 11:09:40",' + b"%d,%d" % (duration, billsec)
            + b',"' + disposition + b'","DOCUMENTATION","1536318483.26",""')


@pytest.mark.parametrize("clid, read", [
    (b'"""THOMPSON,ALICIA"" <2105551234>"', '"THOMPSON,ALICIA" <2105551234>'),  # a comma inside the name
    (b'""""" <2105551234>"', '"" <2105551234>'),  # an empty name, every quote doubled
    (b'"""" <2105551234>"', '" <2105551234>"'),  # the same with one pair short: read leniently, not unparsed
    (b'"2105551234"', "2105551234"),  # no name at all
])
def test_asterisk_clid_in_every_quoting_cdr_csv_writes(clid, read):
    (event,) = events("asterisk-csv", asterisk_row(clid, 97, 91))
    assert isinstance(event, CallEvent), event
    assert event.x["clid"] == read and event.caller == "2105551234"


@pytest.mark.parametrize("profile, row", [
    ("asterisk-csv", lambda d, b, disp: asterisk_row(b'"x"', d, b, disp)),
    ("freeswitch-csv", lambda d, b, disp: b'"A","1001","2002","default","2014-05-29 17:10:00","","2014-05-29 17:10:25",'
                                          b'"%d","%d","%s","u-1","","","",""' % (d, b, disp)),
])
def test_ring_is_the_wait_before_the_answer_or_the_whole_wait_unanswered(profile, row):
    answered, unanswered, odd = events(profile, row(97, 91, b"ANSWERED"), row(28, 0, b"NO ANSWER"),
                                       row(5, 9, b"ANSWERED"))
    assert (answered.ring, answered.dur) == (6, 91)
    assert (unanswered.ring, unanswered.dur) == (28, 0)
    assert odd.ring is None  # billed longer than it lasted: no ring rather than a negative one


def test_3cx_ring_is_the_wait_before_the_answer_or_the_whole_wait_unanswered():
    """Built from the profile's own field order (the real samples hold both kinds too)."""
    def row(answered: str, end: str, duration: str) -> bytes:
        fields = ["Call 1", "0000017_1", duration, "2020/05/04 10:53:43", answered, end, "TerminatedByDst",
                  "0000000002", "Ext.610", "10000", "610", "610", "", "", "", "", "", "", "", '"Chain: 2"',
                  "Extension", "Extension", "Extension", "", "", ""]
        return ",".join(fields).encode()

    answered, unanswered = events("3cx", row("2020/05/04 10:53:50", "2020/05/04 10:58:59", "00:05:09"),
                                  row("", "2020/05/04 10:54:13", ""))
    assert (answered.ring, answered.dur) == (7, 309)
    assert (unanswered.ring, unanswered.dur) == (30, None)


def mitel_mivb_records():
    return profiles.samples(profiles.find("mitel-mivb")).splitlines()


@pytest.mark.parametrize("record", mitel_mivb_records(), ids=lambda r: f"{len(r)}-columns-{r[14:24].decode().strip()}")
def test_detect_finds_mitel_mivb_on_one_record_of_each_option(record):
    """Standard and Extended Digit Length, Extended Time To Answer, ANI/DNIS, network OLI,
    meter pulses, 12- and 24-hour clock: each record alone is enough to tell the family."""
    ranked = offline.rank(profiles.load_all(), record + b"\r\n", ZoneInfo("UTC"), RX)
    assert ranked[0].profile == "mitel-mivb" and ranked[0].score == 1.0


def test_mitel_mivb_ring_is_the_time_to_answer_in_either_width():
    standard = b" 02/05 11:00  00:02:00 T2    012 4216                        4216                    010  "
    extended = b" 02/05 11:00  00:02:00 T2   0012 4216                        4216                    010  "
    never = b" 02/05 11:02  00:00:00 T2   **** 4217                        4217                    010  "
    first, second, third = events("mitel-mivb", standard, extended, never)
    assert (first.ring, first.ext, first.trunk, first.x.get("attendant")) == (12, "4216", "2", None)
    assert (second.ring, second.ext, second.trunk) == (12, "4216", "2")
    assert (third.ring, third.disp) == (None, "unanswered")
