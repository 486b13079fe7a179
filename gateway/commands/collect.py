"""``pbxgw collect``: the central collector, in the foreground (docs/central.md)."""

from __future__ import annotations

import argparse
import logging

from gateway.central.settings import DEFAULT_CONFIG
from gateway.common.printable import log_to_stderr
from gateway.errors import GatewayError


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("collect", help="the central collector: every gateway's events into a database",
                       description="Subscribe to the gateways' topics and store every event once in the "
                       "database the config names (SQLite or PostgreSQL), acknowledging each message "
                       "only after its rows are committed; until SIGTERM or Ctrl-C.")
    p.add_argument("--config", default=DEFAULT_CONFIG, help="collector config (default: %(default)s)")
    p.add_argument("--migrate-only", action="store_true",
                   help="apply the database's schema migrations, say which, and exit")
    p.add_argument("--roles", action="store_true",
                   help="with --migrate-only, on PostgreSQL: create the roles pbxgw_writer (for the collector's "
                        "login) and pbxgw_reader (for report readers') and grant them the tables (docs/central.md)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gateway.central import require_extra

    require_extra("collect")
    from gateway.common import mqtt
    from gateway.central import settings as central
    from gateway.central.database import Database, Refused

    settings = central.load(args.config)
    log_to_stderr()
    if args.roles and not args.migrate_only:
        raise GatewayError("--roles goes with --migrate-only (run by the tables' owner, not by the collector)")
    if args.migrate_only:
        db = Database.open(settings.database)
        try:
            applied = db.migrate()
            version = db.schema_version()
            granted = db.create_roles() if args.roles else []
        except Refused as exc:
            raise GatewayError(str(exc)) from None
        finally:
            db.close()
        print(f"schema at version {version}" + (f" (applied now: {', '.join(map(str, applied))})" if applied
                                                else " (nothing to apply)"))
        for line in granted:
            print(line)
        return 0
    prepared = mqtt.prepare_broker(str(settings.path), settings.mqtt)
    for warning in prepared.warnings:
        logging.getLogger("pbxgw.collect").warning("%s", warning)
    from gateway.central import collector  # paho, asyncio: only for this command

    return collector.run(settings, prepared)
