"""Sans-I/O: one MQTT message in, the rows it makes out, or the reason it is refused.

A gateway's message is a batch (a msgpack array) of events of one kind, or one map
(``status``, ``metrics``). Every event is checked against schema v1 before a row is made
of it: its kind is its topic's, its gateway the topic's, every key there with a value of
its type, nothing a database would refuse (a NUL in text, an integer past 64 bits). What
fails is kept whole in ``rejected`` with the reason and the topic: never dropped, and never
a message that cannot be stored and so blocks the session.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import msgpack

from gateway.events import HIST_KEY, SCHEMA_VERSION, TOPICS

#: ``pbxgw/v1/<site>/<gw>/<kind topic>``
TOPIC = re.compile(r"pbxgw/v1/([A-Za-z0-9._-]{1,64})/([A-Za-z0-9._-]{1,64})/([a-z]+)")
#: Topic (last part) -> the kind of what it carries.
KIND_OF = {**{topic: kind for kind, topic in TOPICS.items()}, "status": "status", "metrics": "metrics"}
#: Largest message read (a gateway's batch is far smaller).
MAX_PAYLOAD = 16 * 1024 * 1024
_INT64 = range(-2**63, 2**63)

_OPT = object()  # marks a key a gateway may leave out
# Per kind, each key and the types its value may have (None: null allowed).
_STR, _INT, _NUM = (str,), (int,), (int, float)
SCHEMA: dict[str, dict[str, tuple]] = {
    "call": dict(gw=_STR, src=_STR, stream=(str, None), seq=_INT, rx=_INT, profile=_STR, start=_INT,
                 ring=(int, None), dur=(int, None), dir=(str, None), ext=(str, None), trunk=(str, None),
                 caller=(str, None), called=(str, None), acct=(str, None), disp=(str, None), callid=(str, None),
                 raw=_STR, x=(dict, _OPT), unsynced=(bool, _OPT)),
    "unparsed": dict(gw=_STR, src=_STR, stream=(str, None), seq=_INT, rx=_INT, profile=_STR, raw=_STR,
                     reason=_STR, unsynced=(bool, _OPT)),
    "headset": dict(gw=_STR, src=_STR, stream=_STR, seq=_INT, ts=_INT, vid=_INT, pid=_INT, model=(str, None),
                    serial=(str, None), agent=(str, None), ext=(str, None), ev=_STR, detail=(str, None),
                    unsynced=(bool, _OPT)),
    "gap": dict(gw=_STR, src=_STR, stream=(str, None), rx=_INT, first=_INT, last=_INT, count=_INT,
                first_rx=(int, None), last_rx=(int, None), reason=_STR),
    "alarm": dict(gw=_STR, src=_STR, rx=_INT, alarm=_STR, state=_STR, last_rx=(int, None),
                  quiet_s=(int, float, None), skew_s=(int, float, None, _OPT)),
    "status": dict(gw=_STR, site=_STR, state=_STR, boot=_INT, rx=_INT, version=_STR, sources=(list, _OPT)),
    "metrics": dict(gw=_STR, rx=_INT, up_s=_NUM, sources=(list,), queue=(dict,), broker=(dict,), headsets=_INT),
}

#: Columns of ``events`` (calls and unparsed records), in table order.
EVENT_COLUMNS = ("gw", "src", "stream", "seq", "kind", "site", "rx", "profile", "start", "ring", "dur", "dir",
                 "ext", "trunk", "caller", "called", "acct", "disp", "callid", "raw", "reason", "x", "hist",
                 "unsynced", "received_at")
HEADSET_COLUMNS = ("gw", "src", "stream", "seq", "site", "ts", "vid", "pid", "model", "serial", "agent", "ext",
                   "ev", "detail", "hist", "unsynced", "received_at")
GAP_COLUMNS = ("gw", "src", "stream", "first", "last", "count", "rx", "first_rx", "last_rx", "reason", "site",
               "received_at")
ALARM_COLUMNS = ("gw", "src", "rx", "alarm", "state", "last_rx", "quiet_s", "skew_s", "site", "received_at")
REJECTED_COLUMNS = ("topic", "payload", "reason", "received_at")


@dataclass
class Rows:
    """What a batch of messages writes, table by table (tuples in the columns' order)."""

    events: list[tuple] = field(default_factory=list)
    headsets: list[tuple] = field(default_factory=list)
    gaps: list[tuple] = field(default_factory=list)
    alarms: list[tuple] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)  # status maps, with their site
    metrics: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[tuple] = field(default_factory=list)

    def add(self, topic: str, payload: bytes, received_at: int) -> None:
        """The rows of one message (received at ``received_at``, ms since the epoch)."""
        match = TOPIC.fullmatch(topic)
        if not match or match[3] not in KIND_OF:
            self._reject(topic, payload, "not a pbxgw/v1/<site>/<gw>/<kind> topic", received_at)
            return
        site, gw, kind = match[1], match[2], KIND_OF[match[3]]
        try:
            value = _decode(payload)
        except ValueError as exc:
            self._reject(topic, payload, str(exc), received_at)
            return
        single = kind in ("status", "metrics")
        if single != isinstance(value, dict) or not isinstance(value, (dict, list)):
            expected = "one map" if single else "an array of events"
            self._reject(topic, payload, f"expected {expected}, got {type(value).__name__}", received_at)
            return
        for event in [value] if single else value:
            reason = problem(event, kind, gw)
            if reason:
                self._reject(topic, msgpack.packb(event, use_bin_type=True), reason, received_at)
            else:
                self._row(event, kind, site, received_at)

    def _reject(self, topic: str, payload: bytes, reason: str, received_at: int) -> None:
        self.rejected.append((topic, payload, reason, received_at))

    def _row(self, e: dict[str, Any], kind: str, site: str, received_at: int) -> None:
        hist, unsynced = bool(e.get(HIST_KEY)), bool(e.get("unsynced"))
        if kind in ("call", "unparsed"):
            x = json.dumps(e["x"], ensure_ascii=False, sort_keys=True) if e.get("x") else None
            self.events.append((e["gw"], e["src"], e["stream"] or "", e["seq"], kind, site, e["rx"], e["profile"],
                                e.get("start"), e.get("ring"), e.get("dur"), e.get("dir"), e.get("ext"),
                                e.get("trunk"), e.get("caller"), e.get("called"), e.get("acct"), e.get("disp"),
                                e.get("callid"), e["raw"], e.get("reason"), x, hist, unsynced, received_at))
        elif kind == "headset":
            self.headsets.append((e["gw"], e["src"], e["stream"], e["seq"], site, e["ts"], e["vid"], e["pid"],
                                  e["model"], e["serial"], e["agent"], e["ext"], e["ev"], e["detail"], hist,
                                  unsynced, received_at))
        elif kind == "gap":
            self.gaps.append((e["gw"], e["src"], e["stream"] or "", e["first"], e["last"], e["count"], e["rx"],
                              e["first_rx"], e["last_rx"], e["reason"], site, received_at))
        elif kind == "alarm":
            self.alarms.append((e["gw"], e["src"], e["rx"], e["alarm"], e["state"], e["last_rx"], e["quiet_s"],
                                e.get("skew_s"), site, received_at))
        elif kind == "status":
            self.statuses.append({**e, "site": site, "received_at": received_at})
        else:
            self.metrics.append({**e, "site": site, "received_at": received_at})

    def __len__(self) -> int:
        return sum(map(len, (self.events, self.headsets, self.gaps, self.alarms, self.statuses, self.metrics,
                             self.rejected)))


def _decode(payload: bytes) -> Any:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"{len(payload)} bytes, more than {MAX_PAYLOAD}")
    try:
        return msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError, TypeError) as exc:
        raise ValueError(f"not msgpack: {exc}") from None


def problem(event: Any, kind: str, gw: str) -> str:
    """Why ``event`` (decoded) cannot be stored as a ``kind`` event from gateway ``gw``; ""
    when it can."""
    if not isinstance(event, dict):
        return f"expected an event map, got {type(event).__name__}"
    if event.get("v") != SCHEMA_VERSION:
        return f"schema version {event.get('v')!r}, this collector reads {SCHEMA_VERSION}"
    if event.get("kind") != kind:
        return f"a {event.get('kind')!r} event on the topic of {kind!r} events"
    schema = SCHEMA[kind]
    for key, kinds in schema.items():
        if key not in event:
            if _OPT not in kinds:
                return f"no {key!r}"
            continue
        value = event[key]
        allowed = tuple(k for k in kinds if isinstance(k, type))
        if value is None and None in kinds:
            continue
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            return f"{key!r} is {value!r}, expected {' or '.join(k.__name__ for k in allowed)}"
    unknown = set(event) - set(schema) - {"v", "kind", HIST_KEY}
    if unknown:
        return f"unknown key {sorted(unknown)[0]!r}"
    if event["gw"] != gw:
        return f"gateway {event['gw']!r} on the topic of gateway {gw!r}"
    return _unstorable(event)


def _unstorable(value: Any) -> str:
    """What a database would refuse in a decoded value: a NUL in text, an integer out of
    64 bits (PostgreSQL's text and bigint)."""
    if isinstance(value, str):
        return "text with a NUL character" if "\0" in value else ""
    if isinstance(value, bool):
        return ""
    if isinstance(value, int):
        return "" if value in _INT64 else f"integer {value} beyond 64 bits"
    if isinstance(value, dict):
        return next((r for r in map(_unstorable, [*value.keys(), *value.values()]) if r), "")
    if isinstance(value, list):
        return next((r for r in map(_unstorable, value) if r), "")
    if isinstance(value, float):
        return "" if value == value and abs(value) != float("inf") else f"number {value}"
    if value is None:
        return ""
    return f"a {type(value).__name__} value"
