"""Adversarial run against the collector: what one gateway's credentials (or anyone, on a
broker that lets anyone in) can send, and what it costs the centre.

    python -m tools.attack_central [--only NAME ...]

Each attack runs against a fresh collector (SQLite) on a private Mosquitto and prints one
line of figures: what was stored, refused and asked for, the collector's peak RSS (its
processes summed), how long what came after the attack took to be stored. Prints, never
asserts; exit status 0.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgpack
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from bench.collect import memory_mib
from gateway.central.database import Database
from tools.parts import TIMEOUT, Broker, CollectorProcess, wait_for

SITE, GW = "lab", "gw-a"


def call(seq: int, **change) -> dict:
    """A well-formed call event of gateway ``GW``."""
    return {"v": 1, "kind": "call", "gw": GW, "src": "pbx", "stream": "0123456789abcdef", "seq": seq,
            "rx": 1_773_046_800_000 + seq, "profile": "avaya-ipo", "start": 1_773_046_800 + seq, "ring": 3, "dur": 60,
            "dir": "in", "ext": "201", "trunk": "9001", "caller": "0312", "called": "200", "acct": None,
            "disp": "answered", "callid": str(seq), "raw": f"record {seq}", **change}


def status(**change) -> dict:
    return {"v": 1, "kind": "status", "gw": GW, "site": SITE, "state": "online", "boot": 1, "rx": 1_773_046_800_000,
            "version": "1", "sources": [{"name": "pbx", "profile": "avaya-ipo", "timezone": "Europe/Paris"}],
            **change}


class Attacker:
    """A plain MQTT client publishing what the attack says."""

    def __init__(self, broker: Broker):
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="attacker",
                                  protocol=MQTTProtocolVersion.MQTTv5)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def send(self, last: str, value: object, qos: int = 1, retain: bool = False, site: str = SITE) -> None:
        payload = value if isinstance(value, bytes) else msgpack.packb(value)
        info = self.client.publish(f"pbxgw/v1/{site}/{GW}/{last}", payload, qos=qos, retain=retain)
        if qos:
            info.wait_for_publish(TIMEOUT)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Centre:
    """A collector into a fresh SQLite file, and what it holds."""

    def __init__(self, work: Path, broker: Broker, **settings):
        self.url = f"sqlite:///{work / 'central.db'}"
        self.path = work / "central.db"
        self.collector = CollectorProcess(work / "collector", broker.url, self.url, **settings)
        self.collector.start()
        wait_for(lambda: "subscribed to" in self.collector.log_text(), what="the collector to subscribe")
        self.peak = 0.0

    def count(self, sql: str) -> int:
        db = Database.open(self.url)
        try:
            return db.fetch(sql)[0][0]
        except Exception:  # (its tables not made yet)
            return 0
        finally:
            db.close()

    def watch(self, until, timeout: float) -> float:
        """Wait until ``until()`` (or ``timeout``), noting the peak RSS; seconds waited."""
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            self.peak = max(self.peak, memory_mib(self.collector.proc.pid))
            if until():
                break
            time.sleep(0.2)
        self.peak = max(self.peak, memory_mib(self.collector.proc.pid))
        return time.monotonic() - began

    def database_mib(self) -> float:
        """The database's files (its WAL too)."""
        return sum(f.stat().st_size for f in self.path.parent.glob(f"{self.path.name}*")) / 2**20

    def refused(self) -> str:
        kept = self.count("SELECT count(*) FROM rejected")
        dropped = self.count("SELECT COALESCE(SUM(dropped), 0) FROM rejected_counts")
        return f"refused {kept + dropped} ({kept} kept in rejected, {dropped} only counted)"

    def log_count(self, text: str) -> int:
        return self.collector.log_text().count(text)

    def stop(self) -> None:
        self.collector.kill()


def poison(work: Path, broker: Broker) -> str:
    deep: object = "x"
    for _ in range(1_020):
        deep = [deep]
    attacker = Attacker(broker)
    attacker.send("status", status(sources=deep), retain=True)
    centre = Centre(work, broker)
    attacker.send("calls", [call(1)])
    waited = centre.watch(lambda: centre.count("SELECT count(*) FROM events") >= 1, 60)
    attacker.send("status", b"", retain=True)  # (the retained poison cleared for the next attacks)
    attacker.close()
    figures = (f"canary stored {waited:.1f} s after the collector subscribed; rejected rows "
               f"{centre.count('SELECT count(*) FROM rejected')}; reader restarts {centre.log_count('starting another')}")
    centre.stop()
    return figures


def huge_seq(work: Path, broker: Broker) -> str:
    centre = Centre(work, broker, hole_grace="1s")
    attacker = Attacker(broker)
    attacker.send("calls", [call(1), call(2**62)])
    attacker.send("calls", [call(2**53 - 1)])
    centre.watch(lambda: False, 30)
    attacker.close()
    shown = subprocess.run([sys.executable, "-m", "gateway", "fleet", "--config", str(centre.collector.config)],
                           capture_output=True, text=True, timeout=120).stdout
    missing = next((line.strip() for line in shown.splitlines() if "missing" in line), "?")
    figures = (f"stored {centre.count('SELECT count(*) FROM events')}, rejected "
               f"{centre.count('SELECT count(*) FROM rejected')}; replay requests in 30 s "
               f"{centre.log_count('asking for events missing')}; peak RSS {centre.peak:.0f} MiB; fleet: {missing}")
    centre.stop()
    return figures


def flood(work: Path, broker: Broker, payload: bytes, count: int, qos: int) -> str:
    """``count`` messages of ``payload`` on a gateway's calls topic, then a good call: what
    was kept, what it cost, and when the good call was stored."""
    centre = Centre(work, broker)
    attacker = Attacker(broker)
    for _ in range(count):
        attacker.send("calls", payload, qos=qos)
    attacker.send("calls", [call(1)])
    waited = centre.watch(lambda: centre.count("SELECT count(*) FROM events") >= 1, 600)
    attacker.close()
    figures = (f"{count} x {len(payload) / 2**20:.2f} MiB at QoS {qos}: {centre.refused()}, "
               f"database {centre.database_mib():.1f} MiB, peak RSS {centre.peak:.0f} MiB, "
               f"canary after {waited:.1f} s")
    centre.stop()
    return figures


#: 256 KiB of msgpack nils (a gateway's own batch_bytes), 12.5 MiB of them in all.
NILS = msgpack.packb([None] * (256 * 1024 - 5))


def forged_reply(work: Path, broker: Broker) -> str:
    centre = Centre(work, broker, hole_grace="1s")
    attacker = Attacker(broker)
    attacker.send("calls", [call(n) for n in range(1, 51)])
    centre.watch(lambda: centre.count("SELECT count(*) FROM events") >= 50, 60)
    attacker.send("replies", {"v": 1, "id": "c-1", "src": "pbx", "stream": "0123456789abcdef", "first": 51,
                              "last": 1_000_000, "found": 0, "missing": [[51, 1_000_000]]})
    centre.watch(lambda: centre.count("SELECT count(*) FROM rejected") >= 1, 60)
    attacker.close()
    figures = (f"gap rows {centre.count('SELECT count(*) FROM gaps')} (lost at the edge: none), rejected "
               f"{centre.count('SELECT count(*) FROM rejected')}")
    centre.stop()
    return figures


def cross_site(work: Path, broker: Broker) -> str:
    centre = Centre(work, broker)
    attacker = Attacker(broker)
    attacker.send("status", status())
    attacker.send("calls", [call(n) for n in range(1, 11)])
    centre.watch(lambda: centre.count("SELECT count(*) FROM events") >= 10, 60)
    attacker.send("status", status(site="siteB"), site="siteB")
    attacker.send("calls", [call(n) for n in range(11, 31)], site="siteB")
    centre.watch(lambda: centre.count("SELECT count(*) FROM rejected") >= 2, 60)
    attacker.close()
    under_b = centre.count("SELECT count(*) FROM events WHERE site = 'siteB'")
    moved = centre.count("SELECT count(*) FROM gateways WHERE site = 'siteB'")
    figures = (f"calls stored under siteB {under_b}, the gateway's site now {'siteB' if moved else SITE}, "
               f"rejected {centre.count('SELECT count(*) FROM rejected')}")
    centre.stop()
    return figures


def stored_state(work: Path, broker: Broker) -> str:
    centre = Centre(work, broker)
    attacker = Attacker(broker)
    attacker.send("status", status(rx=4_102_444_800_000, state="offline"))  # dated 2100
    attacker.send("status", status(sources=[{"name": "pbx", "profile": "avaya-ipo",
                                              "timezone": "../../../etc/passwd"}]))
    attacker.send("metrics", {"v": 1, "kind": "metrics", "gw": GW, "rx": 1, "up_s": float("nan"), "sources": [],
                              "queue": {}, "broker": {}, "headsets": 0})
    attacker.send("calls", [call(0), call(-5), call(3, caller="=HYPERLINK(\"http://x\",\"y\")",
                                                                    called="+cmd|' /C calc'!A0", ext="@SUM(1)")])
    centre.watch(lambda: centre.count("SELECT count(*) FROM events") >= 1 and
                 centre.count("SELECT count(*) FROM rejected") >= 2, 60)
    attacker.close()
    config = str(centre.collector.config)
    fleet = subprocess.run([sys.executable, "-m", "gateway", "fleet", "--config", config], capture_output=True,
                           text=True, timeout=120)
    out = work / "report"
    report = subprocess.run([sys.executable, "-m", "gateway", "report", "--config", config, "--from", "2026-03-09",
                             "--to", "2026-03-10", "--calls", "--out", str(out)], capture_output=True, text=True, timeout=300)
    formulas = 0
    if (out / "calls.csv").exists():
        formulas = sum(cell.startswith(("=", "+", "@", "-")) for row in csv.reader((out / "calls.csv").open())
                       for cell in row)
    state = next((line.split(": ", 1)[1].split(",")[0] for line in fleet.stdout.splitlines()
                  if line.startswith(GW)), "?")
    figures = (f"fleet exit {fleet.returncode} ({GW} {state}), report exit {report.returncode}"
               f"{' with a traceback' if 'Traceback' in report.stderr + fleet.stderr else ''}; seqs 0 and -5 stored "
               f"{centre.count('SELECT count(*) FROM events WHERE seq <= 0')}; formula cells in calls.csv {formulas}")
    centre.stop()
    return figures


ATTACKS = {
    "poison": poison,
    "huge-seq": huge_seq,
    "nil-flood": lambda work, broker: flood(work, broker, NILS, 50, 1),
    "large-qos1": lambda work, broker: flood(work, broker, msgpack.packb([{"raw": "x" * (10 * 2**20 - 64)}]), 40, 1),
    "large-qos0": lambda work, broker: flood(work, broker, msgpack.packb([{"raw": "x" * (2**20 - 64)}]), 400, 0),
    "forged-reply": forged_reply,
    "cross-site": cross_site,
    "stored-state": stored_state,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", choices=sorted(ATTACKS), help="these attacks only")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pbxgw-attack-") as tmp:
        broker = Broker(Path(tmp) / "broker")
        broker.start()
        try:
            for name in args.only or ATTACKS:
                print(f"{name}: {ATTACKS[name](Path(tmp) / name, broker)}", flush=True)
        finally:
            broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
