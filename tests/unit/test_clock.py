"""A clock that is not yet true (a box without a real-time clock boots at 1970): no year is
taken from it, what is received meanwhile is marked, and it is said so."""

import asyncio
import subprocess
import time
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import msgpack

from gateway.edge import clock, status
from gateway.edge.clock import Clock
from gateway.edge.config import HeadsetSettings, SourceSettings
from gateway.edge.headsets.discovery import HeadsetInfo
from gateway.edge.headsets.service import Headsets
from gateway.edge.queue.store import Store
from gateway.edge.sources import Ingest
from gateway.smdr import profiles
from gateway.smdr.stream import StreamParser
from gateway.wire.events import HeadsetEvent, to_wire

BOOT_MS = 86_400_000  # 1970-01-02, as a Raspberry Pi boots before NTP sets its clock
PANASONIC = b"01/15/26  9:02AM 101   05 0312345678                     00:02'17\r\n"  # a 2-digit year
NEC = b"POT  10:52 12/09 002  00:00:10 2001       2142623801           08754\r\n"  # no year at all


def start_of(profile: str, record: bytes, rx: int, synchronized: bool):
    stream = StreamParser(profiles.find(profile), ZoneInfo("UTC"), "gw", "pbx")
    stream.parser.synchronized = synchronized
    (event,) = stream.feed(record, rx) + stream.feed(b"", rx)  # (NEC's record waits for a NEXT line)
    assert event.KIND == "call", event
    return datetime.fromtimestamp(event.start, timezone.utc), to_wire(event)


def test_a_clock_before_this_release_is_not_synchronized(monkeypatch):
    monkeypatch.setattr(time, "time", lambda: BOOT_MS / 1000)
    assert clock.synchronized() is False


def test_the_kernel_is_asked_without_a_process_being_started(monkeypatch):
    """Before: each look (every STATUS_INTERVAL_S) ran ``ldconfig -p`` to find libc."""
    def no_process(*args, **kwargs):
        raise AssertionError(f"a process was started: {args}")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    clock._adjtimex.cache_clear()
    assert isinstance(clock.synchronized(), bool)


def test_no_year_is_taken_from_a_clock_at_1970():
    """Before: the 2026 Panasonic call was dated 1926 and the NEC one 1969."""
    panasonic, wire = start_of("panasonic-kx-tda", PANASONIC, BOOT_MS, synchronized=False)
    assert panasonic.date().isoformat() == "2026-01-15" and wire["unsynced"] is True
    nec, wire = start_of("nec-sl", NEC, BOOT_MS, synchronized=False)
    assert nec.date().isoformat() == "2026-12-09" and wire["unsynced"] is True
    # A synchronized clock places them from the receive date, and marks nothing.
    nec, wire = start_of("nec-sl", NEC, int(datetime(2027, 1, 3, tzinfo=timezone.utc).timestamp() * 1000), True)
    assert nec.date().isoformat() == "2026-12-09" and "unsynced" not in wire


def test_a_plausible_clock_not_yet_synchronized_is_used_and_marked():
    """A box with a battery clock and no NTP: its date is the best there is, said so."""
    rx = int(datetime(2028, 1, 3, tzinfo=timezone.utc).timestamp() * 1000)
    nec, wire = start_of("nec-sl", NEC, rx, synchronized=False)
    assert nec.date().isoformat() == "2027-12-09" and wire["unsynced"] is True and wire["rx"] == rx


def test_events_received_before_the_clock_is_synchronized_are_queued_marked(tmp_path):
    """The daemon's clock is injected: events committed while it is not synchronized carry
    ``unsynced``, and those after it is do not (nor does anything else change)."""
    synchronized = False
    the_clock = Clock(lambda: synchronized)
    settings = SourceSettings(name="nec", type="serial", profile=profiles.find("nec-sl"),
                              timezone=ZoneInfo("UTC"), device="/dev/null")
    store = Store(tmp_path, 10**6, "drop_oldest")
    ingest = Ingest(settings, store, "gw", lambda: None, the_clock)

    async def receive():  # (NEC's records wait for a NEXT line; release() is the quiet link's)
        nonlocal synchronized
        assert ingest.data(NEC) and ingest.release()
        synchronized = True
        assert the_clock.check() is True and the_clock.check() is False
        assert ingest.data(NEC) and ingest.release()

    asyncio.run(receive())
    maps = [msgpack.unpackb(row.payload) for row in store.peek(0, None, 10)]
    assert [(m["seq"], m.get("unsynced")) for m in maps] == [(1, True), (2, None)]
    assert {k: v for k, v in maps[0].items() if k not in ("seq", "rx", "unsynced")} == \
        {k: v for k, v in maps[1].items() if k not in ("seq", "rx")}


def test_headset_events_are_marked_too(tmp_path):
    store = Store(tmp_path, 10**6, "drop_oldest")
    headsets = Headsets(HeadsetSettings(enabled=True, discover=False), store, "gw", lambda: None,
                        Clock(lambda: False))
    headsets._queue(HeadsetInfo("/dev/hidraw0", 0x047F, 0xC056, "Blackwire", "SN1"), [("off_hook", None)])
    (row,) = store.peek(0, None, 10)
    assert msgpack.unpackb(row.payload)["unsynced"] is True
    assert "unsynced" not in to_wire(HeadsetEvent(gw="g", src="s", stream="q", seq=1, ts=1, vid=1, pid=1, ev="connected"))


def test_status_says_so_while_it_is_not():
    state = {"gateway": {"id": "gw", "site": "s", "version": "0", "engine": "python", "boot": 1, "up_s": 5,
                         "restart_needed": [], "clock_synchronized": False},
             "sources": [], "alarms": [], "headsets": [],
             "queue": {"depth": 0, "bytes": 0, "oldest_age_s": None, "dropped": 0, "dead": 0,
                       "max_bytes": 2**20, "max_bytes_configured": 2**20},
             "archive": {"events": 0, "bytes": 0, "max_bytes": None, "first_rx_ms": None, "last_rx_ms": None},
             "broker": {"url": "mqtt://b:1883", "connected_since": None, "last_ack_ms": None, "in_flight": 0,
                        "delivered": 0}}
    lines = status.text(state, now=1_800_000_000)
    assert lines[1].startswith("clock not synchronized (see timedatectl)")
    state["gateway"]["clock_synchronized"] = True
    assert not any("clock" in line for line in status.text(state, now=1_800_000_000))


def test_status_says_how_many_calls_look_wrong_per_source():
    source = {"name": "kx", "type": "serial", "where": "/dev/ttyS0", "profile": "panasonic-kx-tda",
              "timezone": "UTC", "state": "reading", "error": "", "records": 12, "unparsed": 0,
              "implausible": {"ext": 12}, "last_record_ms": None}
    state = {"gateway": {"id": "gw", "site": "s", "version": "0", "engine": "python", "boot": 1, "up_s": 5,
                         "restart_needed": [], "clock_synchronized": True},
             "sources": [source], "alarms": [], "headsets": [],
             "queue": {"depth": 0, "bytes": 0, "oldest_age_s": None, "dropped": 0, "dead": 0,
                       "max_bytes": 2**20, "max_bytes_configured": 2**20},
             "archive": {"events": 0, "bytes": 0, "max_bytes": None, "first_rx_ms": None, "last_rx_ms": None},
             "broker": {"url": "mqtt://b:1883", "connected_since": None, "last_ack_ms": None, "in_flight": 0,
                        "delivered": 0}}
    (line,) = [line for line in status.text(state, now=1_800_000_000) if line.startswith("source kx")]
    assert line.endswith("; calls that look wrong: ext 12")
    source["implausible"] = {}
    (line,) = [line for line in status.text(state, now=1_800_000_000) if line.startswith("source kx")]
    assert "look wrong" not in line
