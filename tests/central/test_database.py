"""The storage, on each engine: a batch stored once whatever arrives twice, sources
counted, holes found, what cannot be stored kept aside (real SQLite, real PostgreSQL)."""

import msgpack
import pytest

from gateway.central import fleet
from gateway.central.database import MIGRATIONS, Database
from gateway.central.ingest import Rows
from gateway.wire.events import CallEvent, GapEvent, StatusEvent, to_wire
from gateway.wire.replay import MAX_HOLE

pytestmark = pytest.mark.central

TOPIC = "pbxgw/v1/lab/gw-1/calls"


def call(seq: int, stream: str = "s1") -> dict:
    return to_wire(CallEvent(gw="gw-1", src="pbx", stream=stream, seq=seq, rx=1_700_000_000_000 + seq,
                             profile="avaya-ipo", start=1_700_000_000, raw=f"record {seq}", x={"n": seq}))


def batch(*events) -> Rows:
    rows = Rows()
    rows.add(TOPIC, msgpack.packb(list(events)), 1_700_000_100_000)
    return rows


@pytest.fixture
def db(database_url):
    database = Database.open(database_url)
    assert database.migrate() == [version for version, *_ in MIGRATIONS]
    yield database
    database.close()


def test_migrations_apply_once_and_say_their_version(db):
    assert db.migrate() == [] and db.schema_version() == MIGRATIONS[-1][0] == 6


@pytest.mark.parametrize("old", [2, 3])
def test_a_database_of_an_old_call_schema_assembles_every_call_again(database_url, monkeypatch, old):
    db = Database.open(database_url)
    try:
        monkeypatch.setattr("gateway.central.database.MIGRATIONS", MIGRATIONS[:old])
        db.migrate()
        db.write(batch(call(1), call(2)))
        with db.transaction() as cur:
            cur.execute("DELETE FROM calls_pending")  # as if assembled by the old rules
        monkeypatch.undo()
        assert db.migrate() == list(range(old + 1, MIGRATIONS[-1][0] + 1))
        assert db.fetch("SELECT gw, src, low, high FROM calls_pending") == [("gw-1", "pbx", 1_700_000_000, 1_700_000_000)]
    finally:
        db.close()


def test_a_batch_delivered_twice_or_mixed_with_new_events_is_stored_once(db):
    first = db.write(batch(*(call(n) for n in range(1, 6))))
    again = db.write(batch(*(call(n) for n in range(1, 6))))
    mixed = db.write(batch(call(4), call(5), call(6), call(6)))
    assert (first.new, again.new, again.duplicates, mixed.new, mixed.duplicates) == (5, 0, 5, 1, 3)
    rows = db.fetch("SELECT seq, raw, x FROM events ORDER BY seq")
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5, 6] and rows[0][1] == "record 1"
    assert db.fetch("SELECT first_seq, high_seq, received FROM sources") == [(1, 6, 6)]


def test_a_copy_the_key_refuses_as_another_collector_stored_the_same_events_meanwhile_stores_the_rest_once(
        postgres_cluster, monkeypatch):
    db = Database.open(postgres_cluster.create_database("race"))
    try:
        db.migrate()
        db.write(batch(call(1), call(2)))
        monkeypatch.setattr(db, "_maybe_stored", lambda cur, table, groups: [])  # as if stored after the look
        written = db.write(batch(call(2), call(3)))
        assert (written.new, written.duplicates) == (1, 1)
        assert db.fetch("SELECT seq FROM events ORDER BY seq") == [(1,), (2,), (3,)]
        assert db.fetch("SELECT first_seq, high_seq, received FROM sources") == [(1, 3, 3)]
    finally:
        db.close()


def test_holes_are_found_whatever_the_order_and_gaps_count_as_lost(db):
    db.write(batch(*(call(n) for n in (10, 11, 15, 12))))
    db.write(batch(*(call(n) for n in (20, 1, 2))))  # a backlog (hist) after live ones
    gaps = Rows()
    gaps.add("pbxgw/v1/lab/gw-1/gaps", msgpack.packb([to_wire(GapEvent(
        gw="gw-1", src="pbx", stream="s1", rx=1, first=16, last=18, count=3, first_rx=None, last_rx=None,
        reason="queue full: drop_oldest"))]), 2)
    db.write(gaps)
    missing, lost = fleet.holes(db, "gw-1", "pbx")
    assert missing == {"s1": [(3, 9), (13, 14), (19, 19)]} and lost == {"s1": [(16, 18)]}
    db.write(batch(*(call(n) for n in range(3, 10))))
    assert fleet.holes(db, "gw-1", "pbx")[0] == {"s1": [(13, 14), (19, 19)]}


def test_a_damaged_queues_gap_counts_as_lost_only_what_is_missing_here(db):
    """Its range runs from what was delivered to what may have been committed: numbers
    stored here, or never used, are not lost."""
    db.write(batch(*(call(n) for n in (1, 2, 3, 6, 9))))
    gaps = Rows()
    gaps.add("pbxgw/v1/lab/gw-1/gaps", msgpack.packb([to_wire(GapEvent(
        gw="gw-1", src="pbx", stream="s1", rx=1, first=2, last=108, count=107, first_rx=None, last_rx=None,
        reason="queue damaged: not readable (some may have been delivered, or never used)"))]), 2)
    db.write(gaps)
    missing, lost = fleet.holes(db, "gw-1", "pbx")
    assert missing == {} and lost == {"s1": [(4, 5), (7, 8)]}


def test_the_first_events_of_a_source_lost_before_any_was_stored_show_as_missing(db):
    # (a broker killed before the collector stored the first of them: a gateway numbers from 1)
    db.write(batch(*(call(n, "first") for n in (4, 5))))
    db.write(batch(call(6, "second"), call(7, "second")))
    assert fleet.holes(db, "gw-1", "pbx")[0] == {"first": [(1, 3)]}


def test_streams_of_one_source_are_kept_apart(db):
    db.write(batch(call(1, "old"), call(2, "old"), call(1, "new")))
    assert db.fetch("SELECT count(*) FROM events")[0][0] == 3
    assert fleet.holes(db, "gw-1", "pbx") == ({}, {})


def test_the_last_events_lost_show_as_missing_by_the_gateways_metrics_and_the_next_stream(db):
    db.write(batch(call(1, "old"), call(2, "old"), call(6, "new"), call(7, "new")))
    assert fleet.holes(db, "gw-1", "pbx")[0] == {"old": [(3, 5)]}  # "new" went on from 6: "old" reached 5
    metrics = Rows()
    metrics.add("pbxgw/v1/lab/gw-1/metrics", msgpack.packb({
        "v": 1, "kind": "metrics", "gw": "gw-1", "rx": 9, "up_s": 1.0, "queue": {}, "broker": {}, "headsets": 0,
        "sources": [{"name": "pbx", "stream": "new", "seq": 10}]}), 10)
    db.write(metrics)
    assert fleet.holes(db, "gw-1", "pbx")[0] == {"old": [(3, 5)], "new": [(8, 10)]}
    assert set(fleet.open_holes(db)) == {("gw-1", "lab", "pbx", "old"), ("gw-1", "lab", "pbx", "new")}


def test_a_look_by_the_counters_finds_holes_without_counting_rows_and_a_recount_finds_rows_deleted(db):
    s1 = ("gw-1", "lab", "pbx", "s1")
    db.write(batch(*(call(n) for n in range(1, 11))))
    with db.transaction() as cur:
        cur.execute("DELETE FROM events WHERE seq = 7")  # by hand: the counters do not know
    assert fleet.open_holes(db, recount=False) == {}
    assert fleet.open_holes(db) == {s1: [(7, 7)]}
    # (a hole open at the last look is looked at again: its staying shows, and its filling)
    assert fleet.open_holes(db, recount=False, open_before={s1}) == {s1: [(7, 7)]}
    db.write(batch(call(7)))
    assert fleet.open_holes(db, recount=False, open_before={s1}) == {}
    db.write(batch(*(call(n, "s2") for n in (1, 2, 5))))  # a hole as the broker leaves one: counted
    assert fleet.open_holes(db, recount=False) == {("gw-1", "lab", "pbx", "s2"): [(3, 4)]}


def test_rejected_messages_are_kept_whole(db):
    rows = Rows()
    rows.add(TOPIC, b"\xc1\xc1", 7)
    assert db.write(rows).rejected == 1
    assert db.fetch("SELECT topic, payload, reason FROM rejected") == [(TOPIC, b"\xc1\xc1", rows.rejected[0][2])]


def test_the_fleet_shows_status_boots_sources_and_alarms(db):
    rows = batch(*(call(n) for n in (1, 2, 4)))
    for boot, rx in ((3, 1_700_000_000_000), (4, 1_700_000_050_000)):
        rows.add("pbxgw/v1/lab/gw-1/status", msgpack.packb(to_wire(StatusEvent(
            gw="gw-1", site="lab", state="online", boot=boot, rx=rx, version="1.2",
            sources=[{"name": "pbx", "profile": "avaya-ipo", "timezone": "Europe/Paris"}]))), rx)
    rows.add("pbxgw/v1/lab/gw-1/alarms", msgpack.packb([{
        "v": 1, "kind": "alarm", "gw": "gw-1", "src": "pbx", "rx": 5, "alarm": "no_data", "state": "raised",
        "last_rx": None, "quiet_s": 60.0, "skew_s": None}]), 6)
    db.write(rows)
    (gateway,) = fleet.fleet(db, 1_700_000_060_000)
    assert (gateway["state"], gateway["boot"], gateway["starts_last_day"], gateway["version"]) == ("online", 4, 2, "1.2")
    (source,) = gateway["sources"]
    assert (source["records"], source["missing"], source["timezone"], source["alarms"]) == (3, 1, "Europe/Paris",
                                                                                           ["no_data"])
    shown = fleet.text([gateway], 1_700_000_060_000)
    assert "gw-1 (site lab): online since" in shown and "missing 1 (3), lost at edge 0" in shown


def test_the_fleet_says_a_stream_missing_more_than_any_gateway_keeps_is_not_asked_for(db):
    db.write(batch(call(1), call(2**53 - 1)))
    (source,) = fleet.fleet(db, 1_700_000_060_000)[0]["sources"]
    assert (source["missing"], source["not_asked"]) == (2**53 - 3, ["s1"])
    assert fleet.open_holes(db) == {("gw-1", "lab", "pbx", "s1"): [(2, 2**53 - 2)]}  # (a range, not pieces)
    shown = fleet.text(fleet.fleet(db, 1_700_000_060_000), 1_700_000_060_000)
    assert f"missing {2**53 - 3} (2-{2**53 - 2}) (stream s1 misses more than {MAX_HOLE}, more than any gateway " \
           "keeps: a forged or damaged seq? not asked for)" in shown


def test_the_fleet_prints_names_from_the_wire_without_their_control_characters(db):
    db.write(batch({**call(1), "src": "\x1b[2J\x1b[Hpbx\nforged: line"}))
    shown = fleet.text(fleet.fleet(db, 1_700_000_060_000), 1_700_000_060_000)
    assert "  \\x1b[2J\\x1b[Hpbx\\nforged: line (pbx): 1 stored" in shown
    assert "\x1b" not in shown and shown.count("\n") == 2


def test_an_alarm_raised_before_the_collector_joined_is_known_from_the_status_and_a_cleared_one_says_when(db):
    rows = batch(call(1))
    rows.add("pbxgw/v1/lab/gw-1/status", msgpack.packb(to_wire(StatusEvent(
        gw="gw-1", site="lab", state="online", boot=1, rx=1_700_000_000_000, version="1.2",
        sources=[{"name": "pbx", "profile": "avaya-ipo", "timezone": "UTC",
                  "alarms": {"clock_skew": 1_699_999_000_000}}]))), 1_700_000_000_000)
    rows.add("pbxgw/v1/lab/gw-1/alarms", msgpack.packb([{
        "v": 1, "kind": "alarm", "gw": "gw-1", "src": "pbx", "rx": rx, "alarm": "no_data", "state": state,
        "last_rx": None, "quiet_s": 60.0, "skew_s": None} for rx, state in ((5, "raised"), (1_699_999_500_000, "cleared"))]),
        6)
    db.write(rows)
    (source,) = fleet.fleet(db, 1_700_000_060_000)[0]["sources"]
    assert source["alarm_states"] == [{"alarm": "clock_skew", "active_since": 1_699_999_000_000},
                                      {"alarm": "no_data", "cleared_at": 1_699_999_500_000}]
    shown = fleet.text(fleet.fleet(db, 1_700_000_060_000), 1_700_000_060_000)
    assert "alarms: clock_skew active since 2023-11-14 21:56:40Z; no_data cleared at 2023-11-14 22:05:00Z" in shown


def test_the_latest_status_is_the_one_that_arrived_last_whatever_the_senders_clock_says(db):
    """A status dated 2100 (a wrong clock, or a forged one) must not hold a gateway
    "offline since 2100" for good: a broker keeps a topic's order, the sender's clock may not."""
    def status(state, rx, arrived):
        rows = Rows()
        rows.add("pbxgw/v1/lab/gw-1/status", msgpack.packb(to_wire(StatusEvent(
            gw="gw-1", site="lab", state=state, boot=1, rx=rx, version="1"))), arrived)
        return rows

    year_2100 = 4_102_444_800_000
    db.write(status("offline", year_2100, 1_000))
    db.write(status("online", 100, 2_000))
    assert db.fetch("SELECT state, since FROM gateways") == [("online", 100)]
    db.write(status("offline", 300, 1_500))  # (arrived before the latest: it was read late)
    assert db.fetch("SELECT state FROM gateways") == [("online",)]
    shown = fleet.text(fleet.fleet(db, 3_000), 3_000)
    assert "gw-1 (site lab): online since 1970-01-01 00:00:00Z" in shown


def test_a_stream_a_gateway_says_began_at_a_seq_has_its_first_events_as_its_own_holes(db):
    """After a gateway's restart (a new stream going on from seq 3) the broker lost the new
    stream's first events: they are asked of the new stream, where they are, not taken for
    the old stream's tail (which would be asked of the old one, and stored as lost)."""
    old, new = "a" * 16, "b" * 16
    db.write(batch(call(1, old), call(2, old), call(6, new), call(7, new)))
    assert fleet.holes(db, "gw-1", "pbx")[0] == {old: [(3, 5)]}  # (nothing says where the new one began)
    status = Rows()
    status.add("pbxgw/v1/lab/gw-1/status", msgpack.packb(to_wire(StatusEvent(
        gw="gw-1", site="lab", state="online", boot=2, rx=9, version="t",
        sources=[{"name": "pbx", "stream": new, "first_seq": 3}, {"name": "pbx", "stream": "not a stream",
                                                                  "first_seq": 1}]))), 10)
    db.write(status)
    assert fleet.holes(db, "gw-1", "pbx")[0] == {new: [(3, 5)]}
    assert set(fleet.open_holes(db)) == {("gw-1", "lab", "pbx", new)}
    assert db.fetch("SELECT count(*) FROM sources")[0][0] == 2  # (the malformed entry is no stream)


def test_rejected_keeps_a_gateways_hourly_allowance_and_counts_the_rest(db):
    """Stolen credentials sending garbage fill no disk: each gateway's refused messages are
    kept up to an allowance an hour, the rest counted; another gateway's are its own."""
    from gateway.central.database import HOUR_MS, REJECTED_PER_HOUR

    hour = 1_700_000_000_000 // HOUR_MS * HOUR_MS
    flood = Rows()
    for n in range(REJECTED_PER_HOUR + 50):
        flood.add(TOPIC, b"\xc1", hour + n)
    flood.add("pbxgw/v1/lab/gw-2/calls", b"\xc1", hour)
    assert db.write(flood).rejected == REJECTED_PER_HOUR + 51
    db.write(batch(b"\xc1"))  # (an event that is no map: refused too, within the same hour)
    counts = dict(((gw, kept), dropped) for gw, kept, dropped in db.fetch(
        "SELECT gw, kept, dropped FROM rejected_counts"))
    assert counts == {("gw-1", REJECTED_PER_HOUR): 51, ("gw-2", 1): 0}
    assert db.fetch("SELECT count(*) FROM rejected")[0][0] == REJECTED_PER_HOUR + 1
    later = Rows()
    later.add(TOPIC, b"\xc1", hour + HOUR_MS)  # the next hour: kept again
    db.write(later)
    assert db.fetch("SELECT count(*) FROM rejected")[0][0] == REJECTED_PER_HOUR + 2
    db.write(batch(call(1)))
    (gateway,) = [g for g in fleet.fleet(db, hour + HOUR_MS) if g["gw"] == "gw-1"]
    assert (gateway["refused_last_day"], gateway["refused_not_kept_last_day"]) == (REJECTED_PER_HOUR + 52, 51)
    assert f"{REJECTED_PER_HOUR + 52} messages refused in the last day (51 past the hourly allowance, counted and " \
           "not kept)" in fleet.text([gateway], hour + HOUR_MS)


def test_rejected_keeps_at_most_its_bytes_an_hour(db):
    from gateway.central.database import REJECTED_BYTES_PER_HOUR
    from gateway.central.ingest import REJECTED_KEEP_BYTES

    big = Rows()
    for n in range(REJECTED_BYTES_PER_HOUR // REJECTED_KEEP_BYTES + 5):
        big.add(TOPIC, b"\xc1" * REJECTED_KEEP_BYTES, 1_700_000_000_000 + n)
    db.write(big)
    (kept, size, dropped), = db.fetch("SELECT kept, kept_bytes, dropped FROM rejected_counts")
    assert size <= REJECTED_BYTES_PER_HOUR and kept == REJECTED_BYTES_PER_HOUR // REJECTED_KEEP_BYTES and dropped == 5
