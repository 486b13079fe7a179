"""Sans-I/O: one MQTT message in, the rows it makes out, or the reason it is refused.

A gateway's message is a batch (a msgpack array) of events of one kind, or one map
(``status``, ``metrics``). Anything may have crafted it, so its shape is bounded before it is
looked at: its size, each array's and map's length (as msgpack decodes it), and the depth
of every value that may nest (walked without recursion, before anything else walks it). Then every event is checked
against schema v1 before a row is made of it: its kind is its topic's, its gateway the
topic's, every key there with a value of its type, a sequence number from 1 to below 2^53,
nothing a database would refuse (a NUL in text, an integer past 64 bits). What fails is
kept in ``rejected`` with the reason and the topic, one row per message however many of its
events failed (its payload up to :data:`REJECTED_KEEP_BYTES`, then its digest): never
dropped, and never a message that cannot be stored and so blocks the session.
"""

from __future__ import annotations

import hashlib
import operator
import reprlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple

import msgpack
import orjson

from gateway.wire import topics
from gateway.wire.events import HIST_KEY, MAX_MESSAGE_BYTES, SCHEMA_VERSION, wire_schema

#: The deepest nesting of arrays and maps a message may have (an event is 4 deep at most:
#: a status's ``sources``, a source's ``assembly`` table, its lists).
MAX_DEPTH = 32
#: The most elements one array or map may have (a gateway's batch holds far fewer events).
MAX_ELEMENTS = 100_000
#: Sequence numbers run from 1 to below this: the integers a JSON reader and a float keep exact.
SEQ_LIMIT = 2**53
#: The most of a refused message's payload ``rejected`` keeps (beyond it: the bytes' digest).
REJECTED_KEEP_BYTES = 64 * 1024

#: Why a range a gateway's reply says it does not have is lost at the edge.
NOT_KEPT = "not kept at the gateway (asked for again: beyond its retention, or never queued)"

#: Per kind, each key of its wire map: the types its value may take, whether it may be
#: left out (read from the event dataclasses, the contract's one statement).
SCHEMA = wire_schema()

#: A call's fields as its row takes them, in one call (``EVENT_COLUMNS`` less kind, site and
#: the collector's own).
_CALL_FIELDS = operator.itemgetter("gw", "src", "stream", "seq", "rx", "profile", "start", "ring", "dur", "dir",
                                   "ext", "trunk", "caller", "called", "acct", "disp", "callid", "raw")

#: Columns of ``events`` (calls and unparsed records), in table order.
EVENT_COLUMNS = ("gw", "src", "stream", "seq", "kind", "site", "rx", "profile", "start", "ring", "dur", "dir",
                 "ext", "trunk", "caller", "called", "acct", "disp", "callid", "raw", "reason", "x", "hist",
                 "unsynced", "received_at")
HEADSET_COLUMNS = ("gw", "src", "stream", "seq", "site", "ts", "vid", "pid", "model", "serial", "agent", "ext",
                   "ev", "detail", "hist", "unsynced", "received_at")
GAP_COLUMNS = ("gw", "src", "stream", "first", "last", "count", "rx", "first_rx", "last_rx", "reason", "site",
               "received_at")
ALARM_COLUMNS = ("gw", "src", "rx", "alarm", "state", "last_rx", "quiet_s", "skew_s", "unparsed_share", "site",
                 "received_at")
REJECTED_COLUMNS = ("topic", "payload", "reason", "received_at")


class Reply(NamedTuple):
    """A gateway's answer to a replay request, well formed: it makes rows only once the
    collector has checked that it answers a request it made (:meth:`Rows.take_reply`)."""

    topic: str
    payload: bytes
    gw: str
    site: str
    body: dict[str, Any]
    received_at: int


@dataclass
class Rows:
    """What a batch of messages writes, table by table (tuples in the columns' order)."""

    events: list[tuple] = field(default_factory=list)
    headsets: list[tuple] = field(default_factory=list)
    gaps: list[tuple] = field(default_factory=list)
    alarms: list[tuple] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)  # status maps, with their site
    metrics: list[dict[str, Any]] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)  # answers to replay requests, checked by the asker
    rejected: list[tuple] = field(default_factory=list)
    heard: dict[str, tuple[str, int]] = field(default_factory=dict)  # gw -> (site, when its last row came)

    def add(self, topic: str, payload: bytes, received_at: int) -> None:
        """The rows of one message (received at ``received_at``, ms since the epoch)."""
        if topics.is_command(topic):  # (a request to the gateways, a collector's own among them)
            return
        if (parts := topics.parse(topic)) is None:
            self.reject(topic, payload, f"not a {topics.ROOT}/<site>/<gw>/<kind> topic", received_at)
            return
        site, gw, kind = parts
        try:
            value = _decode(payload)
        except ValueError as exc:
            self.reject(topic, payload, str(exc), received_at)
            return
        if kind == "reply":
            reason = self._reply(topic, payload, value, site, gw, received_at)
            if reason:
                self.reject(topic, payload, reason, received_at)
            return
        single = kind in ("status", "metrics")
        if not isinstance(value, dict if single else list):
            expected = "one map" if single else "an array of events"
            self.reject(topic, payload, f"expected {expected}, got {type(value).__name__}", received_at)
            return
        events = [value] if single else value
        refused, first_reason = 0, ""
        for index, event in enumerate(events):
            reason = problem(event, kind, gw) or self._row(event, kind, site, received_at)
            if reason:
                refused += 1
                first_reason = first_reason or (reason if single else f"event {index + 1}: {reason}")
        if refused:
            summary = first_reason if refused == 1 else f"{refused} of {len(events)} events refused; {first_reason}"
            self.reject(topic, payload, summary, received_at)
        if refused < len(events):
            self.heard[gw] = (site, max(received_at, self.heard.get(gw, (site, 0))[1]))

    def _reply(self, topic: str, payload: bytes, reply: Any, site: str, gw: str, received_at: int) -> str:
        """Keep a gateway's answer to a replay request (:mod:`gateway.edge.replay`) for the
        collector to check; why not, when malformed."""
        if type(reply) is not dict or reply.get("v") != SCHEMA_VERSION:
            return "expected a replay reply map of schema version 1"
        if not isinstance(reply.get("id"), str):
            return "a replay reply needs the request's 'id' (text)"
        if "error" in reply:
            if not isinstance(reply["error"], str) or type(reply.get("retry")) is not bool:
                return "a replay refusal needs 'error' (text) and 'retry' (true or false)"
        else:
            src, stream, first, last = (reply.get(k) for k in ("src", "stream", "first", "last"))
            missing = reply.get("missing")
            if not (isinstance(src, str) and isinstance(stream, str) and type(first) is int and type(last) is int
                    and type(reply.get("found")) is int and isinstance(missing, list)):
                return "a replay reply needs 'src', 'stream' (text), 'first', 'last', 'found' and 'missing'"
            for r in missing:
                if not (isinstance(r, list) and len(r) == 2 and all(type(n) is int for n in r)
                        and first <= r[0] <= r[1] <= last):
                    return f"'missing': {_shown(r)} is no range within {first}..{last}"
        self.replies.append(Reply(topic, payload, gw, site, reply, received_at))
        return ""

    def take_reply(self, reply: Reply, refused: str) -> None:
        """A reply checked: what it says the gateway does not have becomes ``gap`` rows,
        lost at the edge; or, ``refused`` (it answers no request waiting), it is kept in
        ``rejected`` and changes nothing."""
        if refused:
            self.reject(reply.topic, reply.payload, refused, reply.received_at)
            return
        body = reply.body
        for first, last in body.get("missing", ()):
            self.gaps.append((reply.gw, body["src"], body["stream"], first, last, last - first + 1, reply.received_at,
                              None, None, NOT_KEPT, reply.site, reply.received_at))

    def reject(self, topic: str, payload: bytes, reason: str, received_at: int) -> None:
        """Keep a refused message (its payload cut to REJECTED_KEEP_BYTES, with the whole's digest)."""
        if len(payload) > REJECTED_KEEP_BYTES:
            reason += (f" (payload cut to its first {REJECTED_KEEP_BYTES} of {len(payload)} bytes; "
                       f"sha256 {hashlib.sha256(payload).hexdigest()})")
            payload = payload[:REJECTED_KEEP_BYTES]
        self.rejected.append((topic, payload, reason, received_at))

    def _row(self, e: dict[str, Any], kind: str, site: str, received_at: int) -> str:
        """Append the row of a checked event; why not, when its ``x`` cannot be stored."""
        hist, unsynced = bool(e.get(HIST_KEY)), bool(e.get("unsynced"))
        if kind == "call":
            x = None
            if e.get("x"):
                x, reason = json_text(e["x"])
                if reason:
                    return f"'x': {reason}"
            g = _CALL_FIELDS(e)
            self.events.append((*g[:2], g[2] or "", g[3], kind, site, *g[4:], None, x, hist, unsynced, received_at))
        elif kind == "unparsed":
            # (its start: the start of the call read before it, where in the calls' time it belongs)
            self.events.append((e["gw"], e["src"], e["stream"] or "", e["seq"], kind, site, e["rx"], e["profile"],
                                e.get("after_start"), None, None, None, None, None, None, None, None, None, None, e["raw"],
                                e["reason"], None, hist, unsynced, received_at))
        elif kind == "headset":
            self.headsets.append((e["gw"], e["src"], e["stream"], e["seq"], site, e["ts"], e["vid"], e["pid"],
                                  e["model"], e["serial"], e["agent"], e["ext"], e["ev"], e["detail"], hist,
                                  unsynced, received_at))
        elif kind == "gap":
            self.gaps.append((e["gw"], e["src"], e["stream"] or "", e["first"], e["last"], e["count"], e["rx"],
                              e["first_rx"], e["last_rx"], e["reason"], site, received_at))
        elif kind == "alarm":
            self.alarms.append((e["gw"], e["src"], e["rx"], e["alarm"], e["state"], e["last_rx"], e["quiet_s"],
                                e.get("skew_s"), e.get("unparsed_share"), site, received_at))
        elif kind == "status":
            self.statuses.append({**e, "site": site, "received_at": received_at})
        else:
            self.metrics.append({**e, "site": site, "received_at": received_at})
        return ""


def rows_of(messages: list[tuple[str, bytes, int]]) -> Rows:
    """The rows of messages, each ``(topic, payload, received_at)``."""
    rows = Rows()
    for topic, payload, received_at in messages:
        rows.add(topic, payload, received_at)
    return rows


def _decode(payload: bytes) -> Any:
    """The message's value, its size and lengths bounded (its depth: msgpack's own stack,
    then :func:`problem` where a value may nest).

    :raises ValueError: it is too large, or not msgpack."""
    if len(payload) > MAX_MESSAGE_BYTES:
        raise ValueError(f"{len(payload)} bytes, more than {MAX_MESSAGE_BYTES}")
    try:
        value = msgpack.unpackb(payload, raw=False, strict_map_key=True, max_array_len=MAX_ELEMENTS,
                                max_map_len=MAX_ELEMENTS)
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError, TypeError) as exc:
        raise ValueError(f"not msgpack: {exc}") from None
    return value


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value`` nests arrays and maps more than ``limit`` deep; walked with a stack
    of its own, so that no depth can exhaust Python's."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if type(item) is dict:
            children = item.values()
        elif type(item) is list:
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if type(child) is dict or type(child) is list)
    return False


_KEYS = {kind: tuple(schema) for kind, schema in SCHEMA.items()}
#: The exact types a key's value may have (``NoneType`` too where the key may be left out:
#: ``dict.get`` then gives None).
_ALLOWED = {kind: tuple(types | ({type(None)} if omitted else set()) for types, omitted in schema.values())
            for kind, schema in SCHEMA.items()}
_REQUIRED = {kind: frozenset(k for k, (_, omitted) in schema.items() if not omitted) for kind, schema in SCHEMA.items()}
_KNOWN = {kind: frozenset(schema) | {"v", "kind", HIST_KEY} for kind, schema in SCHEMA.items()}


#: A value from the wire in a reason: its repr cut in length and depth (reprlib's own
#: walk stops a few levels down, so no depth reaches Python's limit).
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80
_shown = _REPR.repr


def _keys_with(kind: str, t: type) -> tuple[str, ...]:
    return tuple(k for k, (types, _) in SCHEMA[kind].items() if t in types)


_INTS = {kind: _keys_with(kind, int) for kind in SCHEMA}
_TEXTS = {kind: _keys_with(kind, str) for kind in SCHEMA}
_FLOATS = {kind: _keys_with(kind, float) for kind in SCHEMA}
_NESTED = {kind: _keys_with(kind, dict) + _keys_with(kind, list) for kind in SCHEMA}
#: The keys that are sequence numbers (each an ``int`` by the time they are checked).
_SEQS = {"call": ("seq",), "unparsed": ("seq",), "headset": ("seq",), "gap": ("first", "last")}
#: The keys that are a call's start (an unparsed record's: the start of the call before it),
#: in seconds: within the calendar's years 1 to 9999, which every date a report or a web view
#: names is in, and far from the ends of 64 bits, which the spans around it are taken from.
_STARTS = {"call": ("start",), "unparsed": ("after_start",)}
_FIRST_SECOND = int(datetime(1, 1, 1, tzinfo=timezone.utc).timestamp())
_LAST_SECOND = int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc).timestamp())


def problem(event: Any, kind: str, gw: str) -> str:
    """Why ``event`` (decoded) cannot be stored as a ``kind`` event from gateway ``gw``; ""
    when it can. Types are matched exactly (``true`` is no integer). The common case, an
    event that is fine, is checked by set and ``map`` operations, without a Python loop
    over its keys."""
    if type(event) is not dict:
        return f"expected an event map, got {type(event).__name__}"
    if event.get("v") != SCHEMA_VERSION:
        return f"schema version {_shown(event.get('v'))}, this collector reads {SCHEMA_VERSION}"
    if event.get("kind") != kind:
        return f"a {_shown(event.get('kind'))} event on the topic of {kind!r} events"
    keys = event.keys()
    if not _REQUIRED[kind] <= keys:
        return f"no {sorted(_REQUIRED[kind] - keys)[0]!r}"
    if not keys <= _KNOWN[kind]:
        return f"unknown key {_shown(sorted(keys - _KNOWN[kind])[0])}"
    if not all(map(frozenset.__contains__, _ALLOWED[kind], map(type, map(event.get, _KEYS[kind])))):
        for key, allowed in zip(_KEYS[kind], _ALLOWED[kind]):
            if type(event.get(key)) not in allowed:
                names = " or ".join(sorted("null" if t is type(None) else t.__name__ for t in allowed))
                return f"{key!r} is {_shown(event[key])}, expected {names}"
    for key in _INTS[kind]:
        value = event.get(key)
        if type(value) is int and not -2**63 <= value < 2**63:
            return f"{key!r}: integer {value} beyond 64 bits"
    for key in _FLOATS[kind]:
        value = event.get(key)
        if type(value) is float and (value != value or abs(value) == float("inf")):
            return f"{key!r}: number {value}"
    for key in _SEQS.get(kind, ()):
        if not 1 <= event[key] < SEQ_LIMIT:
            return f"{key!r}: {event[key]} is no sequence number (1 to {SEQ_LIMIT - 1})"
    for key in _STARTS.get(kind, ()):
        if event.get(key) is not None and not _FIRST_SECOND <= event[key] <= _LAST_SECOND:
            return f"{key!r}: {event[key]} s is no time in the years 1 to 9999"
    if kind == "gap" and event["first"] > event["last"]:
        return f"'first' {event['first']} after 'last' {event['last']}"
    if "\0" in "".join(filter(None, map(event.get, _TEXTS[kind]))):  # (each a str or None by now)
        return "text with a NUL character"
    for key in _NESTED[kind]:  # (a call's x is checked as its JSON is made: see Rows._row)
        if too_deep(event.get(key), MAX_DEPTH - 2):  # (the batch and the event are the first two levels)
            return f"{key!r}: arrays and maps nested more than {MAX_DEPTH} deep"
        reason = "" if key == "x" else _unstorable(event.get(key))
        if reason:
            return f"{key!r}: {reason}"
    if event["gw"] != gw:
        return f"gateway {_shown(event['gw'])} on the topic of gateway {gw!r}"
    return ""


def json_text(value: dict | list) -> tuple[str, str]:
    """``(JSON text of value, "")``, or ``("", why a database would refuse it)``.

    orjson: several times faster than the standard library's encoder, and a call's ``x``
    is most of the JSON made here. It refuses binary and integers past 64 bits itself, but
    writes NaN as null and a NUL as ``\\u0000`` (which PostgreSQL's ``jsonb`` refuses): a
    value whose text shows either is walked to tell."""
    try:
        text = orjson.dumps(value)
    except TypeError as exc:  # (orjson.JSONEncodeError)
        return "", f"not storable as JSON: {exc}"
    if (b"null" in text or b"\\u0000" in text) and (reason := _unstorable(value)):
        return "", reason
    return text.decode(), ""


def _unstorable(value: Any) -> str:
    """What a database would refuse in a map or list kept as JSON (``x``, a status's
    sources, metrics): a NUL in text (PostgreSQL's ``jsonb``), a number JSON cannot hold,
    a value JSON has no type for (binary). Any integer msgpack carries, JSON carries.
    (Walked here, with a stack of its own: it is faster than making the JSON of these small
    maps, and no depth exhausts Python's.)"""
    stack = [value]
    while stack:
        item = stack.pop()
        t = type(item)
        if t is str:
            if "\0" in item:
                return "text with a NUL character"
        elif t is dict:
            stack.extend(item.keys())
            stack.extend(item.values())
        elif t is list:
            stack.extend(item)
        elif t is float:
            if item != item or abs(item) == float("inf"):
                return f"number {item}"
        elif not (item is None or t is bool or t is int):
            return f"a {t.__name__} value"
    return ""
