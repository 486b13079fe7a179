"""Whether the broker lets in a client without a user name: a probe, as an intruder would try.

With anonymous clients let in, anyone who reaches the broker can publish as any gateway
(its topics are an ACL's only check), so the collector tries once at each start and says
so loudly when it is let in (docs/central.md).
"""

from __future__ import annotations

import secrets
import ssl
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from gateway.common.mqtt import MqttSettings

#: How long the probe waits for the broker's answer.
PROBE_TIMEOUT_S = 10.0


def anonymous_allowed(settings: MqttSettings, timeout: float = PROBE_TIMEOUT_S) -> bool | None:
    """True when the broker accepts a connection without a user name or a client
    certificate; False when it refuses one; None when it did not answer (it is not known)."""
    answered = threading.Event()
    accepted: list[bool] = []

    def on_connect(client, userdata, flags, reason_code, properties) -> None:
        accepted.append(not reason_code.is_failure)
        answered.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pbxgw-probe-{secrets.token_hex(4)}",
                         protocol=MQTTProtocolVersion.MQTTv5, reconnect_on_failure=False)
    if settings.tls:
        # (the server's certificate checked as the collector does; no client certificate)
        client.tls_set_context(ssl.create_default_context(cafile=settings.ca_file or None))
    client.on_connect = on_connect
    try:
        client.connect(settings.host, settings.port, keepalive=max(5, int(timeout)))
    except (OSError, ssl.SSLError):
        return None
    client.loop_start()
    try:
        answered.wait(timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    return accepted[0] if accepted else None
