"""Assembly benchmark: a busy site's day of records assembled into calls, then a call a
second on top of it, as the collector assembles them.

    python -m bench.assembly [--records 400000] [--live 60] [--engines sqlite,postgresql]

Per engine, each step in a process of its own (its peak RSS its own):

* backlog: a day of an IP Office centre's records (made as bench/report.py makes a month's,
  and stored by a process of its own), then assembled from all pending to none: seconds and
  peak RSS;
* live: then ``--live`` calls, one at a time, each stored and assembled (as the collector
  does every few seconds): the median wall time and CPU time of a pass (this process's:
  on PostgreSQL the server's is not in it), and the peak RSS.

Prints figures, never asserts them.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgpack

from gateway.central import callstore
from gateway.central.database import Database
from gateway.central.ingest import Rows
from bench.report import load, month
from tools.parts import Postgres


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def backlog(url: str) -> str:
    db = Database.open(url, create=False)
    try:
        began = time.perf_counter()
        pieces = 0
        done = False
        while not done:
            _, done = callstore.refresh(db, 1)
            pieces += 1
        seconds = time.perf_counter() - began
        stored, calls = db.fetch("SELECT count(*) FROM events")[0][0], db.fetch("SELECT count(*) FROM calls")[0][0]
    finally:
        db.close()
    return (f"backlog: {stored:,} records -> {calls:,} calls in {pieces} pieces, {seconds:.1f} s, "
            f"peak RSS {peak_mib():.0f} MiB")


def live(url: str, count: int) -> str:
    db = Database.open(url, create=False)
    try:
        last_start, last_seq = db.fetch("SELECT max(start), max(seq) FROM events")[0]
        template = dict(zip(("gw", "src", "stream", "profile", "raw", "ext", "trunk"), db.fetch(
            "SELECT gw, src, stream, profile, raw, ext, trunk FROM events ORDER BY seq DESC LIMIT 1")[0]))
        walls, cpus = [], []
        for n in range(1, count + 1):
            event = {"v": 1, "kind": "call", **template, "seq": last_seq + n, "rx": (last_start + n) * 1000,
                     "start": last_start + n, "ring": 5, "dur": 60, "dir": "in", "caller": "0312", "called": "200",
                     "acct": None, "disp": "answered", "callid": f"live-{n}", "raw": f"{template['raw']} live {n}"}
            rows = Rows()
            rows.add("pbxgw/v1/hq/gw-1/calls", msgpack.packb([event]), 1)
            db.write(rows)
            wall, cpu = time.perf_counter(), time.process_time()
            done = False
            while not done:
                _, done = callstore.refresh(db, 1)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
    finally:
        db.close()
    return (f"live: {count} calls one at a time: a pass {statistics.median(walls) * 1000:.0f} ms "
            f"(CPU {statistics.median(cpus) * 1000:.0f} ms), median; peak RSS {peak_mib():.0f} MiB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=400_000)
    parser.add_argument("--live", type=int, default=60)
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--phase", choices=("load", "backlog", "live"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase == "load":  # (a process of its own: the day's events would count in the next one's RSS)
        load(args.url, month(args.records, days=1))
    elif args.phase:
        print(backlog(args.url) if args.phase == "backlog" else live(args.url, args.live), flush=True)
    if args.phase:
        return 0
    with tempfile.TemporaryDirectory(prefix="pbxgw-bench-assembly-") as tmp:
        for engine in args.engines.split(","):
            cluster = None
            if engine == "sqlite":
                url = f"sqlite:///{Path(tmp) / 'central.db'}"
            else:
                cluster = Postgres()
                cluster.start()
                url = cluster.create_database("bench")
            try:
                for phase in ("load", "backlog", "live"):
                    out = subprocess.run([sys.executable, "-m", "bench.assembly", "--phase", phase, "--url", url,
                                          "--records", str(args.records), "--live", str(args.live)],
                                         capture_output=True, text=True, check=True).stdout
                    if out.strip():
                        print(f"{engine}: {out.strip()}", flush=True)
            finally:
                if cluster is not None:
                    cluster.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
