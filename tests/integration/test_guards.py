"""What a site does to a running gateway by mistake or on purpose: a second `pbxgw run`
on the same state directory, `pbxgw parse` on the port the gateway reads, strangers on the
PBX port."""

import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from gateway import status
from helpers import pbxgw
from plugins.processes import TIMEOUT, GatewayProcess, Subscriber, free_port, wait_until
from tools.parts import StateDisk


def ipo_line(i: int) -> bytes:
    return (f"2026/01/15 10:{i // 60 % 60:02}:{i % 60:02},00:00:10,3,0312{i:06},I,200,200,,0,{i},0,"
            f"E200,Agent,T9001,Line 1.1,0,0\r\n").encode()


def test_a_second_gateway_on_the_same_state_dir_is_refused_and_the_first_goes_on(tmp_path, broker, pbx_line,
                                                                                 serial_gateway):
    device = pbx_line.path
    first = serial_gateway(broker.url, device)
    second = pbxgw("run", "--config", str(first.config))
    assert second.returncode == 78
    assert f"another pbxgw (pid {first.proc.pid}) is using {first.state_dir}" in second.stderr.decode()
    # The first one still owns its status socket, and reads.
    pbx_line.write(ipo_line(1))
    sock = first.state_dir.parent / "run" / status.SOCKET_NAME
    wait_until(lambda: status.query(sock)["sources"][0]["records"] == 1, what="the first gateway to read on")
    # `pbxgw parse` on the port the gateway holds is refused instead of taking its bytes.
    parse = pbxgw("parse", "--profile", "avaya-ipo", device)
    assert parse.returncode == 1
    assert parse.stderr.decode().strip() == f"pbxgw: {device}: port busy: another program holds it (is the pbxgw service running?)"
    assert first.kill(signal.SIGTERM) == 0


@pytest.fixture
def central(broker, processes):
    sub = Subscriber(broker.url)
    processes.append(sub)
    return sub


def assert_each_once(events: list[dict], count: int) -> None:
    """Records 1..count, each once, each with the seq of its number: nothing lost, no key reused."""
    calls = [e for e in events if e.get("kind") == "call"]
    assert sorted(int(e["callid"]) for e in calls) == list(range(1, count + 1))
    assert all(int(e["callid"]) == e["seq"] for e in calls)


def connect_from(address: str, port: int) -> socket.socket:
    """A TCP connection to the gateway's loopback port from another loopback address."""
    sock = socket.socket()
    sock.settimeout(TIMEOUT)
    sock.bind((address, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def ipo_server(broker, start_gateway, **extra):
    port = free_port()
    source = {"name": "ipo", "type": "tcp-server", "host": "127.0.0.1", "port": port, "profile": "avaya-ipo", **extra}
    gw = start_gateway(broker.url, [source])
    wait_until(lambda: "listening on 127.0.0.1" in gw.log_text(), what="the listener")
    return gw, port


@pytest.mark.parametrize("allow, why", [(["127.0.0.1"], "not in allow"),
                                        ([], "the PBX at 127.0.0.1 is sending")])
def test_strangers_on_the_pbx_port_are_refused_and_never_displace_the_pbx(tmp_path, broker, central, start_gateway,
                                                                          allow, why):
    gw, port = ipo_server(broker, start_gateway, allow=allow)
    with connect_from("127.0.0.1", port) as pbx:
        for i in range(1, 201):
            pbx.sendall(ipo_line(i))
            if i % 20 == 0:  # a stranger knocks every 20 records, and idles
                connect_from("127.0.0.3", port).close()
        central.collect(lambda ev: len(central.calls()) >= 200, what="the PBX's 200 records")
    assert_each_once(central.events, 200)
    log = gw.log_text()
    assert log.count(f"refused a connection from 127.0.0.3: {why}") == 1  # said once a minute, not ten times
    assert "Traceback" not in log and "ERROR" not in log


def test_a_port_in_use_is_a_waiting_source_that_listens_once_it_is_free(tmp_path, broker, central, start_gateway):
    blocker = socket.create_server(("127.0.0.1", 0))
    port = blocker.getsockname()[1]
    source = {"name": "ipo", "type": "tcp-server", "host": "127.0.0.1", "port": port, "profile": "avaya-ipo",
              "backoff_min": "100ms", "backoff_max": "300ms"}
    gw = start_gateway(broker.url, [source])
    sock = tmp_path / "gw" / "run" / status.SOCKET_NAME
    wait_until(lambda: sock.exists() and status.query(sock)["sources"][0]["state"] == "waiting", what="waiting")
    assert status.query(sock)["sources"][0]["error"] == f"cannot listen on 127.0.0.1:{port}: Address already in use"
    blocker.close()
    wait_until(lambda: "listening on 127.0.0.1" in gw.log_text(), what="the listener, once the port is free")
    with connect_from("127.0.0.1", port) as pbx:
        pbx.sendall(b"".join(ipo_line(i) for i in range(1, 11)))
        central.collect(lambda ev: len(central.calls()) >= 10, what="records on the freed port")
    assert_each_once(central.events, 10)
    assert gw.log_text().count("Address already in use") == 1 and "Traceback" not in gw.log_text()


def test_the_pbx_reconnecting_from_its_address_replaces_its_old_connection(tmp_path, broker, central, start_gateway):
    gw, port = ipo_server(broker, start_gateway, allow=["127.0.0.0/30"])
    old = connect_from("127.0.0.1", port)
    old.sendall(b"".join(ipo_line(i) for i in range(1, 11)))
    central.collect(lambda ev: len(central.calls()) >= 10, what="records on the first connection")
    with connect_from("127.0.0.1", port) as new:  # the PBX gave up on the old socket
        assert old.recv(1) == b""  # the gateway closed it
        new.sendall(b"".join(ipo_line(i) for i in range(11, 21)))
        central.collect(lambda ev: len(central.calls()) >= 20, what="records on the new connection")
    old.close()
    assert_each_once(central.events, 20)
    assert "replaced by one from 127.0.0.1" in gw.log_text() and "Traceback" not in gw.log_text()


def reload_with(gw: GatewayProcess, old: str, new: str, reloads: int) -> None:
    gw.config.write_text(gw.config.read_text().replace(old, new))
    gw.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: gw.log_text().count("pbxgw: INFO: reloaded ") >= reloads, what="the reload")


def test_a_reload_closes_the_pbx_connection_after_committing_it_and_the_next_one_is_read(tmp_path, broker,
                                                                                         central, start_gateway):
    gw, port = ipo_server(broker, start_gateway)
    with connect_from("127.0.0.1", port) as pbx:
        pbx.sendall(b"".join(ipo_line(i) for i in range(1, 51)))
        central.collect(lambda ev: len(central.calls()) >= 50, what="records before the reload")
        reload_with(gw, '"avaya-ipo"', '"avaya-ipo"\nquiet = "1h"', 1)  # the source's settings change
        assert pbx.recv(1) == b""  # the restarted source let go of the old connection
    with connect_from("127.0.0.1", port) as pbx:  # the PBX reconnects, to the new source
        pbx.sendall(b"".join(ipo_line(i) for i in range(51, 101)))
        central.collect(lambda ev: len(central.calls()) >= 100, what="records after the reload")
    assert_each_once(central.events, 100)


def test_reloads_of_a_serial_source_hand_its_port_over_and_lose_nothing(tmp_path, broker, central, pbx_line,
                                                                        serial_gateway):
    """Closing and reopening the port would lose what the PBX prints in between (opening
    flushes a port's input), and a record cut by the restart would be read as two halves."""
    gw = serial_gateway(broker.url, pbx_line.path)
    gw.config.write_text(gw.config.read_text().replace('"avaya-ipo"', '"avaya-ipo"\nquiet = "1h"'))

    def print_records() -> None:
        for i in range(1, 401):
            record = ipo_line(i)
            pbx_line.write(record[:40])  # a record arrives in pieces, as over a slow line
            time.sleep(0.002)
            pbx_line.write(record[40:])

    printer = threading.Thread(target=print_records)
    printer.start()
    for reload in range(1, 9):
        old, new = ('"1h"', '"2h"') if reload % 2 else ('"2h"', '"1h"')
        reload_with(gw, f"quiet = {old}", f"quiet = {new}", reload)
    printer.join()
    central.collect(lambda ev: len(central.calls()) >= 400, what="every record printed during the reloads")
    assert_each_once(central.events, 400)
    assert not [e for e in central.events if e.get("kind") == "unparsed"]


def test_a_reload_applies_what_it_can_and_names_what_takes_a_restart(tmp_path, broker, pbx_line, serial_gateway):
    gw = serial_gateway(broker.url, pbx_line.path)
    text = gw.config.read_text()
    assert '[mqtt]\n' in text and 'profile = "avaya-ipo"' in text
    gw.config.write_text(text.replace("[mqtt]\n", "[mqtt]\nkeepalive = \"45s\"\n")
                         .replace('profile = "avaya-ipo"', 'profile = "avaya-ipo"\nquiet = "1h"')
                         + '[queue]\nmax_bytes = "8MiB"\n')
    gw.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "INFO: reloaded" in gw.log_text(), what="the reload")
    log = gw.log_text()
    assert "reload: mqtt.keepalive changed; that takes a restart (systemctl restart pbxgw)" in log
    assert f"reloaded {gw.config}: restarted sources ipo; applied queue.max_bytes" in log
    sock = tmp_path / "gw" / "run" / status.SOCKET_NAME
    state = status.query(sock)
    assert state["gateway"]["restart_needed"] == ["mqtt.keepalive"]
    assert "config changed on disk, waiting for a restart: mqtt.keepalive" in status.text(state)


def test_a_reload_of_a_tcp_client_commits_what_the_pbx_had_sent(tmp_path, broker, central, start_gateway):
    """The PBX's records sit in the socket while the source pauses between reads (a long
    read_delay): a reload then must read them before it lets the connection go."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(TIMEOUT)
        source = {"name": "ipo", "type": "tcp-client", "host": "127.0.0.1", "port": server.getsockname()[1],
                  "profile": "avaya-ipo", "read_delay": "3s"}
        gw = start_gateway(broker.url, [source])
        sent = 0
        for reload in range(1, 4):
            conn, _ = server.accept()
            with conn:
                conn.sendall(b"".join(ipo_line(i) for i in range(sent + 1, sent + 11)))
                central.collect(lambda ev: len(central.calls()) >= sent + 10, what="the first read")
                conn.sendall(b"".join(ipo_line(i) for i in range(sent + 11, sent + 21)))  # waits in the socket
                sent += 20
                reload_with(gw, f'read_delay = "{reload + 2}s"', f'read_delay = "{reload + 3}s"', reload)
        central.collect(lambda ev: len(central.calls()) >= sent, what="every record sent")
    assert_each_once(central.events, sent)


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs under the gateway's state directory (root only; skipped, saying why, elsewhere)."""
    try:
        disk = StateDisk(tmp_path / "gw" / "state", "4m")
    except OSError as exc:
        pytest.skip(f"cannot mount a small tmpfs here: {exc}")
    yield disk
    disk.close()


def test_a_full_disk_loses_only_what_cannot_wait_and_says_so_with_a_gap(small_disk, tmp_path, broker, central,
                                                                        pbx_line, serial_gateway):
    broker.stop()
    gw = serial_gateway(broker.url, pbx_line.path, queue={"max_bytes": "512KiB"})
    sock = tmp_path / "gw" / "run" / status.SOCKET_NAME

    def records() -> int:
        return status.query(sock)["sources"][0]["records"]

    for i in range(1, 101):
        pbx_line.write(ipo_line(i))
    wait_until(lambda: records() == 100, what="100 records queued")
    small_disk.fill()
    for i in range(101, 201):  # the PBX goes on printing onto a full disk
        pbx_line.write(ipo_line(i))
    wait_until(lambda: "queue write failed" in gw.log_text(), what="the failed write")
    small_disk.free()
    for i in range(201, 301):
        pbx_line.write(ipo_line(i))
    broker.start()
    central.collect(lambda ev: max((e["seq"] for e in central.calls()), default=0) == 300
                    and any(e["kind"] == "gap" for e in ev), what="the calls and the gap")
    delivered = {e["seq"] for e in central.calls()}
    gaps = [e for e in central.events if e["kind"] == "gap"]
    missing = set(range(1, 301)) - delivered
    assert missing and all(gap["reason"].startswith("queue write failed") for gap in gaps)
    assert missing == {s for gap in gaps for s in range(gap["first"], gap["last"] + 1)} - delivered
    assert sum(gap["count"] for gap in gaps) == len(missing)  # every lost record is reported
    assert all(int(e["callid"]) == e["seq"] for e in central.calls())
    assert "Traceback" not in gw.log_text()
    # The status still says reading: the source never died.
    assert status.query(sock)["sources"][0]["state"] == "reading"

    # A gateway that starts on a full disk delivers what it holds.
    broker.stop()
    before = records()
    for i in range(301, 311):
        pbx_line.write(ipo_line(i))
    wait_until(lambda: records() == before + 10, what="10 more records queued")
    small_disk.fill()
    gw.kill(signal.SIGKILL)
    gw.start()
    wait_until(lambda: gw.log_text().count("pbxgw started") == 2, what="the start on a full disk")
    broker.start()
    central.collect(lambda ev: {e["seq"] for e in central.calls()} >= set(range(301, 311)),
                    what="what was queued before the restart")


def ipo_ended(i: int, ago_s: float) -> bytes:
    """An Avaya IP Office record of a 10 s call that ended ``ago_s`` seconds ago (UTC)."""
    start = datetime.now(timezone.utc) - timedelta(seconds=ago_s + 10)
    return (f"{start:%Y/%m/%d %H:%M:%S},00:00:10,3,0312{i:06},I,200,200,,0,{i},0,"
            f"E200,Agent,T9001,Line 1.1,0,0\r\n").encode()


def test_a_pbx_clock_an_hour_behind_raises_clock_skew_and_putting_it_right_clears_it(tmp_path, broker, central,
                                                                                   pbx_line, start_gateway):
    """A PBX that missed the summer-time change prints calls an hour before they ended here."""
    source = {"name": "ipo", "type": "serial", "device": pbx_line.path, "profile": "avaya-ipo",
              "timezone": "UTC", "clock_skew": "15m"}
    gw = start_gateway(broker.url, [source])
    wait_until(lambda: "pbxgw.source.ipo: INFO: reading" in gw.log_text(), what="the port to be read")
    for i in range(1, 7):
        pbx_line.write(ipo_ended(i, 3600))
    alarm = central.collect(lambda ev: any(e.get("alarm") == "clock_skew" for e in ev), what="the clock_skew alarm")
    raised = next(e for e in alarm if e.get("alarm") == "clock_skew")
    assert raised["state"] == "raised" and 3590 <= raised["skew_s"] <= 3610 and raised["quiet_s"] is None
    shown = pbxgw("status", "--config", str(gw.config)).stdout.decode()
    assert re.search(r"ALARM clock_skew on source ipo: its calls end (59 min|1 h 0 min) before their records arrive",
                     shown), shown
    for i in range(7, 27):
        pbx_line.write(ipo_ended(i, 2))
    central.collect(lambda ev: any(e.get("alarm") == "clock_skew" and e["state"] == "cleared" for e in ev),
                    what="the alarm cleared")
    assert "ALARM" not in pbxgw("status", "--config", str(gw.config)).stdout.decode()


@pytest.mark.parametrize("password, reads", [("s3cret", True), ("PCCSMDR", False)])
def test_a_login_password_from_a_file_logs_in_and_a_wrong_one_is_said(tmp_path, broker, central, start_gateway,
                                                                     password, reads):
    """The PBX's password changed from the factory PCCSMDR: the source's login_password_file
    logs in; the old one is refused, and the log says what that probably is."""
    pbx = subprocess.Popen([sys.executable, "-m", "gateway", "simulate", "--profile", "panasonic-kx-tda",
                            "--tcp", "127.0.0.1:0", "--rate", "200", "--login-password", "s3cret"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        host, port = pbx.stdout.readline().decode().strip().rsplit(":", 1)
        secret = tmp_path / "pbx-password"
        secret.write_text(password + "\n")
        secret.chmod(0o600)
        source = {"name": "kx", "type": "tcp-client", "host": host, "port": int(port), "profile": "panasonic-kx-tda",
                  "timezone": "UTC", "login_password_file": str(secret), "backoff_min": "5s", "backoff_max": "5s"}
        gw = start_gateway(broker.url, [source])
        if reads:
            central.collect(lambda ev: len([e for e in ev if e.get("kind") == "call"]) >= 3, what="calls after the login")
        else:
            wait_until(lambda: "after the login, before any record: a wrong login password (login_password_file)?"
                       in gw.log_text(), what="the refusal said")
            assert "PCCSMDR" not in gw.log_text()  # (a secret is never logged)
    finally:
        pbx.kill()
        pbx.wait(TIMEOUT)
        pbx.stdout.close()
