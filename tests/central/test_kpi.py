"""The service figures against figures worked out by hand, on a small fixed set of calls:
each outcome, the answer threshold's edge, short abandons, a day that falls back, a call
across midnight, an agent's headset."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gateway.central import kpi
from gateway.central.calls import Call
from gateway.central.kpi import KpiSettings, business_hours

pytestmark = pytest.mark.central

PARIS = ZoneInfo("Europe/Paris")
TUESDAY = date(2026, 3, 10)  # Paris is UTC+1 then
SETTINGS = KpiSettings(answer_within=20, short_abandon=5, hours=business_hours("Mon-Fri 08:00-18:00"))


def at(day: date, hh: int, mm: int, ss: int = 0, fold: int = 0) -> int:
    return int(datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=PARIS, fold=fold).timestamp())


def call(start: int, outcome: str = "answered", wait: int | None = None, talk: int = 0, ext: str | None = None,
         trunk: str | None = "1", dir: str | None = "in", final: str | None = None, transfers: int = 0) -> Call:
    return Call(gw="gw", src="pbx", key=f"s:{start}", site="hq", rules="test/1", start=start, last_start=start,
                end_at=start + (wait or 0) + talk, dir=dir, trunk=trunk, caller="0312", called="200",
                first_ext=ext, final_ext=final or ext, ring=wait, wait=wait, talk=talk, hold=None,
                transfers=transfers, outcome=outcome, orphan=False, complete=True, records=(("s", start),))


DAY = [
    call(at(TUESDAY, 9, 0), wait=20, talk=100, ext="201"),  # exactly T: within
    call(at(TUESDAY, 9, 1), wait=21, talk=50, ext="202", trunk="2"),  # one second over; at once with the first
    call(at(TUESDAY, 9, 20), wait=5, talk=30, ext="201", final="202", transfers=1),
    call(at(TUESDAY, 9, 40), "abandoned", wait=3),  # short
    call(at(TUESDAY, 9, 45), "abandoned", wait=30, trunk="2"),
    call(at(TUESDAY, 10, 5), "busy"),
    call(at(TUESDAY, 10, 10), "voicemail", wait=15),
    call(at(TUESDAY, 10, 15), wait=4, talk=60, ext="203", trunk="3", dir="out"),  # not offered
    call(at(TUESDAY, 11, 0), wait=None, talk=40, ext="204"),  # the PBX printed no ring
    call(at(TUESDAY, 19, 0), wait=2, talk=10, ext="201"),  # after hours
]


def test_the_figures_of_a_day_are_those_worked_out_by_hand():
    r = kpi.report(DAY, "hq", "Europe/Paris", TUESDAY, TUESDAY, SETTINGS)
    t = r.total
    assert (t.calls, t.offered, t.answered, t.answered_within, t.unknown_wait) == (9, 8, 4, 2, 1)
    assert (t.abandoned, t.short_abandons, t.busy, t.voicemail, t.other) == (2, 1, 1, 1, 0)
    assert r.out_of_hours.calls == 1
    # within T / (answered with a known wait + abandoned - short abandons) = 2 / (3 + 2 - 1)
    assert t.service_level("answered_and_abandoned") == 2 / 4
    assert t.service_level("offered") == 2 / 7  # offered less the one whose wait is unknown
    assert t.service_level("answered") == 2 / 3
    assert t.service_level("offered_less_short") == 2 / 6
    assert t.average_wait == pytest.approx((20 + 21 + 5) / 3)
    assert t.p90_wait == 21  # nearest rank: the 3rd of 3
    assert t.average_talk == (100 + 50 + 30 + 40) / 4
    nine, half_past = at(TUESDAY, 9, 0), at(TUESDAY, 9, 30)
    assert (r.half_hours[nine].answered, r.half_hours[half_past].abandoned) == (3, 2)
    assert r.peak_trunks[nine] == 2 and r.peak_trunks[half_past] == 1
    assert r.extensions["201"].answered == 3 and r.final_extensions["202"] == 2
    assert r.transferred == 1
    assert r.busy_hour()[0] == 9


def test_an_abandoned_call_of_no_printed_ring_is_neither_short_nor_long_and_left_out_of_service_level():
    calls = [call(at(TUESDAY, 9, 0), wait=10, talk=60), call(at(TUESDAY, 9, 5), "abandoned", wait=None)]
    t = kpi.report(calls, "hq", "Europe/Paris", TUESDAY, TUESDAY, SETTINGS).total
    assert (t.abandoned, t.short_abandons, t.unknown_abandon) == (1, 0, 1)
    assert t.service_level("answered_and_abandoned") == t.service_level("offered") == 1.0


def test_no_call_to_measure_is_no_service_level_rather_than_zero():
    r = kpi.report([], "hq", "Europe/Paris", TUESDAY, TUESDAY, SETTINGS)
    assert r.total.service_level(SETTINGS.formula) is None and r.total.p90_wait is None and r.busy_hour() is None


def test_a_day_that_falls_back_has_two_half_hours_at_two_and_25_hours():
    autumn = date(2026, 10, 25)  # Paris: 03:00 CEST becomes 02:00 CET
    calls = [call(at(autumn, 1, 45), wait=3, talk=10), call(at(autumn, 2, 15), wait=3, talk=10),
             call(at(autumn, 2, 15, fold=1), wait=3, talk=10)]
    assert calls[2].start - calls[1].start == 3600
    r = kpi.report(calls, "hq", "Europe/Paris", autumn, autumn, KpiSettings(hours=business_hours("Sun 00:00-23:59")))
    start, end = kpi.local_range(autumn, autumn, PARIS)
    assert end - start == 25 * 3600
    twos = [kpi.local(k, PARIS) for k in sorted(r.half_hours)]
    assert [(k.hour, k.minute, k.utcoffset()) for k in twos] == [
        (1, 30, timedelta(hours=2)), (2, 0, timedelta(hours=2)), (2, 0, timedelta(hours=1))]
    assert r.days[autumn].offered == 3 and r.hours_of_day[2].offered == 2 and r.total.offered == 3


def test_a_call_across_midnight_counts_on_its_first_day_and_holds_a_trunk_into_the_next():
    late = call(at(TUESDAY, 23, 50), wait=10, talk=1190)  # till 00:10
    r = kpi.report([late], "hq", "Europe/Paris", TUESDAY, TUESDAY + timedelta(days=1),
                   KpiSettings(hours=business_hours("Mon-Sun 00:00-23:59")))
    assert r.days[TUESDAY].answered == 1 and TUESDAY + timedelta(days=1) not in r.days
    assert r.peak_trunks[at(TUESDAY + timedelta(days=1), 0, 0)] == 1


def test_an_agents_off_hook_time_is_set_against_the_talk_of_the_calls_answered_at_their_extension():
    ms = 1000
    headsets = [("ana", "201", at(TUESDAY, 9, 0) * ms, "off_hook"), ("ana", "201", at(TUESDAY, 9, 5) * ms, "on_hook"),
                ("ana", "201", at(TUESDAY, 9, 20) * ms, "off_hook"),
                ("ana", "201", at(TUESDAY, 9, 21) * ms, "disconnected")]
    r = kpi.report(DAY, "hq", "Europe/Paris", TUESDAY, TUESDAY, SETTINGS, headsets)
    ana = r.agents["ana"]
    # talk of the calls first answered at 201 (the one after hours too): 100 + 30 + 10
    assert (ana.off_hook, ana.talk, ana.calls) == (360, 140, 3)
    assert ana.share_talking == pytest.approx(140 / 360)


@pytest.mark.parametrize("text, days, hours", [
    ("Mon-Fri 08:00-18:00", {0, 1, 2, 3, 4}, ("08:00", "18:00")),
    ("Sat,Sun 09:30-12:00", {5, 6}, ("09:30", "12:00")),
    ("Fri-Mon 07:00-19:00", {4, 5, 6, 0}, ("07:00", "19:00")),
])
def test_business_hours_read_as_a_manager_writes_them(text, days, hours):
    h = business_hours(text)
    assert h.days == days and (f"{h.opens:%H:%M}", f"{h.closes:%H:%M}") == hours


@pytest.mark.parametrize("text", ["Mon-Fri", "Mon-Fri 18:00-08:00", "Monday 08:00-18:00", "Mon-Fri 8-18"])
def test_business_hours_that_do_not_read_say_what_is_expected(text):
    with pytest.raises(ValueError, match="Mon-Fri 08:00-18:00"):
        business_hours(text)
