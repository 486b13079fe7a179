"""The replay request, as the collector writes it and a gateway reads it (docs/events.md):
a msgpack map on ``pbxgw/v1/<site>/<gw>/cmd/replay`` naming one source's events
``first..last`` in one stream, and the limits a gateway holds a request to."""

from __future__ import annotations

from typing import Any

from gateway.wire import ranges
from gateway.wire.events import SCHEMA_VERSION

#: Most events one request may name; the collector splits a larger hole.
MAX_RANGE = 10_000
#: Most requests waiting or being served at once.
MAX_JOBS = 4
#: Most numbers missing in one stream that a collector asks for: more than any gateway's
#: queue holds (at a hundred bytes an event, 10 GB), so a stream missing more has a forged
#: or damaged ``seq`` in it, and asking would only make a storm of requests. It is shown in
#: ``pbxgw fleet`` instead.
MAX_HOLE = 100_000_000
#: The longest request id a gateway keeps (a longer one is malformed).
ID_MAX = 64


def request(request_id: str, src: str, stream: str | None, first: int, last: int) -> dict[str, Any]:
    """A replay request's map."""
    return {"v": SCHEMA_VERSION, "id": request_id, "src": src, "stream": stream, "first": first, "last": last}


def malformed(value: dict) -> str:
    """Why a request map is not one; "" when it is."""
    if value.get("v") != SCHEMA_VERSION:
        return f"'v': expected {SCHEMA_VERSION}, got {value.get('v')!r}"
    unknown = sorted(set(value) - {"v", "id", "src", "stream", "first", "last"}, key=str)
    if unknown:
        return f"unknown key {unknown[0]!r}"
    if not isinstance(value.get("src"), str) or not value["src"]:
        return "'src': expected a source's name"
    if value.get("stream") is not None and not isinstance(value["stream"], str):
        return "'stream': expected text or nothing"
    first, last = value.get("first"), value.get("last")
    if type(first) is not int or type(last) is not int or not 1 <= first <= last:
        return "'first', 'last': expected whole numbers with 1 <= first <= last"
    if last - first + 1 > MAX_RANGE:
        return f"range of {last - first + 1} events: at most {MAX_RANGE} in one request"
    return ""


def too_large(missing: list[ranges.Range]) -> bool:
    """Whether a stream missing these ranges is past asking for (see :data:`MAX_HOLE`)."""
    return ranges.size(missing) > MAX_HOLE
