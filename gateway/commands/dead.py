"""``pbxgw dead list|requeue``: the events the broker rejected (dead letters)."""

from __future__ import annotations

import argparse
import json
import sys
import time

from gateway.commands.common import CONFIG
from gateway.edge import config
from gateway.errors import GatewayError


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dead", help="events the broker rejected (dead letters): list, requeue",
                       description="The events the broker rejected (a failure reason code, such as "
                       "Not authorized), kept in the queue's dead-letter table.")
    dead = p.add_subparsers(title="commands", metavar="COMMAND", required=True)
    q = dead.add_parser("list", help="each dead letter: id, when, why, and what event",
                        description="List the dead letters (read only; the gateway may run).")
    q.add_argument("--config", default=CONFIG, help="its config file (default: %(default)s)")
    q.add_argument("--json", action="store_true", help="one JSON object per dead letter, with the event")
    q.set_defaults(run=run_list)
    q = dead.add_parser("requeue", help="queue dead letters again (the gateway stopped)",
                        description="Queue dead letters again, keys kept, for the gateway to send at its "
                        "next start (after the broker's ACL or limits were fixed). The gateway must be "
                        "stopped: the queue has one writer.")
    q.add_argument("--config", default=CONFIG, help="its config file (default: %(default)s)")
    q.add_argument("ids", nargs="*", type=int, help="dead letter ids (from `pbxgw dead list`); none: all")
    q.set_defaults(run=run_requeue)


def run_list(args: argparse.Namespace) -> int:
    from gateway.edge.queue import view
    from gateway.edge.queue.row import event_map

    _, state_dir = config.gateway_dirs(args.config)
    try:
        rows = view.dead_letters(state_dir)
    except OSError as exc:
        raise GatewayError(str(exc)) from None
    for row_id, kind, reason, at, payload in rows:
        event = event_map(payload) or {"damaged": payload.hex()}
        if args.json:
            print(json.dumps({"id": row_id, "kind": kind, "reason": reason, "at_ms": at, "event": event},
                             ensure_ascii=False, default=repr))
            continue
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at / 1000)) if at else "?"
        print(f"{row_id}  {when}  {reason}: {kind} {event.get('src')} seq {event.get('seq')} "
              f"stream {event.get('stream')}")
    if not args.json:
        print(f"{len(rows)} dead letters", file=sys.stderr)
    return 0


def run_requeue(args: argparse.Namespace) -> int:
    from gateway.edge.lock import lock_state_dir
    from gateway.edge.queue.store import Store

    settings = config.load(args.config)
    lock_state_dir(settings.state_dir)  # a running gateway holds it: refused, naming it
    store = Store(settings.state_dir, settings.queue.max_bytes, settings.queue.when_full)
    try:
        count = store.requeue_dead(args.ids or None)
    finally:
        store.close()
    print(f"{count} dead letters queued again; the gateway sends them when it starts", file=sys.stderr)
    return 0
