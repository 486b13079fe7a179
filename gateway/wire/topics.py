"""The topic tree, ``pbxgw/v1/<site>/<gw>/<topic>``: the one place that spells it.

A gateway publishes its events on one topic per kind (:data:`KIND_TOPICS`), its presence on
``status``, its figures on ``metrics`` and its answers to replay requests on ``replies``; it
listens on ``cmd/replay`` (:mod:`gateway.wire.replay`). Site, gateway and source ids go into
these topics, so they may hold no ``+``, ``#``, ``/`` or control characters (:data:`ID`).
"""

from __future__ import annotations

import re

#: Site, gateway and source ids end up in MQTT topics: no '+', '#', '/' or control characters.
ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

#: The tree's root: the product and the version of its contract.
ROOT = "pbxgw/v1"
#: Event kind -> the topic (last part) its events are published on.
KIND_TOPICS = {"call": "calls", "unparsed": "unparsed", "headset": "headsets", "gap": "gaps", "alarm": "alarms"}
#: Topic (last part) -> what it carries: an event kind, or the gateway's status, metrics, replies.
CARRIES = {**{topic: kind for kind, topic in KIND_TOPICS.items()}, "status": "status", "metrics": "metrics",
           "replies": "reply"}
#: The topic (last part) a gateway takes replay requests on.
REPLAY = "cmd/replay"

_PARTS = re.compile(rf"{ROOT}/({ID.pattern})/({ID.pattern})/([a-z]+)")
_COMMAND = re.compile(rf"{ROOT}/[^/]+/[^/]+/cmd/.*")


def gateway(site: str, gw: str) -> str:
    """The prefix of one gateway's topics."""
    return f"{ROOT}/{site}/{gw}"


def topic(site: str, gw: str, last: str) -> str:
    """One gateway's topic ``last`` (``calls``, ``status``, :data:`REPLAY` ...)."""
    return f"{ROOT}/{site}/{gw}/{last}"


def every_gateway(site: str | None = None) -> str:
    """The filter for every topic of every gateway of ``site`` (None: of every site)."""
    return f"{ROOT}/{site or '+'}/+/#"


def one_gateway(site: str, gw: str) -> str:
    """The filter for every topic of one gateway."""
    return f"{ROOT}/{site}/{gw}/#"


def parse(name: str) -> tuple[str, str, str] | None:
    """``(site, gw, what it carries)`` of a gateway's topic (see :data:`CARRIES`); None for
    anything else, a request to the gateways (:func:`is_command`) included."""
    match = _PARTS.fullmatch(name)
    if match is None or match[3] not in CARRIES:
        return None
    return match[1], match[2], CARRIES[match[3]]


def is_command(name: str) -> bool:
    """Whether ``name`` is a request to a gateway (``.../cmd/...``): no data of its own."""
    return _COMMAND.fullmatch(name) is not None
