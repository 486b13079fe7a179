"""Nothing lost between the PBX and a central subscriber: a real broker, real faults."""

import json
import os
import signal
import sqlite3
import subprocess
import sys

import pytest

from gateway.commands import simulate
from gateway.smdr import profiles
from gateway.smdr.engine import ENGINE
from helpers import FIXTURES, pbxgw
from plugins.processes import TIMEOUT, Broker, GatewayProcess, Subscriber, free_port, wait_until


def ipo_record(i: int) -> bytes:
    """A distinct Avaya IP Office record; its call id is ``i``."""
    return (f"2026/01/15 10:{i // 60 % 60:02}:{i % 60:02},00:00:10,3,0312{i:06},I,200,200,,0,{i},0,"
            f"E200,Agent,T9001,Line 1.1,0,0\r\n").encode()


def followed_file(path):
    return {"name": "ipo", "type": "file", "path": str(path), "follow": True,
            "poll_interval": "50ms", "profile": "avaya-ipo"}


def append(path, first: int, last: int) -> None:
    with open(path, "ab") as fh:
        for i in range(first, last + 1):
            fh.write(ipo_record(i))


def assert_complete(events: list[dict], count: int) -> None:
    """Every record 1..count exactly once, each with the seq of its line, each lane in order."""
    calls = [e for e in events if e.get("kind") == "call"]
    assert sorted(int(e["callid"]) for e in calls) == list(range(1, count + 1))
    assert all(int(e["callid"]) == e["seq"] for e in calls)  # no record ingested twice
    for lane in (True, False):
        seqs = [e["seq"] for e in calls if bool(e.get("hist")) is lane]
        assert seqs == sorted(seqs)


@pytest.fixture
def central(broker, processes):
    sub = Subscriber(broker.url)
    processes.append(sub)
    return sub


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_events_from_a_followed_file_reach_the_subscriber_in_order(tmp_path, broker, central, protocol,
                                                                   start_gateway):
    capture = tmp_path / "smdr.log"
    append(capture, 1, 50)
    gw = start_gateway(broker.url, [followed_file(capture)], mqtt={"protocol": protocol})
    central.collect(lambda ev: len(central.calls()) >= 50, what="the first 50")
    append(capture, 51, 120)  # the file grows while followed
    central.collect(lambda ev: len(central.calls()) >= 120, what="120 events")
    assert_complete(central.events, 120)
    statuses = [e for e in central.events if e["kind"] == "status"]
    assert statuses[-1]["state"] == "online" and statuses[-1]["boot"] == 1
    assert gw.kill(signal.SIGTERM) == 0
    central.collect(lambda ev: ev[-1].get("state") == "offline", what="the offline status")


def test_broker_down_at_start_then_everything_arrives_marked_historical(tmp_path, broker, central, start_gateway):
    broker.stop()  # a clean stop keeps the central subscriber's session
    capture = tmp_path / "smdr.log"
    append(capture, 1, 200)
    gw = start_gateway(broker.url, [followed_file(capture)])
    wait_until(lambda: "cannot connect" in gw.log_text(), what="the gateway to find the broker down")
    broker.start()
    central.collect(lambda ev: len(central.calls()) >= 200, what="the backlog")
    assert_complete(central.events, 200)
    assert all(e.get("hist") is True for e in central.calls())


def test_a_broker_outage_mid_stream_loses_nothing_and_marks_exactly_its_backlog(tmp_path, broker, central,
                                                                               start_gateway):
    """What the PBX printed while the broker was down comes as backlog (``hist``), after
    the link is back; what it prints then comes live, and nothing is lost or doubled."""
    capture = tmp_path / "smdr.log"
    gw = start_gateway(broker.url, [followed_file(capture)])
    wait_until(lambda: "INFO: connected to" in gw.log_text(), what="the gateway to connect")
    append(capture, 1, 100)  # printed with the link up: live
    central.collect(lambda ev: len(central.calls()) >= 100, what="events before the outage")
    broker.stop()
    wait_until(lambda: any(said in gw.log_text() for said in ("disconnected from the broker", "broker closed the connection")),
               what="the gateway to lose the broker")
    append(capture, 101, 200)  # the PBX goes on printing during the outage
    wait_until(lambda: set(range(101, 201)) <= set(queued_calls(gw)), what="the outage's records queued")
    broker.start()
    wait_until(lambda: gw.log_text().count("INFO: connected to") >= 2, what="the gateway to reconnect")
    append(capture, 201, 300)  # printed once the link is back: live
    central.collect(lambda ev: len(central.calls()) >= 300, what="everything after the outage")
    assert_complete(central.events, 300)
    assert [e["seq"] for e in central.calls() if e.get("hist")] == list(range(101, 201))


def test_kill_9_of_the_gateway_loses_nothing_from_a_followed_file(tmp_path, broker, central, start_gateway):
    capture = tmp_path / "smdr.log"
    gw = start_gateway(broker.url, [followed_file(capture)])
    for round_ in range(3):
        append(capture, round_ * 400 + 1, round_ * 400 + 400)
        central.collect(lambda ev: len(central.calls()) >= round_ * 400 + 150, what="events flowing")
        gw.kill(signal.SIGKILL)  # records still being read and sent
        gw.start()
    central.collect(lambda ev: len(central.calls()) >= 1200, what="all 1200 events")
    assert_complete(central.events, 1200)


def test_a_followed_file_waits_while_the_queue_is_full_instead_of_dropping(tmp_path, broker, central, start_gateway):
    broker.stop()
    capture = tmp_path / "smdr.log"
    append(capture, 1, 400)
    gw = start_gateway(broker.url, [followed_file(capture)], queue={"max_bytes": "40KiB"})
    wait_until(lambda: "the queue is full: the rest of the file waits" in gw.log_text(), what="the queue to fill")
    assert 0 < len(queued_calls(gw)) < 400
    broker.start()
    central.collect(lambda ev: len(central.calls()) >= 400, what="all 400 records")
    assert_complete(central.events, 400)
    assert not any(e["kind"] == "gap" for e in central.events) and "events dropped" not in gw.log_text()


def test_full_queue_during_an_outage_drops_oldest_of_a_serial_line_and_reports_an_exact_gap(tmp_path, broker,
                                                                                            central, pbx_line,
                                                                                            serial_gateway):
    """A serial line cannot wait: what does not fit is dropped by when_full, and said."""
    broker.stop()
    gw = serial_gateway(broker.url, pbx_line.path, queue={"max_bytes": "40KiB"})
    for i in range(1, 401):
        pbx_line.write(ipo_record(i))
    wait_until(lambda: "events dropped" in gw.log_text(), what="the queue to fill")
    wait_until(lambda: queued_calls(gw)[-1:] == [400], what="all 400 records read")
    broker.start()
    central.collect(lambda ev: any(e["kind"] == "gap" for e in ev) and len(central.calls()) > 0
                    and max(e["seq"] for e in central.calls()) == 400, what="the gap and the kept events")
    gap = next(e for e in central.events if e["kind"] == "gap")
    kept = sorted(e["seq"] for e in central.calls())
    assert kept == list(range(kept[0], 401))  # the newest survive, in one piece
    assert (gap["src"], gap["first"], gap["last"], gap["count"]) == ("ipo", 1, kept[0] - 1, kept[0] - 1)
    assert gap["reason"] == "queue full: drop_oldest" and gap["first_rx"] <= gap["last_rx"]
    assert gap["stream"] == central.calls()[0]["stream"]
    assert gw.log_text().count("queue full (") == 1  # one line for the episode, not one per read


def queued_calls(gw: GatewayProcess) -> list[int]:
    """The seq numbers of the call events in the gateway's queue, not yet confirmed (read
    beside it, as an operator would; the confirmed ones below the prefix are its archive)."""
    db = sqlite3.connect(gw.state_dir / "queue.db")
    try:
        confirmed = (db.execute("SELECT next_seq FROM sources WHERE name = '*confirmed*'").fetchone() or (1,))[0] - 1
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE name GLOB 'seg_*'")]
        return sorted(seq for t in tables for (seq,) in db.execute(f"SELECT seq FROM {t} WHERE kind = 'call' "
                                                                   "AND id > ?", (confirmed,)))
    finally:
        db.close()


def test_a_rejected_publish_is_not_delivered_but_kept_as_dead_letter(tmp_path, processes, start_gateway):
    acl = "topic write pbxgw/v1/lab/gw-test/status\ntopic read #\n"
    broker = Broker(tmp_path / "broker", acl=acl)
    broker.start()
    processes.append(broker)
    capture = tmp_path / "smdr.log"
    append(capture, 1, 5)
    gw = start_gateway(broker.url, [followed_file(capture)])
    wait_until(lambda: "broker rejected 5 events" in gw.log_text(), what="the rejection")
    assert "Not authorized" in gw.log_text()
    assert gw.kill(signal.SIGTERM) == 0
    assert queued_calls(gw) == []
    db = sqlite3.connect(gw.state_dir / "queue.db")
    assert db.execute("SELECT COUNT(*), MIN(reason) FROM dead").fetchone() == (5, "Not authorized")
    db.close()
    # An operator looks at them, fixes the broker's ACL and sends them again, keys kept.
    listed = pbxgw("dead", "list", "--config", str(gw.config))
    lines = listed.stdout.decode().splitlines()
    assert len(lines) == 5 and all("Not authorized: call ipo seq" in line for line in lines)
    assert listed.stderr.decode().strip() == "5 dead letters"
    gw.start()
    wait_until(lambda: gw.log_text().count("pbxgw started") == 2, what="the gateway to run again")
    busy = pbxgw("dead", "requeue", "--config", str(gw.config))
    assert busy.returncode == 78 and b"another pbxgw (pid" in busy.stderr  # one writer at a time
    assert gw.kill(signal.SIGTERM) == 0
    requeued = pbxgw("dead", "requeue", "--config", str(gw.config))
    assert requeued.returncode == 0 and b"5 dead letters queued again" in requeued.stderr
    assert pbxgw("dead", "list", "--config", str(gw.config)).stdout == b""
    broker.stop()
    (tmp_path / "broker" / "acl").write_text("topic readwrite #\n")
    broker.start()
    central = Subscriber(broker.url)
    processes.append(central)
    gw.start()
    central.collect(lambda ev: len(central.calls()) >= 5, what="the requeued events")
    assert sorted(e["seq"] for e in central.calls()) == [1, 2, 3, 4, 5]


def test_unplugged_serial_adapter_is_waited_for_and_read_again(tmp_path, broker, central, processes, start_gateway):
    """The device path is a symlink (like /dev/serial/by-id/...): it goes away and comes back."""
    device = tmp_path / "by-id-usb-serial"
    source = {"name": "kx", "type": "serial", "device": str(device), "profile": "panasonic-kx-tda",
              "backoff_min": "100ms", "backoff_max": "500ms"}
    gw = start_gateway(broker.url, [source])
    wait_until(lambda: "cannot open" in gw.log_text(), what="the gateway to wait for the device")
    for plug in range(2):
        sim = subprocess.Popen([sys.executable, "-m", "gateway", "simulate", "--profile", "panasonic-kx-tda",
                                "--pty", "--rate", "50", "--count", "15"], stdout=subprocess.PIPE, text=True)
        processes.append(sim)
        pty = sim.stdout.readline().strip()
        device.unlink(missing_ok=True)
        device.symlink_to(pty)
        central.collect(lambda ev: len(central.calls()) >= 12 * (plug + 1), what=f"plug-in {plug + 1}")
        assert sim.wait(TIMEOUT) == 0  # the "adapter" is unplugged: the pty hangs up
        wait_until(lambda: gw.log_text().count("went away") > plug, what="the gateway to notice")
    assert sorted(e["seq"] for e in central.calls()) == list(range(1, 25))


@pytest.mark.parametrize("profile", [
    "panasonic-kx-tda",  # a text login
    "alcatel-oxe",  # a binary login, 772-byte blocks, and a keep-alive test the simulator insists on
])
def test_tcp_client_logs_in_to_the_pbx_and_reads(tmp_path, broker, central, processes, profile, start_gateway):
    pbx = profiles.find(profile)
    count = len(simulate.printed_units(pbx))
    expected = [json.loads(line) for line in pbx.expected_path.read_text().splitlines()]
    sim = subprocess.Popen([sys.executable, "-m", "gateway", "simulate", "--profile", profile,
                            "--tcp", "127.0.0.1:0", "--rate", "100", "--count", str(count)],
                           stdout=subprocess.PIPE, text=True)
    processes.append(sim)
    host, port = sim.stdout.readline().strip().rsplit(":", 1)
    source = {"name": "pbx", "type": "tcp-client", "host": host, "port": int(port), "profile": profile}
    gw = start_gateway(broker.url, [source])
    central.collect(lambda ev: len(central.calls()) >= len(expected), what="records over TCP after the login")
    assert [(e["kind"], e.get("ext")) for e in central.calls()] == [(e["kind"], e.get("ext")) for e in expected]
    assert f"parser engine {ENGINE}" in gw.log_text()  # the engine of this run of the suite


def test_tcp_server_takes_records_the_pbx_pushes(tmp_path, broker, central, start_gateway):
    port = free_port()
    source = {"name": "ipo", "type": "tcp-server", "host": "127.0.0.1", "port": port, "profile": "avaya-ipo"}
    gw = start_gateway(broker.url, [source])
    wait_until(lambda: "listening on 127.0.0.1" in gw.log_text(), what="the listener")
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as pbx:
        pbx.sendall(b"".join(ipo_record(i) for i in range(1, 31)))
    central.collect(lambda ev: len(central.calls()) >= 30, what="30 pushed records")
    assert_complete(central.events, 30)


def test_serial_url_socket_reads_a_terminal_server(tmp_path, broker, central, start_gateway):
    """A serial port behind a terminal server, as `socket://host:port` (pyserial's URL)."""
    import socket
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        source = {"name": "ts", "type": "serial", "device": f"socket://127.0.0.1:{port}", "profile": "avaya-ipo"}
        gw = start_gateway(broker.url, [source])
        server.settimeout(TIMEOUT)
        conn, _ = server.accept()
        with conn:
            # pyserial discards what is waiting while it opens a port; send once it reads.
            wait_until(lambda: "reading" in gw.log_text(), what="the port to be open")
            conn.sendall(b"".join(ipo_record(i) for i in range(1, 21)))
            central.collect(lambda ev: len(central.calls()) >= 20, what="20 records from the terminal server")
    assert_complete(central.events, 20)


def test_check_config_names_file_and_key(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('[gateway]\nid = "gw-1"\nsite = "hq"\nstate_dir = "/tmp/x"\n'
                    '[[source]]\nname = "pbx1"\ntype = "serial"\ndevice = "/dev/ttyUSB0"\nprofile = "panasonic-kx-tda"\n')
    assert pbxgw("check-config", str(good)).returncode == 0
    bad = tmp_path / "bad.toml"
    bad.write_text(good.read_text().replace('site = "hq"', 'site = "hq/+"'))
    run = pbxgw("check-config", str(bad))
    assert run.returncode == 78
    assert run.stderr.decode().startswith(f"pbxgw: {bad}: gateway.site: expected 1-64 of A-Z")
    typo = tmp_path / "typo.toml"
    typo.write_text(good.read_text().replace("[gateway]", "[gateway]\nstate_dri = 1"))
    assert "gateway.state_dri: unknown key" in pbxgw("check-config", str(typo)).stderr.decode()


def test_headset_reports_fed_through_a_pipe_reach_the_subscriber_as_agent_events(tmp_path, broker, central,
                                                                                 processes):
    """A headset cannot exist here: its reports (built from the Poly BT700 layout: report 32,
    hook bit 0, mute bit 1) come through a FIFO that the gateway reads as it would a hidraw
    node. (Poly needs no LED acknowledgement: LED writes would come back through a FIFO.)"""
    fifo = tmp_path / "hidraw-fake"
    os.mkfifo(fifo)
    recording = FIXTURES / "hid" / "poly-bt700.hid"
    source = {"name": "pbx", "type": "file", "path": str(tmp_path / "none.txt"), "profile": "avaya-ipo"}
    gw = GatewayProcess(tmp_path / "gw", broker.url, [source],
                        headsets={"enabled": True, "discover": False},
                        **{"headsets.device": [{"path": str(fifo), "descriptor": str(recording), "serial": "SN42"}],
                           "headset": [{"serial": "SN42", "agent": "alice", "extension": "4101"}]})
    processes.append(gw)
    gw.start()
    central.collect(lambda ev: any(e.get("ev") == "connected" for e in ev), what="the headset connected")
    writer = os.open(fifo, os.O_WRONLY)
    try:
        for report in ("2000", "2001", "2001", "2003", "2001", "2000"):
            os.write(writer, bytes.fromhex(report))
        central.collect(lambda ev: sum(e.get("kind") == "headset" for e in ev) >= 5, what="the agent's events")
    finally:
        os.close(writer)
    headset = [e for e in central.events if e.get("kind") == "headset"]
    assert [e["ev"] for e in headset] == ["connected", "off_hook", "mute_on", "on_hook", "mute_off"]
    assert [e["seq"] for e in headset] == [1, 2, 3, 4, 5]
    first = headset[0]
    assert (first["src"], first["vid"], first["pid"], first["model"], first["agent"], first["ext"]) == \
        ("hs-047f-02e6-SN42", 0x047F, 0x02E6, "Plantronics Poly BT700", "alice", "4101")


def test_a_silent_source_raises_the_no_data_alarm_and_its_next_record_clears_it(tmp_path, broker, central,
                                                                                start_gateway):
    capture = tmp_path / "smdr.txt"
    capture.write_bytes(b"")
    source = {"name": "pbx", "type": "file", "path": str(capture), "follow": True, "profile": "avaya-ipo",
              "poll_interval": "100ms", "quiet": "2s"}
    gw = start_gateway(broker.url, [source])
    central.collect(lambda ev: any(e.get("kind") == "alarm" for e in ev), what="the no-data alarm")
    shown = pbxgw("status", "--config", str(gw.config)).stdout.decode()
    assert "ALARM no_data on source pbx: silent since " in shown  # what status shows while it is raised
    with open(capture, "ab") as fh:
        fh.write(b"2008/06/28 09:28:41,00:00:00,9,8004206,I,4324,4324,,0,1000014155,0,E4324,Joe,T9161,L,0,0\r\n")
    central.collect(lambda ev: sum(e.get("kind") == "alarm" for e in ev) >= 2, what="the alarm cleared")
    alarms = [e for e in central.events if e.get("kind") == "alarm"]
    assert [(a["src"], a["alarm"], a["state"]) for a in alarms] == [("pbx", "no_data", "raised"), ("pbx", "no_data", "cleared")]
    assert alarms[0]["last_rx"] is None and alarms[1]["last_rx"] is not None and alarms[0]["quiet_s"] == 2.0
    assert "ALARM" not in pbxgw("status", "--config", str(gw.config)).stdout.decode()


def test_metrics_arrive_periodically_with_the_status_counters(tmp_path, broker, central, processes):
    capture = tmp_path / "smdr.txt"
    capture.write_bytes(profiles.find("avaya-ipo").samples_path.read_bytes())
    source = {"name": "pbx", "type": "file", "path": str(capture), "profile": "avaya-ipo"}
    gw = GatewayProcess(tmp_path / "gw", broker.url, [source])
    gw.config.write_text(gw.config.read_text().replace("[mqtt]", 'metrics_interval = "500ms"\n[mqtt]'))
    processes.append(gw)
    gw.start()
    central.collect(lambda ev: sum(e.get("kind") == "metrics" and e["sources"][0]["records"] == 10 for e in ev) >= 2,
                    what="two metrics messages after the capture was read")
    metrics = [e for e in central.events if e.get("kind") == "metrics"][-1]
    assert metrics["sources"][0]["name"] == "pbx" and metrics["broker"]["connected_since"] is not None
    assert metrics["sources"][0]["implausible"] == {}  # the profile's own samples: nothing looks wrong
    assert {"depth", "bytes", "oldest_age_s", "dropped", "dead", "max_bytes", "max_bytes_configured"} == set(metrics["queue"])
