"""A clock that is not yet true (a box without a real-time clock boots at 1970) is said so."""

import time

from gateway import clock, status


def test_a_clock_before_this_release_is_not_synchronized(monkeypatch):
    monkeypatch.setattr(time, "time", lambda: 86_400.0)  # 1970-01-02, as a Raspberry Pi boots
    assert clock.synchronized() is False


def test_status_says_so_while_it_is_not():
    state = {"gateway": {"id": "gw", "site": "s", "version": "0", "engine": "python", "boot": 1, "up_s": 5,
                         "restart_needed": [], "clock_synchronized": False},
             "sources": [], "alarms": [], "headsets": [],
             "queue": {"depth": 0, "bytes": 0, "oldest_age_s": None, "dropped": 0, "dead": 0},
             "broker": {"url": "mqtt://b:1883", "connected_since": None, "last_ack_ms": None, "in_flight": 0,
                        "delivered": 0}}
    lines = status.text(state, now=1_800_000_000)
    assert lines[1].startswith("clock not synchronized (see timedatectl)")
    state["gateway"]["clock_synchronized"] = True
    assert not any("clock" in line for line in status.text(state, now=1_800_000_000))
