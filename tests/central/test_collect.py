"""The collector end to end: a real gateway, a real Mosquitto, a real database of each
engine, and the faults the collector must live through without losing or doubling an event."""

import json
import os
import signal
from pathlib import Path

import msgpack
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from central_parts import Stored, capture_of, file_source
from helpers import pbxgw
from plugins.processes import TIMEOUT, Postgres, wait_until

pytestmark = pytest.mark.central


def children(pid: int) -> dict[int, str]:
    """The processes ``pid`` started, with their command lines."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                found[int(child)] = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except FileNotFoundError:
                pass
    return found


def reader_of(collector) -> int:
    """The collector's process that reads messages into rows."""
    (pid,) = [pid for pid, cmdline in children(collector.proc.pid).items() if "gateway.central.reader" in cmdline]
    return pid


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")  # (a zombie: ended)
    except FileNotFoundError:
        return True


def test_a_gateways_calls_are_stored_once_with_its_status_and_the_fleet_shows_them(
        tmp_path, broker, start_gateway, start_collector, database_url, stored):
    collector = start_collector(broker.url, database_url)
    start_gateway(broker.url, [file_source(capture_of(tmp_path / "smdr.log", 1, 500))])
    wait_until(lambda: stored.count() >= 500, what="500 calls stored")
    assert stored.callids() == list(range(1, 501))
    wait_until(lambda: stored.count("gateways") and stored.db.fetch("SELECT state FROM gateways")[0][0] == "online",
               what="the gateway's status")
    (sources,) = stored.db.fetch("SELECT sources FROM gateways")[0]
    ((stream,),) = stored.db.fetch("SELECT DISTINCT stream FROM events")
    from gateway.smdr import profiles
    assert (json.loads(sources) if isinstance(sources, str) else sources) == [
        {"name": "ipo", "profile": "avaya-ipo", "timezone": "Europe/Paris", "extends": None,
         "assembly": profiles.find("avaya-ipo").assembly_table,
         "assembly_digest": profiles.find("avaya-ipo").assembly.digest, "alarms": {},
         "stream": stream, "first_seq": 1}]  # (a new queue: its stream began with this run)
    shown = pbxgw("fleet", "--config", str(collector.config))
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout.decode()
    assert "gw-test (site lab): online since" in text and "ipo (pbx): 500 stored" in text and "missing 0" in text
    # Each record is a call of its own (a distinct call id, continuation 0): assembled meanwhile.
    wait_until(lambda: stored.count("calls") == 500, what="500 calls assembled")
    rules = f"avaya-ipo/1/{profiles.find('avaya-ipo').assembly.digest}"
    assert stored.db.fetch("SELECT count(*), min(rules), max(rules) FROM calls WHERE complete") == [(500, rules, rules)]
    # ... and summarised after: the quarter-hours' parts hold every call.
    from gateway.central import summary

    def summarised() -> int:
        if stored.count("summaries_due"):
            return 0
        return sum(summary.decode(bytes(part), slot).all.calls
                   for slot, part in stored.db.fetch("SELECT slot, part FROM summaries"))
    wait_until(lambda: summarised() == 500, what="the 500 calls summarised")
    as_json = json.loads(pbxgw("fleet", "--json", "--config", str(collector.config)).stdout)
    assert as_json[0]["sources"][0]["records"] == 500
    assert collector.kill(signal.SIGTERM) == 0  # a clean stop
    assert "stopped: 500 events stored" in collector.log_text()


def test_kill_9_while_a_backlog_drains_stores_every_event_exactly_once(
        tmp_path, broker, start_gateway, start_collector, database_url, stored):
    count = 100_000
    collector = start_collector(broker.url, database_url)
    assert collector.kill(signal.SIGTERM) == 0  # the session stays at the broker, and queues
    start_gateway(broker.url, [file_source(capture_of(tmp_path / "smdr.log", 1, count))])
    subscribed = collector.log_text().count("subscribed to")
    for fraction in (0.2, 0.5):
        collector.start()
        wait_until(lambda: stored.count() >= count * fraction, what=f"{fraction:.0%} of the backlog stored")
        left = children(collector.proc.pid)
        collector.kill(signal.SIGKILL)
        wait_until(lambda: all(map(gone, left)), what="the collector's other processes to end with it")
    collector.start()
    wait_until(lambda: collector.log_text().count("subscribed to") > subscribed, what="the collector back")
    wait_until(lambda: stored.count() >= count, timeout=4 * TIMEOUT, what="the whole backlog stored")
    assert stored.callids() == list(range(1, count + 1))
    assert stored.db.fetch("SELECT sum(received), min(first_seq), max(high_seq) FROM sources") == [(count, 1, count)]


def test_the_process_that_reads_messages_killed_is_started_again_and_nothing_is_lost(
        tmp_path, broker, start_gateway, start_collector, database_url, stored):
    count = 20_000
    collector = start_collector(broker.url, database_url)
    assert collector.kill(signal.SIGTERM) == 0
    start_gateway(broker.url, [file_source(capture_of(tmp_path / "smdr.log", 1, count))])
    collector.start()
    wait_until(lambda: stored.count() > 0, what="the backlog draining")
    os.kill(reader_of(collector), signal.SIGKILL)
    wait_until(lambda: stored.count() >= count, timeout=2 * TIMEOUT, what="the whole backlog stored")
    assert stored.callids() == list(range(1, count + 1))
    assert "the process reading messages into rows ended (killed by SIGKILL); starting another" in collector.log_text()


def test_what_is_not_a_gateways_batch_is_kept_in_rejected_acknowledged_and_the_rest_stored(
        broker, start_collector, database_url, stored):
    start_collector(broker.url, database_url)
    good = {"v": 1, "kind": "call", "gw": "gw-x", "src": "pbx", "stream": "s", "seq": 1, "rx": 1, "profile": "p",
            "start": 1, "ring": None, "dur": None, "dir": None, "ext": None, "trunk": None, "caller": None,
            "called": None, "acct": None, "disp": None, "callid": None, "raw": "r"}
    topic = "pbxgw/v1/lab/gw-x/calls"
    messages = [b"\xc1 not msgpack", msgpack.packb(good), msgpack.packb([{**good, "seq": 2, "v": 9}]),
                msgpack.packb([{k: v for k, v in good.items() if k != "raw"} | {"seq": 3}]),
                msgpack.packb([good, {**good, "seq": 4}])]
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="garbage", protocol=MQTTProtocolVersion.MQTTv5)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        for payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(TIMEOUT)
    finally:
        client.disconnect()
        client.loop_stop()
    wait_until(lambda: stored.count() >= 2 and stored.count("rejected") >= 4, what="the good stored, the bad kept")
    reasons = sorted(r for (r,) in stored.db.fetch("SELECT reason FROM rejected"))
    assert len(reasons) == 4 and any("not msgpack" in r for r in reasons) and any("schema version 9" in r for r in reasons)
    assert any("expected an array of events" in r for r in reasons) and any(r == "event 1: no 'raw'" for r in reasons)
    assert sorted(s for (s,) in stored.db.fetch("SELECT seq FROM events")) == [1, 4]


@pytest.mark.parametrize("registered", [None, {"gw-test": "lab"}])
def test_a_gateways_messages_under_another_site_are_refused_and_its_site_stays(
        tmp_path, broker, start_gateway, start_collector, database_url, stored, registered):
    """Credentials that may publish under any site (an ACL with '+' for the site, or none)
    must not move a gateway, nor put its calls in another site's figures."""
    collector = start_collector(broker.url, database_url, gateways=registered)
    start_gateway(broker.url, [file_source(capture_of(tmp_path / "smdr.log", 1, 20))])
    wait_until(lambda: stored.count() >= 20, what="the gateway's own 20")
    stream = stored.db.fetch("SELECT DISTINCT stream FROM events")[0][0]
    call = stored.db.fetch("SELECT raw FROM events WHERE seq = 1")[0][0]
    forged = {"v": 1, "kind": "call", "gw": "gw-test", "src": "ipo", "stream": stream, "seq": 21, "rx": 1,
              "profile": "avaya-ipo", "start": 1, "ring": None, "dur": 5, "dir": "in", "ext": "201", "trunk": None,
              "caller": None, "called": None, "acct": None, "disp": None, "callid": None, "raw": call}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="elsewhere", protocol=MQTTProtocolVersion.MQTTv5)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        for n in range(3):
            client.publish("pbxgw/v1/siteB/gw-test/calls", msgpack.packb([{**forged, "seq": 21 + n}]),
                           qos=1).wait_for_publish(TIMEOUT)
    finally:
        client.disconnect()
        client.loop_stop()
    wait_until(lambda: stored.count("rejected") >= 3, what="the three refused")
    how = "where it was first heard" if registered is None else "collector.toml [gateways]"
    reasons = {r for (r,) in stored.db.fetch("SELECT reason FROM rejected")}
    assert reasons == {f"gateway gw-test belongs to site lab ({how}), not siteB: stolen credentials, or a "
                       "gateway moved (say so in [gateways])"}
    assert stored.db.fetch("SELECT DISTINCT site FROM events") == [("lab",)] and stored.count() == 20
    assert stored.db.fetch("SELECT site FROM gateways") == [("lab",)]
    assert collector.log_text().count("belongs to site lab") == 1  # (said once a site)
    shown = pbxgw("fleet", "--config", str(collector.config))
    assert "  ALARM: 3 messages of gw-test under another site in the last day" in shown.stdout.decode()


def test_a_retained_poison_status_is_refused_once_and_what_comes_after_it_is_stored(
        broker, start_collector, database_url, stored):
    """A status nested a thousand deep, retained so that every collector starts on it, once
    killed the reader process over and over and stopped the centre."""
    deep: object = "x"
    for _ in range(1_020):
        deep = [deep]
    status = {"v": 1, "kind": "status", "gw": "gw-x", "site": "lab", "state": "online", "boot": 1, "rx": 1,
              "version": "1", "sources": deep}
    canary = {"v": 1, "kind": "call", "gw": "gw-x", "src": "pbx", "stream": "s", "seq": 1, "rx": 1, "profile": "p",
              "start": 1, "ring": None, "dur": None, "dir": None, "ext": None, "trunk": None, "caller": None,
              "called": None, "acct": None, "disp": None, "callid": None, "raw": "canary"}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="poison", protocol=MQTTProtocolVersion.MQTTv5)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        client.publish("pbxgw/v1/lab/gw-x/status", msgpack.packb(status), qos=1, retain=True).wait_for_publish(TIMEOUT)
        collector = start_collector(broker.url, database_url)
        client.publish("pbxgw/v1/lab/gw-x/calls", msgpack.packb([canary]), qos=1).wait_for_publish(TIMEOUT)
    finally:
        client.disconnect()
        client.loop_stop()
    wait_until(lambda: stored.count() >= 1, what="the canary stored after the poison")
    assert stored.db.fetch("SELECT reason FROM rejected") == [("'sources': arrays and maps nested more than 32 deep",)]
    assert "starting another" not in collector.log_text()  # (the reader never died)


def test_a_broker_restart_and_a_batch_delivered_again_lose_and_double_nothing(
        tmp_path, broker, start_gateway, start_collector, database_url, stored):
    capture = capture_of(tmp_path / "smdr.log", 1, 300)
    start_collector(broker.url, database_url)
    gw = start_gateway(broker.url, [file_source(capture, follow=True)])
    wait_until(lambda: stored.count() >= 300, what="the first 300")
    broker.stop()
    capture_of(capture, 301, 600)  # read and queued at the gateway while the broker is away
    broker.start()
    wait_until(lambda: stored.count() >= 600, what="all 600 after the broker's restart")
    gw.kill(signal.SIGTERM)
    gw.start()  # what the gateway had not seen confirmed comes again: duplicates, absorbed
    capture_of(capture, 601, 700)
    wait_until(lambda: stored.count() >= 700, what="all 700")
    assert stored.callids() == list(range(1, 701))


def test_postgresql_stopped_while_events_flow_loses_nothing(tmp_path, broker, start_gateway, start_collector):
    cluster = Postgres()
    cluster.start()
    try:
        url = cluster.create_database("central")
        stored = Stored(url)
        collector = start_collector(broker.url, url)
        capture = capture_of(tmp_path / "smdr.log", 1, 200)
        start_gateway(broker.url, [file_source(capture, follow=True)])
        wait_until(lambda: stored.count() >= 200, what="the first 200")
        stored.close()
        cluster.stop()
        capture_of(capture, 201, 1200)
        wait_until(lambda: "database unavailable" in collector.log_text(), what="the collector to see it gone")
        cluster.start()
        stored = Stored(url)
        wait_until(lambda: stored.count() >= 1200, what="all 1200 once PostgreSQL is back")
        assert stored.callids() == list(range(1, 1201))
        assert "the database is back" in collector.log_text()
        stored.close()
    finally:
        cluster.close()


def test_two_collectors_with_disjoint_sites_share_one_postgresql_and_a_third_overlapping_doubles_nothing(
        tmp_path, broker, start_gateway, start_collector, postgres_cluster):
    url = postgres_cluster.create_database("shared")
    stored = Stored(url)
    start_collector(broker.url, url, name="north", sites=["north"])
    start_collector(broker.url, url, name="south", sites=["south"])
    start_collector(broker.url, url, name="both", sites=["north", "south"])
    for site, first in (("north", 1), ("south", 1001)):
        start_gateway(broker.url, [file_source(capture_of(tmp_path / f"{site}.log", first, first + 299))],
                      workdir=tmp_path / f"gw-{site}", gateway={"id": f"gw-{site}", "site": site})
    wait_until(lambda: stored.count() >= 600, what="both sites' calls")
    assert stored.callids() == list(range(1, 301)) + list(range(1001, 1301))
    assert sorted(stored.db.fetch("SELECT gw, site, received FROM sources")) == [("gw-north", "north", 300),
                                                                                 ("gw-south", "south", 300)]
    stored.close()


def test_ready_watchdog_and_stopping_reach_systemd_and_sigterm_commits_what_was_received(
        tmp_path, broker, start_gateway, notify, database_url, stored):
    from plugins.processes import CollectorProcess

    collector = CollectorProcess(tmp_path / "collector", broker.url, database_url)
    collector.start(env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "600000"})
    assert any(line.startswith("STATUS=storing into") for line in notify.wait_for("READY=1"))
    notify.wait_for("WATCHDOG=1", timeout=2)
    start_gateway(broker.url, [file_source(capture_of(tmp_path / "smdr.log", 1, 2000))])
    wait_until(lambda: stored.count() >= 1, what="events flowing")
    for pid in [collector.proc.pid, *children(collector.proc.pid)]:  # as systemd stops a unit: each process
        os.kill(pid, signal.SIGTERM)
    notify.wait_for("STOPPING=1")
    assert collector.proc.wait(TIMEOUT) == 0
    stopped = stored.count()
    assert f"stopped: {stopped} events stored" in collector.log_text()  # all it took in, committed
    assert "not stored" not in collector.log_text() and "starting another" not in collector.log_text()


def test_a_second_collector_with_the_same_client_id_is_named_and_backs_off(tmp_path, broker, processes):
    from plugins.processes import CollectorProcess

    database = f"sqlite:///{tmp_path / 'central.db'}"
    first = CollectorProcess(tmp_path / "first", broker.url, database)
    second = CollectorProcess(tmp_path / "second", broker.url, database)
    second.config.write_text(first.config.read_text())  # the same [mqtt] client_id
    for collector in (first, second):
        processes.append(collector)
        collector.start()
    told = "another client with client id"
    wait_until(lambda: told in first.log_text() + second.log_text(), what="the take-over named")
    assert "a second collector with the same [mqtt] client_id?" in first.log_text() + second.log_text()
    for collector in (first, second):
        assert collector.kill(signal.SIGTERM) == 0 and "Traceback" not in collector.log_text()
