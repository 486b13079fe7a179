"""``pbxgw report``: a site's calls and service level over a range of dates, as a page and CSV."""

from __future__ import annotations

import argparse
from contextlib import closing, nullcontext
from datetime import date
from pathlib import Path

from gateway.central.settings import DEFAULT_CONFIG
from gateway.errors import GatewayError

#: The longest range one report covers.
MOST_DAYS = 366


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD; got {text!r}") from None


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="a site's calls and service level, as report.html and CSV",
                       description="Assembles the calls of the records stored since the collector last did, "
                       "and their quarter-hour summaries, then writes DIR/report.html (one self-contained "
                       "page: definitions, summary, charts, tables per extension, per number called and per "
                       "agent), summary.json (every summary figure under a stable key) and extensions.csv, "
                       "intervals.csv, days.csv, numbers.csv, groups.csv (and, with --calls, calls.csv), for "
                       "the local dates FROM to TO (inclusive) of the site, in its time zone. The definitions "
                       "(answer threshold, service-level formula, short-abandon cut, business hours) are "
                       "[kpi] of the collector config.")
    p.add_argument("--config", default=DEFAULT_CONFIG, help="collector config (default: %(default)s)")
    p.add_argument("--site", help="the site (default: the only site in the database)")
    p.add_argument("--from", dest="first", type=_date, required=True, metavar="DATE", help="first day, YYYY-MM-DD")
    p.add_argument("--to", dest="last", type=_date, metavar="DATE", help="last day, YYYY-MM-DD (default: --from)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="directory to write into (made if missing)")
    p.add_argument("--calls", action="store_true",
                   help="also write calls.csv, one row a call (the figures are read from quarter-hour summaries: "
                   "the calls are read only for this)")
    p.add_argument("--mask-numbers", action="store_true",
                   help="show callers' and called numbers masked to their last 4 digits (for readers who need none)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gateway.central import require_extra

    require_extra("report", ("orjson", "matplotlib"))
    from zoneinfo import ZoneInfo

    from gateway.central import report, settings
    from gateway.central.database import Database
    from gateway.central.kpi import local_range

    last = args.last or args.first
    if last < args.first:
        raise GatewayError(f"--to {last} is before --from {args.first}")
    if (last - args.first).days >= MOST_DAYS:
        raise GatewayError(f"at most {MOST_DAYS} days in one report; got {(last - args.first).days + 1}")
    config = settings.load(args.config)
    db = Database.open(config.database, create=False)
    progress = report.terminal_progress()
    try:
        if db.schema_version() < 2:
            print("the database has no calls table yet: has `pbxgw collect` (this version) run on it?")
            return 1
        sites = [s for (s,) in db.fetch("SELECT DISTINCT site FROM sources WHERE kind = 'pbx' ORDER BY site")]
        known = ', '.join(sites) or '(none: no record stored yet)'
        site = args.site or (sites[0] if len(sites) == 1 else None)
        if site is None:
            raise GatewayError(f"--site: expected one of {known}")
        if site not in sites:
            raise GatewayError(f"no record of site {site!r} is stored; sites: {known}")
        figures, zone_from = report.build(db, site, args.first, last, config.kpi, progress)
        figures.privacy, figures.masked = config.privacy.described(), args.mask_numbers
        start, end = local_range(args.first, last, ZoneInfo(figures.zone))
        # (the calls' read ends before the database closes)
        with closing(report.calls(db, site, start, end)) if args.calls else nullcontext() as calls:
            try:
                written = report.write(args.out, figures, calls, zone_from, progress)
            except OSError as exc:
                raise GatewayError(f"cannot write into {args.out}: {exc.strerror or exc}") from None
    finally:
        progress("")
        db.close()
    print(f"{written.calls} calls of site {site} ({args.first} to {last}, {figures.zone}): {written.html}")
    for name, value in report.summary(figures)[:6]:
        print(f"  {name}: {value}")
    return 0
