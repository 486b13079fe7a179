"""Personal data kept only as long as [privacy] says: numbers masked or hashed, the record
text emptied, what is due and nothing else (both engines), by the collector at its start;
a report that masks numbers for readers who need none."""

import csv

import msgpack
import pytest

from gateway.central import callstore, retention
from gateway.central.database import Database
from gateway.central.ingest import Rows
from gateway.central.privacy import PrivacySettings
from gateway.wire.events import StatusEvent, to_wire
from central_parts import segment
from helpers import pbxgw
from plugins.processes import wait_until

pytestmark = pytest.mark.central

DAY_MS = 86_400_000
NOW_MS = 1_773_921_600_000  # (2026-03-19 12:00 UTC, a Thursday)
MASK = PrivacySettings(numbers_after=30 * 86400, keep_digits=4, raw_after=60 * 86400)


def test_a_number_is_masked_to_its_last_digits_or_hashed_with_a_key_and_never_twice():
    assert MASK.hidden("0312345678") == "•5678" and MASK.hidden("•5678") == "•5678"
    assert MASK.hidden(None) is None and MASK.hidden("") == "" and MASK.hidden("201") == "•201"
    keyed = PrivacySettings(numbers="hash", hash_key=b"k" * 16)
    other = PrivacySettings(numbers="hash", hash_key=b"j" * 16)
    assert keyed.hidden("0312345678") == keyed.hidden("0312345678") != other.hidden("0312345678")
    assert keyed.hidden("0312345678").startswith("h:") and keyed.hidden(keyed.hidden("0312345678")) == \
        keyed.hidden("0312345678")
    assert MASK.described() == ("callers' and called numbers kept whole for 30 days, then masked to their last 4 "
                                "digits; the record text emptied after 60 days")


def store(db: Database, ages_days: list[int]) -> None:
    """One answered call a record, each received ``age`` days before NOW, assembled."""
    rows = Rows()
    records = []
    for n, age in enumerate(ages_days, 1):
        start = (NOW_MS - age * DAY_MS) // 1000
        records.append({**segment(n, n, start, "201", 0, 5, 60), "rx": NOW_MS - age * DAY_MS,
                        "caller": f"09120000{n:02}", "called": "0223456789",
                        "raw": f"{start},00:01:00,5,09120000{n:02},I,0223456789,0223456789,,,0,{n},0,E201,"})
    rows.add("pbxgw/v1/hq/gw-1/calls", msgpack.packb(records), NOW_MS)
    db.write(rows)
    callstore.refresh(db)


def test_what_is_due_is_masked_in_records_their_text_and_their_calls_and_nothing_else(database_url):
    db = Database.open(database_url)
    db.migrate()
    try:
        store(db, [90, 45, 10])
        assert retention.apply(db, MASK, NOW_MS) == (2, 2, 1)
        events = db.fetch("SELECT seq, caller, called, raw FROM events ORDER BY seq")
        assert [(seq, caller, called) for seq, caller, called, _ in events] == [
            (1, "•0001", "•6789"), (2, "•0002", "•6789"), (3, "0912000003", "0223456789")]
        assert events[0][3] == ""  # (90 days: the text emptied)
        assert "0912000002" not in events[1][3] and "•0002" in events[1][3] and "•6789" in events[1][3]
        assert "0912000003" in events[2][3]  # (10 days: not due)
        calls = db.fetch("SELECT caller, called FROM calls ORDER BY start")
        assert calls == [("•0001", "•6789"), ("•0002", "•6789"), ("0912000003", "0223456789")]
        assert retention.apply(db, MASK, NOW_MS) == (0, 0, 0)  # (nothing is masked twice)
    finally:
        db.close()


def test_the_collector_applies_the_schedule_at_its_start(tmp_path, broker, start_collector, database_url):
    db = Database.open(database_url)
    db.migrate()
    store(db, [400, 1])  # (the first a year old and more, whatever the date the test runs on)
    db.close()
    collector = start_collector(broker.url, database_url, privacy={"numbers_after": "300d", "raw_after": "300d"})
    wait_until(lambda: "privacy: numbers masked in 1 records and 1 calls; the text of 1 records emptied"
               in collector.log_text(), what="the schedule applied at the start")
    db = Database.open(database_url)
    try:
        assert db.fetch("SELECT caller FROM events ORDER BY seq") == [("•0001",), ("0912000002",)]
    finally:
        db.close()


def test_a_report_for_readers_who_need_no_numbers_masks_them_and_says_so(tmp_path, database_url):
    db = Database.open(database_url)
    db.migrate()
    rows = Rows()
    rows.add("pbxgw/v1/hq/gw-1/status", msgpack.packb(to_wire(StatusEvent(
        gw="gw-1", site="hq", state="online", boot=1, rx=1, version="t",
        sources=[{"name": "pbx", "profile": "avaya-ipo", "timezone": "UTC"}]))), 1)
    db.write(rows)
    store(db, [3])
    db.close()
    config = tmp_path / "collector.toml"
    config.write_text(f'[collector]\ndatabase = "{database_url}"\n[mqtt]\nurl = "mqtt://127.0.0.1:1"\n'
                      '[privacy]\nnumbers_after = "30d"\n')
    made = pbxgw("report", "--config", str(config), "--from", "2026-03-16", "--out", str(tmp_path / "out"),
                 "--mask-numbers", "--calls", timeout=120)
    assert made.returncode == 0, made.stderr
    (call,) = list(csv.DictReader((tmp_path / "out" / "calls.csv").open(newline="")))
    assert (call["caller"], call["called"]) == ("•0001", "•6789")
    numbers = list(csv.DictReader((tmp_path / "out" / "numbers.csv").open(newline="")))
    assert [n["called"] for n in numbers] == ["•6789"]
    page = (tmp_path / "out" / "report.html").read_text()
    assert "0912000001" not in page and "0223456789" not in page
    assert ("callers&#x27; and called numbers kept whole for 30 days, then masked to their last 4 digits; the record "
            "text kept; this report shows numbers masked to their last 4 digits") in page
