"""The no-data alarm: quiet periods, working hours, raise once and clear on the next record."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from gateway.common import schedule
from gateway.edge.alarms import QuietWatch, UnparsedWatch

TZ = ZoneInfo("Europe/Paris")
MONDAY_9 = datetime(2026, 1, 12, 9, 0, tzinfo=TZ)


def mono(when: datetime) -> float:
    """A moment on the monotonic clock: in these tests it runs with the wall clock."""
    return when.timestamp()


def check(watch: QuietWatch, now: datetime, last: float | None, since: float) -> str | None:
    return watch.check(now, mono(now), last, since)


def test_raised_once_after_the_quiet_period_and_cleared_by_the_next_record():
    watch = QuietWatch(quiet_s=600)
    last = mono(MONDAY_9)
    assert check(watch, MONDAY_9 + timedelta(minutes=9), last, last) is None
    assert check(watch, MONDAY_9 + timedelta(minutes=10), last, last) == "raised"
    assert check(watch, MONDAY_9 + timedelta(minutes=30), last, last) is None  # once
    record = mono(MONDAY_9 + timedelta(minutes=31))
    assert check(watch, MONDAY_9 + timedelta(minutes=31, seconds=1), record, last) == "cleared"
    assert check(watch, MONDAY_9 + timedelta(minutes=35), record, last) is None


def test_no_record_yet_counts_from_the_start_and_zero_means_no_alarm():
    start = mono(MONDAY_9)
    assert check(QuietWatch(quiet_s=60), MONDAY_9 + timedelta(seconds=61), None, start) == "raised"
    assert check(QuietWatch(quiet_s=0), MONDAY_9 + timedelta(days=3), None, start) is None


def test_working_hours_watch_only_within_them_and_count_from_the_opening():
    watch = QuietWatch(quiet_s=900, hours=schedule.parse("Mon-Fri 08:00-18:00"))
    friday_evening = mono(datetime(2026, 1, 9, 17, 55, tzinfo=TZ))
    assert check(watch, datetime(2026, 1, 10, 11, 0, tzinfo=TZ), friday_evening, friday_evening) is None  # Saturday
    monday_8 = datetime(2026, 1, 12, 8, 0, tzinfo=TZ)
    assert check(watch, monday_8 + timedelta(minutes=14), friday_evening, friday_evening) is None
    assert check(watch, monday_8 + timedelta(minutes=15), friday_evening, friday_evening) == "raised"


def test_overnight_hours_count_silence_from_the_evenings_opening():
    watch = QuietWatch(quiet_s=3600, hours=schedule.parse("Mon-Fri 22:00-06:00"))
    monday_21 = mono(datetime(2026, 1, 12, 21, 0, tzinfo=TZ))
    tuesday_2259 = datetime(2026, 1, 12, 22, 59, tzinfo=TZ)
    assert check(watch, tuesday_2259, monday_21, monday_21) is None  # open since 22:00: 59 min
    assert check(watch, datetime(2026, 1, 13, 0, 0, tzinfo=TZ), monday_21, monday_21) == "raised"  # past midnight


def test_a_24_7_watch_never_restarts_its_count_at_midnight():
    watch = QuietWatch(quiet_s=3600, hours=schedule.parse("always"))
    late = mono(datetime(2026, 1, 12, 23, 30, tzinfo=TZ))
    assert check(watch, datetime(2026, 1, 13, 0, 30, tzinfo=TZ), late, late) == "raised"


def test_a_stepped_wall_clock_neither_raises_nor_hides_the_alarm():
    """The box booted at 1970 and NTP stepped its clock to 2026 (or a step went back)."""
    watch = QuietWatch(quiet_s=600)
    boot = 100.0  # monotonic seconds
    jumped = MONDAY_9 + timedelta(days=20000)  # the wall clock moved 55 years in a moment
    assert watch.check(jumped, boot + 60, boot, boot) is None  # a minute of silence, not 55 years
    back = MONDAY_9 - timedelta(hours=5)
    assert watch.check(back, boot + 601, boot, boot) == "raised"  # ten minutes, whatever the wall says


def test_clock_skew_is_raised_on_the_median_and_cleared_when_the_calls_are_right_again():
    from gateway.edge.alarms import SkewWatch

    watch = SkewWatch(limit_s=900)
    now = 1_800_000_000.0
    changes = [watch.add(now, now - 3600 - 30) for _ in range(6)]  # a PBX clock an hour behind (missed DST)
    assert changes == [None, None, None, None, "raised", None]  # said once, after enough calls
    assert round(watch.median_s) == 3630
    changes = [watch.add(now, now - 20) for _ in range(20)]  # put right: records 20 s after the call ends
    assert changes.count("cleared") == 1 and changes.index("cleared") == 6  # the median turns with the window
    assert watch.median_s == 20 and not watch.raised


def test_one_late_record_is_not_a_skewed_clock_and_a_limit_of_0_says_nothing():
    from gateway.edge.alarms import SkewWatch

    watch, off = SkewWatch(limit_s=900), SkewWatch(limit_s=0)
    for i in range(20):
        late = 7200 if i == 10 else 5  # a record held back once (a link hiccup)
        assert watch.add(1000.0 + late, 1000.0) is None
        assert off.add(1000.0 + 7200, 1000.0) is None


def test_unread_records_raise_once_half_of_the_recent_ones_are_and_clear_when_few_are():
    watch = UnparsedWatch()
    assert watch.add([True] * 9) is None  # too few to say
    assert watch.add([True]) == "raised"
    assert watch.add([True] * 30) is None  # once
    assert watch.add([False] * 44) is None  # 6 of the last 50 unread: still above the clearing share
    assert watch.add([False]) == "cleared" and watch.share == 5 / 50


def test_a_record_now_and_then_that_a_pbx_garbles_is_no_alarm():
    watch = UnparsedWatch()
    assert all(watch.add([n % 10 == 0]) is None for n in range(500))
