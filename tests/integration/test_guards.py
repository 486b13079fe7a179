"""What a site does to a running gateway by mistake or on purpose: a second `pbxgw run`
on the same state directory, `pbxgw parse` on the port the gateway reads, strangers on the
PBX port."""

import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import msgpack
import pytest

from gateway.edge.queue import marks

from gateway.edge import status
from gateway.edge.sources.tcp import HANDED_OVER
from helpers import pbxgw
from plugins.processes import TIMEOUT, GatewayProcess, Subscriber, free_port, wait_until
from tools.chaos import committed_next_seq
from tools.parts import StateDisk, subscriber


def first_source(sock) -> dict | None:
    """The first source in the status the daemon's socket gives; None while it does not
    answer yet (the socket's file is made before the daemon listens on it)."""
    try:
        return status.query(sock)["sources"][0]
    except OSError:
        return None


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
    assert [(e["callid"], e["seq"]) for e in calls if int(e["callid"]) != e["seq"]] == [], \
        sorted((e["seq"], e["callid"], e["rx"]) for e in calls)[:20]


def connect_from(address: str, port: int) -> socket.socket:
    """A TCP connection to the gateway's loopback port from another loopback address."""
    sock = socket.socket()
    sock.settimeout(TIMEOUT)
    sock.bind((address, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def ipo_server(broker, start_gateway, sections: dict | None = None, **extra):
    """A gateway with a tcp-server source ``ipo`` (``extra`` its settings; ``sections``, the
    config's others), listening; and its port."""
    port = free_port()
    source = {"name": "ipo", "type": "tcp-server", "host": "127.0.0.1", "port": port, "profile": "avaya-ipo", **extra}
    gw = start_gateway(broker.url, [source], **(sections or {}))
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
    wait_until(lambda: (first := first_source(sock)) is not None and first["state"] == "waiting", what="waiting")
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


def still_open(sock: socket.socket) -> bool:
    """Whether the gateway has not closed ``sock`` (nothing to read, no end of stream)."""
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""
    except BlockingIOError:
        return True
    finally:
        sock.setblocking(True)


def test_a_reload_hands_the_pbx_connection_over_and_a_moved_listener_takes_the_reconnect(tmp_path, broker,
                                                                                          central, start_gateway):
    gw, port = ipo_server(broker, start_gateway)
    with connect_from("127.0.0.1", port) as pbx:
        pbx.sendall(b"".join(ipo_line(i) for i in range(1, 51)))
        central.collect(lambda ev: len(central.calls()) >= 50, what="records before the reload")
        reload_with(gw, '"avaya-ipo"', '"avaya-ipo"\nquiet = "1h"', 1)  # the source's settings change
        pbx.sendall(b"".join(ipo_line(i) for i in range(51, 101)))  # on the same connection
        central.collect(lambda ev: len(central.calls()) >= 100, what="records after the reload")
        assert still_open(pbx)
        moved = free_port()
        reload_with(gw, f"port = {port}", f"port = {moved}", 2)  # listening elsewhere: the PBX is let go
        wait_until(lambda: not still_open(pbx), what="the old connection closed")
    with connect_from("127.0.0.1", moved) as pbx:  # the PBX reconnects, to the new address
        pbx.sendall(b"".join(ipo_line(i) for i in range(101, 151)))
        central.collect(lambda ev: len(central.calls()) >= 150, what="records after the move")
    assert_each_once(central.events, 150)
    log = gw.log_text()
    assert log.count("reading the PBX at 127.0.0.1") == 3 and log.count(HANDED_OVER) == 1 and "Traceback" not in log


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


def test_a_pbx_connecting_again_and_again_through_reloads_loses_nothing(tmp_path, broker, central, start_gateway):
    """A PBX that opens a new connection for each record while reloads come every 10 ms:
    connections replaced before their turn, or that come while a reload hands the listener
    over, are read in the order they came; each record arrives once."""
    gw, port = ipo_server(broker, start_gateway)
    stop = threading.Event()

    def reload_storm() -> None:
        delays = ('"1s"', '"2s"')
        gw.config.write_text(gw.config.read_text().replace('"avaya-ipo"', f'"avaya-ipo"\nquiet = {delays[0]}'))
        n = 0
        while not stop.is_set():
            n += 1
            gw.config.write_text(gw.config.read_text().replace(f"quiet = {delays[n % 2 - 1]}", f"quiet = {delays[n % 2]}"))
            gw.proc.send_signal(signal.SIGHUP)
            time.sleep(0.01)

    def restarts() -> int:
        return gw.log_text().count("restarted sources ipo")

    storm = threading.Thread(target=reload_storm)
    storm.start()
    sent, previous = 0, None
    try:  # one record a connection, each kept open until the next; 200, and through 3 reloads at least
        while sent < 200 or (restarts() < 3 and sent < 5000):
            sent += 1
            pbx = connect_from("127.0.0.1", port)
            pbx.sendall(ipo_line(sent))
            if previous is not None:
                previous.close()
            previous = pbx
            time.sleep(0.005)
    finally:
        stop.set()
        storm.join()
    central.collect(lambda ev: len(central.calls()) >= sent, what="a record from each connection")
    previous.close()
    assert_each_once(central.events, sent)
    assert "Traceback" not in gw.log_text() and restarts() >= 3


def test_reloads_of_a_tcp_client_hand_its_connection_over_with_what_the_pbx_had_sent(tmp_path, broker, central,
                                                                                     start_gateway):
    """The PBX's records sit in the socket while the source pauses between reads (a long
    read_delay): the successor reads them on the same connection; the PBX sees no reconnect."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(TIMEOUT)
        source = {"name": "ipo", "type": "tcp-client", "host": "127.0.0.1", "port": server.getsockname()[1],
                  "profile": "avaya-ipo", "read_delay": "3s"}
        gw = start_gateway(broker.url, [source])
        conn, _ = server.accept()
        with conn:
            sent = 0
            for reload in range(1, 4):
                conn.sendall(b"".join(ipo_line(i) for i in range(sent + 1, sent + 11)))
                central.collect(lambda ev: len(central.calls()) >= sent + 10, what="the first read")
                conn.sendall(b"".join(ipo_line(i) for i in range(sent + 11, sent + 21)))  # waits in the socket
                sent += 20
                reload_with(gw, f'read_delay = "{reload + 2}s"', f'read_delay = "{reload + 3}s"', reload)
            central.collect(lambda ev: len(central.calls()) >= sent, what="every record sent")
            assert still_open(conn)
    assert_each_once(central.events, sent)
    assert gw.log_text().count("INFO: reading 127.0.0.1") == 4 and gw.log_text().count(HANDED_OVER) == 3


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


def test_a_flood_of_replay_requests_is_counted_not_logged_each_and_records_flow(tmp_path, broker, central,
                                                                               start_gateway):
    """3 000 requests, half not msgpack, half asking more than a gateway takes on: refused,
    said once per kind (then a count a minute), answered at most a few a second, and the
    PBX's records still arrive, each once."""
    gw, port = ipo_server(broker, start_gateway)
    replies: list[bytes] = []
    flood = subscriber(broker.url, ["pbxgw/v1/lab/gw-test/replies"], lambda c, u, m: replies.append(m.payload))
    try:
        with connect_from("127.0.0.1", port) as pbx:
            for i in range(1, 3001):
                ask = b"\xc1" if i % 2 else msgpack.packb({"v": 1, "id": f"r{i}", "src": "ipo", "first": 1, "last": 5})
                flood.publish("pbxgw/v1/lab/gw-test/cmd/replay", ask, qos=0)
                if i % 6 == 0:
                    pbx.sendall(ipo_line(i // 6))
            central.collect(lambda ev: len(central.calls()) >= 500, what="the records sent during the flood")
    finally:
        flood.loop_stop()
        flood.disconnect()
    assert_each_once(central.events, 500)
    log = gw.log_text()
    assert log.count("replay request refused: not msgpack") == 1, log
    assert log.count("replay request refused: busy") == 1, log
    assert "publish failed locally" not in log and "Traceback" not in log
    refusals = [r for r in map(msgpack.unpackb, replies) if "error" in r]
    assert 1 <= len(refusals) <= 10 * (1 + 60)  # at most 10 a second (the flood takes seconds, not a minute)


@pytest.fixture
def card(tmp_path):
    """A 48 MiB tmpfs as the gateway's state disk (root only; skipped, saying why, elsewhere)."""
    try:
        disk = StateDisk(tmp_path / "gw" / "state", "48m")
    except OSError as exc:
        pytest.skip(f"cannot mount a small tmpfs here: {exc}")
    yield disk
    disk.close()


def test_a_small_card_delivers_every_live_record_and_an_outage_overflowing_it_is_one_gap(card, tmp_path, broker,
                                                                                        central, start_gateway):
    """On a 48 MiB card (less than the default max_bytes can use) the queue's budget is what
    the card holds, never nothing: with the broker up every record arrives. Filled by other
    logs to 8 MiB free, with the broker down, what the card cannot hold is dropped oldest
    first and reported as one gap."""
    gw, port = ipo_server(broker, start_gateway)
    checked = pbxgw("check-config", str(gw.config)).stdout.decode()
    budget = int(re.search(r"queue: up to (\d+) bytes on the disk under", checked)[1])
    assert 16 * 2**20 <= budget < 48 * 2**20, checked
    sock = tmp_path / "gw" / "run" / status.SOCKET_NAME
    with connect_from("127.0.0.1", port) as pbx:
        pbx.sendall(b"".join(ipo_line(i) for i in range(1, 2001)))
        central.collect(lambda ev: len(central.calls()) >= 2000, what="every record, the broker up")
    assert_each_once(central.events, 2000)
    queue = status.query(sock)["queue"]
    assert abs(queue["max_bytes"] - budget) < 2**20 and queue["max_bytes_configured"] == 256 * 2**20 and queue["dropped"] == 0
    assert "all the disk allows" in pbxgw("status", "--config", str(gw.config)).stdout.decode()

    assert gw.kill(signal.SIGTERM) == 0
    card.fill(leave=8 * 2**20)
    broker.stop()
    gw.start()
    wait_until(lambda: gw.log_text().count("listening on 127.0.0.1") == 2, what="the restart")
    small = status.query(sock)["queue"]["max_bytes"]
    assert 256 * 1024 <= small < 8 * 2**20
    sent = 2000
    with connect_from("127.0.0.1", port) as pbx:
        while status.query(sock)["queue"]["dropped"] == 0:  # until the card is full, and 1 000 more
            pbx.sendall(b"".join(ipo_line(i) for i in range(sent + 1, sent + 1001)))
            sent += 1000
            wait_until(lambda: status.query(sock)["sources"][0]["records"] == sent - 2000, what="the records read")
    broker.start()
    central.collect(lambda ev: any(e["kind"] == "gap" for e in ev) and max(e["seq"] for e in central.calls()) == sent,
                    what="the newest records and the gap")
    gaps = [e for e in central.events if e["kind"] == "gap"]
    assert len(gaps) == 1 and gaps[0]["reason"] == "queue full: drop_oldest", gaps
    delivered = {e["seq"] for e in central.calls()}
    in_gap = set(range(gaps[0]["first"], gaps[0]["last"] + 1))
    assert gaps[0]["first"] == 2001 and not delivered & in_gap and delivered | in_gap == set(range(1, sent + 1))
    assert gaps[0]["count"] == len(in_gap) and "Traceback" not in gw.log_text()


@pytest.mark.parametrize("damage", ["db_cut", "wal_cut", "wal_overwrite"])
def test_a_queue_damaged_after_a_kill_during_a_tcp_push_delivers_or_reports_every_record(tmp_path, broker, central,
                                                                                        start_gateway, damage):
    """The broker is away, so everything stays queued; the gateway is killed while the PBX
    pushes, then its queue.db is cut to half (a small budget: the WAL has been copied into
    it), or its WAL cut, or 4 KiB of its WAL overwritten, halfway into what the last sync
    made durable. Every record it had committed arrives, or is inside a gap."""
    broker.stop()
    gw, port = ipo_server(broker, start_gateway, {"queue": {"max_bytes": "4MiB"}} if damage == "db_cut" else {})
    sock = tmp_path / "gw" / "run" / status.SOCKET_NAME
    mark = gw.state_dir / marks.MARK_NAME
    with connect_from("127.0.0.1", port) as pbx:
        pbx.sendall(b"".join(ipo_line(i) for i in range(1, 3001)))
        stream = status.query(sock)["sources"][0]["stream"]
        wait_until(lambda: marks.read(mark).streams.get(stream, {}).get("ipo", (0, 0, 0))[1] >= 3000,
                   what="3 000 records synced")
        for i in range(3001, 3101):  # the push goes on
            pbx.sendall(ipo_line(i))
        wait_until(lambda: status.query(sock)["sources"][0]["records"] >= 3050, what="more of the push read")
        gw.kill(signal.SIGKILL)
    committed = committed_next_seq(gw.state_dir, "ipo") - 1
    assert committed >= 3050
    wal, db = gw.state_dir / "queue.db-wal", gw.state_dir / "queue.db"
    durable = (marks.read(mark).wal or (b"", 0))[1]
    if damage == "db_cut":
        os.truncate(db, db.stat().st_size // 2)
    elif damage == "wal_cut":
        os.truncate(wal, durable // 2)
    else:
        with open(wal, "r+b") as fh:
            fh.seek(durable // 2)
            fh.write(os.urandom(4096))
    gw.start()
    wait_until(lambda: gw.log_text().count("pbxgw started") == 2, what="the start on the damaged queue")
    broker.start()

    def unaccounted(events) -> set[int]:  # (call id i had seq i in the old stream)
        delivered = {int(e["callid"]) for e in central.calls()}
        gapped = {seq for e in events if e["kind"] == "gap" and e["stream"] == stream
                  for seq in range(e["first"], e["last"] + 1)}
        return set(range(1, committed + 1)) - delivered - gapped

    central.collect(lambda ev: not unaccounted(ev), what="every record committed, delivered or in a gap")
    log = gw.log_text()
    assert "Traceback" not in log and re.search(r"queue salvage: \d+ events kept .*; \d+ events not readable", log)


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


def test_a_link_that_reads_nothing_raises_the_unparsed_alarm_in_the_status_too_until_records_read_again(
        tmp_path, broker, central, pbx_line, start_gateway):
    """A wrong baud rate: every byte arrives, none makes a record the profile reads."""
    source = {"name": "ipo", "type": "serial", "device": pbx_line.path, "profile": "avaya-ipo", "timezone": "UTC"}
    gw = start_gateway(broker.url, [source])
    wait_until(lambda: "pbxgw.source.ipo: INFO: reading" in gw.log_text(), what="the port to be read")
    noise = random.Random(5)
    for _ in range(12):
        pbx_line.write(bytes(noise.randrange(128, 256) for _ in range(60)) + b"\r\n")

    def alarm(state):
        return lambda ev: any(e.get("alarm") == "unparsed" and e["state"] == state for e in ev)

    def announced(active):  # (the latest status says it)
        statuses = lambda ev: [e for e in ev if e.get("kind") == "status"]  # noqa: E731
        return lambda ev: bool(statuses(ev)) and ("unparsed" in statuses(ev)[-1]["sources"][0]["alarms"]) == active

    events = central.collect(alarm("raised"), what="the unparsed alarm")
    assert next(e for e in events if e.get("alarm") == "unparsed")["unparsed_share"] == 1.0
    central.collect(announced(True), what="the alarm in the retained status")
    shown = pbxgw("status", "--config", str(gw.config)).stdout.decode()
    assert "ALARM unparsed on source ipo: 100 % of its last records could not be read by profile avaya-ipo" in shown
    assert "unparsed alarm raised" in gw.log_text()
    # The technician changes the source (a reload restarts it): its watches begin again, so
    # its alarm is cleared, and raised again while the link still reads nothing.
    reload_with(gw, 'timezone = "UTC"', 'timezone = "Etc/UTC"', 1)
    central.collect(alarm("cleared"), what="the alarm cleared by the restart")
    for _ in range(12):
        pbx_line.write(bytes(noise.randrange(128, 256) for _ in range(60)) + b"\r\n")
    central.collect(lambda ev: sum(e.get("alarm") == "unparsed" and e["state"] == "raised" for e in ev) == 2,
                    what="the alarm raised again")
    for i in range(1, 61):
        pbx_line.write(ipo_ended(i, 2))
    central.collect(lambda ev: sum(e.get("alarm") == "unparsed" and e["state"] == "cleared" for e in ev) == 2,
                    what="the alarm cleared by records read")
    central.collect(announced(False), what="the status without it")
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
