"""The one schedule grammar of business_hours and quiet_hours: each form, read as a manager
or a technician writes it, and errors that say what is expected."""

from datetime import date, datetime

import pytest

from gateway.common import schedule

SATURDAY, SUNDAY, MONDAY = date(2026, 12, 5), date(2026, 12, 6), date(2026, 12, 7)


def open_at(s: schedule.Schedule, day: date, hh: int, mm: int = 0) -> bool:
    return s.covers(day, hh * 3600 + mm * 60)


def test_a_week_with_a_saturday_morning_beside_weekdays():
    s = schedule.parse(["Mon-Fri 08:00-18:00", "Sat 09:00-12:00"])
    assert open_at(s, MONDAY, 8) and not open_at(s, MONDAY, 18) and open_at(s, MONDAY, 17, 59)
    assert open_at(s, SATURDAY, 11, 59) and not open_at(s, SATURDAY, 12) and not open_at(s, SUNDAY, 10)


def test_an_overnight_window_runs_into_the_next_day():
    s = schedule.parse("Fri 22:00-06:00")
    friday = date(2026, 12, 4)
    assert open_at(s, friday, 23) and open_at(s, SATURDAY, 5, 59) and not open_at(s, SATURDAY, 6)
    assert not open_at(s, friday, 5)  # (Thursday night is not in it)


@pytest.mark.parametrize("text", ["always", "daily 00:00-24:00", "Mon-Sun 00:00-24:00"])
def test_round_the_clock(text):
    s = schedule.parse(text)
    assert all(open_at(s, MONDAY + (SUNDAY - SATURDAY) * d, h) for d in range(7) for h in (0, 12, 23))


def test_a_holiday_closes_its_date_and_stops_the_night_before_at_midnight():
    s = schedule.parse(["Mon-Fri 08:00-18:00", "daily 20:00-02:00", "2026-12-25"])
    christmas = date(2026, 12, 25)  # a Friday
    assert not open_at(s, christmas, 10) and not open_at(s, christmas, 1)
    assert open_at(s, date(2026, 12, 24), 23) and open_at(s, date(2026, 12, 24), 10)


def test_days_run_round_the_weekend_and_name_several():
    assert schedule.parse("Fri-Mon 07:00-19:00").windows[0].days == {4, 5, 6, 0}
    assert schedule.parse("mon,Wed,SAT 07:00-19:00").windows[0].days == {0, 2, 5}


def test_how_long_it_has_been_open_crosses_midnight_and_joins_touching_windows():
    s = schedule.parse(["Mon-Fri 08:00-12:00", "Mon-Fri 12:00-18:00"])
    assert s.open_for(datetime(2026, 12, 7, 13, 0)) == 5 * 3600
    assert s.open_for(datetime(2026, 12, 7, 19, 0)) is None
    assert schedule.parse("Mon 22:00-06:00").open_for(datetime(2026, 12, 8, 1, 0)) == 3 * 3600


@pytest.mark.parametrize("value, says", [
    ("", "empty value"), ([], "Mon-Fri 08:00-18:00"), ("Mon-Fri", "Mon-Fri 08:00-18:00"),
    ("Mon-Fri 8-18", "Mon-Fri 08:00-18:00"), ("Monday 08:00-18:00", "days such as"),
    ("Mon 25:00-26:00", "no time of day"), ("Mon 24:00-08:00", "no time of day"), ("2026-02-30", "no date"),
    (["2026-12-25"], "holidays alone"), (["Mon 08:00-18:00", 9], "Mon-Fri 08:00-18:00"),
])
def test_what_does_not_read_says_what_is_expected(value, says):
    with pytest.raises(ValueError, match=says):
        schedule.parse(value)
