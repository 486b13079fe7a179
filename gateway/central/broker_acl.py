"""Sans-I/O: the Mosquitto ACL that binds each gateway to its own topics.

Each gateway's user name is its gateway id, and Mosquitto makes every client's client id
its user name (``use_username_as_clientid``), so a gateway's credentials cannot take the
collector's session. A gateway may write only its own topics, under its own site, and read
only its own commands; the collector reads every gateway's topics and writes their
commands. (Mosquitto checks a ``deny`` before any grant, so a gateway's topics are granted
one by one rather than ``#`` less ``cmd/``; and its ``pattern`` lines cannot say a
gateway's site, so each gateway has lines of its own.)
"""

from __future__ import annotations

from gateway.wire import topics

#: What mosquitto.conf must say for the ACL to bind identities (docs/central.md).
MOSQUITTO_CONF = ("allow_anonymous false", "use_username_as_clientid true")


def mosquitto_acl(collector_user: str, gateways: list[tuple[str, str]]) -> str:
    """The ``acl_file`` for the collector's user and each ``(gateway id, site)``."""
    lines = ["# pbxgw broker-acl: with, in mosquitto.conf, " + " and ".join(MOSQUITTO_CONF),
             "", "# the collector: every gateway's topics, and commands to every gateway",
             f"user {collector_user}", f"topic read {topics.ROOT}/#",
             f"topic write {topics.topic('+', '+', topics.REPLAY)}"]
    for gw, site in sorted(gateways, key=lambda pair: (pair[1], pair[0])):
        lines += ["", f"# {gw} of site {site}: its own topics; of the commands, it only reads its own", f"user {gw}"]
        lines += [f"topic write {topics.topic(site, gw, last)}" for last in topics.CARRIES]
        lines.append(f"topic read {topics.topic(site, gw, topics.REPLAY)}")
    return "\n".join(lines) + "\n"
