"""Nothing lost end to end: what the broker or the database lost, the collector finds
missing and its gateway publishes again from its archive; what the gateway no longer has
is said and stored as lost at the edge. Real gateway, real Mosquitto, both engines."""

import re
import signal

import msgpack
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from gateway.central import fleet
from gateway.central.broker_acl import MOSQUITTO_CONF
from gateway.central.ingest import NOT_KEPT
from gateway.wire.replay import MAX_RANGE
from plugins.processes import TIMEOUT, Broker, wait_until
from tools.parts import subscriber
from central_parts import Stored, capture_of, file_source
from helpers import pbxgw

pytestmark = pytest.mark.central


class Client:
    """A plain MQTT client beside the parts: counts the calls the broker passes on, and
    keeps the gateway's replies."""

    def __init__(self, url: str):
        self.calls, self.replies = 0, []
        self._client = subscriber(url, ["pbxgw/v1/+/+/calls", "pbxgw/v1/+/+/replies"], self._on_message)

    def _on_message(self, client, userdata, message) -> None:
        if message.topic.endswith("/replies"):
            self.replies.append(msgpack.unpackb(message.payload))
        else:
            self.calls += len(msgpack.unpackb(message.payload))

    def ask(self, payload: bytes) -> None:
        self._client.publish("pbxgw/v1/lab/gw-test/cmd/replay", payload, qos=1).wait_for_publish(TIMEOUT)

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def test_a_broker_killed_with_persistence_off_loses_nothing_the_collector_gets_it_replayed(
        tmp_path, start_gateway, start_collector, database_url, stored):
    broker = Broker(tmp_path / "broker", persistence=False)
    broker.start()
    try:
        capture = capture_of(tmp_path / "smdr.log", 1, 200)
        collector = start_collector(broker.url, database_url, hole_grace="1s")
        # (metrics each second: they tell the collector each source's latest seq)
        gateway = start_gateway(broker.url, [file_source(capture, follow=True)], gateway={"metrics_interval": "1s"})
        wait_until(lambda: stored.count() >= 200, what="the first 200")
        assert collector.kill(signal.SIGTERM) == 0  # away: the broker queues for its session, in memory only
        watcher = Client(broker.url)
        capture_of(capture, 201, 500)
        wait_until(lambda: watcher.calls >= 300, what="the next 300 at the broker")
        watcher.close()
        broker.stop(signal.SIGKILL)  # with them, and with the collector's session
        broker.start()
        collector.start()  # (whatever the gateway sends before the collector has subscribed again is lost too)
        wait_until(lambda: stored.count() >= 500, timeout=2 * TIMEOUT, what="all 500, those lost through replay")
        capture_of(capture, 501, 600)
        wait_until(lambda: stored.count() >= 600, what="the next 100")
        assert stored.callids() == list(range(1, 601))
        assert "asking for events missing: gw-test ipo stream" in collector.log_text()
        assert "replayed 300 events of ipo 201..500" in gateway.log_text()
    finally:
        broker.stop(signal.SIGKILL)


def test_a_new_streams_first_events_the_broker_lost_are_asked_of_that_stream_not_taken_for_the_old_ones_tail(
        tmp_path, start_gateway, start_collector, database_url, stored):
    """A gateway killed begins a new stream on its next run, going on from seq 101; the
    broker, killed with persistence off, loses that stream's first events. Its status says
    where it began, so the collector asks it for them: they are not taken for the end of
    the stream before (asked of it, answered "not kept", and stored as lost)."""
    broker = Broker(tmp_path / "broker", persistence=False)
    broker.start()
    try:
        capture = capture_of(tmp_path / "smdr.log", 1, 100)
        collector = start_collector(broker.url, database_url, hole_grace="1s")
        gateway = start_gateway(broker.url, [file_source(capture, follow=True)], gateway={"metrics_interval": "1s"})
        wait_until(lambda: stored.count() >= 100, what="the first 100")
        gateway.kill(signal.SIGKILL)  # its next run begins a new stream
        assert collector.kill(signal.SIGTERM) == 0  # away: the broker queues for its session, in memory only
        seen: set[int] = set()
        watcher = subscriber(broker.url, ["pbxgw/v1/+/+/calls"], lambda c, u, message: seen.update(
            e["seq"] for e in msgpack.unpackb(message.payload) if e["seq"] > 100))
        capture_of(capture, 101, 200)
        gateway.start()
        wait_until(lambda: len(seen) >= 100, what="the new stream's first 100 at the broker")
        watcher.loop_stop()
        watcher.disconnect()
        broker.stop(signal.SIGKILL)  # with them, and with the collector's session
        broker.start()
        collector.start()
        capture_of(capture, 201, 250)
        wait_until(lambda: stored.count() >= 250, timeout=2 * TIMEOUT, what="all 250, those lost through replay")
        assert stored.callids() == list(range(1, 251))
        streams = [s for (s,) in stored.db.fetch("SELECT stream FROM sources ORDER BY first_seq")]
        # (The range asked for may be wider: what came after 200 may have been lost too.)
        assert len(streams) == 2 and re.search(rf"replayed \d+ events of ipo \d+\.\.\d+ \(stream {streams[1]}\); "
                                               r"0 missing", gateway.log_text())
        assert "stored as lost at the edge" not in collector.log_text()
        assert fleet.holes(stored.db, "gw-test", "ipo") == ({}, {})  # none missing, none lost at the edge
    finally:
        broker.stop(signal.SIGKILL)


def test_rows_deleted_from_the_database_are_found_missing_and_refilled_from_the_gateway(
        tmp_path, broker, start_gateway, start_collector, database_url, stored):
    collector = start_collector(broker.url, database_url, hole_grace="1s")
    start_gateway(broker.url, [file_source(capture_of(tmp_path / "smdr.log", 1, 500))])
    wait_until(lambda: stored.count() >= 500, what="500 stored")
    stored.db.fetch("DELETE FROM events WHERE seq BETWEEN 101 AND 250 OR seq IN (1, 500) RETURNING seq")
    wait_until(lambda: stored.count() >= 500, what="the deleted rows back")
    assert stored.callids() == list(range(1, 501))
    assert collector.log_text().count("asking for events missing") >= 1
    assert fleet.holes(stored.db, "gw-test", "ipo") == ({}, {})


def test_what_is_beyond_the_gateways_retention_is_stored_as_lost_at_the_edge_and_not_asked_again(
        tmp_path, broker, start_gateway, start_collector, database_url, stored):
    collector = start_collector(broker.url, database_url, hole_grace="1s")
    capture = capture_of(tmp_path / "smdr.log", 1, 10)
    # An archive of 20 KiB keeps the newest few reads (each a segment: a 32nd of it is less)
    start_gateway(broker.url, [file_source(capture, follow=True)], archive={"max_bytes": "20KiB"})
    for last in range(10, 401, 10):
        if last > 10:
            capture_of(capture, last - 9, last)
        wait_until(lambda: stored.count() >= last, what=f"{last} stored")
    stored.db.fetch("DELETE FROM events WHERE seq BETWEEN 2 AND 399 RETURNING seq")
    wait_until(lambda: "stored as lost at the edge" in collector.log_text(), what="the gateway's reply")
    wait_until(lambda: fleet.holes(stored.db, "gw-test", "ipo")[0] == {}, what="no hole left open")
    present = set(stored.callids())
    (lost,) = fleet.holes(stored.db, "gw-test", "ipo")[1].values()
    lost_seqs = {n for a, b in lost for n in range(a, b + 1)}
    assert present | lost_seqs == set(range(1, 401)) and not present & lost_seqs
    assert 2 in lost_seqs and 399 in present  # the oldest beyond retention, the newest replayed
    assert {r for (r,) in stored.db.fetch("SELECT DISTINCT reason FROM gaps")} == {NOT_KEPT}
    # (lost at the edge is no hole: fleet.holes is what the collector asks from, and shows)
    shown = fleet.fleet(stored.db, 0)[0]["sources"][0]
    assert shown["missing"] == 0 and shown["lost_at_edge"] == len(lost_seqs)


def test_bad_enormous_repeated_and_unknown_requests_are_answered_and_live_traffic_flows(
        tmp_path, broker, start_gateway, start_collector, database_url, stored):
    start_collector(broker.url, database_url, hole_grace="0s")  # (never asks: the test does)
    capture = capture_of(tmp_path / "smdr.log", 1, 100)
    gateway = start_gateway(broker.url, [file_source(capture, follow=True)])
    wait_until(lambda: stored.count() >= 100, what="the first 100")
    client = Client(broker.url)
    try:
        ask = lambda **f: msgpack.packb({"v": 1, "src": "ipo", "first": 1, "last": 10, **f})  # noqa: E731
        for payload in (b"\xc1 garbage", msgpack.packb([1]), ask(id="big", last=MAX_RANGE + 5),
                        ask(id="future", v=7), ask(id="nobody", src="nobody"), ask(id="twice"), ask(id="twice")):
            client.ask(payload)
        capture_of(capture, 101, 200)
        wait_until(lambda: len(client.replies) >= 6, what="the replies")
        by_id = {}
        for reply in client.replies:
            by_id.setdefault(reply["id"], []).append(reply)
        assert [r["retry"] for r in by_id[None]] == [False, False]
        assert "at most" in by_id["big"][0]["error"] and "'v'" in by_id["future"][0]["error"]
        assert by_id["nobody"] == [{"v": 1, "id": "nobody", "src": "nobody", "stream": by_id["nobody"][0]["stream"],
                                    "first": 1, "last": 10, "found": 0, "missing": []}]  # (it numbered none)
        # asked twice: answered once or twice alike, replayed once
        assert all(r == by_id["twice"][0] for r in by_id["twice"]) and by_id["twice"][0]["found"] == 10
        assert gateway.log_text().count("replayed 10 events of ipo 1..10") == 1
        wait_until(lambda: stored.count() >= 200, what="live records stored meanwhile")
        assert stored.callids() == list(range(1, 201))  # the replayed ten: duplicates, absorbed
        assert gateway.proc.poll() is None
    finally:
        client.close()


def test_a_reply_to_no_request_of_the_collector_changes_nothing_and_is_kept_in_rejected(
        tmp_path, broker, start_gateway, start_collector, database_url, stored):
    """A gateway's credentials could say "51..1000000 is lost" unasked, or answer a request
    made for numbers not used yet: neither may store anything as lost at the edge."""
    collector = start_collector(broker.url, database_url, hole_grace="0s")
    start_gateway(broker.url, [file_source(capture_of(tmp_path / "smdr.log", 1, 100))])
    wait_until(lambda: stored.count() >= 100, what="100 stored")
    stream = stored.db.fetch("SELECT DISTINCT stream FROM events")[0][0]
    forged = {"v": 1, "id": "c-forged-1", "src": "ipo", "stream": stream, "first": 51, "last": 1_000_000,
              "found": 0, "missing": [[51, 1_000_000]]}
    client = Client(broker.url)
    try:
        client._client.publish("pbxgw/v1/lab/gw-test/replies", msgpack.packb(forged), qos=1).wait_for_publish(TIMEOUT)
    finally:
        client.close()
    wait_until(lambda: stored.count("rejected") >= 1, what="the forged reply kept aside")
    ((reason,),) = stored.db.fetch("SELECT reason FROM rejected")
    assert "a reply to 'c-forged-1', no request this collector waits for" in reason
    assert stored.db.fetch("SELECT count(*) FROM gaps") == [(0,)]
    assert fleet.holes(stored.db, "gw-test", "ipo") == ({}, {}) and "kept in rejected" in collector.log_text()


def test_the_broker_set_up_binds_each_gateway_to_its_site_topics_and_client_id(tmp_path, start_gateway,
                                                                                start_collector):
    """Mosquitto set up as docs/central.md says, with the ACL `pbxgw broker-acl` writes: the
    collector asks through it; a gateway's credentials may not command another gateway,
    publish under another site, or take the collector's session (the broker gives every
    client its user name for a client id; a stolen credential in use takes over only its
    own gateway's connection); no anonymous way in."""
    secrets = {"gw-test": "gw-secret", "gw-other": "other-secret", "collector": "collector-secret"}
    files = {}
    for user, secret in secrets.items():
        files[user] = tmp_path / f"{user}.password"
        files[user].write_text(secret)
        files[user].chmod(0o600)
    register = tmp_path / "register.toml"
    register.write_text('[mqtt]\nusername = "collector"\n[gateways]\ngw-test = "lab"\ngw-other = "lab"\n')
    made = pbxgw("broker-acl", "--config", str(register))
    assert made.returncode == 0, made.stderr
    broker = Broker(tmp_path / "broker", acl=made.stdout.decode(), anonymous=False, users=secrets,
                    conf=MOSQUITTO_CONF)
    broker.start()
    url = f"sqlite:///{tmp_path / 'central.db'}"
    stored = Stored(url)
    host, port = broker.url.removeprefix("mqtt://").rsplit(":", 1)

    def publish_as(user: str, topic: str, payload: bytes, client_id: str = "", clean_start: bool = False) -> int:
        """Publish once with ``user``'s credentials; the PUBACK's reason code."""
        codes = []
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5)
        client.username_pw_set(user, secrets[user])
        client.on_publish = lambda c, u, mid, code, props: codes.append(code.value)
        client.connect(host, int(port), clean_start=clean_start)
        client.loop_start()
        try:
            client.publish(topic, payload, qos=1).wait_for_publish(TIMEOUT)
            wait_until(lambda: codes, what="the PUBACK")
        finally:
            client.loop_stop()
            client.disconnect()
        return codes[0]

    try:
        collector = start_collector(broker.url, url, hole_grace="1s",
                                    mqtt={"username": "collector", "password_file": str(files["collector"])})
        gateway = start_gateway(broker.url, [file_source(capture_of(tmp_path / "smdr.log", 1, 300))],
                                mqtt={"username": "gw-test", "password_file": str(files["gw-test"])})
        wait_until(lambda: stored.count() >= 300, what="300 stored through the ACL")
        stored.db.fetch("DELETE FROM events WHERE seq BETWEEN 100 AND 199 RETURNING seq")
        wait_until(lambda: stored.count() >= 300, what="the 100 deleted replayed through the ACL")
        assert stored.callids() == list(range(1, 301)) and "asking for events missing" in collector.log_text()
        connections = collector.log_text().count("connected to the broker")
        not_authorized = 0x87
        request = lambda rid, first: msgpack.packb({"v": 1, "id": rid, "src": "ipo", "first": first,  # noqa: E731
                                                    "last": first + 9})
        # Another gateway's credentials may not command this one
        assert publish_as("gw-other", "pbxgw/v1/lab/gw-test/cmd/replay", request("sneaky", 1)) == not_authorized
        # A gateway's credentials may not publish under another site, even taking the
        # collector's client id with a clean start (the broker gives it its own)
        collector_id = re.search(r'client_id = "([^"]+)"', collector.config.read_text())[1]
        event = msgpack.packb([{"v": 1, "kind": "call", "gw": "gw-test"}])
        assert publish_as("gw-test", "pbxgw/v1/siteB/gw-test/calls", event, client_id=collector_id,
                          clean_start=True) == not_authorized
        # The collector, its session untouched, still asks and is answered (a session taken
        # over would have shown as a new connection)
        stored.db.fetch("DELETE FROM events WHERE seq BETWEEN 11 AND 20 RETURNING seq")
        wait_until(lambda: stored.count() >= 300, what="the 10 deleted replayed after the attempts")
        assert "of ipo 1..10" not in gateway.log_text()  # (the gateway never saw the other's request)
        assert collector.log_text().count("connected to the broker") == connections
        assert stored.count("rejected") == 0 and stored.db.fetch("SELECT DISTINCT site FROM events") == [("lab",)]
        assert "without a user name" not in collector.log_text() and stored.count("findings") == 0
    finally:
        stored.close()
        broker.stop(signal.SIGKILL)


def test_the_collector_says_loudly_when_the_broker_lets_anyone_in(tmp_path, broker, start_collector, database_url,
                                                                   stored):
    collector = start_collector(broker.url, database_url)  # (the broker fixture lets anonymous clients in)
    wait_until(lambda: "lets in clients without a user name" in collector.log_text(), what="the probe's finding")
    assert "ERROR: the broker at mqtt://127.0.0.1:" in collector.log_text()
    wait_until(lambda: stored.count("findings") == 1, what="the finding kept")
    config = collector.config
    shown = pbxgw("fleet", "--config", str(config))
    assert shown.returncode == 0 and shown.stdout.decode().startswith(
        f"WARNING: the broker at {broker.url} lets in clients without a user name: anyone who reaches it can "
        "publish as any gateway (mosquitto.conf: allow_anonymous false; docs/central.md) (found ")
