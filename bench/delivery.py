"""Delivery benchmarks: backlog drain rate, idle memory, disk writes per event.

    python -m bench.delivery [--events 1000000] [--rounds 3]

Prints figures, never asserts them (shared machines are noisy):

* drain: a queue of N events (already on disk, as after an outage) published by
  `pbxgw run` to a local Mosquitto and counted at a subscriber; events/s from the first to
  the last event received; median, min and max over the rounds;
* idle RSS of `pbxgw run` with one idle source and the broker connected;
* bytes the gateway process wrote to disk (/proc/PID/io write_bytes) per event, with a PBX
  printing 10 events/s on a serial line (a pty) and pushing 1000 events/s over TCP (a
  serial line cannot carry that: 9600 baud is about 10 records/s), next to the events'
  msgpack size.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import msgpack
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from gateway.smdr import profiles
from gateway.events import CallEvent, packb
from gateway.smdr.offline import sample_events
from gateway.simulate import PtyLine
from gateway.store import Store
from tools.parts import Broker, GatewayProcess, free_port, wait_for


class Counter:
    """Counts events in batches on the calls topic (reads only the array headers)."""

    def __init__(self, url: str):
        host, port = url.removeprefix("mqtt://").rsplit(":", 1)
        self.count = 0
        self.first = self.last = 0.0
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        self.client.on_connect = lambda c, *a: c.subscribe("pbxgw/v1/+/+/calls", qos=1)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.connect(host, int(port))
        self.client.loop_start()
        subscribed.wait(30)

    def _on_message(self, client, userdata, message) -> None:
        unpacker = msgpack.Unpacker()
        unpacker.feed(message.payload)
        now = time.perf_counter()
        self.first = self.first or now
        self.last = now
        self.count += unpacker.read_array_header()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def template() -> CallEvent:
    profile = profiles.find("avaya-ipo")
    return next(e for e in sample_events(profile, profiles.samples(profile)) if isinstance(e, CallEvent))


def fill_queue(state_dir: Path, events: int) -> int:
    """Queue ``events`` call events as an outage would leave them; their mean size."""
    store = Store(state_dir, 2**40, "drop_oldest")
    base = dataclasses.replace(template(), gw="gw-test", src="pbx")
    size = 0
    for start in range(1, events + 1, 1000):
        batch = [dataclasses.replace(base, seq=s, callid=str(s)) for s in range(start, min(start + 1000, events + 1))]
        size += sum(len(packb(e)) for e in batch)
        store.append("pbx", batch, next_seq=batch[-1].seq + 1)
    store.close()
    return size // events


def idle_source(work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    capture = work / "idle.log"
    capture.touch()
    return {"name": "pbx", "type": "file", "path": str(capture), "follow": True, "profile": "avaya-ipo"}


def drain_round(work: Path, broker: Broker, events: int) -> float:
    gateway = GatewayProcess(work, broker.url, [idle_source(work)], mqtt={"client_id": f"bench-{work.name}"})
    fill_queue(gateway.state_dir, events)
    counter = Counter(broker.url)
    gateway.start()
    try:
        wait_for(lambda: counter.count >= events, timeout=600, what=f"{events} events at the subscriber")
    finally:
        gateway.kill(signal.SIGTERM)
        counter.close()
    return events / (counter.last - counter.first)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def write_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError("no write_bytes")


def idle_rss(work: Path, broker: Broker) -> float:
    gateway = GatewayProcess(work, broker.url, [idle_source(work)])
    gateway.start()
    try:
        wait_for(lambda: "connected to" in gateway.log_text(), what="the gateway to connect")
        time.sleep(3)  # the measurement: memory after a few seconds of idling
        return rss_kib(gateway.proc.pid) / 1024
    finally:
        gateway.kill(signal.SIGTERM)


def disk_per_event(work: Path, broker: Broker, rate: int, seconds: float, link: str) -> tuple[float, int]:
    """(bytes written per event, events) with a PBX printing ``rate`` events/s on a serial
    line (a pty) or pushing them over TCP (as Avaya IP Office does)."""
    if link == "serial":
        line = PtyLine()
        source = {"name": "pbx", "type": "serial", "device": line.path, "profile": "avaya-ipo"}
    else:
        port = free_port()
        source = {"name": "pbx", "type": "tcp-server", "host": "127.0.0.1", "port": port, "profile": "avaya-ipo"}
    gateway = GatewayProcess(work, broker.url, [source])
    counter = Counter(broker.url)
    gateway.start()
    if link == "tcp":
        wait_for(lambda: "listening on port" in gateway.log_text(), what="the gateway's TCP port")
        line = TcpLine(port)
    record = b"2026/01/15 10:00:00,00:00:10,3,0312000001,I,200,200,,0,%d,0,E200,Agent,T9001,Line 1.1,0,0\r\n"
    try:
        line.write(record % 0)  # a serial line waits here for the gateway to open it
        wait_for(lambda: counter.count >= 1, what="the first event")
        before, sent = write_bytes(gateway.proc.pid), 0
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            due = int(elapsed * rate) + 1
            if due > sent:
                line.write(b"".join(record % i for i in range(sent + 1, due + 1)))
                sent = due
            time.sleep(min(0.01, 1 / rate))
        wait_for(lambda: counter.count >= sent + 1, what="every event at the subscriber")
        time.sleep(2)  # two sync intervals, so that the last commits are on disk too
        return (write_bytes(gateway.proc.pid) - before) / sent, sent
    finally:
        gateway.kill(signal.SIGTERM)
        counter.close()
        line.close()


class TcpLine:
    """The PBX end of a TCP link to the gateway's tcp-server source."""

    def __init__(self, port: int):
        self._sock = socket.create_connection(("127.0.0.1", port))

    def write(self, data: bytes) -> None:
        self._sock.sendall(data)

    def close(self) -> None:
        self._sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="delivery benchmarks")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    size = len(packb(dataclasses.replace(template(), gw="gw-test", src="pbx")))
    with tempfile.TemporaryDirectory(prefix="pbxgw-bench-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        broker = Broker(work / "broker")
        broker.start()
        try:
            rates = [drain_round(work / f"drain{i}", broker, args.events) for i in range(args.rounds)]
            print(f"drain of {args.events} queued events to a local broker, counted at a subscriber: "
                  f"median {statistics.median(rates):,.0f} events/s (min {min(rates):,.0f}, "
                  f"max {max(rates):,.0f}, {args.rounds} rounds)")
            print(f"idle RSS of pbxgw run: {idle_rss(work / 'idle', broker):.1f} MiB")
            for rate, seconds, link in ((10, 30, "serial"), (1000, 20, "tcp")):
                per_event, sent = disk_per_event(work / f"disk{rate}", broker, rate, seconds, link)
                print(f"disk writes at {rate} events/s over {link} ({sent} events): {per_event:,.0f} "
                      f"bytes/event, {per_event / size:.2f}x the {size}-byte msgpack event")
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
