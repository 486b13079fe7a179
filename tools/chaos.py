"""Chaos run: faults of every kind a site box meets, while a PBX prints M unique records;
then count what a central subscriber received.

    python -m tools.chaos --cycles 50 --records 50000 --source file
    python -m tools.chaos --cycles 20 --records 5000 --source pty --faults broker
    python -m tools.chaos --cycles 30 --records 5000 --source file --faults all

Faults (``--faults``, a comma-separated list, or ``all``):

- ``gateway``: ``kill -9`` of the gateway, started again at once;
- ``broker``: a clean broker restart (it keeps the subscriber's session and its queue, as a
  central broker for billing data must be set up);
- ``sighup``: a storm of reloads, each changing the source's settings (so it restarts);
- ``powercut``: ``kill -9``, then the queue's WAL cut back to its size at least
  ``sync_interval`` before (what a power cut leaves: the commits since the last fsync gone);
- ``second``: a second ``pbxgw run`` on the same state directory (it must be refused);
- ``diskfull``: the gateway's small state disk (a tmpfs this run mounts; root only) filled
  for a while, then freed.

Prints `sent`, `received unique`, `duplicates` (the same key again), `re-ingested` (a
record again under a new key: after a power cut a followed file is read again from the
offset that survived), `key collisions` (one key naming two records: must be 0), `gaps
reported` and the records they cover, `lost` (neither received nor in a gap), and for a
pty source how many of those were on the serial line at a kill (written before it, and
after the last record the gateway had committed: its queue's next ``seq``, read after the
kill) or within a power cut's window. Exit status 1 on any collision, on any loss a gap did not report beyond those, on
a second instance that was not refused, and for a followed file on any loss at all.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import subprocess
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

from gateway.commands.simulate import PtyLine
from tools.parts import Broker, GatewayProcess, StateDisk

FAULTS = ("gateway", "broker", "sighup", "powercut", "second", "diskfull")
#: A record written this long before a power cut may have been on the line at the cut.
ON_THE_LINE_S = 1.0
#: The gateway's sync_interval in this run, and how far back a power cut reaches (a margin
#: for the fsync's own lateness).
SYNC_S = 1.0
POWER_CUT_REACH_S = SYNC_S + 0.5
#: The small state disk for ``diskfull``.
DISK_SIZE = "16m"


def record(i: int) -> bytes:
    """A distinct Avaya IP Office SMDR record whose call id is ``i``."""
    return (f"2026/01/15 10:{i // 60 % 60:02}:{i % 60:02},00:00:10,3,0312{i:06},I,200,200,,0,{i},0,"
            f"E200,Agent,T9001,Line 1.1,0,0\r\n").encode()


class Central:
    """A subscriber with a persistent session, counting every delivery by its key."""

    def __init__(self, url: str):
        host, port = url.removeprefix("mqtt://").rsplit(":", 1)
        self.by_key: dict[tuple, int] = {}  # (gw, src, stream, seq) -> call id
        self.callids: set[int] = set()
        self.duplicates = self.reingested = self.collisions = 0
        self.gaps: list[dict] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="chaos-central",
                                  protocol=MQTTProtocolVersion.MQTTv5)
        self.client.on_connect = lambda c, *a: c.subscribe([("pbxgw/v1/+/+/calls", 1), ("pbxgw/v1/+/+/gaps", 1)])
        self.client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.reconnect_delay_set(0.1, 1)
        self.client.connect(host, int(port), clean_start=False, properties=props)
        self.client.loop_start()

    def _on_message(self, client, userdata, message) -> None:
        with self.lock:
            for event in msgpack.unpackb(message.payload, raw=False):
                if event["kind"] == "gap":
                    self.gaps.append(event)
                    continue
                key, callid = (event["gw"], event["src"], event["stream"], event["seq"]), int(event["callid"])
                if key in self.by_key:
                    if self.by_key[key] == callid:
                        self.duplicates += 1
                    else:
                        self.collisions += 1
                    continue
                self.by_key[key] = callid
                if callid in self.callids:
                    self.reingested += 1
                self.callids.add(callid)

    def unique(self) -> int:
        with self.lock:
            return len(self.callids)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class WalWatch:
    """Samples the size of the gateway's queue WAL, to know what a power cut would keep."""

    def __init__(self, wal: Path):
        self.wal, self.samples = wal, []  # (monotonic time, size)
        self._stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                size = self.wal.stat().st_size
            except OSError:
                size = 0
            self.samples = [s for s in self.samples if s[0] > time.monotonic() - 10] + [(time.monotonic(), size)]

    def durable_size(self) -> int:
        """The size the WAL had POWER_CUT_REACH_S ago (never more than it has now)."""
        then = [size for at, size in self.samples if at <= time.monotonic() - POWER_CUT_REACH_S]
        now = self.samples[-1][1] if self.samples else 0
        return min(then[-1] if then else 0, now)

    def stop(self) -> None:
        self._stop.set()


def committed_next_seq(state_dir: Path, src: str) -> int:
    """The next ``seq`` a stopped gateway's queue had committed for ``src`` (1: none)."""
    db = sqlite3.connect(f"file:{state_dir / 'queue.db'}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT next_seq FROM sources WHERE name = ?", (src,)).fetchone()
    finally:
        db.close()
    return row[0] if row else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--source", choices=("file", "pty"), default="file")
    parser.add_argument("--faults", default="gateway,broker",
                        help=f"comma-separated, of {', '.join(FAULTS)}; or all (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--stall", type=float, default=30.0,
                        help="stop waiting for the last events after this many seconds without progress")
    args = parser.parse_args(argv)
    faults = list(FAULTS) if args.faults == "all" else args.faults.split(",")
    if unknown := set(faults) - set(FAULTS):
        parser.error(f"--faults: unknown {', '.join(sorted(unknown))}; expected {', '.join(FAULTS)} or all")
    rng = random.Random(args.seed)

    with tempfile.TemporaryDirectory(prefix="pbxgw-chaos-") as tmp:
        work = Path(tmp)
        disk = None
        if "diskfull" in faults:
            try:
                disk = StateDisk(work / "gateway" / "state", DISK_SIZE)
            except OSError as exc:
                print(f"no diskfull faults: cannot mount a tmpfs here ({exc})", file=sys.stderr)
                faults.remove("diskfull")
        broker = Broker(work / "broker")
        broker.start()
        central = Central(broker.url)
        if args.source == "file":
            capture = work / "smdr.log"
            capture.touch()
            source = {"name": "pbx", "type": "file", "path": str(capture), "follow": True,
                      "poll_interval": "50ms", "profile": "avaya-ipo", "read_delay": "100ms"}
        else:
            line = PtyLine()
            source = {"name": "pbx", "type": "serial", "device": line.path, "profile": "avaya-ipo",
                      "backoff_min": "50ms", "backoff_max": "200ms", "read_delay": "100ms"}
        gateway = GatewayProcess(work / "gateway", broker.url, [source], mqtt={"backoff_max": "1s"},
                                 queue={"sync_interval": f"{SYNC_S}s", "max_bytes": "4MiB"})
        starts = 0

        def start_gateway() -> None:
            nonlocal starts
            gateway.start()
            starts += 1
            deadline = time.monotonic() + 30
            while gateway.log_text().count("pbxgw started") < starts and time.monotonic() < deadline:
                time.sleep(0.02)

        wal = None
        try:
            start_gateway()
            wal = WalWatch(gateway.state_dir / "queue.db-wal")

            written_at: list[float] = [0.0] * (args.records + 1)  # when its write began
            duration = args.cycles * 0.8

            def write_all() -> None:
                per_write = max(1, args.records // max(1, int(duration * 50)))
                pause = duration / max(1, args.records / per_write)
                out = open(capture, "ab", buffering=0) if args.source == "file" else None
                for first in range(1, args.records + 1, per_write):
                    ids = range(first, min(first + per_write, args.records + 1))
                    data = b"".join(record(i) for i in ids)
                    now = time.monotonic()
                    for i in ids:
                        written_at[i] = now
                    if out:
                        out.write(data)
                    else:
                        line.write(data)
                    time.sleep(pause)
                if out:
                    out.close()

            writer = threading.Thread(target=write_all)
            writer.start()
            done: dict[str, int] = dict.fromkeys(faults, 0)
            kills: list[tuple[float, int]] = []  # gateway kills: when, and the next seq committed then
            cuts: list[float] = []
            refused_second = 0
            delay = "100ms"
            # Every kind of fault in each round of len(faults) cycles, in a random order.
            schedule = [f for _ in range(0, args.cycles, len(faults)) for f in rng.sample(faults, len(faults))]
            for fault in schedule[:args.cycles]:
                time.sleep(rng.uniform(0.3, 1.3))
                done[fault] += 1
                if fault in ("gateway", "powercut"):
                    keep = wal.durable_size()
                    gateway.kill(signal.SIGKILL)
                    if fault == "gateway":
                        kills.append((time.monotonic(), committed_next_seq(gateway.state_dir, "pbx")))
                    else:
                        cuts.append(time.monotonic())
                        path = gateway.state_dir / "queue.db-wal"
                        if path.exists() and path.stat().st_size > keep:
                            os.truncate(path, keep)
                        # The WAL index in shared memory does not survive a power cut either.
                        (gateway.state_dir / "queue.db-shm").unlink(missing_ok=True)
                    start_gateway()
                elif fault == "broker":
                    broker.stop()
                    time.sleep(rng.uniform(0, 1))
                    broker.start()
                elif fault == "sighup":
                    for _ in range(rng.randint(2, 5)):
                        new = "50ms" if delay == "100ms" else "100ms"
                        gateway.config.write_text(gateway.config.read_text().replace(
                            f'read_delay = "{delay}"', f'read_delay = "{new}"'))
                        delay = new
                        gateway.proc.send_signal(signal.SIGHUP)
                        time.sleep(rng.uniform(0.02, 0.2))
                elif fault == "second":
                    second = subprocess.run([sys.executable, "-m", "gateway", "run", "--config", str(gateway.config)],
                                            capture_output=True, text=True, timeout=60)
                    refused_second += second.returncode == 78 and "another pbxgw" in second.stderr
                else:
                    disk.fill()
                    time.sleep(rng.uniform(0.5, 2))
                    disk.free()
            writer.join()

            last, last_change = -1, time.monotonic()
            while central.unique() < args.records and time.monotonic() - last_change < args.stall:
                time.sleep(0.2)
                if central.unique() != last:
                    last, last_change = central.unique(), time.monotonic()
        finally:  # whatever happened, nothing of this run is left running
            if wal:
                wal.stop()
            if args.source == "pty":
                line.close()
            if gateway.proc and gateway.proc.poll() is None:
                gateway.kill(signal.SIGTERM)
            central.close()
            broker.stop()
            if disk:
                disk.close()

    lost_ids = set(range(1, args.records + 1)) - central.callids
    # At a kill, the records on the line are those written before it and after the last one
    # committed (records are read in order: the last committed is the highest call id
    # received under a seq below the queue's next).
    committed = [(at, max((callid for key, callid in central.by_key.items() if key[3] < next_seq), default=0))
                 for at, next_seq in kills]
    on_line = {i for i in lost_ids if any(written_at[i] <= at and i > last for at, last in committed)
               or any(0 <= c - written_at[i] <= POWER_CUT_REACH_S + ON_THE_LINE_S for c in cuts)}
    # A lost record's key is not known; with a serial line a gap's seq numbers are those the
    # records would have had, so lost records are matched to gaps by count.
    gap_count = sum(g["count"] for g in central.gaps)
    print(f"source {args.source}: {args.cycles} cycles: "
          + ", ".join(f"{n} {f}" for f, n in done.items()))
    figures = {"sent": args.records, "received unique": len(central.callids), "duplicates": central.duplicates,
               "re-ingested": central.reingested, "key collisions": central.collisions,
               "gaps reported": len(central.gaps), "records in gaps": gap_count, "lost": len(lost_ids),
               "second instances refused": refused_second}
    if args.source == "pty":
        figures["lost on the line at a kill or in a power cut's window"] = len(on_line)
    for name, value in figures.items():
        print(f"{name} {value}")
    ok = not central.collisions and refused_second == done.get("second", 0)
    if args.source == "file":
        ok = ok and not lost_ids and (not central.reingested or cuts)
    else:
        ok = ok and len(lost_ids - on_line) <= gap_count
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
