"""Report benchmark: one month of a 200-agent centre's records (about 300 000, made from
the Avaya IP Office profile's sample records: answered calls, transfer chains, calls
to voicemail, abandoned ones), stored as the collector stores them; then timed, each in
a process of its own as in production, with its peak RSS: assembling them into calls
and their quarter-hour summaries (by a real ``pbxgw collect``) and ``pbxgw report`` for
the month. ``--year`` does the same for a year of ``--sites`` sites (``--records`` each)
and reports one of them over the year. SQLite and PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import msgpack

from bench.collect import memory_mib
from gateway.central.collector import ASSEMBLE_EVERY
from gateway.central.database import Database
from gateway.central.ingest import Rows
from gateway.smdr import profiles
from tools.parts import CollectorProcess, Postgres, free_port, wait_for

AGENTS = 200
FIRST = date(2026, 3, 1)
ZONE = ZoneInfo("Europe/Paris")
#: The sample records used as templates: a call answered at once, a transfer then
#: voicemail (two segments), one that rang out, one straight to voicemail.
TEMPLATES = {"answered": 5, "transferred": (3, 4), "abandoned": 1, "voicemail": 2}
MIX = (("answered", 0.62), ("transferred", 0.2), ("abandoned", 0.1), ("voicemail", 0.08))


def samples() -> list[dict]:
    path = profiles.find("avaya-ipo").expected_path
    return [json.loads(line) for line in path.read_text().splitlines()]


def month(records: int, seed: int = 1, days: int = 30, gw: str = "gw-1") -> list[list[dict]]:
    """About ``records`` call events over ``days`` days from FIRST, weekdays busier, in batches of 100."""
    rnd = random.Random(seed)
    sample = samples()
    per_call = sum(share * (2 if kind == "transferred" else 1) for kind, share in MIX)
    calls = int(records / per_call)
    days = [FIRST + timedelta(days=d) for d in range(days)]
    weights = [1.0 if d.weekday() < 5 else 0.25 for d in days]
    events, seq = [], 0
    for n in range(calls):
        day = rnd.choices(days, weights)[0]
        local = datetime(day.year, day.month, day.day, 8, tzinfo=ZONE) + timedelta(seconds=rnd.betavariate(2, 3) * 11 * 3600)
        start = int(local.timestamp())
        kind = rnd.choices([k for k, _ in MIX], [w for _, w in MIX])[0]
        picks = TEMPLATES[kind] if isinstance(TEMPLATES[kind], tuple) else (TEMPLATES[kind],)
        ext = str(2000 + rnd.randrange(AGENTS))
        for i, index in enumerate(picks):
            seq += 1
            t = dict(sample[index - 1])
            ring, talk = rnd.randint(1, 40), rnd.randint(20, 600)
            # (each record its own bytes: copies of a sample's would be folded as one printed twice)
            t.update(gw=gw, src="pbx", stream="bench", seq=seq, rx=start * 1000 + seq, start=start,
                     raw=f"{t['raw']} #{seq}", callid=str(10_000_000 + n), ring=ring,
                     dur=0 if t["disp"] == "unanswered" else talk,
                     trunk=str(9001 + rnd.randrange(30)), ext=t["ext"] and ext if i == 0 else t["ext"])
            events.append(t)
    return [events[i:i + 100] for i in range(0, len(events), 100)]


def load(url: str, batches: list[list[dict]], site: str = "hq", gw: str = "gw-1") -> None:
    db = Database.open(url)
    try:
        db.migrate()
        status = {"v": 1, "kind": "status", "gw": gw, "site": site, "state": "online", "boot": 1, "rx": 1,
                  "version": "bench", "sources": [{"name": "pbx", "profile": "avaya-ipo", "timezone": "Europe/Paris"}]}
        for i in range(0, len(batches), 50):
            rows = Rows()
            for b in batches[i:i + 50]:
                rows.add(f"pbxgw/v1/{site}/{gw}/calls", msgpack.packb(b), 1)
            db.write(rows)
        rows = Rows()
        rows.add(f"pbxgw/v1/{site}/{gw}/status", msgpack.packb(status), 1)
        db.write(rows)
    finally:
        db.close()


def timed(argv: list[str]) -> tuple[float, float]:
    """Run a process; its wall time in seconds and its peak RSS in MiB."""
    began = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{argv} failed with {proc.returncode}")
    return time.perf_counter() - began, usage.ru_maxrss / 1024


def collector_assembles(work: Path, url: str) -> tuple[float, float]:
    """A real ``pbxgw collect`` on the stored records (its broker away: it assembles all
    the same), until no call is left to assemble nor quarter-hour to summarise: seconds
    from its start (less its first wait of ``ASSEMBLE_EVERY``) and its peak RSS (with its
    reader process, were it started)."""
    collector = CollectorProcess(work / "collector", f"mqtt://127.0.0.1:{free_port()}", url)
    db = Database.open(url, create=False)
    began = time.perf_counter()
    collector.start()
    try:
        wait_for(lambda: not db.fetch("SELECT 1 FROM calls_pending UNION ALL SELECT 1 FROM summaries_due LIMIT 1"),
                 timeout=1800, what="the collector to assemble and summarise the calls")
        seconds = time.perf_counter() - began - ASSEMBLE_EVERY
        return seconds, memory_mib(collector.proc.pid)
    finally:
        collector.kill(signal.SIGTERM)
        db.close()


def run(work: Path, url: str, records: int, sites: int, days: int) -> str:
    # The records are made and stored by a process of its own: a process started from one
    # holding them would count their pages in its own peak RSS (they are its until exec).
    subprocess.run([sys.executable, "-m", "bench.report", "--load", url, "--records", str(records),
                    "--sites", str(sites), "--days", str(days)], check=True)
    db = Database.open(url, create=False)
    stored = db.fetch("SELECT count(*) FROM events")[0][0]
    db.close()
    assemble_s, assemble_rss = collector_assembles(work, url)
    config = work / "collector.toml"
    config.write_text(f'[collector]\ndatabase = "{url}"\n[mqtt]\nurl = "mqtt://127.0.0.1:1"\n')
    last = FIRST + timedelta(days=days - 1)
    report_s, report_rss = timed([sys.executable, "-m", "gateway", "report", "--config", str(config), "--site",
                                  SITE_REPORTED, "--from", FIRST.isoformat(), "--to", last.isoformat(),
                                  "--out", str(work / "out")])
    db = Database.open(url, create=False)
    calls, parts = (db.fetch(f"SELECT count(*) FROM {table}")[0][0] for table in ("calls", "summaries"))
    db.close()
    return (f"{sites} site(s), {days} days: {stored:,} records -> {calls:,} calls, {parts:,} quarter-hour parts: "
            f"assembled and summarised by pbxgw collect in {assemble_s:.1f} s (collector peak RSS "
            f"{assemble_rss:.0f} MiB); report of one site for the {days} days {report_s:.1f} s "
            f"(peak RSS {report_rss:.0f} MiB)")


#: The site reported on (the others are there as a collector of many sites holds them).
SITE_REPORTED = "site-1"


def load_all(url: str, records: int, sites: int, days: int) -> None:
    for n in range(1, sites + 1):
        load(url, month(records, seed=n, days=days, gw=f"gw-{n}"), site=f"site-{n}", gw=f"gw-{n}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--year", action="store_true", help="a year of --sites sites, --records each")
    parser.add_argument("--records", type=int, help="call records a site (default: 300 000; with --year, 40 000)")
    parser.add_argument("--sites", type=int, help="sites (default: 1; with --year, 50)")
    parser.add_argument("--days", type=int, default=30, help=argparse.SUPPRESS)
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--load", metavar="URL", help=argparse.SUPPRESS)  # (the loading process)
    args = parser.parse_args()
    records = args.records or (40_000 if args.year else 300_000)
    sites = args.sites or (50 if args.year else 1)
    days = 365 if args.year else args.days
    if args.load:
        load_all(args.load, records, sites, days)
        return
    with tempfile.TemporaryDirectory(prefix="pbxgw-bench-report-") as tmp:
        work = Path(tmp)
        for engine in args.engines.split(","):
            (work / engine).mkdir()
            if engine == "sqlite":
                url = f"sqlite:///{work / engine / 'central.db'}"
                print(f"sqlite: {run(work / engine, url, records, sites, days)}", flush=True)
            else:
                cluster = Postgres()
                cluster.start()
                try:
                    url = cluster.create_database("report")
                    print(f"postgresql: {run(work / engine, url, records, sites, days)}", flush=True)
                finally:
                    cluster.close()


if __name__ == "__main__":
    main()
