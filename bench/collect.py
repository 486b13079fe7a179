"""Collector benchmark: a backlog drained into each database, against the database's own
fastest bulk path, in the same run.

    python -m bench.collect [--events 1000000] [--engines sqlite,postgresql]

Prints figures, never asserts them (shared machines are noisy). Per engine:

* collect: N call events queued at a gateway (as an outage leaves them) are published by
  `pbxgw run` through a local Mosquitto while the collector is away (its session queues
  them), then `pbxgw collect` is started: events/s from the first stored until the
  database holds all N (counted there; the process's start left out), and the collector's
  peak RSS (its processes' peaks, summed) then, and again once it has assembled their
  calls and made their summaries (no records pending, no quarter-hour due), with the
  seconds that took;
* bulk: the same rows (the collector's own, made from the same events) loaded by the
  database's fastest path into an empty database of the same schema, in chunks: one
  ``executemany`` transaction into SQLite, ``COPY`` into PostgreSQL; events/s;
* the ratio of the two.
"""

from __future__ import annotations

import argparse
import signal
import tempfile
import time
from pathlib import Path

import msgpack

from bench.delivery import Counter, fill_queue, idle_source, template
from gateway.central.database import Database, Unavailable
from gateway.central.ingest import EVENT_COLUMNS, Rows
from gateway.wire.events import to_wire
from tools.parts import Broker, CollectorProcess, GatewayProcess, Postgres, wait_for

CHUNK = 50_000  # rows per bulk-load chunk (and per batch of events made for it)


def family(pid: int) -> list[int]:
    """A process and those it started (the collector's reader process, multiprocessing's
    resource tracker)."""
    return [pid, *(int(child) for task in Path(f"/proc/{pid}/task").iterdir()
                   for child in (task / "children").read_text().split())]


def memory_mib(pid: int, field: str = "VmHWM") -> float:
    """A ``/proc/PID/status`` figure of a process and of those it started, summed: their
    peak RSS (``VmHWM``), or their RSS now (``VmRSS``)."""
    total = 0.0
    for process in family(pid):
        for line in Path(f"/proc/{process}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                total += int(line.split()[1]) / 1024
    return total


def collect_round(work: Path, broker: Broker, url: str, events: int) -> tuple[float, float, float, float]:
    """(events/s stored, the collector's peak RSS in MiB when the last was stored, its peak
    RSS when their calls were assembled and summarised, and the seconds from the one to the
    other)."""
    collector = CollectorProcess(work / "collector", broker.url, url)
    collector.start()
    wait_for(lambda: "subscribed to" in collector.log_text(), what="the collector to subscribe")
    collector.kill(signal.SIGTERM)  # away: its session queues the backlog
    gateway = GatewayProcess(work / "gateway", broker.url, [idle_source(work / "gateway")],
                             mqtt={"client_id": f"bench-gw-{work.name}"})
    fill_queue(gateway.state_dir, events)
    counter = Counter(broker.url)
    gateway.start()
    try:
        wait_for(lambda: counter.count >= events, timeout=1800, what=f"{events} events at the broker")
    finally:
        counter.close()
        gateway.kill(signal.SIGTERM)
    db = Database.open(url)
    # (the sources table's counters: counting the events table itself would load the machine)
    stored = lambda: int(db.fetch("SELECT coalesce(sum(received), 0) FROM sources")[0][0])  # noqa: E731
    try:
        collector.start()
        wait_for(lambda: db.schema_version() and stored() > 0, what="the first events stored")
        first, started = stored(), time.perf_counter()
        wait_for(lambda: stored() >= events, timeout=3600, what=f"{events} events stored")
        elapsed = time.perf_counter() - started
        stored_rss = memory_mib(collector.proc.pid)
        assert db.fetch("SELECT count(*) FROM events")[0][0] == events  # each once
        wait_for(lambda: settled(db), timeout=3600, what="the calls assembled and summarised")
        assembled = time.perf_counter() - started - elapsed
        rss = memory_mib(collector.proc.pid)
    finally:
        db.close()
        collector.kill(signal.SIGTERM)
    return (events - first) / elapsed, stored_rss, rss, assembled


def settled(db: Database) -> bool:
    """Whether no record waits to be assembled and no quarter-hour to be summarised; not
    yet when the database is busy (SQLite: a collector assembling a backlog takes the
    write lock piece after piece, and a reader's wait for it may run out)."""
    try:
        return not db.fetch("SELECT count(*) FROM calls_pending")[0][0] \
            and not db.fetch("SELECT count(*) FROM summaries_due")[0][0]
    except Unavailable:
        return False


def bulk_rate(url: str, events: int) -> float:
    """The same rows loaded by the database's own fastest path into an empty database of
    the same schema (its keys and indexes kept up as it fills)."""
    db = Database.open(url)
    db.migrate()
    base = to_wire(template()) | {"gw": "gw-test", "src": "pbx", "stream": "bulk"}
    columns = ", ".join(EVENT_COLUMNS)
    try:
        spent = 0.0
        for first in range(1, events + 1, CHUNK):
            rows = Rows()
            for start in range(first, min(first + CHUNK, events + 1), 100):  # messages as a gateway's
                batch = [base | {"seq": n, "callid": str(n), "start": base["start"] + n} for n in range(start, min(start + 100, events + 1))]
                rows.add("pbxgw/v1/lab/gw-test/calls", msgpack.packb(batch), 0)
            started = time.perf_counter()
            with db.transaction() as cur:
                if db.kind == "postgresql":
                    with cur.copy(f"COPY events ({columns}) FROM STDIN") as copy:
                        for row in rows.events:
                            copy.write_row(row)
                else:
                    cur.executemany(f"INSERT INTO events ({columns}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))})",
                                    rows.events)
            spent += time.perf_counter() - started
        return events / spent
    finally:
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--engines", default="sqlite,postgresql")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pbxgw-bench-") as tmp:
        work = Path(tmp)
        broker = Broker(work / "broker")
        broker.start()
        cluster = None
        try:
            for engine in args.engines.split(","):
                if engine == "sqlite":
                    url = f"sqlite:///{work / 'central.db'}"
                else:
                    cluster = Postgres()
                    cluster.start()
                    url = cluster.create_database("bench")
                rate, stored_rss, rss, assembled = collect_round(work / engine, broker, url, args.events)
                bulk = bulk_rate(f"sqlite:///{work / 'bulk.db'}" if engine == "sqlite" else cluster.create_database("bulk"),
                                 args.events)
                print(f"{engine}: collect {rate:,.0f} events/s ({args.events:,} events drained from the broker, "
                      f"counted in the database), collector peak RSS {stored_rss:.1f} MiB, then {rss:.1f} MiB "
                      f"to the end of assembly and summaries ({assembled:.1f} s after the last stored); bulk "
                      f"{'COPY' if engine == 'postgresql' else 'executemany'} {bulk:,.0f} events/s; "
                      f"collect/bulk {rate / bulk:.0%}", flush=True)
                if cluster:
                    cluster.close()
                    cluster = None
        finally:
            if cluster:
                cluster.close()
            broker.stop()


if __name__ == "__main__":
    main()
