"""What real PBXes print, read right by the engine this run of the suite runs (so through
both engines): one test per shape a family's documentation allows."""

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from gateway.smdr import offline, profiles
from gateway.smdr.profile import with_date_order
from gateway.smdr.stream import StreamParser
from gateway.wire.events import CallEvent

RX = int(datetime(2026, 1, 15, 12, tzinfo=timezone.utc).timestamp() * 1000)


def events(profile: str, *lines: bytes):
    stream = StreamParser(profiles.find(profile), ZoneInfo("UTC"), "gw", "pbx")
    return stream.feed(b"".join(line + b"\r\n" for line in lines), RX) + stream.feed(b"", RX)


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


def axxess_page(date: bytes) -> bytes:
    return b"Station Message Detailed Recording".ljust(68) + date


def axxess_record(start: bytes, dialled: bytes = b"5550123", ext: bytes = b"11204", kind: bytes = b"LOC") -> bytes:
    return kind.ljust(4) + ext.ljust(6) + b"94002 " + dialled.ljust(29) + start + b" 00:01:10 $00.00"


def test_axxess_records_take_their_page_headers_date_even_read_long_after():
    header, late = axxess_page(b"03-30-2025"), axxess_page(b"03-31-2025")
    first, before_midnight, after, begun_before, next_page = events(
        "mitel-5000-serial", header, axxess_record(b"09:12"), axxess_record(b"23:58"), axxess_record(b"00:04"),
        axxess_record(b"23:59"), late, axxess_record(b"00:30"))
    assert [datetime.fromtimestamp(e.start, timezone.utc).strftime("%m-%d %H:%M") for e in
            (first, before_midnight, after, begun_before, next_page)] == \
        ["03-30 09:12", "03-30 23:58", "03-31 00:04", "03-30 23:59", "03-31 00:30"]


def test_axxess_without_a_page_header_yet_dates_by_the_receive_day():
    (event,) = events("mitel-5000-serial", axxess_record(b"09:12"))
    assert datetime.fromtimestamp(event.start, timezone.utc).date() == datetime.fromtimestamp(RX / 1000).date()


def test_a_page_header_printed_after_midnight_above_a_call_begun_before_it():
    """Live: the header is dated the day the record was printed; the call began the day before."""
    stream = StreamParser(profiles.find("mitel-5000-serial"), ZoneInfo("UTC"), "gw", "pbx")
    rx = int(datetime(2026, 1, 16, 0, 5, tzinfo=timezone.utc).timestamp() * 1000)
    (event,) = stream.feed(axxess_page(b"01-16-2026") + b"\r\n" + axxess_record(b"23:55") + b"\r\n", rx)
    assert datetime.fromtimestamp(event.start, timezone.utc) == datetime(2026, 1, 15, 23, 55, tzinfo=timezone.utc)


@pytest.mark.parametrize("dialled, ext, read", [
    (b"RG 6025550111", b"11203", dict(caller="6025550111", called=None, disp="answered")),
    (b"RING...... 4001", b"*****", dict(caller=None, called="4001", disp="unanswered")),
    (b"RING......", b"*****", dict(caller=None, called=None, disp="unanswered")),
])
def test_axxess_ring_in_records_are_calls_with_their_ring_and_no_talk(dialled, ext, read):
    (event,) = events("mitel-5000-serial", axxess_record(b"10:05", dialled, ext, b"IN"))
    assert (event.ring, event.dur, event.dir, event.x["record"]) == (70, None, "in", "ring-in")
    assert {key: getattr(event, key) for key in read} == read


def test_detect_finds_mitel_5000_on_serial_output_with_headers_seconds_and_ring_ins():
    capture = profiles.samples(profiles.find("mitel-5000-serial"))
    assert b"S=" in capture and b"RING" in capture and b"Station Message" in capture
    ranked = offline.rank(profiles.load_all(), capture, ZoneInfo("UTC"), RX)
    assert ranked[0].profile == "mitel-5000-serial" and ranked[0].score == 1.0


def nec_page(date: bytes) -> bytes:
    return b" " * 60 + date + b" PAGE 001"


NEC_OFF = b"POT  16:40 Trunk 002  00:02:30 2001       2145550100           4411"
NEC_ON = b"POT  16:40 12/07 002  00:02:30 2001       2145550100           4411"
NEC_ICM = b"ICM  17:02            00:00:25 2003       2011"


def test_nec_with_the_date_column_off_or_an_extension_call_takes_the_page_headers_date():
    off, on, icm = events("nec-sl", nec_page(b"12/08/2025"), NEC_OFF, NEC_ON, NEC_ICM)
    assert [datetime.fromtimestamp(e.start, timezone.utc).strftime("%Y-%m-%d %H:%M") for e in (off, on, icm)] == \
        ["2025-12-08 16:40", "2025-12-07 16:40", "2025-12-08 17:02"]
    assert (off.trunk, off.called, off.acct, on.trunk, icm.trunk, icm.dir) == ("002", "2145550100", "4411", "002", None, "int")


def test_a_day_first_site_reads_its_page_headers_day_first_too():
    profile = with_date_order(profiles.find("nec-sl"), "DM")
    stream = StreamParser(profile, ZoneInfo("UTC"), "gw", "pbx")
    (off,) = stream.feed(nec_page(b"08/12/2025") + b"\r\n" + NEC_OFF + b"\r\n", RX) + stream.feed(b"", RX)
    assert datetime.fromtimestamp(off.start, timezone.utc).strftime("%Y-%m-%d") == "2025-12-08"


@pytest.mark.parametrize("record", [NEC_OFF, NEC_ON, NEC_ICM])
def test_detect_finds_nec_with_the_date_column_on_or_off(record):
    ranked = offline.rank(profiles.load_all(), nec_page(b"12/08/2025") + b"\r\n" + record + b"\r\n", ZoneInfo("UTC"), RX)
    assert ranked[0].profile == "nec-sl" and ranked[0].score == 1.0


def test_panasonic_pattern_b_reads_its_charge_and_no_ring():
    record = b"01/16/26  9:40AM 101   05 0312345678           00:02'17 00560.00EU 4536"
    (event,) = events("panasonic-kx-tda", record)
    assert (event.dur, event.ring, event.called, event.acct, event.x["cost"]) == (137, None, "0312345678", "4536",
                                                                                  "00560.00EU")
    ranked = offline.rank(profiles.load_all(), record + b"\r\n", ZoneInfo("UTC"), RX)
    assert ranked[0].profile == "panasonic-kx-tda" and ranked[0].score == 1.0


def test_avaya_cm_teleseer_records_are_read_at_their_own_columns():
    record = b"   094000457  91010312345678     4001 55501          1    012               "
    (event,) = events("avaya-cm", record + b"\r\n\x00\x00\x00")
    assert (event.dur, event.dir, event.ext, event.trunk, event.called, event.acct) == \
        (270, "out", "4001", "101", "0312345678", "55501")
    assert event.x == {"cond": "7", "code_dialed": "9", "frl": "1", "out_circuit": "012"}
    ranked = offline.rank(profiles.load_all(), record + b"\r\n\x00\x00\x00", ZoneInfo("UTC"), RX)
    assert ranked[0].profile == "avaya-cm" and ranked[0].score == 1.0


def test_hicom_100e_compressed_records_read_beside_hipaths():
    hicom = b"15.01.2609:40:00 2  201     00:02:0001715550123                   3 6"
    hipath = b"13.09.0010:15:42  1      201    500:02:310897654321                         01"
    first, second = events("siemens-hipath", hicom, hipath)
    assert (first.ext, first.trunk, first.dur, first.called, first.disp, first.x["units"]) == \
        ("201", "2", 120, "01715550123", "forwarded", 3)
    assert (second.ext, second.trunk, second.ring, second.dur, second.caller) == ("201", "1", 5, 151, "0897654321")
    ranked = offline.rank(profiles.load_all(), hicom + b"\r\n", ZoneInfo("UTC"), RX)
    assert ranked[0].profile == "siemens-hipath"
