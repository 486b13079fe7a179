"""``pbxgw broker-acl``: the Mosquitto ACL for the collector and the gateways its config names."""

from __future__ import annotations

import argparse

from gateway.central.settings import DEFAULT_CONFIG
from gateway.errors import ConfigError


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("broker-acl", help="the Mosquitto ACL binding each gateway to its own site and topics",
                       description="Print the acl_file that lets the collector's user ([mqtt] username) read "
                       "every gateway and send it replay requests, and each gateway of [gateways] (its user "
                       "name is its id) write only its own topics under its own site and read only its own "
                       "commands. mosquitto.conf must also say allow_anonymous false and "
                       "use_username_as_clientid true (docs/central.md).")
    p.add_argument("--config", default=DEFAULT_CONFIG, help="collector config (default: %(default)s)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gateway.central import settings
    from gateway.central.broker_acl import mosquitto_acl

    s = settings.load(args.config)
    if not s.mqtt.username:
        raise ConfigError(str(s.path), "mqtt.username", "expected the collector's user name on the broker "
                          "(the ACL grants it every gateway's topics); got none")
    if not s.gateways:
        raise ConfigError(str(s.path), "gateways", "expected each gateway's site (gw-01 = \"hq\"): the ACL "
                          "binds each gateway to its own; got none")
    print(mosquitto_acl(s.mqtt.username, list(s.gateways)), end="")
    return 0
