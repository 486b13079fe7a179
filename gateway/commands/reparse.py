"""``pbxgw reparse``: a source's stored records read again with a fixed profile."""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timezone

from gateway.central.settings import DEFAULT_CONFIG
from gateway.common.printable import printable
from gateway.common.zones import known_zone
from gateway.errors import GatewayError


def _moment(text: str) -> int:
    """ms since the epoch of an ISO date or time (UTC unless it says its offset)."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date or time such as 2026-11-23 or 2026-11-23T08:00Z; "
                                         f"got {text!r}") from None
    return int((at if at.tzinfo else at.replace(tzinfo=timezone.utc)).timestamp() * 1000)


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reparse", help="read a source's stored records again with a fixed profile",
                       description="Parses again, with --profile (default: the profile that read them), the "
                       "records of one source stored in the collector's database that no profile could read (with "
                       "--all: every record), received since --since; those that now read become calls (the row "
                       "as it was is kept in the reparsed table), and their calls are assembled again, so the next "
                       "report counts them. The source's time zone is the one its gateway's status gives.")
    p.add_argument("--config", default=DEFAULT_CONFIG, help="collector config (default: %(default)s)")
    p.add_argument("--site", required=True, help="the site")
    p.add_argument("--src", required=True, help="the source, as its gateway names it")
    p.add_argument("--gw", help="the gateway (needed only when several of the site have a source of that name)")
    p.add_argument("--profile", help="the fixed profile: a bundled name, or a path to a profile directory or "
                   "profile.toml (default: the profile that read them)")
    p.add_argument("--since", type=_moment, metavar="TIME", help="only records received since then "
                   "(YYYY-MM-DD or an ISO time; UTC unless it says)")
    p.add_argument("--all", action="store_true", help="every record, those read as calls too (a profile fix "
                   "that changes how calls read)")
    p.add_argument("--timezone", help="the PBX's zone, when no gateway status gives it")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gateway.central import require_extra

    require_extra("reparse", ("orjson",))
    from gateway.central import report, reparse, settings
    from gateway.central.database import Database
    from gateway.commands.common import find_profile
    from gateway.smdr import profiles

    config = settings.load(args.config)
    db = Database.open(config.database, create=False)
    progress = report.terminal_progress()
    try:
        if db.schema_version() < 3:
            raise GatewayError("the database is older than this version: run `pbxgw collect --migrate-only` first")
        gateways = reparse.sources_of(db, args.site, args.src)
        if args.gw:
            gateways = [gw for gw in gateways if gw == args.gw]
        if not gateways:
            raise GatewayError(f"no record of source {args.src!r} of site {args.site!r}"
                               + (f" from gateway {args.gw!r}" if args.gw else "") + " is stored")
        if len(gateways) > 1:
            raise GatewayError(f"gateways {', '.join(gateways)} of site {args.site!r} have a source {args.src!r}: "
                               "say which with --gw")
        gw = gateways[0]
        if args.profile:
            profile = find_profile(args.profile)
        else:
            names = [n for (n,) in db.fetch("SELECT DISTINCT profile FROM events WHERE gw = ? AND src = ? "
                                            "AND kind = 'unparsed'", (gw, args.src))]
            if len(names) != 1:
                raise GatewayError("--profile: say which profile reads them"
                                   + (f" (they were read by {', '.join(names)})" if names else ""))
            profile = profiles.find(names[0])
        zone_name = args.timezone or reparse.zone_of(db, gw, args.src)
        if zone_name is None:
            raise GatewayError(f"no status of gateway {gw} gives the zone of {args.src}: say it with --timezone")
        zone = known_zone(zone_name)
        if zone is None:
            said = "--timezone" if args.timezone else f"the status of gateway {gw} gives {args.src} the zone"
            raise GatewayError(f"{said} {printable(zone_name)!r}, no IANA time zone (such as Europe/Paris)"
                               + ("" if args.timezone else ": say it with --timezone"))
        done = reparse.reparse(db, gw, args.src, profile, zone, args.since, args.all, int(time.time() * 1000),
                               progress)
    finally:
        progress("")
        db.close()
    print(f"{done.read} records of {args.src} (gateway {gw}) read again with {profile.name}: {done.now_calls} "
          f"now calls" + (f", {done.changed_calls} calls changed" if args.all else "")
          + f", {done.still_unread} still not read")
    for reason, count in sorted(done.reasons.items(), key=lambda kv: -kv[1])[:5]:
        print(f"  {count} x {reason}")
    return 0
