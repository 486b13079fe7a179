"""``pbxgw check-config``: ``run`` without the running."""

from __future__ import annotations

import argparse
import sys

from gateway.edge import config


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check-config", help="validate a config file and what `run` needs from it",
                       description="Exit 0 if the config file is valid and `pbxgw run` could start "
                       "with it as this user: its profiles, password file, TLS CA, certificate and "
                       "key read, its state directory writable; say how much of that disk the queue "
                       "(and the archive) may use. Otherwise print one line naming the file, the key "
                       "and what is wrong, and exit 78.")
    p.add_argument("path", help="config file")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gateway.edge import preflight

    settings = config.load(args.path)
    for warning in preflight.prepare(settings, checking=True).warnings:
        print(f"pbxgw: warning: {warning}", file=sys.stderr)
    names = ", ".join(f"{s.name} ({s.type}, {s.profile.name})" for s in settings.sources)
    print(f"{args.path}: ok: gateway {settings.gateway_id} at site {settings.site}; sources: {names}")
    print(disk_text(settings))
    return 0


def disk_text(settings: config.Settings) -> str:
    """What the state directory's disk allows the queue and the archive, as ``run`` will
    set their budgets (the lower of the config's and the disk's)."""
    from gateway.edge.queue.schema import DB_NAME
    from gateway.edge.queue.store import disk_budget, disk_room

    db = settings.state_dir / DB_NAME
    room = disk_room(settings.state_dir, (db, db.with_name(f"{DB_NAME}-wal")))
    wanted = settings.archive.max_bytes if settings.archive.keep else 0
    queue, archive, _ = disk_budget(room, settings.queue.max_bytes, wanted)
    text = f"queue: up to {queue} bytes on the disk under {settings.state_dir} (max_bytes {settings.queue.max_bytes})"
    if wanted:
        text += f", archive up to {archive} bytes (max_bytes {wanted})"
    return text
