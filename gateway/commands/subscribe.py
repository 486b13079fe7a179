"""``pbxgw subscribe``: the central side's first tool, events from a broker as JSON lines."""

from __future__ import annotations

import argparse

from gateway.common import mqtt
from gateway.errors import GatewayError
from gateway.wire import topics
from gateway.wire.topics import ID


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("subscribe", help="print events from a broker as JSON lines",
                       description="Subscribe to gateway topics and print each event once as "
                       "a JSON line, dropping duplicates by (gw, src, stream, seq).")
    p.add_argument("--broker", required=True, metavar="URL", help="mqtt://HOST[:PORT] or mqtts://HOST[:PORT]")
    p.add_argument("--site", default="+", help="only this site (default: all)")
    p.add_argument("--gw", default="+", help="only this gateway (default: all)")
    p.add_argument("--client-id", default="", help="keep a persistent session under this id, "
                   "so the broker queues events while this subscriber is away")
    p.add_argument("--count", type=int, help="exit after this many events (default: never)")
    p.add_argument("--dedup-window", type=int, default=100_000,
                   help="how many recent event keys to remember (default: %(default)s)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gateway.central.subscribe import subscribe  # paho: only for this command

    try:
        host, port, tls = mqtt.broker_address(args.broker)
    except ValueError as exc:
        raise GatewayError(f"--broker: {exc}") from None
    for name in ("site", "gw"):
        value = getattr(args, name)
        if value != "+" and not ID.fullmatch(value):
            raise GatewayError(f"--{name}: expected letters, digits, '.', '_' or '-'; got {value!r}")
    topic = topics.one_gateway(args.site, args.gw)
    return subscribe(host, port, tls, topic, args.client_id, args.dedup_window, args.count)
