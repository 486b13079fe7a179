"""``pbxgw subscribe``: the central side's first tool. Decodes the gateway topics to JSON
lines and drops the duplicates at-least-once delivery allows, by ``(gw, src, stream, seq)``."""

from __future__ import annotations

import json
import sys
from collections import OrderedDict
from typing import Any, TextIO

import msgpack
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.common.printable import json_printable, printable
from gateway.wire.events import MAX_MESSAGE_BYTES, iso_utc

#: How long the broker keeps a named subscriber's session (and queued messages) while it
#: is away: a week covers a long weekend's outage of the central side.
SESSION_EXPIRY_S = 7 * 24 * 3600


class Deduplicator:
    """Remembers the last ``window`` event keys; a key seen again is a duplicate.

    Duplicates come from resends of what was in flight (a window of messages) and from a
    gateway restart (what was unconfirmed), so a bounded memory of recent keys is enough.
    """

    def __init__(self, window: int):
        self.window = window
        self._seen: OrderedDict[tuple, None] = OrderedDict()
        self.duplicates = 0

    def is_new(self, event: dict[str, Any]) -> bool:
        if "seq" not in event:
            return True  # status and gap events carry no sequence number
        key = (event.get("gw"), event.get("src"), event.get("stream"), event["seq"])
        if key in self._seen:
            self.duplicates += 1
            return False
        self._seen[key] = None
        if len(self._seen) > self.window:
            self._seen.popitem(last=False)
        return True


def decode(payload: bytes) -> list[dict[str, Any]]:
    """The events in one message: a batch (array) or a single map (status)."""
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=MAX_MESSAGE_BYTES)
    unpacker.feed(payload)
    value = unpacker.unpack()
    return value if isinstance(value, list) else [value]


def for_json(event: dict[str, Any]) -> dict[str, Any]:
    if isinstance(event.get("start"), int):
        event = {**event, "start": iso_utc(event["start"])}
    return event


def subscribe(host: str, port: int, tls: bool, topic: str, client_id: str, window: int,
              count: int | None, out: TextIO = sys.stdout) -> int:
    """Print events from ``topic`` as JSON lines until ``count`` new events or Ctrl-C
    (over TLS, checked against the system's CAs, when ``tls``)."""
    dedup = Deduplicator(window)
    printed = 0
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=MQTTProtocolVersion.MQTTv5)
    if tls:
        client.tls_set()

    def on_connect(c, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            print(f"pbxgw subscribe: broker refused: {reason_code}", file=sys.stderr)
            return
        c.subscribe(topic, qos=1)

    def on_subscribe(c, userdata, mid, reason_codes, properties):
        print(f"pbxgw subscribe: subscribed to {topic}", file=sys.stderr, flush=True)

    def on_message(c, userdata, message):
        nonlocal printed
        try:
            events = decode(message.payload)
        except (ValueError, msgpack.UnpackException) as exc:
            print(f"pbxgw subscribe: {printable(message.topic, 200)}: undecodable payload: {exc}", file=sys.stderr)
            return
        for event in events:
            if isinstance(event, dict) and dedup.is_new(event):
                out.write(json_printable(json.dumps(for_json(event), ensure_ascii=False)) + "\n")
                printed += "seq" in event
        out.flush()
        if count is not None and printed >= count:
            c.disconnect()

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    properties = None
    if client_id:
        # A named subscriber keeps its session, so the broker queues for it while it is away.
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = SESSION_EXPIRY_S
    client.connect(host, port, keepalive=30, clean_start=not client_id, properties=properties)
    try:
        client.loop_forever()
    finally:
        print(f"pbxgw subscribe: {printed} events, {dedup.duplicates} duplicates dropped",
              file=sys.stderr)
    return 0
