"""``pbxgw reparse`` on each engine: unread records stored with the wrong profile become
calls in place, the rows as they were are kept, what still does not read says why, and
what a user gets wrong is one line."""

from zoneinfo import ZoneInfo

import msgpack
import pytest

from gateway.central import reparse
from gateway.central.database import Database
from gateway.central.ingest import Rows
from gateway.smdr import profiles
from gateway.wire.events import StatusEvent, UnparsedEvent, to_wire
from helpers import pbxgw

pytestmark = pytest.mark.central

IPO = ["2026/11/23 09:00:00,00:01:40,5,0312345678,I,7001,7001,,0,1000001,0,E2001,Anna,T9001,Line 1,0,0",
       "2026/11/23 09:10:00,00:00:00,12,0312345679,I,7001,7001,,0,1000002,0,E2002,Ben,T9001,Line 1,0,0",
       "not a record at all"]


@pytest.fixture
def db(database_url, tmp_path):
    database = Database.open(database_url)
    database.migrate()
    rows = Rows()
    rows.add("pbxgw/v1/hq/gw-1/status", msgpack.packb(to_wire(StatusEvent(
        gw="gw-1", site="hq", state="online", boot=1, rx=1, version="t",
        sources=[{"name": "pbx", "profile": "asterisk-csv", "timezone": "Europe/Paris"}]))), 1)
    rows.add("pbxgw/v1/hq/gw-1/unparsed", msgpack.packb([to_wire(UnparsedEvent(
        gw="gw-1", src="pbx", stream="s1", seq=n, rx=1_795_000_000_000 + n, profile="asterisk-csv", raw=raw,
        reason="too few fields")) for n, raw in enumerate(IPO, 1)]), 2)
    database.write(rows)
    yield database
    database.close()


def test_unread_records_become_calls_in_place_and_are_assembled(db):
    done = reparse.reparse(db, "gw-1", "pbx", profiles.find("avaya-ipo"), ZoneInfo("Europe/Paris"), None, False, 7)
    assert (done.read, done.now_calls, done.still_unread) == (3, 2, 1) and list(done.reasons.values()) == [1]
    rows = db.fetch("SELECT seq, kind, profile, start, dur, ext FROM events ORDER BY seq")
    assert [r[:3] for r in rows] == [(1, "call", "avaya-ipo"), (2, "call", "avaya-ipo"), (3, "unparsed", "asterisk-csv")]
    assert rows[0][3:] == (1_795_420_800, 100, "2001")  # 09:00 in Paris is 08:00 UTC
    assert db.fetch("SELECT seq, at, profile FROM reparsed ORDER BY seq") == [(1, 7, "avaya-ipo"), (2, 7, "avaya-ipo")]
    assert sorted(o for (o,) in db.fetch("SELECT outcome FROM calls")) == ["abandoned", "answered"]
    again = reparse.reparse(db, "gw-1", "pbx", profiles.find("avaya-ipo"), ZoneInfo("Europe/Paris"), None, True, 8)
    assert (again.read, again.now_calls, again.changed_calls) == (3, 0, 0)  # the same profile again: nothing changes


def test_what_a_user_gets_wrong_is_one_line(db, database_url, tmp_path):
    config = tmp_path / "collector.toml"
    config.write_text(f'[collector]\ndatabase = "{database_url}"\n[mqtt]\nurl = "mqtt://127.0.0.1:1"\n')
    for args, says in ((["--src", "nope"], "no record of source 'nope' of site 'hq' is stored"),
                       (["--src", "pbx", "--profile", "no-such"], "no such profile"),
                       (["--src", "pbx", "--since", "yesterday"], "expected a date or time")):
        run = pbxgw("reparse", "--config", str(config), "--site", "hq", *args)
        assert run.returncode != 0 and says in run.stderr.decode() and b"Traceback" not in run.stderr, run.stderr
