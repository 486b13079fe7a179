"""The service figures against figures worked out by hand, on a small fixed set of calls:
each outcome, the answer threshold's edge, short abandons, a day that falls back, a call
across midnight, the busy hour of the open days, each extension's part, an agent's
headset."""

from dataclasses import replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gateway.central import kpi
from gateway.central.calls import Call
from gateway.central.kpi import KpiSettings
from gateway.common.schedule import parse as business_hours

pytestmark = pytest.mark.central

PARIS = ZoneInfo("Europe/Paris")
TUESDAY = date(2026, 3, 10)  # Paris is UTC+1 then
SETTINGS = KpiSettings(answer_within=20, short_abandon=5, hours=business_hours("Mon-Fri 08:00-18:00"))


def at(day: date, hh: int, mm: int, ss: int = 0, fold: int = 0) -> int:
    return int(datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=PARIS, fold=fold).timestamp())


def call(start: int, outcome: str = "answered", wait: int | None = None, talk: int = 0, ext: str | None = None,
         trunk: str | None = "1", dir: str | None = "in", final: str | None = None, hold: int | None = None,
         legs: tuple = (), caller: str | None = "0312", folded: int = 0, group: str | None = None) -> Call:
    """A call; unless given, its legs: answered at ``ext`` (then ``final``, the talk split
    in two), or rung there."""
    if not legs and ext is not None:
        if outcome != "answered":
            legs = ((ext, "rang", 0, 0, None),)
        elif final and final != ext:
            legs = ((ext, "answered", talk // 3, 0, None), (final, "answered", talk - talk // 3, hold or 0, None))
        else:
            legs = ((ext, "answered", talk, hold or 0, None),)
    people = sum(leg[1] == "answered" for leg in legs)
    return Call(gw="gw", src="pbx", key=f"s:{start}", site="hq", rules="test/1", start=start, last_start=start,
                end_at=start + (wait or 0) + talk + (hold or 0), dir=dir, trunk=trunk, caller=caller, called="200",
                hunt_group=group,
                first_ext=ext if outcome == "answered" else None, final_ext=(final or ext) if outcome == "answered" else None,
                ring=wait, wait=wait, talk=talk, hold=hold,
                transfers=max(0, people - 1), outcome=outcome, orphan=False, complete=True, folded=folded, legs=legs,
                records=(("s", start),))


DAY = [
    call(at(TUESDAY, 9, 0), wait=20, talk=100, ext="201"),  # exactly T: within
    call(at(TUESDAY, 9, 1), wait=21, talk=50, ext="202", trunk="2"),  # one second over; at once with the first
    call(at(TUESDAY, 9, 20), wait=5, talk=30, ext="201", final="202"),
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
    assert (r.extensions["201"].answered, r.extensions["202"].answered, r.extensions["202"].presented) == (3, 2, 2)
    assert r.total.transfers == 1
    assert r.busy_hour().hour == 9
    assert (r.outbound.calls, r.extensions["203"].outbound, r.extensions["203"].presented) == (1, 1, 0)


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
    assert r.days[autumn].offered == 3 and r.total.offered == 3


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
    # talk of the legs answered at 201 (the one after hours too): 100 + 30 // 3 + 10
    assert (ana.off_hook, ana.talk, ana.calls) == (360, 120, 3)
    assert ana.share_talking == pytest.approx(120 / 360)


def test_rates_handling_time_and_what_service_level_leaves_out():
    t = kpi.report(DAY, "hq", "Europe/Paris", TUESDAY, TUESDAY, SETTINGS).total
    assert (t.answer_rate, t.abandon_rate) == (4 / 8, 2 / 8)
    assert t.abandon_rate_after_short == (2 - 1) / (8 - 1)
    assert t.left_out("answered_and_abandoned") == [("voicemail", 1), ("busy", 1), ("short abandons", 1),
                                                    ("answered, no ring printed", 1)]
    assert sum(n for _, n in t.left_out("offered")) == t.offered - 7
    held = kpi.report([call(at(TUESDAY, 9, 0), wait=5, talk=100, hold=20, ext="201")], "hq", "Europe/Paris",
                      TUESDAY, TUESDAY, SETTINGS).total
    assert held.average_handling == 120 and held.average_talk == 100


def test_a_record_with_no_direction_and_no_number_is_no_call_offered():
    login = replace(call(at(TUESDAY, 9, 0), "other", dir=None, caller=None, trunk=None), called=None)
    unknown_dir = call(at(TUESDAY, 9, 5), wait=3, talk=10, dir=None)
    t = kpi.report([login, unknown_dir], "hq", "Europe/Paris", TUESDAY, TUESDAY, SETTINGS).total
    assert (t.calls, t.offered, t.other) == (2, 1, 0)


def test_offered_calls_are_counted_by_the_hunt_group_their_records_name_and_only_those():
    calls = [call(at(TUESDAY, 9, 0), wait=5, talk=60, ext="201", group="42000"),
             call(at(TUESDAY, 9, 5), "abandoned", wait=30, ext="202", group="42000"),
             call(at(TUESDAY, 9, 10), wait=25, talk=60, ext="203", group="43000"),
             call(at(TUESDAY, 9, 15), wait=5, talk=60, ext="201"),  # names none
             call(at(TUESDAY, 9, 20), wait=5, talk=60, ext="201", group="42000", dir="out"),  # not offered
             call(at(TUESDAY, 22, 0), wait=5, talk=60, ext="201", group="42000")]  # out of hours
    r = kpi.report(calls, "hq", "Europe/Paris", TUESDAY, TUESDAY, SETTINGS)
    assert {g: (f.offered, f.answered, f.abandoned) for g, f in r.groups.items()} == {"42000": (2, 1, 1),
                                                                                    "43000": (1, 1, 0)}
    assert r.total.offered - sum(f.offered for f in r.groups.values()) == 1


def test_each_extension_is_presented_a_call_once_and_misses_what_rang_there_unanswered():
    rang_on = call(at(TUESDAY, 9, 0), wait=30, talk=60, ext="201", legs=(
        ("201", "rang", 0, 0, None), ("202", "rang", 0, 0, None), ("201", "rang", 0, 0, None),
        ("203", "answered", 60, 5, "Ana Lima")))
    gave_up = call(at(TUESDAY, 9, 10), "abandoned", wait=12, ext="201")
    to_voicemail = call(at(TUESDAY, 9, 20), "voicemail", wait=20,
                        legs=(("202", "rang", 0, 0, None), (None, "voicemail", 0, 0, None)))
    r = kpi.report([rang_on, gave_up, to_voicemail], "hq", "Europe/Paris", TUESDAY, TUESDAY, SETTINGS)
    e = r.extensions
    assert (e["201"].presented, e["201"].answered, e["201"].missed) == (2, 0, 2)
    assert (e["202"].presented, e["202"].missed) == (2, 2)
    assert (e["203"].presented, e["203"].answered, e["203"].talk, e["203"].hold, e["203"].name) == (1, 1, 60, 5, "Ana Lima")
    assert None not in e


def test_the_busy_hour_is_averaged_over_open_days_and_each_hour_takes_its_part_of_a_call():
    monday, sunday = TUESDAY - timedelta(days=1), TUESDAY - timedelta(days=2)
    calls = [
        call(at(monday, 9, 30), wait=0, talk=3600),  # 09:30-10:30: half in 9, half in 10
        call(at(TUESDAY, 10, 0), wait=0, talk=3600),  # all of 10
        call(at(TUESDAY, 10, 0), wait=0, talk=1800),  # half of 10
        call(at(sunday, 10, 0), wait=0, talk=3600 * 3),  # closed day: in no mean
    ]
    busy = kpi.report(calls, "hq", "Europe/Paris", sunday, TUESDAY, SETTINGS).busy_hour()
    assert (busy.hour, busy.open_days) == (10, 2)
    assert busy.erlangs_open_days == pytest.approx((0.5 + 1.5) / 2)
    assert (busy.peak_day, busy.erlangs_peak_day) == (TUESDAY, 1.5)




def test_a_call_whose_record_says_it_lasted_years_counts_a_day_and_is_said():
    crafted = call(at(TUESDAY, 9, 0), wait=5, talk=10**12, ext="201")  # (a garbled or crafted duration)
    r = kpi.report([crafted], "hq", "Europe/Paris", TUESDAY, TUESDAY, SETTINGS)
    assert r.over_a_day == 1 and sum(r.traffic.values()) == kpi.LONGEST_ON_LINE
    assert max(r.peak_trunks.values()) == 1
