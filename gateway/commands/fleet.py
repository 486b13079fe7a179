"""``pbxgw fleet``: every gateway and source the collector has heard, from its database."""

from __future__ import annotations

import argparse
import json
import sys
import time

from gateway.central.settings import DEFAULT_CONFIG


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fleet", help="the gateways and sources in the collector's database",
                       description="One line per gateway (online or offline since when, version, boots, "
                       "queue depth) and one per source (events stored, last one, today's and of them not "
                       "understood, missing, lost at the edge, each alarm active since or cleared at when), read "
                       "from the database the collector config names.")
    p.add_argument("--config", default=DEFAULT_CONFIG, help="collector config (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print a JSON list instead")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gateway.central import require_extra

    require_extra("fleet")
    from gateway.central import fleet, settings
    from gateway.central.database import Database

    db = Database.open(settings.load(args.config).database, create=False)
    try:
        if db.schema_version() == 0:
            print("the database has no pbxgw tables yet: has `pbxgw collect` run on it?")
            return 1
        now = int(time.time() * 1000)
        gateways = fleet.fleet(db, now)
        warnings = fleet.findings(db)
    finally:
        db.close()
    if args.json:
        print(json.dumps(gateways))
    else:
        print("".join(f"{line}\n" for line in warnings) + fleet.text(gateways, now), end="")
    for line in warnings if args.json else ():
        print(f"pbxgw fleet: {line}", file=sys.stderr)
    return 0
