"""The README's demo, the whole path: a simulated Avaya IP Office serving on its SMDR TCP
port the calls of a busy contact centre's last 30 minutes (`pbxgw simulate --traffic`: a
few hundred calls of today, answered, abandoned, to voicemail, transferred, outbound, each
printed once), the gateway reading them into its disk queue and publishing
to a local Mosquitto, `pbxgw subscribe` printing the decoded events as they arrive, and
`pbxgw collect` storing them in a SQLite database, of which `pbxgw fleet` prints the summary
at the end; then `pbxgw report` builds the report of the calls it stored
(``demo-report/report.html``; the demo counts every hour as business hours, as the calls
are drawn at whatever hour it runs).

Run it with `make demo`; it stops by itself once every record is stored (about 20
seconds), or on Ctrl-C.
"""

import json
import signal
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from gateway.central.database import Database
from tools.parts import Broker, CollectorProcess, GatewayProcess, wait_for

PROFILE = "avaya-ipo"
REPORT = Path("demo-report")  # kept after the demo, beside where it ran
TRAFFIC = ["--last", "30m", "--agents", "24", "--calls-per-hour", "400"]
RATE = 40  # lines per second


def main() -> int:
    pbxgw = [sys.executable, "-m", "gateway"]
    with tempfile.TemporaryDirectory(prefix="pbxgw-demo-") as tmp:
        work = Path(tmp)
        broker = Broker(work / "broker")
        broker.start()
        truth = work / "truth.jsonl"
        simulator = subprocess.Popen([*pbxgw, "simulate", "--traffic", "--profile", PROFILE, "--tcp", "127.0.0.1:0",
                                      *TRAFFIC, "--rate", str(RATE), "--truth", str(truth)],
                                     stdout=subprocess.PIPE, text=True)
        pbx = simulator.stdout.readline().strip()
        host, _, port = pbx.rpartition(":")
        calls = [json.loads(line) for line in truth.read_text().splitlines()]
        events = sum(len(call["legs"]) for call in calls)  # IP Office prints a record per leg
        source = {"name": "pbx1", "type": "tcp-client", "host": host, "port": int(port), "profile": PROFILE,
                  "timezone": "UTC"}
        gateway = GatewayProcess(work / "gateway", broker.url, [source])
        database = f"sqlite:///{work / 'central.db'}"
        collector = CollectorProcess(work / "collector", broker.url, database, kpi={"business_hours": "always"})
        collector.start()
        wait_for(lambda: "subscribed to" in collector.log_text(), what="the collector to subscribe")
        subscriber = subprocess.Popen([*pbxgw, "subscribe", "--broker", broker.url, "--count", str(events)])
        print(f"demo: broker {broker.url}, PBX serving {len(calls)} calls ({events} records) on {pbx}, "
              f"gateway log {gateway.log}\n"
              f"demo: the gateway's state meanwhile: pbxgw status --config {gateway.config}\n"
              f"demo: events as the central side receives them (Ctrl-C stops):", file=sys.stderr, flush=True)
        gateway.start()
        try:
            status = subscriber.wait()
            if status == 0:
                stored = _stored(database, events)
                print(f"\ndemo: the collector's database, as pbxgw fleet --config {collector.config} shows it:",
                      file=sys.stderr, flush=True)
                subprocess.run([*pbxgw, "fleet", "--config", str(collector.config)], check=False)
                print(f"demo: {stored} call records stored in {database}", file=sys.stderr)
                first, last = _dates(database)
                print("\ndemo: the report of those calls, as pbxgw report builds it:", file=sys.stderr, flush=True)
                status = subprocess.run([*pbxgw, "report", "--config", str(collector.config), "--from", first,
                                         "--to", last, "--out", str(REPORT)], check=False).returncode
                if status == 0:
                    print(f"demo: open {(REPORT / 'report.html').resolve()} in a browser", file=sys.stderr)
            return status
        except KeyboardInterrupt:
            return 130
        finally:
            for proc in (subscriber, simulator):
                proc.kill()
                proc.wait()
            gateway.kill(signal.SIGTERM)
            collector.kill(signal.SIGTERM)
            broker.stop()


def _stored(database: str, events: int) -> int:
    """The calls in the collector's database once it has all ``events`` (bounded wait)."""
    db = Database.open(database)
    try:
        count = lambda: db.fetch("SELECT count(*) FROM events")[0][0]  # noqa: E731
        wait_for(lambda: count() >= events, what=f"the collector to store {events} events")
        return db.fetch("SELECT count(*) FROM events WHERE kind = 'call'")[0][0]
    finally:
        db.close()


def _dates(database: str) -> tuple[str, str]:
    """The first and last (UTC: the demo's PBX prints UTC) dates of the calls stored."""
    db = Database.open(database)
    try:
        first, last = db.fetch("SELECT min(start), max(start) FROM events WHERE kind = 'call'")[0]
    finally:
        db.close()
    return tuple(datetime.fromtimestamp(t, timezone.utc).date().isoformat() for t in (first, last))


if __name__ == "__main__":
    sys.exit(main())
