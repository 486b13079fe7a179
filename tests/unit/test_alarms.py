"""The no-data alarm: quiet periods, working hours, raise once and clear on the next record."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gateway.alarms import Hours, QuietWatch

TZ = ZoneInfo("Europe/Paris")
MONDAY_9 = datetime(2026, 1, 12, 9, 0, tzinfo=TZ)


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def test_raised_once_after_the_quiet_period_and_cleared_by_the_next_record():
    watch = QuietWatch(quiet_s=600)
    last = ms(MONDAY_9)
    assert watch.check(MONDAY_9 + timedelta(minutes=9), last, last) is None
    assert watch.check(MONDAY_9 + timedelta(minutes=10), last, last) == "raised"
    assert watch.check(MONDAY_9 + timedelta(minutes=30), last, last) is None  # once
    record = ms(MONDAY_9 + timedelta(minutes=31))
    assert watch.check(MONDAY_9 + timedelta(minutes=31, seconds=1), record, last) == "cleared"
    assert watch.check(MONDAY_9 + timedelta(minutes=35), record, last) is None


def test_no_record_yet_counts_from_the_start_and_zero_means_no_alarm():
    start = ms(MONDAY_9)
    assert QuietWatch(quiet_s=60).check(MONDAY_9 + timedelta(seconds=61), None, start) == "raised"
    assert QuietWatch(quiet_s=0).check(MONDAY_9 + timedelta(days=3), None, start) is None


def test_working_hours_watch_only_within_them_and_count_from_the_opening():
    watch = QuietWatch(quiet_s=900, hours=Hours.parse("Mon-Fri 08:00-18:00"))
    friday_evening = ms(datetime(2026, 1, 9, 17, 55, tzinfo=TZ))
    assert watch.check(datetime(2026, 1, 10, 11, 0, tzinfo=TZ), friday_evening, friday_evening) is None  # Saturday
    monday_8 = datetime(2026, 1, 12, 8, 0, tzinfo=TZ)
    assert watch.check(monday_8 + timedelta(minutes=14), friday_evening, friday_evening) is None
    assert watch.check(monday_8 + timedelta(minutes=15), friday_evening, friday_evening) == "raised"


@pytest.mark.parametrize("text, days", [("Mon-Fri 08:00-18:00", {0, 1, 2, 3, 4}), ("sat 09:00-13:00", {5}),
                                        ("Fri-Mon 20:00-23:00", {4, 5, 6, 0})])
def test_hours_are_read(text, days):
    assert Hours.parse(text).days == days


@pytest.mark.parametrize("text", ["weekdays", "Mon-Fri 18:00-08:00", "Mon 25:00-26:00"])
def test_bad_hours_say_what_was_expected(text):
    with pytest.raises(ValueError):
        Hours.parse(text)
