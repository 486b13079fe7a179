"""The calls table kept current, on each engine: late and replayed records re-assemble
their call, and however the records of a day arrive (split, out of order, twice), the
calls and the figures come out the same."""

from datetime import date, datetime, timezone

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from gateway.central import callstore, kpi
from gateway.central.calls import CALL_COLUMNS, Call, assemble
from gateway.central.database import Database, json_value
from gateway.central.ingest import Rows
from gateway.smdr import profiles
from gateway.wire.events import StatusEvent, to_wire
from central_parts import segment

pytestmark = pytest.mark.central

TOPIC = "pbxgw/v1/hq/gw-1/calls"
DAY = date(2026, 3, 10)
NOON = int(datetime(2026, 3, 10, 12, tzinfo=timezone.utc).timestamp())


def a_day() -> list[dict]:
    """Sixty calls of one day: single segments, transfer chains of two and three,
    unanswered ones; a few minutes apart, some at once."""
    records, seq = [], 0
    for n in range(60):
        start = NOON - 6 * 3600 + n * 317
        legs = 1 + n % 3
        for leg in range(legs):
            seq += 1
            last = leg == legs - 1
            records.append(segment(seq, 1000 + n, start, str(200 + (n + leg) % 7), 0 if last else 1, 3 + n % 25,
                                   0 if n % 11 == 0 and last else 20 + leg * 10))
    return records


def batch(events: list[dict]) -> Rows:
    rows = Rows()
    rows.add(TOPIC, msgpack.packb(events), 1_773_000_000_000)
    return rows


def stored_calls(db: Database) -> list[Call]:
    rows = db.fetch(f"SELECT {', '.join(CALL_COLUMNS)} FROM calls ORDER BY key")
    return [Call(*r[:-2], legs=tuple(map(tuple, json_value(r[-2]))), records=tuple(tuple(k) for k in json_value(r[-1])))
            for r in rows]


def normal(calls: list[Call]) -> list[tuple]:
    """Calls as comparable values (SQLite gives its booleans back as 0 and 1)."""
    return sorted((*c.row()[:-5], bool(c.orphan), bool(c.complete), c.folded, c.legs, c.records) for c in calls)


def one_shot(records: list[dict]) -> list[Call]:
    as_stored = [{**r, "site": "hq"} for r in records]
    return assemble(as_stored, profiles.find("avaya-ipo").assembly, "avaya-ipo")


def test_a_late_segment_re_assembles_its_call_and_a_replayed_one_changes_nothing(db):
    first, second, last = (segment(1, 7, NOON, "201", 1, 5, 30), segment(2, 7, NOON, "202", 1, 4, 40),
                           segment(3, 7, NOON, "203", 0, 3, 50))
    db.write(batch([first, second]))
    assert callstore.refresh(db) == (1, True)
    [waiting] = stored_calls(db)
    assert not waiting.complete and waiting.records == (("s1", 1), ("s1", 2))
    db.write(batch([last]))
    callstore.refresh(db)
    [whole] = stored_calls(db)
    assert whole.complete and whole.key == waiting.key and (whole.final_ext, whole.talk) == ("203", 120)
    db.write(batch([second, last]))  # replayed
    callstore.refresh(db)
    assert normal(stored_calls(db)) == normal([whole])
    assert db.fetch("SELECT count(*) FROM calls_pending") == [(0,)]


def test_a_late_record_that_starts_a_call_earlier_takes_over_its_key(db):
    db.write(batch([segment(5, 9, NOON + 30, "202", 0, 2, 40)]))
    callstore.refresh(db)
    db.write(batch([segment(4, 9, NOON, "201", 1, 5, 30)]))  # printed first, arrived late
    callstore.refresh(db)
    [c] = stored_calls(db)
    assert c.key == "s1:4" and c.records == (("s1", 4), ("s1", 5)) and c.first_ext == "201"


def test_the_span_to_assemble_is_marked_in_the_batchs_transaction_and_survives_a_restart(db, database_url):
    db.write(batch(a_day()[:10]))
    db.close()
    again = Database.open(database_url)
    try:
        assert again.fetch("SELECT count(*) FROM calls_pending") == [(1,)]
        written, done = callstore.refresh(again)
        assert done and written == len(one_shot(a_day()[:10]))
    finally:
        again.close()


def test_a_profile_the_centre_does_not_know_makes_each_record_a_call_of_its_own(db):
    records = [{**segment(n, 7, NOON, "201", 1, 5, 30), "profile": "site-own-ipo"} for n in (1, 2)]
    db.write(batch(records))
    callstore.refresh(db)
    assert len(stored_calls(db)) == 2


def test_records_spanning_days_are_assembled_a_day_at_a_time_with_calls_across_the_cut(db):
    start = NOON - callstore.PIECE // 2
    records = [segment(1, 1, start, "201", 0, 2, 10),
               segment(2, 2, start + callstore.PIECE, "202", 1, 2, 10),  # (the last second of the first piece)
               segment(3, 2, start + callstore.PIECE + 1, "203", 0, 2, 10),  # (its call's next, in the second)
               segment(4, 3, start + 3 * callstore.PIECE, "204", 0, 2, 10)]
    db.write(batch(records))
    pieces = 0
    while not callstore.refresh(db, 1)[1]:
        pieces += 1
    assert pieces >= 2
    assert normal(stored_calls(db)) == normal(one_shot(records))


def test_a_record_dated_years_ahead_is_assembled_in_a_few_pieces_and_holds_no_other_source_up(db):
    far = int(datetime(9999, 12, 31, tzinfo=timezone.utc).timestamp())  # (the last day a report can name)
    records = [segment(1, 1, NOON, "201", 0, 2, 10), {**segment(2, 2, far, "202", 0, 2, 10), "rx": NOON * 1000}]
    other = {**segment(1, 3, NOON, "203", 0, 2, 10), "src": "pbx-b"}
    db.write(batch([*records, other]))
    pieces = 0
    while not callstore.refresh(db, 1)[1]:
        pieces += 1
        assert pieces < 10, "the years between the two records were walked two days at a time"
    assert sorted((c.src, c.start) for c in stored_calls(db)) == [("pbx", NOON), ("pbx", far), ("pbx-b", NOON)]


def test_a_pass_assembles_the_sources_pending_when_it_began_and_what_comes_meanwhile_waits_for_the_next(db):
    def source(src: str, seq: int, callid: int) -> dict:
        return {**segment(seq, callid, NOON + seq, "201", 0, 2, 10), "src": src}

    db.write(batch([source("pbx-a", 1, 1), source("pbx-b", 1, 2)]))
    assembly = callstore.Pass(db)
    assert assembly.piece() == 1 and not assembly.over
    db.write(batch([source("pbx-c", 1, 3)]))  # stored between two pieces, as the collector does
    assert assembly.piece() == 1 and assembly.over and assembly.piece() == 0
    assert db.fetch("SELECT src FROM calls_pending") == [("pbx-c",)]
    assert callstore.refresh(db) == (1, True)
    assert sorted(c.src for c in stored_calls(db)) == ["pbx-a", "pbx-b", "pbx-c"]


@pytest.fixture(scope="module")
def day_db(tmp_path_factory, request):
    """One database per engine for the property test's examples (emptied before each)."""
    engine = request.param
    if engine == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('calls')}/calls.db"
    else:
        url = request.getfixturevalue("postgres_cluster").create_database("calls_property")
    database = Database.open(url)
    database.migrate()
    yield database
    database.close()


@pytest.mark.parametrize("day_db", ["sqlite", "postgresql"], indirect=True)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(st.data())
def test_however_a_days_records_arrive_the_calls_and_figures_come_out_the_same(day_db, data):
    db = day_db
    with db.transaction() as cur:
        for table in ("events", "calls", "calls_pending", "sources"):
            cur.execute(f"DELETE FROM {table}")
    records = a_day()
    arriving = data.draw(st.permutations(records))
    arriving += data.draw(st.lists(st.sampled_from(records), max_size=15))  # delivered again, replayed
    cuts = sorted(data.draw(st.sets(st.integers(1, len(arriving) - 1), max_size=12)))
    refresh_after = data.draw(st.lists(st.booleans(), min_size=len(cuts) + 1, max_size=len(cuts) + 1))
    for part, refresh in zip([arriving[a:b] for a, b in zip([0, *cuts], [*cuts, len(arriving)])], refresh_after):
        db.write(batch(part))
        if refresh:
            callstore.refresh(db)
    callstore.refresh(db)
    expected = one_shot(records)
    got = stored_calls(db)
    assert normal(got) == normal(expected)
    figures = [kpi.report(calls, "hq", "UTC", DAY, DAY, kpi.KpiSettings()) for calls in (got, expected)]
    assert [kpi_summary(f) for f in figures[:1]] == [kpi_summary(f) for f in figures[1:]]


def kpi_summary(r: kpi.Report) -> tuple:
    t = r.total
    return (t.offered, t.answered, t.answered_within, t.abandoned, t.short_abandons, t.service_level(r.settings.formula),
            t.average_wait, t.p90_wait, t.average_talk, sorted(r.peak_trunks.items()),
            sorted((k, f.answered) for k, f in r.half_hours.items()))


def status_of(profile: str, assembly: dict, rx: int) -> Rows:
    rows = Rows()
    status = to_wire(StatusEvent(gw="gw-1", site="hq", state="online", boot=1, rx=rx, version="t", sources=[
        {"name": "pbx", "profile": profile, "timezone": "UTC", "extends": None, "assembly": assembly}]))
    rows.add("pbxgw/v1/hq/gw-1/status", msgpack.packb(status), rx)
    return rows


def test_a_sites_renamed_copy_is_assembled_by_the_rules_its_gateway_announces_even_after_its_records(db):
    copy = [{**segment(1, 7, NOON, "201", 1, 5, 30), "profile": "my-ipo"},
            {**segment(2, 7, NOON, "202", 0, 4, 40), "profile": "my-ipo"}]
    db.write(batch(copy))
    callstore.refresh(db)
    assert len(stored_calls(db)) == 2  # nothing says how my-ipo joins: each record a call of its own
    db.write(status_of("my-ipo", profiles.find("avaya-ipo").assembly_table, 1_773_000_000_001))
    callstore.refresh(db)
    [call] = stored_calls(db)
    assert (call.records, call.transfers, call.talk, call.complete) == ((("s1", 1), ("s1", 2)), 1, 70, True)
    # the same rules, wherever they were read, the same digest: the call says which built it
    assert call.rules == f"my-ipo/1/{profiles.find('avaya-ipo').assembly.digest}"
    db.write(status_of("my-ipo", profiles.find("avaya-ipo").assembly_table, 1_773_000_000_002))  # the same again
    assert db.fetch("SELECT count(*) FROM calls_pending") == [(0,)]
    edited = {**profiles.find("avaya-ipo").assembly_table, "window": "3h"}  # an edit that kept version 1
    db.write(status_of("my-ipo", edited, 1_773_000_000_003))
    callstore.refresh(db)
    [call] = stored_calls(db)
    assert call.rules.startswith("my-ipo/1/") and call.rules != f"my-ipo/1/{profiles.find('avaya-ipo').assembly.digest}"


def test_announced_rules_that_do_not_read_fall_back_and_are_checked_as_a_profiles_are(db, caplog):
    callstore._refused.cache_clear()  # (said once a process: another test may have said it)
    db.write(status_of("avaya-ipo", {"join": ["callid"], "window": "2h", "ends": {"x.continuation": "(a+)+"}}, 1))
    db.write(batch([segment(1, 7, NOON, "201", 1, 5, 30), segment(2, 7, NOON, "202", 0, 4, 40)]))
    callstore.refresh(db)
    [call] = stored_calls(db)  # the bundled avaya-ipo's rules
    assert call.complete and "do not read" in caplog.text and "repeats a repetition" in caplog.text
    caplog.clear()
    callstore.refresh(db)
    assert "do not read" not in caplog.text  # once, not at every refresh


@pytest.mark.parametrize("listed", [500, 2])  # (a piece's keys listed, or through a temporary table)
def test_a_backlog_is_assembled_in_pieces_of_records_and_comes_out_as_in_one(db, monkeypatch, listed):
    monkeypatch.setattr(callstore, "PIECE_RECORDS", 7)  # (a busy site's day, in miniature)
    monkeypatch.setattr(callstore, "_IN_CHUNK", listed)
    records = a_day()
    db.write(batch(records))
    pieces = 1
    while not callstore.refresh(db, 1)[1]:
        pieces += 1
    assert pieces >= len(records) // 7
    assert normal(stored_calls(db)) == normal(one_shot(records))


def test_a_late_record_joins_its_call_from_hours_before_without_the_hours_between_being_read(db, monkeypatch):
    """Records of one call share their callid: the margin is read only where they do."""
    early = [segment(1, 7, NOON, "201", 1, 5, 30)]
    others = [segment(n, 100 + n, NOON + 60 * n, "205", 0, 3, 20) for n in range(2, 40)]
    late = segment(40, 7, NOON + 5400, "202", 0, 4, 40)  # (1 h 30 after: within IP Office's window of 2 h)
    db.write(batch(early + others))
    callstore.refresh(db)
    read = []
    original = callstore._records
    monkeypatch.setattr(callstore, "_records", lambda *a, **k: read.extend(rows := original(*a, **k)) or rows)
    db.write(batch([late]))
    callstore.refresh(db)
    assert sorted(r["seq"] for r in read) == [1, 40]
    assert normal(stored_calls(db)) == normal(one_shot(early + others + [late]))


def test_a_stored_call_holding_records_the_keys_did_not_read_makes_the_whole_margin_read(db):
    """A call stored under other rules (here: by trunk) may hold records of another
    callid: its records must all be read again, or one would lose its call."""
    from gateway.central.calls import assemble as assemble_by
    from gateway.smdr.profile import Assembly

    a, b = segment(1, 7, NOON, "201", 1, 5, 30), segment(2, 8, NOON + 60, "202", 0, 4, 40)
    db.write(batch([a, b]))
    with db.transaction() as cur:
        cur.execute("DELETE FROM calls_pending")
        callstore._insert(db, cur, assemble_by([{**r, "site": "hq"} for r in (a, b)],
                                               Assembly(join=("trunk",), window=7200), "avaya-ipo"))
    assert len(stored_calls(db)) == 1  # (both records, one call, as the other rules made it)
    late = segment(3, 7, NOON + 30, "203", 0, 3, 50)
    db.write(batch([late]))
    callstore.refresh(db)
    assert normal(stored_calls(db)) == normal(one_shot([a, b, late]))
