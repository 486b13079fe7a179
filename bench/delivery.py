"""Delivery benchmarks: backlog drain rate, idle memory, disk writes per event, replays.

    python -m bench.delivery [--events 1000000] [--rounds 3] [--parts drain,idle,disk,replay]

Prints figures, never asserts them (shared machines are noisy):

* drain: a queue of N events (already on disk, as after an outage) published by
  `pbxgw run` to a local Mosquitto and counted at a subscriber; events/s from the first to
  the last event received; median, min and max over the rounds; beside it, in turns, the
  ceiling: the same messages published by a plain paho client with the gateway's window,
  and the ratio of the medians;
* idle RSS of `pbxgw run` with one idle source and the broker connected;
* bytes the gateway process wrote to disk (/proc/PID/io write_bytes) per event, with a PBX
  printing 10 events/s on a serial line (a pty) and pushing 1000 events/s over TCP (a
  serial line cannot carry that: 9600 baud is about 10 records/s), next to the events'
  msgpack size; with the archive off (``[archive] keep = "0s"``: events go at the broker's
  PUBACK) and on (its defaults), side by side, and the ratio;
* replay: 100 000 events delivered and archived, asked for again as the collector asks
  (requests of 10 000, four at a time): events/s published again, at ``replay_rate`` 2 000
  (the default) and 100 000; and the latency of live records (10/s) meanwhile, median
  and max, against the same with no replay.
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

from bench import as_installed
from gateway.commands.simulate import PtyLine
from gateway.edge.queue.store import Store
from gateway.smdr import profiles
from gateway.smdr.offline import sample_events
from gateway.common.mqtt import MqttSettings
from gateway.wire.events import CallEvent, mark_historical, packb
from tools.parts import Broker, GatewayProcess, free_port, subscriber, wait_for


class Counter:
    """Counts events in batches on the calls topic (reads only the array headers)."""

    def __init__(self, url: str):
        self.count = 0
        self.first = self.last = 0.0
        self.client = subscriber(url, ["pbxgw/v1/+/+/calls"], self._on_message)

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
    # received now (an archive keeps them: the sample's own time is months ago)
    base = dataclasses.replace(template(), gw="gw-test", src="pbx", stream=store.stream, rx=int(time.time() * 1000))
    size = 0
    for first in range(1, events + 1, 1000):  # a call a second, as a busy site's records come
        batch = [dataclasses.replace(base, seq=s, callid=str(s), start=base.start + s)
                 for s in range(first, min(first + 1000, events + 1))]
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


def ceiling_round(work: Path, broker: Broker, events: int) -> float:
    """The same messages as a drain sends (``batch_events`` backlog events each, marked
    ``hist``), published by a plain paho client at QoS 1 with the gateway's in-flight
    window, counted at the same subscriber: events/s, the most a drain could reach."""
    settings = MqttSettings()  # (the defaults: batch_events and inflight)
    base = dataclasses.replace(template(), gw="gw-test", src="pbx", stream="ceiling", rx=int(time.time() * 1000))
    messages = []
    for first in range(1, events + 1, settings.batch_events):
        parts = [mark_historical(packb(dataclasses.replace(base, seq=s, callid=str(s), start=base.start + s)))
                 for s in range(first, min(first + settings.batch_events, events + 1))]
        messages.append(msgpack.Packer().pack_array_header(len(parts)) + b"".join(parts))
    host, port = broker.url.removeprefix("mqtt://").rsplit(":", 1)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5,
                         client_id=f"ceiling-{work.name}")
    client.max_inflight_messages_set(settings.inflight)
    client.max_queued_messages_set(0)
    counter = Counter(broker.url)
    client.connect(host, int(port))
    client.loop_start()
    try:
        for payload in messages:
            client.publish("pbxgw/v1/lab/gw-test/calls", payload, qos=1)
        wait_for(lambda: counter.count >= events, timeout=600, what=f"{events} events at the subscriber")
    finally:
        client.loop_stop()
        client.disconnect()
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


def disk_per_event(work: Path, broker: Broker, rate: int, seconds: float, link: str,
                   archive: dict) -> tuple[float, int]:
    """(bytes written per event, events) with a PBX printing ``rate`` events/s on a serial
    line (a pty) or pushing them over TCP (as Avaya IP Office does); ``archive``: the
    gateway's ``[archive]`` settings."""
    if link == "serial":
        line = PtyLine()
        source = {"name": "pbx", "type": "serial", "device": line.path, "profile": "avaya-ipo"}
    else:
        port = free_port()
        source = {"name": "pbx", "type": "tcp-server", "host": "127.0.0.1", "port": port, "profile": "avaya-ipo"}
    gateway = GatewayProcess(work, broker.url, [source], archive=archive)
    counter = Counter(broker.url)
    gateway.start()
    if link == "tcp":
        wait_for(lambda: f"listening on 127.0.0.1:{port}" in gateway.log_text(), what="the gateway's TCP port")
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


class ReplayWatch:
    """The collector's part in a replay: asks, counts what comes again, and times live
    records (their call id is the time they were written, in ms)."""

    def __init__(self, url: str):
        self.replayed, self.first, self.last = 0, 0.0, 0.0
        self.latencies: list[float] = []
        self.replies: list[dict] = []
        self.client = subscriber(url, ["pbxgw/v1/+/+/calls", "pbxgw/v1/+/+/replies"], self._on_message)

    def _on_message(self, client, userdata, message) -> None:
        now = time.perf_counter()
        if message.topic.endswith("/replies"):
            self.replies.append(msgpack.unpackb(message.payload))
            return
        events = msgpack.unpackb(message.payload)
        if events[0].get("hist"):
            self.first = self.first or now
            self.last = now
            self.replayed += len(events)
        else:
            self.latencies += [time.time() * 1000 - int(e["callid"]) for e in events if e.get("callid")]

    def ask(self, first: int, last: int, rid: str) -> None:
        self.client.publish("pbxgw/v1/lab/gw-test/cmd/replay", msgpack.packb(
            {"v": 1, "id": rid, "src": "pbx", "first": first, "last": last}), qos=1)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def live_records(path: Path, stop: threading.Event) -> None:
    """Append a record to ``path`` ten times a second, its call id the time (ms)."""
    while not stop.wait(0.1):
        with open(path, "ab") as fh:
            fh.write(b"2026/01/15 10:00:00,00:00:10,3,0312000001,I,200,200,,0,%d,0,E200,Agent,T9001,Line 1.1,0,0\r\n"
                     % int(time.time() * 1000))


def replay_round(work: Path, broker: Broker, events: int, rate: int) -> tuple[float, list[float], list[float]]:
    """(events/s replayed of ``events``, live latencies during the replay, and before it, ms)."""
    source = idle_source(work)
    gateway = GatewayProcess(work, broker.url, [source], mqtt={"client_id": f"bench-{work.name}"},
                             archive={"replay_rate": rate})
    fill_queue(gateway.state_dir, events)
    counter = Counter(broker.url)
    gateway.start()
    watch = None
    stop = threading.Event()
    live = threading.Thread(target=live_records, args=(Path(source["path"]), stop))
    try:
        wait_for(lambda: counter.count >= events, timeout=600, what=f"{events} events delivered")
        watch = ReplayWatch(broker.url)  # (after the backlog, marked hist too, has drained)
        live.start()
        wait_for(lambda: len(watch.latencies) >= 30, what="live records before the replay")
        quiet = list(watch.latencies)
        chunks = [(first, min(events, first + 9_999)) for first in range(1, events + 1, 10_000)]
        asked = 0
        while len(watch.replies) < len(chunks):
            while asked < len(chunks) and asked - len(watch.replies) < 4:
                watch.ask(*chunks[asked], rid=f"bench-{asked}")
                asked += 1
            time.sleep(0.05)
            if time.perf_counter() - (watch.first or time.perf_counter()) > 900:
                raise TimeoutError("the replay took over 15 minutes")
        if missing := sum(b - a + 1 for r in watch.replies for a, b in r.get("missing", [])):
            raise RuntimeError(f"{missing} events were not in the archive: {watch.replies[:2]}")
        wait_for(lambda: watch.replayed >= events, what="every event replayed")
        during = watch.latencies[len(quiet):]
        return events / (watch.last - watch.first), during, quiet
    finally:
        stop.set()
        if live.is_alive():
            live.join()
        gateway.kill(signal.SIGTERM)
        counter.close()
        if watch is not None:
            watch.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="delivery benchmarks")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parts", default="drain,idle,disk,replay", help="which figures (comma-separated)")
    args = parser.parse_args()
    as_installed()
    parts = set(args.parts.split(","))
    size = len(packb(dataclasses.replace(template(), gw="gw-test", src="pbx")))
    with tempfile.TemporaryDirectory(prefix="pbxgw-bench-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        broker = Broker(work / "broker")
        broker.start()
        try:
            if "drain" in parts:
                rates, ceilings = [], []
                for i in range(args.rounds):  # in turns: both see the same machine
                    rates.append(drain_round(work / f"drain{i}", broker, args.events))
                    ceilings.append(ceiling_round(work / f"ceiling{i}", broker, args.events))
                print(f"drain of {args.events} queued events to a local broker, counted at a subscriber: "
                      f"median {statistics.median(rates):,.0f} events/s (min {min(rates):,.0f}, "
                      f"max {max(rates):,.0f}, {args.rounds} rounds); a plain paho QoS 1 publisher of the same "
                      f"messages, same window: median {statistics.median(ceilings):,.0f} events/s; drain/paho "
                      f"{statistics.median(rates) / statistics.median(ceilings):.2f}")
            if "idle" in parts:
                print(f"idle RSS of pbxgw run: {idle_rss(work / 'idle', broker):.1f} MiB")
            for rate, seconds, link in ((10, 30, "serial"), (1000, 20, "tcp")) if "disk" in parts else ():
                (off, sent), (on, _) = (disk_per_event(work / f"disk{rate}-{name}", broker, rate, seconds, link, archive)
                                        for name, archive in (("off", {"keep": "0s"}), ("on", {})))
                print(f"disk writes at {rate} events/s over {link} ({sent} events): archive off {off:,.0f} "
                      f"bytes/event ({off / size:.2f}x the {size}-byte msgpack event), archive on {on:,.0f} "
                      f"({on / size:.2f}x); on/off {on / off:.2f}")
            for rate in (2000, 100_000) if "replay" in parts else ():
                replayed, during, quiet = replay_round(work / f"replay{rate}", broker, 100_000, rate)
                print(f"replay of 100,000 archived events at replay_rate {rate:,}: {replayed:,.0f} events/s; "
                      f"live records meanwhile: latency median {statistics.median(during):,.0f} ms, max "
                      f"{max(during):,.0f} ms (before the replay: median {statistics.median(quiet):,.0f} ms, "
                      f"max {max(quiet):,.0f} ms)")
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
