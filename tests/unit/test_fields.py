"""Dates, times and durations as PBXes print them."""

from datetime import date, time

import pytest

from gateway.errors import RecordError
from gateway.smdr.fields import parse_date, parse_duration, parse_time

RX = date(2026, 6, 15)


@pytest.mark.parametrize("text, order, expected", [
    ("2008/06/28", "YMD", date(2008, 6, 28)),
    ("06/28/08", "MDY", date(2008, 6, 28)),
    ("28/06/08", "DMY", date(2008, 6, 28)),
    ("28.06.2008", "DMY", date(2008, 6, 28)),
    ("12/31/98", "MDY", date(1998, 12, 31)),
    ("01/15/27", "MDY", date(2027, 1, 15)),   # next year is still this century
    ("06/15", "MD", date(2026, 6, 15)),
    ("15/06", "DM", date(2026, 6, 15)),
])
def test_date_orders_and_year_forms(text, order, expected):
    assert parse_date(text, order, RX) == expected


def test_missing_year_rolls_back_across_new_year():
    assert parse_date("12/31", "MD", date(2026, 1, 2)) == date(2025, 12, 31)
    assert parse_date("01/01", "MD", date(2026, 1, 1)) == date(2026, 1, 1)
    # a PBX clock a little ahead of ours is not a call from last year
    assert parse_date("01/02", "MD", date(2026, 1, 1)) == date(2026, 1, 2)


@pytest.mark.parametrize("text, order", [
    ("13/13/08", "MDY"), ("02/30/08", "MDY"), ("2008/06", "YMD"), ("06/28/2008", "MD"),
    ("**/**/**", "MDY"), ("", "YMD"),
])
def test_bad_dates_are_record_errors(text, order):
    with pytest.raises(RecordError):
        parse_date(text, order, RX)


@pytest.mark.parametrize("text, expected", [
    ("1:04PM", time(13, 4)), ("12:52PM", time(12, 52)), ("12:05AM", time(0, 5)),
    ("9:30am", time(9, 30)), ("*12:54PM", time(12, 54)), ("11:15p", time(23, 15)),
    ("09:30:57", time(9, 30, 57)), ("23:59", time(23, 59)),
])
def test_times_12_and_24_hour(text, expected):
    assert parse_time(text) == expected


@pytest.mark.parametrize("text", ["13:00PM", "24:00", "9.30", "**:****", "0:00AM"])
def test_bad_times_are_record_errors(text):
    with pytest.raises(RecordError):
        parse_time(text)


@pytest.mark.parametrize("text, fmt, seconds", [
    ("00:01:05", "hh:mm:ss", 65), ("1234:00:01", "hh:mm:ss", 1234 * 3600 + 1),
    ("00:07'48", "hh:mm'ss", 468), ("5'15", "m'ss", 315), ("0'05", "m'ss", 5),
    ("17", "seconds", 17), ("0123", "hmmt", 12 * 60 + 18), ("9594", "hmmt", 9 * 3600 + 59 * 60 + 24),
    ("", "m'ss", None),
])
def test_durations(text, fmt, seconds):
    assert parse_duration(text, fmt) == seconds


@pytest.mark.parametrize("text, fmt", [("00:61:00", "hh:mm:ss"), ("1:05", "m'ss"), ("12s", "seconds")])
def test_bad_durations_are_record_errors(text, fmt):
    with pytest.raises(RecordError):
        parse_duration(text, fmt)
