"""Event types and wire schema v1: the contract with central systems.

Every event is a frozen, slotted dataclass built with keywords only. ``to_wire()`` gives
the short-key map of docs/events.md (the same map in msgpack and in JSON); ``from_wire()``
is its inverse. Keys whose value is absent are still present (as ``None``) so that a
subscriber can rely on the key set, except ``x`` (vendor fields), which is left out when
a profile adds none, and ``unsynced``, which is there only when true.
"""

from __future__ import annotations

import json
import re
import types
import typing
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, ClassVar

import msgpack

SCHEMA_VERSION = 1
#: A gateway queue's stream identity, as its events and its status carry it: 16 hex digits.
STREAM_ID = re.compile(r"[0-9a-f]{16}")


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEvent:
    """One call record, normalized. Times: ``rx`` in ms and ``start`` in s since the epoch, UTC."""

    KIND: ClassVar[str] = "call"

    gw: str
    src: str
    stream: str | None = None
    seq: int
    rx: int
    profile: str
    start: int
    ring: int | None = None
    dur: int | None = None
    dir: str | None = None
    ext: str | None = None
    trunk: str | None = None
    caller: str | None = None
    called: str | None = None
    acct: str | None = None
    disp: str | None = None
    callid: str | None = None
    raw: str = ""
    x: dict[str, Any] = field(default_factory=dict)
    unsynced: bool = False
    latin1: bool = False  # raw was read as Latin-1 (its bytes were not UTF-8): how to get them back


@dataclass(frozen=True, slots=True, kw_only=True)
class UnparsedEvent:
    """A record its profile could not parse: kept whole, with the reason, never dropped."""

    KIND: ClassVar[str] = "unparsed"

    gw: str
    src: str
    stream: str | None = None
    seq: int
    rx: int
    profile: str
    raw: str
    reason: str
    #: The start of the last call its source read before it (s, UTC; None: none yet): where
    #: in the calls' time it belongs, a backlog's as well as a live one's.
    after_start: int | None = None
    unsynced: bool = False
    latin1: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class HeadsetEvent:
    """What an agent did on a USB telephony headset (or that it came or went). ``src`` is
    the device's id, stable across plugs and restarts; ``ts`` when the gateway read the
    report, ms since the epoch. ``agent`` and ``ext`` come from the config's mapping."""

    KIND: ClassVar[str] = "headset"

    gw: str
    src: str
    stream: str
    seq: int
    ts: int
    vid: int
    pid: int
    model: str | None = None
    serial: str | None = None
    agent: str | None = None
    ext: str | None = None
    ev: str
    detail: str | None = None
    unsynced: bool = False

    @property
    def rx(self) -> int:
        """The receive time, as the queue orders every kind of event by it."""
        return self.ts


@dataclass(frozen=True, slots=True, kw_only=True)
class GapEvent:
    """Events of a source the gateway had to drop (queue full), reported once the link is back.

    ``first``..``last`` are the dropped ``seq`` numbers (``count`` of them; fewer than the
    span when only some in it were dropped), ``first_rx``..``last_rx`` when they arrived.
    """

    KIND: ClassVar[str] = "gap"

    gw: str
    src: str
    stream: str | None = None
    rx: int
    first: int
    last: int
    count: int
    first_rx: int | None
    last_rx: int | None
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmEvent:
    """A condition a site should look at, raised once and cleared once: ``no_data``, a
    source silent past its quiet period ``quiet_s`` (``last_rx`` its last record, or null);
    ``clock_skew``, a source whose calls end ``skew_s`` (median) before their records
    arrive, past its limit; ``unparsed``, a source whose recent records its profile could
    not read, ``unparsed_share`` of them."""

    KIND: ClassVar[str] = "alarm"

    gw: str
    src: str
    rx: int
    alarm: str
    state: str
    last_rx: int | None
    quiet_s: float | None = None
    skew_s: float | None = None
    unparsed_share: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsEvent:
    """The gateway's counters, sent every ``[gateway] metrics_interval`` while connected
    (not queued: the next one supersedes it). ``sources``, ``queue`` and ``broker`` hold
    what ``pbxgw status --json`` shows (docs/operations.md)."""

    KIND: ClassVar[str] = "metrics"

    gw: str
    rx: int
    up_s: float
    sources: list[dict[str, Any]]
    queue: dict[str, Any]
    broker: dict[str, Any]
    headsets: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusEvent:
    """The gateway's presence, retained on the status topic: ``online`` when it connects,
    ``offline`` (its Last Will) when it goes away. ``boot`` counts the daemon's starts."""

    KIND: ClassVar[str] = "status"

    gw: str
    site: str
    state: str
    boot: int
    rx: int
    version: str
    #: Per PBX source: its ``name``, ``profile`` and ``timezone``, so that the central side
    #: buckets its calls in the site's local time without a config of its own; the profile's
    #: ``assembly`` table and the bundled profile it ``extends``, so that it joins a site's
    #: own copy's records as the site runs it.
    sources: list[dict[str, Any]] = field(default_factory=list)


Event = CallEvent | UnparsedEvent | HeadsetEvent | GapEvent | AlarmEvent | MetricsEvent | StatusEvent
_TYPES: dict[str, type[Event]] = {
    cls.KIND: cls for cls in (CallEvent, UnparsedEvent, HeadsetEvent, GapEvent, AlarmEvent, MetricsEvent,
                              StatusEvent)
}
#: The largest message a subscriber reads (a gateway's batch is far smaller: its batch_bytes).
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: Keys left out of the wire map while their value is empty or false: vendor fields, and
#: the mark of an event received while the gateway's clock was not synchronized (its
#: ``rx`` or ``ts``, and a year the PBX did not print, may be wrong).
OPTIONAL_KEYS = ("x", "unsynced", "latin1")
#: Keys of the other kinds left out of the wire map when empty, as the call's are.
_ALSO_OPTIONAL = ("after_start", "unparsed_share")
#: Keys (kind, key) added to schema v1 after its first gateways, which send events without them.
_ADDED_LATER = {("alarm", "skew_s"), ("status", "sources")}
#: The key the publisher adds to events sent from the backlog (queued before the link
#: came back), so that consumers can tell late events from live ones.
HIST_KEY = "hist"


def wire_schema() -> dict[str, dict[str, tuple[frozenset[type], bool]]]:
    """Per kind, each key of its wire map, the types its value may take (exactly: ``true``
    is no integer; ``NoneType`` for null; a float may come as an integer) and whether a
    gateway may leave the key out: the event dataclasses read as a collector checks them."""
    schema = {}
    for kind, cls in _TYPES.items():
        hints = typing.get_type_hints(cls)
        schema[kind] = {f.name: (_wire_types(hints[f.name]),
                                 f.name in OPTIONAL_KEYS or f.name in _ALSO_OPTIONAL or (kind, f.name) in _ADDED_LATER)
                        for f in fields(cls)}
    return schema


def _wire_types(hint: Any) -> frozenset[type]:
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    out: set[type] = set()
    for option in options:
        base = typing.get_origin(option) or option
        out |= {int, float} if base is float else {base}
    return frozenset(out)


def to_wire(event: Event) -> dict[str, Any]:
    """The schema-v1 map of an event: ``v`` and ``kind`` first, then fields in table order."""
    wire: dict[str, Any] = {"v": SCHEMA_VERSION, "kind": event.KIND}
    for f in fields(event):
        value = getattr(event, f.name)
        if (f.name in OPTIONAL_KEYS or f.name in _ALSO_OPTIONAL) and not value:
            continue
        wire[f.name] = value
    return wire


def from_wire(wire: dict[str, Any]) -> Event:
    """Rebuild an event from its schema-v1 map.

    :raises ValueError: the map is not a schema-v1 event this version knows.
    """
    if wire.get("v") != SCHEMA_VERSION:
        raise ValueError(f"unsupported schema version {wire.get('v')!r}")
    try:
        cls = _TYPES[wire["kind"]]
    except KeyError:
        raise ValueError(f"unknown event kind {wire.get('kind')!r}") from None
    values = {k: v for k, v in wire.items() if k not in ("v", "kind", HIST_KEY)}
    try:
        return cls(**values)
    except TypeError as exc:
        raise ValueError(f"malformed {cls.KIND} event: {exc}") from None


def packb(event: Event) -> bytes:
    """msgpack encoding of one event (str as str, bytes as bin)."""
    return msgpack.packb(to_wire(event), use_bin_type=True)


def unpackb(data: bytes) -> Event:
    """Decode one msgpack-encoded event; see :func:`from_wire`."""
    return from_wire(msgpack.unpackb(data, raw=False))


def mark_historical(payload: bytes) -> bytes:
    """Add ``hist: true`` to one msgpack-encoded event map without decoding the event.

    Backlog events are sent as stored; only the map header changes (its entry count) and
    the pair is appended. A call record's event has more than 15 keys, so its header is a
    map 16's (``0xde`` and a big-endian count): that one is rewritten here, at a drain's
    speed; any other header is read by msgpack.
    """
    if payload[:1] == _MAP16 and len(payload) >= 3 and (count := int.from_bytes(payload[1:3], "big")) < 0xFFFF:
        return _MAP16 + (count + 1).to_bytes(2, "big") + payload[3:] + _HIST_PAIR
    unpacker = msgpack.Unpacker()
    unpacker.feed(payload)
    try:
        count = unpacker.read_map_header()
    except (msgpack.UnpackValueError, msgpack.OutOfData, ValueError):
        raise ValueError("not a msgpack map") from None
    return msgpack.Packer().pack_map_header(count + 1) + payload[unpacker.tell():] + _HIST_PAIR


_HIST_PAIR = msgpack.packb(HIST_KEY) + msgpack.packb(True)
_MAP16 = b"\xde"


def iso_utc(epoch_seconds: int) -> str:
    """``2026-01-02T09:15:00Z``: how JSON output shows ``start``."""
    return datetime.fromtimestamp(epoch_seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_json_dict(event: Event) -> dict[str, Any]:
    """The wire map as JSON output shows it: the same keys, ``start`` in ISO-8601 UTC."""
    wire = to_wire(event)
    if "start" in wire:
        wire["start"] = iso_utc(wire["start"])
    return wire


def to_json(event: Event) -> str:
    """One JSON line (non-ASCII kept as is, so names stay readable)."""
    return json.dumps(to_json_dict(event), ensure_ascii=False)
