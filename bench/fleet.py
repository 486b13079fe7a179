"""Fleet benchmark: many gateways, each publishing its records as a live site does (one
event per message), through a real Mosquitto to one `pbxgw collect`, or to several with
disjoint sites on one database (``--collectors``, docs/central.md "Several collectors").

    python -m bench.fleet [--gateways 5000] [--rates 1000,2500,5000] [--seconds 30]
                          [--engines sqlite,postgresql] [--collectors 1]

Prints figures, never asserts them (shared machines are noisy). The gateways are a
process of their own (``--simulate``: one MQTT connection publishing, at QoS 1, gateway
after gateway, each its own topic, site and ``seq``); it prints how many events the broker
has acknowledged and when, a hundred times a second. Per engine and per step (a rate held
for ``--seconds``):

* offered: the events/s the gateways published; stored: the events/s the database took
  (its ``sources`` counters, read every half second);
* commit lag: from an event's publication to the commit that holds it, the median over
  the first half of the step and over the second half (growing: the collector does not
  keep up);
* the collector's CPU (its processes', in % of one core) and RSS (summed) at the end of
  the step (of all collectors, summed), and how many calls were assembled by then (each record here is a call of its
  own: a collector that keeps up assembles them within a minute);

then the catch-up: seconds from the step's last publication to the database holding it.
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from pathlib import Path

import msgpack
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from bench.collect import family, memory_mib
from bench.delivery import template
from gateway.central.database import Database
from gateway.central.settings import CollectorSettings
from gateway.wire.events import to_wire
from tools.parts import Broker, CollectorProcess, Postgres, how_many, wait_for

TICK = 0.01  # seconds between two rounds of publishing, each followed by the progress
#: At most this many messages published and not yet acknowledged. paho numbers messages
#: in 16 bits and refuses a publish whose number is still outstanding: past 65 535 the
#: simulator would drop events (and the collector rightly asks for them, from gateways that
#: cannot answer). A simulator held back by it offers less, as its figures then say.
WINDOW = 30_000


def simulate(url: str, gateways: int, rate: int, seconds: float, first: int) -> None:
    """Publish ``rate`` events/s for ``seconds``, message ``j`` (from ``first``) by gateway
    ``j % gateways`` with its ``seq`` ``j // gateways + 1``; print ``monotonic count``, the
    count of messages the broker has acknowledged (a message the publisher still holds is
    not offered yet), until it has them all."""
    host, port = url.removeprefix("mqtt://").rsplit(":", 1)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5,
                         client_id=f"fleet-{first}")
    # No in-flight limit of paho's own (WINDOW is it): with one, paho walks every message it
    # holds at each acknowledgement, and a backlog made the simulator quadratic, so slow
    # that the broker dropped it for silence.
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)
    acked = 0

    def on_publish(*_) -> None:
        nonlocal acked
        acked += 1

    client.on_publish = on_publish
    client.connect(host, int(port))
    client.loop_start()
    base = to_wire(template()) | {"src": "pbx", "stream": "fleet"}
    sent, began = 0, time.monotonic()
    total = int(rate * seconds)
    deadline = began + seconds + 600
    while acked < total and time.monotonic() < deadline:
        now = time.monotonic()
        for j in range(first + sent, first + min(total, int((now - began) * rate) + 1, acked + WINDOW)):
            gw, seq = f"g{j % gateways:05d}", j // gateways + 1
            event = base | {"gw": gw, "seq": seq, "callid": f"{gw}-{seq}", "start": base["start"] + seq}
            info = client.publish(f"pbxgw/v1/s{j % gateways:05d}/{gw}/calls", msgpack.packb([event]), qos=1)
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):  # (not connected: sent once it is)
                raise SystemExit(f"the simulator could not publish event {j}: {mqtt.error_string(info.rc)}")
            sent += 1
        print(f"{time.monotonic():.4f} {acked}", flush=True)
        time.sleep(TICK)
    print(f"{time.monotonic():.4f} {acked}", flush=True)
    client.loop_stop()
    client.disconnect()


class Offered:
    """The simulator's progress, read from its output: when each count was reached."""

    def __init__(self, process: subprocess.Popen):
        self.times: list[float] = []
        self.counts: list[int] = []
        self._thread = threading.Thread(target=self._read, args=(process.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            moment, count = line.split()
            self.times.append(float(moment))
            self.counts.append(int(count))

    def when(self, count: int) -> float | None:
        """When the ``count``-th event was published (the first progress line that had it)."""
        at = bisect.bisect_left(self.counts, count)
        return self.times[at] if at < len(self.counts) else None

    def join(self) -> None:
        self._thread.join()


def cpu_seconds(pid: int) -> float:
    """User and system CPU of a process and of those it started."""
    ticks = 0
    for process in family(pid):
        fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def step(broker: Broker, db: Database, collectors: list[CollectorProcess], gateways: int, rate: int,
         seconds: float, first: int) -> str:
    """One rate held for ``seconds``, then the catch-up; the figures, as a line."""
    stored = lambda: int(db.fetch("SELECT coalesce(sum(received), 0) FROM sources")[0][0])  # noqa: E731
    cpu_seconds_all = lambda: sum(cpu_seconds(c.proc.pid) for c in collectors)  # noqa: E731
    simulator = subprocess.Popen([sys.executable, "-m", "bench.fleet", "--simulate", "--url", broker.url,
                                  "--gateways", str(gateways), "--rates", str(rate), "--seconds", str(seconds),
                                  "--first", str(first)], stdout=subprocess.PIPE, text=True)
    offered = Offered(simulator)
    cpu_before, began, before = cpu_seconds_all(), time.monotonic(), stored()
    lags: list[tuple[float, float]] = []  # (moment, lag)
    while simulator.poll() is None:
        time.sleep(0.5)
        now, count = time.monotonic(), stored() - first
        published = offered.when(count) if count > 0 else None
        if published is not None:
            lags.append((now, now - published))
    offered.join()
    ended = time.monotonic()
    cpu = (cpu_seconds_all() - cpu_before) / (ended - began)
    rss = sum(memory_mib(c.proc.pid, "VmRSS") for c in collectors)
    peak = sum(memory_mib(c.proc.pid) for c in collectors)
    stored_then = stored()
    in_step = stored_then - before
    calls = int(db.fetch("SELECT count(*) FROM calls")[0][0])
    total = int(rate * seconds)
    last_published = offered.times[-1]
    wait_for(lambda: stored() >= first + total, timeout=1800, what=f"{first + total} events stored")
    caught_up = time.monotonic() - last_published
    half = began + (ended - began) / 2
    early = [lag for moment, lag in lags if moment < half] or [float("nan")]
    late = [lag for moment, lag in lags if moment >= half] or [float("nan")]
    return (f"  {rate:>6,}/s offered ({total / (last_published - offered.times[0] + 0.1):,.0f} measured): stored "
            f"{in_step / (ended - began):,.0f}/s; commit lag median {statistics.median(early):.2f} s then "
            f"{statistics.median(late):.2f} s; collector CPU {cpu:.0%} of a core, RSS {rss:.0f} MiB "
            f"(peak {peak:.0f}); caught up {caught_up:.1f} s after the last event; "
            f"{calls:,} calls assembled by the step's end of {stored_then:,} records stored (a call each)")


def engine_run(work: Path, broker: Broker, url: str, gateways: int, rates: list[int], seconds: float,
               settings: dict, count: int) -> None:
    """The steps against ``count`` collectors, collector ``i`` taking the sites ``n`` with
    ``n % count == i`` (one collector: every site)."""
    sites = [[f"s{n:05d}" for n in range(i, gateways, count)] if count > 1 else [] for i in range(count)]
    collectors = [CollectorProcess(work / f"collector-{i}", broker.url, url, sites=mine, **settings)
                  for i, mine in enumerate(sites)]
    for collector in collectors:
        collector.start()
    db = Database.open(url)
    try:
        for collector in collectors:
            wait_for(lambda: "subscribed to" in collector.log_text(), what="the collectors to subscribe")
        first = 0
        for rate in rates:
            print(step(broker, db, collectors, gateways, rate, seconds, first), flush=True)
            first += int(rate * seconds)
    finally:
        db.close()
        for collector in collectors:
            collector.kill(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateways", type=how_many, default=5000)
    parser.add_argument("--rates", default="1000,2500,5000", help="events/s per step, comma-separated")
    parser.add_argument("--seconds", type=float, default=30, help="each step's length")
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--collectors", type=how_many, default=1, help="collectors, the sites split between them")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a [collector] setting (TOML value), e.g. --set inflight=1000")
    parser.add_argument("--simulate", action="store_true", help="be the gateways (the benchmark starts this)")
    parser.add_argument("--url", help="with --simulate: the broker")
    parser.add_argument("--first", type=int, default=0, help="with --simulate: the first message's number")
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    # (the collector's own linger, not the tests' shorter one)
    linger = next(f.default for f in dataclasses.fields(CollectorSettings) if f.name == "linger")
    settings = {"linger": f"{linger * 1000:g}ms"}
    settings |= {key: tomllib.loads(f"v = {value}")["v"] for key, value in (kv.split("=", 1) for kv in args.set)}
    if args.simulate:
        simulate(args.url, args.gateways, rates[0], args.seconds, args.first)
        return
    with tempfile.TemporaryDirectory(prefix="pbxgw-bench-fleet-") as tmp:
        work = Path(tmp)
        broker = Broker(work / "broker")
        broker.start()
        try:
            for engine in args.engines.split(","):
                print(f"{engine}: {args.gateways:,} gateways, {args.collectors} collector(s), one event per message, "
                      f"{args.seconds:g} s a step "
                      f"(load average {open('/proc/loadavg').read().split()[0]})", flush=True)
                if engine == "sqlite":
                    engine_run(work / engine, broker, f"sqlite:///{work / 'central.db'}", args.gateways, rates,
                               args.seconds, settings, args.collectors)
                else:
                    cluster = Postgres()
                    cluster.start()
                    try:
                        engine_run(work / engine, broker, cluster.create_database("fleet"), args.gateways, rates,
                                   args.seconds, settings, args.collectors)
                    finally:
                        cluster.close()
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
