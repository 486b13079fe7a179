"""The quarter-hour summaries, on each engine: a report put together from them is the
report of the calls themselves, however the calls changed since they were first made
(records late or replayed, calls deleted, numbers masked), under any answer threshold
and business hours; and a database from before them is summarised on its upgrade."""

import random
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import msgpack
import pytest

from gateway.central import callstore, kpi, report, retention, summary
from gateway.central.calls import assemble
from gateway.central.database import Database
from gateway.central.ingest import Rows
from gateway.central.privacy import PrivacySettings
from gateway.common import schedule
from gateway.smdr import profiles
from central_parts import segment

pytestmark = pytest.mark.central

TOPIC = "pbxgw/v1/hq/gw-1/calls"
ZONE = "Europe/Paris"
FIRST = date(2026, 3, 23)  # a Monday; the clocks go forward on Sunday the 29th
LAST = FIRST + timedelta(days=6)
SETTINGS = [kpi.KpiSettings(),
            kpi.KpiSettings(answer_within=10, short_abandon=3, hours=schedule.parse(["Mon-Sat 07:30-19:00", "Sun 22:00-02:00"]))]


def a_week() -> list[dict]:
    """Calls of a week, day and night: single segments and transfer chains, unanswered
    ones, some long enough to run into the next half-hours, on six extensions."""
    rnd = random.Random(7)
    records, seq = [], 0
    start = int(datetime.combine(FIRST, datetime.min.time(), ZoneInfo(ZONE)).timestamp())
    for n in range(400):
        start += rnd.randint(60, 3000)
        legs = rnd.choice((1, 1, 2, 3))
        for leg in range(legs):
            seq += 1
            last = leg == legs - 1
            talk = 0 if last and rnd.random() < 0.15 else rnd.randint(5, 2400)
            records.append({**segment(seq, 5000 + n, start, str(200 + rnd.randrange(6)), 0 if last else 1,
                                      rnd.randint(0, 40), talk), "caller": f"0612{n:06}"})
    return records


def store(db: Database, records: list[dict]) -> None:
    for i in range(0, len(records), 50):
        rows = Rows()
        rows.add(TOPIC, msgpack.packb(records[i:i + 50]), 1_773_000_000_000)
        db.write(rows)


def up_to_date(db: Database) -> None:
    """What the collector does after storing: assemble, then summarise."""
    callstore.refresh(db)
    while summary.make_due(db):
        pass


def from_parts(db: Database, settings: kpi.KpiSettings) -> kpi.Report:
    start, end = kpi.local_range(FIRST, LAST, ZoneInfo(ZONE))
    assert summary.due(db, "hq", start, end) == 0
    return kpi.report_of(summary.stored(db, "hq", start, end), "hq", ZONE, FIRST, LAST, settings)


def from_calls(db: Database, settings: kpi.KpiSettings) -> kpi.Report:
    start, end = kpi.local_range(FIRST, LAST, ZoneInfo(ZONE))
    return kpi.report(list(report.calls(db, "hq", start, end)), "hq", ZONE, FIRST, LAST, settings)


def test_the_summaries_report_what_the_calls_do_however_the_calls_changed(db):
    records = a_week()
    rnd = random.Random(3)
    early, late = records[:500], records[500:]
    store(db, early)
    up_to_date(db)
    rnd.shuffle(late)
    store(db, late + rnd.sample(records, 40))  # late, out of order, and some twice
    up_to_date(db)
    start, end = kpi.local_range(FIRST, LAST, ZoneInfo(ZONE))
    truth = [call for call in assemble([{**r, "site": "hq"} for r in records], profiles.find("avaya-ipo").assembly,
                                       "avaya-ipo") if start <= call.start < end]
    for settings in SETTINGS:
        parts = from_parts(db, settings)
        assert parts == kpi.report(truth, "hq", ZONE, FIRST, LAST, settings) == from_calls(db, settings)
    assert parts.total.offered > 100 and parts.out_of_hours.offered > 10 and parts.peak_trunks

    # Numbers masked by [privacy]: the numbers' figures follow the calls.
    retention.apply(db, PrivacySettings(numbers_after=1.0), now_ms=2_000_000_000_000)
    up_to_date(db)
    masked = from_parts(db, SETTINGS[0])
    assert masked == from_calls(db, SETTINGS[0]) and all(n.startswith("•") for n in masked.numbers)

    # A day's calls gone: its quarter-hours are summarised as empty.
    tuesday = kpi.local_range(FIRST + timedelta(days=1), FIRST + timedelta(days=1), ZoneInfo(ZONE))
    with db.transaction() as cur:
        cur.execute(db._sql("DELETE FROM calls WHERE start >= ? AND start < ?"), tuesday)
    up_to_date(db)
    assert db.fetch("SELECT count(*) FROM summaries WHERE slot >= ? AND slot < ?", tuesday) == [(0,)]
    assert from_parts(db, SETTINGS[1]) == from_calls(db, SETTINGS[1])


def test_hours_between_quarter_hours_are_counted_from_the_calls(db):
    store(db, a_week())
    up_to_date(db)
    settings = kpi.KpiSettings(hours=schedule.parse("Mon-Fri 08:10-17:50"), site_zones=(("hq", ZONE),))
    assert kpi.slot_for(settings.hours) < kpi.PART_SLOT
    built, _ = report.build(db, "hq", FIRST, LAST, settings)
    built.unshown = ()
    assert built == from_calls(db, settings)
    assert built.total.offered != from_parts(db, settings).total.offered  # (quarter-hours would have miscounted)


def test_a_database_from_before_summaries_is_summarised_on_its_upgrade(db):
    with db.transaction() as cur:  # (back to the schema of version 5)
        for table in ("summaries", "summaries_due"):
            cur.execute(f"DROP TABLE {table}")
        cur.execute("DELETE FROM schema_migrations WHERE version = 6")
        if db.engine == "postgresql":
            cur.execute("DROP TRIGGER calls_changed ON calls")
            cur.execute("DROP FUNCTION pbxgw_summary_due")
        else:
            for trigger in ("calls_inserted", "calls_deleted", "calls_updated"):
                cur.execute(f"DROP TRIGGER {trigger}")
    store(db, a_week())
    callstore.refresh(db)
    assert db.migrate() == [6]
    assert db.fetch("SELECT count(*) FROM summaries_due")[0][0] > 100
    while summary.make_due(db):
        pass
    assert from_parts(db, SETTINGS[1]) == from_calls(db, SETTINGS[1])


def test_a_call_before_1970_is_summarised_in_its_own_quarter_hour(db):
    """(SQL's % keeps a negative start's sign: the triggers must floor as Python does.)"""
    store(db, [segment(1, 1, -1000, "201", 0, 5, 30), segment(2, 2, 1000, "201", 0, 5, 30)])
    up_to_date(db)
    assert [slot for slot, _ in summary.stored(db, "hq", -1800, 1800)] == [-1800, 900]
