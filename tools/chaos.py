"""Chaos run: random `kill -9` of the gateway and broker restarts while a PBX prints M
unique records; then count what a central subscriber received.

    python -m tools.chaos --cycles 50 --records 50000 --source file
    python -m tools.chaos --cycles 20 --records 5000 --source pty --faults broker

Prints `sent`, `received unique`, `duplicates`, `lost` (and, for a pty source with gateway
kills, how many of the lost were on the serial line at a kill: read from the pty but not yet
committed, or written just before). Exit status 1 if anything was lost that the
at-least-once contract does not allow, or if a record was ingested twice.

Broker restarts are clean stops (SIGTERM): the broker keeps the subscriber's session and
what it queued for it, as a central broker for billing data must be set up. A broker
`kill -9` loses what the broker itself had not saved, which no publisher can prevent.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import msgpack
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.simulate import PtyLine
from tools.parts import Broker, GatewayProcess

#: A record written this long before a gateway kill may have been on the line at the kill.
ON_THE_LINE_S = 1.0


def record(i: int) -> bytes:
    """A distinct Avaya IP Office SMDR record whose call id is ``i``."""
    return (f"2026/01/15 10:{i // 60 % 60:02}:{i % 60:02},00:00:10,3,0312{i:06},I,200,200,,0,{i},0,"
            f"E200,Agent,T9001,Line 1.1,0,0\r\n").encode()


class Central:
    """A subscriber with a persistent session, counting every delivery."""

    def __init__(self, url: str):
        host, port = url.removeprefix("mqtt://").rsplit(":", 1)
        self.by_seq: dict[int, int] = {}  # seq -> call id
        self.callids: set[int] = set()
        self.duplicates = 0
        self.twice_ingested = 0
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="chaos-central",
                                  protocol=MQTTProtocolVersion.MQTTv5)
        self.client.on_connect = lambda c, *a: c.subscribe("pbxgw/v1/+/+/calls", qos=1)
        self.client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.reconnect_delay_set(0.1, 1)
        self.client.connect(host, int(port), clean_start=False, properties=props)
        self.client.loop_start()

    def _on_message(self, client, userdata, message) -> None:
        with self.lock:
            for event in msgpack.unpackb(message.payload, raw=False):
                seq, callid = event["seq"], int(event["callid"])
                if seq in self.by_seq:
                    self.duplicates += 1
                    continue
                self.by_seq[seq] = callid
                if callid in self.callids:
                    self.twice_ingested += 1
                self.callids.add(callid)

    def unique(self) -> int:
        with self.lock:
            return len(self.callids)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--source", choices=("file", "pty"), default="file")
    parser.add_argument("--faults", choices=("both", "gateway", "broker"), default="both")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--stall", type=float, default=30.0,
                        help="stop waiting for the last events after this many seconds without progress")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)

    with tempfile.TemporaryDirectory(prefix="pbxgw-chaos-") as tmp:
        work = Path(tmp)
        broker = Broker(work / "broker")
        broker.start()
        central = Central(broker.url)
        if args.source == "file":
            capture = work / "smdr.log"
            capture.touch()
            source = {"name": "pbx", "type": "file", "path": str(capture), "follow": True,
                      "poll_interval": "50ms", "profile": "avaya-ipo"}
        else:
            line = PtyLine()
            source = {"name": "pbx", "type": "serial", "device": line.path, "profile": "avaya-ipo",
                      "backoff_min": "50ms", "backoff_max": "200ms"}
        gateway = GatewayProcess(work / "gateway", broker.url, [source], mqtt={"backoff_max": "1s"})
        gateway.start()

        written_at: list[float] = [0.0] * (args.records + 1)
        duration = args.cycles * 0.8

        def write_all() -> None:
            per_write = max(1, args.records // max(1, int(duration * 50)))
            pause = duration / max(1, args.records / per_write)
            out = open(capture, "ab", buffering=0) if args.source == "file" else None
            for first in range(1, args.records + 1, per_write):
                ids = range(first, min(first + per_write, args.records + 1))
                data = b"".join(record(i) for i in ids)
                if out:
                    out.write(data)
                else:
                    line.write(data)
                now = time.monotonic()
                for i in ids:
                    written_at[i] = now
                time.sleep(pause)
            if out:
                out.close()

        writer = threading.Thread(target=write_all)
        writer.start()
        kills: list[float] = []
        for _ in range(args.cycles):
            time.sleep(rng.uniform(0.3, 1.3))
            fault = args.faults if args.faults != "both" else rng.choice(("gateway", "broker"))
            if fault == "gateway":
                gateway.kill(signal.SIGKILL)
                kills.append(time.monotonic())
                gateway.start()
            else:
                broker.stop()
                time.sleep(rng.uniform(0, 1))
                broker.start()
        writer.join()

        last, last_change = -1, time.monotonic()
        while central.unique() < args.records and time.monotonic() - last_change < args.stall:
            time.sleep(0.2)
            if central.unique() != last:
                last, last_change = central.unique(), time.monotonic()
        if args.source == "pty":
            line.close()
        gateway.kill(signal.SIGTERM)
        central.close()
        broker.stop()

    lost_ids = set(range(1, args.records + 1)) - central.callids
    on_line = {i for i in lost_ids if any(0 <= k - written_at[i] <= ON_THE_LINE_S for k in kills)}
    print(f"source {args.source}, faults {args.faults}: {args.cycles} cycles, {len(kills)} gateway kills, "
          f"{args.cycles - len(kills)} broker restarts")
    print(f"sent {args.records}")
    print(f"received unique {len(central.callids)}")
    print(f"duplicates {central.duplicates}")
    print(f"lost {len(lost_ids)}")
    if args.source == "pty":
        print(f"lost on the serial line at a gateway kill {len(on_line)}")
    print(f"ingested twice {central.twice_ingested}")
    allowed = on_line if args.source == "pty" else set()
    return 0 if lost_ids <= allowed and not central.twice_ingested else 1


if __name__ == "__main__":
    sys.exit(main())
