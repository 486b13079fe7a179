"""Central chaos run: a gateway following a file as a PBX writes M unique records, a broker
with persistence off, a collector into a private PostgreSQL, and faults of each kind in a
random order; then count what the database holds.

    python -m tools.chaos_central --cycles 50 --records 50000

Faults, one per cycle, every kind in each round of four: ``kill -9`` of the gateway, of the
broker (it loses every message it held, and the collector's session: only replays from the
gateway's archive bring them back), of the collector, and a PostgreSQL restart. Prints
`sent`, `stored unique` (records, by call id), `stored again under a new key` (a followed
file is read again from the offset that survived a kill), `duplicates absorbed` (events
the collector found stored already, from its log), `replay requests`, `lost at the edge`
`lost` (never stored; the gaps' reasons follow), `calls` (the collector's assembled calls: one per call id) and
`records in calls` (every stored record, once), and whether the quarter-hour summaries the
collectors made give each site the report its calls give. Exit status 1 on any loss, a
record in no call or a call too many, or a summary that disagrees.

``--collectors 2`` runs a second collector on the same database, every message to both: the
two store the same events, assemble the same calls and make the same summaries at once (a
collector killed is one of them, at random).
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from gateway.central import kpi, report, summary
from gateway.central.database import Database, Unavailable, json_value
from tools.chaos import record
from tools.parts import Broker, CollectorProcess, GatewayProcess, Postgres, how_many, wait_for

FAULTS = ("gateway", "broker", "collector", "postgresql")


def stored_callids(url: str) -> tuple[set[int], int]:
    """(the call ids stored, how many rows), or nothing while the database is away."""
    try:
        db = Database.open(url)
    except Unavailable:
        return set(), 0
    try:
        rows = db.fetch("SELECT callid FROM events")
    except Unavailable:
        return set(), 0
    finally:
        db.close()
    return {int(c) for (c,) in rows}, len(rows)


def summaries_agree(db: Database) -> bool:
    """Whether each site's report put together from the stored quarter-hour summaries is
    the report of its calls, over the days its calls span (UTC, the default settings)."""
    settings = kpi.KpiSettings()
    for (site,) in db.fetch("SELECT DISTINCT site FROM calls"):
        first, last = (datetime.fromtimestamp(ts, timezone.utc).date() for ts in
                       db.fetch("SELECT min(start), max(start) FROM calls WHERE site = ?", (site,))[0])
        start, end = kpi.local_range(first, last, ZoneInfo("UTC"))
        from_summaries = kpi.report_of(summary.stored(db, site, start, end), site, "UTC", first, last, settings)
        if from_summaries != kpi.report(list(report.calls(db, site, start, end)), site, "UTC", first, last, settings):
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=how_many, default=50)
    parser.add_argument("--records", type=how_many, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--collectors", type=how_many, default=1, help="collectors on the one database, each taking "
                        "every message")
    parser.add_argument("--stall", type=float, default=300.0,
                        help="stop waiting for the last records after this many seconds without progress")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="pbxgw-chaos-central-") as tmp:
        work = Path(tmp)
        broker = Broker(work / "broker", persistence=False)
        cluster = Postgres()
        capture = work / "smdr.log"
        capture.touch()
        source = {"name": "pbx", "type": "file", "path": str(capture), "follow": True, "poll_interval": "50ms",
                  "profile": "avaya-ipo", "timezone": "UTC", "clock_skew": "0s"}
        gateway = GatewayProcess(work / "gateway", broker.url, [source], mqtt={"backoff_max": "1s"},
                                 gateway={"metrics_interval": "1s"})
        collectors: list[CollectorProcess] = []
        done = dict.fromkeys(FAULTS, 0)
        try:
            broker.start()
            cluster.start()
            url = cluster.create_database("central")
            collectors = [CollectorProcess(work / f"collector-{i}", broker.url, url, hole_grace="2s")
                          for i in range(args.collectors)]
            for collector in collectors:
                collector.start()
                wait_for(lambda: "subscribed to" in collector.log_text(), what="the collector to subscribe")
            gateway.start()
            duration = args.cycles * 1.0

            def write_all() -> None:
                per_write = max(1, args.records // max(1, int(duration * 20)))
                pause = duration / max(1, args.records / per_write)
                with open(capture, "ab", buffering=0) as out:
                    for first in range(1, args.records + 1, per_write):
                        out.write(b"".join(record(i) for i in range(first, min(first + per_write, args.records + 1))))
                        time.sleep(pause)

            writer = threading.Thread(target=write_all)
            writer.start()
            schedule = [f for _ in range(0, args.cycles, len(FAULTS)) for f in rng.sample(FAULTS, len(FAULTS))]
            for fault in schedule[:args.cycles]:
                time.sleep(rng.uniform(0.3, 1.3))
                done[fault] += 1
                if fault == "gateway":
                    gateway.kill(signal.SIGKILL)
                    gateway.start()
                elif fault == "broker":
                    broker.stop(signal.SIGKILL)
                    broker.start()
                elif fault == "collector":
                    collector = rng.choice(collectors)
                    collector.kill(signal.SIGKILL)
                    collector.start()
                else:
                    cluster.stop()
                    time.sleep(rng.uniform(0, 2))
                    cluster.start()
            writer.join()
            last, last_change = -1, time.monotonic()
            while time.monotonic() - last_change < args.stall:
                unique, _ = stored_callids(url)
                if len(unique) >= args.records:
                    break
                if len(unique) != last:
                    last, last_change = len(unique), time.monotonic()
                time.sleep(1)
            unique, rows = stored_callids(url)
            db = Database.open(url)
            try:
                at_edge = db.fetch("SELECT coalesce(sum(count), 0) FROM gaps")[0][0]
                edge_reasons = db.fetch("SELECT reason, sum(count) FROM gaps GROUP BY reason ORDER BY reason")
                # The collector assembles what it stored (each record a call of its own id;
                # a copy under a new key joins its call): nothing pending, each record once.
                wait_for(lambda: not db.fetch("SELECT 1 FROM calls_pending LIMIT 1"), timeout=args.stall,
                         what="the collector to assemble every call")
                calls = db.fetch("SELECT records FROM calls")
                in_calls = sum(len(json_value(records)) for (records,) in calls)
                wait_for(lambda: not db.fetch("SELECT 1 FROM summaries_due LIMIT 1"), timeout=args.stall,
                         what="the collector to make every summary")
                agree = summaries_agree(db)
            finally:
                db.close()
        finally:  # whatever happened, nothing of this run is left running
            for part in (gateway, *collectors):
                if part.proc and part.proc.poll() is None:
                    part.kill(signal.SIGTERM)
            broker.stop(signal.SIGKILL)
            cluster.close()
        log = "".join(collector.log_text() for collector in collectors)
    absorbed = sum(int(line.split(": INFO: ")[1].split()[0]) for line in log.splitlines()
                   if "duplicates absorbed (events stored already" in line)
    lost = set(range(1, args.records + 1)) - unique
    print(f"{args.cycles} cycles: " + ", ".join(f"{n} {f} kill -9" if f != "postgresql" else f"{n} PostgreSQL restarts"
                                                for f, n in done.items()))
    figures = {"sent": args.records, "stored unique": len(unique), "stored again under a new key": rows - len(unique),
               "duplicates absorbed": absorbed, "replay requests": log.count("asking for events missing"),
               "lost at the edge": at_edge, "lost": len(lost), "calls": len(calls), "records in calls": in_calls,
               "summaries agree with the calls": agree}
    for name, value in figures.items():
        print(f"{name} {value}")
    for reason, count in edge_reasons:  # (what a gap says: a loss, or numbers never used)
        print(f"  lost at the edge, {reason}: {count}")
    return 1 if lost or len(calls) != len(unique) or in_calls != rows or not agree else 0


if __name__ == "__main__":
    sys.exit(main())
