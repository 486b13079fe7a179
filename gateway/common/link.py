"""One MQTT link on the running asyncio loop, the gateway's publisher's and the collector's.

paho-mqtt 2.x runs without a thread of its own: its external-loop hooks say when its socket
opens and closes and when it has bytes to write, the loop calls ``loop_read``/``loop_write``
as the socket is ready, and ``loop_misc`` (keep-alive pings, timeouts) once a second. The
hooks may run in the executor thread that makes the blocking TCP connect (so that a slow
broker never stalls the loop): each is handed over to the loop's thread.

Every failure to connect, and every end of a connection, is retried after the owner's delay
(:attr:`Link.retry_delay`), never by paho. A fault is said once, then at debug level while
it lasts, in words: a broker that refuses, a TLS listener that closes before accepting (a
client certificate missing or refused), a connection ended without a reason (on Mosquitto
2.0, often another client taking over the same client id).

What a connection means is the owner's: it hears of each through ``on_connected`` and
``on_lost``, and publishes, subscribes and acknowledges on :attr:`Link.client`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
from typing import Any, Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from gateway.common.mqtt import MqttSettings, Prepared

#: What paho reports for a connection that ended without a DISCONNECT saying why: on
#: Mosquitto 2.0, often another client taking over the same client id.
NO_REASON = ("Unspecified error",)
#: How long :meth:`Link.close` waits for the DISCONNECT to go out and the socket to close.
CLOSE_WAIT_S = 5.0


class Link:
    """One paho client, connected and kept connected on the running loop.

    :param who: what runs it, as the takeover warning names a second one ("gateway").
    :param retry_delay: the delay before the next attempt, asked after each failure.
    :param protocol: ``"5"`` or ``"3.1.1"``.
    :param manual_ack: acknowledge each message when the owner says (:attr:`client`'s ``ack``).
    :param connect: more arguments of paho's ``connect`` (``clean_start``, ``properties``).
    :param will: the Last Will, ``(topic, payload)``, retained, at QoS 1.
    """

    def __init__(self, settings: MqttSettings, prepared: Prepared, log: logging.Logger, who: str,
                 retry_delay: Callable[[], float], protocol: str = "5", manual_ack: bool = False,
                 connect: dict[str, Any] | None = None, will: tuple[str, bytes] | None = None):
        self.settings, self.log, self.who, self.retry_delay = settings, log, who, retry_delay
        self.connected = False
        #: Told with paho's CONNACK flags once the broker accepted a connection.
        self.on_connected: Callable[[Any], None] = lambda flags: None
        #: Told when a connection ended or an attempt failed after the socket opened (with
        #: whether it had been accepted), before the retry is scheduled.
        self.on_lost: Callable[[bool], None] = lambda was_connected: None
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._connect_args = connect or {}
        self._fd: int | None = None  # the broker's socket, while open
        self._reading = False
        self._paused = False
        self._stopping = False
        self._refused = False  # the CONNACK refused us (and said why)
        self._said = ""  # the fault last said
        self._retry: asyncio.TimerHandle | None = None
        self._misc: asyncio.TimerHandle | None = None
        v5 = protocol == "5"
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=settings.client_id,
                             protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
                             clean_session=None if v5 else True, manual_ack=manual_ack, reconnect_on_failure=False)
        if prepared.tls is not None:
            client.tls_set_context(prepared.tls)
        if settings.username:
            client.username_pw_set(settings.username, prepared.password)
        if will is not None:
            client.will_set(will[0], will[1], qos=1, retain=True)
        client.on_connect, client.on_disconnect = self._on_connect, self._on_disconnect
        client.on_socket_open = lambda c, u, sock: self._on_loop(self._opened, sock)
        client.on_socket_close = lambda c, u, sock: self._on_loop(self._closed, sock)
        client.on_socket_register_write = lambda c, u, sock: self._on_loop(
            self._loop.add_writer, sock.fileno(), c.loop_write)
        client.on_socket_unregister_write = lambda c, u, sock: self._on_loop(self._loop.remove_writer, sock.fileno())
        self.client = client

    @property
    def url(self) -> str:
        s = self.settings
        return f"mqtt{'s' if s.tls else ''}://{s.host}:{s.port}"

    def start(self) -> None:
        """Begin connecting (in the background; retried after each failure)."""
        self._misc = self._loop.call_later(1, self._loop_misc)
        self._loop.create_task(self._connect())

    def pause_reading(self) -> None:
        """Stop reading the socket (TCP then holds the broker) until :meth:`resume_reading`."""
        self._paused = True
        if self._fd is not None and self._reading:
            self._loop.remove_reader(self._fd)
        self._reading = False

    def resume_reading(self) -> None:
        self._paused = False
        if self._fd is not None and not self._reading:
            self._loop.add_reader(self._fd, self._read)
            self._reading = True

    async def close(self) -> None:
        """Stop retrying; say DISCONNECT and let the loop write it out, briefly."""
        self._stopping = True
        for handle in (self._retry, self._misc):
            if handle is not None:
                handle.cancel()
        if not self.connected:
            return
        self.client.disconnect()
        try:
            async with asyncio.timeout(CLOSE_WAIT_S):
                while self._fd is not None:
                    await asyncio.sleep(0.01)
        except TimeoutError:
            pass

    def stop_retrying(self) -> None:
        """From now on a lost connection is not made again (the owner is stopping)."""
        self._stopping = True
        if self._retry is not None:
            self._retry.cancel()

    # -- paho on the loop ------------------------------------------------------------------

    def _on_loop(self, fn: Callable, *args) -> None:
        """``fn(*args)`` on the loop's thread: now if this is it, else soon."""
        if threading.get_ident() == self._thread:
            fn(*args)
        else:
            self._loop.call_soon_threadsafe(fn, *args)

    def _opened(self, sock: socket.socket) -> None:
        self._fd, self._reading = sock.fileno(), False
        if not self._paused:
            self.resume_reading()

    def _closed(self, sock: socket.socket) -> None:
        if self._fd is not None and self._reading:
            self._loop.remove_reader(self._fd)
        self._fd, self._reading = None, False

    def _read(self) -> None:
        self.client.loop_read()
        sock = self.client.socket()
        if self._reading and isinstance(sock, ssl.SSLSocket) and sock.pending():
            self._loop.call_soon(self._read)  # decrypted bytes wait in the TLS layer, not the socket

    def _loop_misc(self) -> None:
        self.client.loop_misc()
        self._misc = self._loop.call_later(1, self._loop_misc)

    # -- connecting --------------------------------------------------------------------------

    async def _connect(self) -> None:
        self._retry = None
        s = self.settings
        try:
            await self._loop.run_in_executor(None, lambda: self.client.connect(
                s.host, s.port, s.keepalive, **self._connect_args))
        except (OSError, ssl.SSLError, ValueError) as exc:
            self._failed(f"cannot connect to {self.url}: {exc}")

    def _failed(self, error: str, level: int = logging.WARNING) -> None:
        self._say(f"{error}; retrying", level)
        self._schedule_retry()

    def _say(self, text: str, level: int = logging.WARNING) -> None:
        """A fault, said once, then at debug level while it lasts."""
        self.log.log(logging.DEBUG if text == self._said else level, "%s", text)
        self._said = text

    def _schedule_retry(self) -> None:
        if not self._stopping and self._retry is None:
            self._retry = self._loop.call_later(self.retry_delay(), lambda: self._loop.create_task(self._connect()))

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._say(f"the broker refused the connection: {reason_code}; retrying", logging.ERROR)
            self._refused = True
            return  # paho closes the socket; _on_disconnect schedules the retry
        self.connected, self._said = True, ""
        self.on_connected(flags)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        was_connected, self.connected = self.connected, False
        if was_connected and not self._stopping and str(reason_code) in NO_REASON:
            self.log.warning("the broker closed the connection without a reason: another client with client id "
                             "%r (a second %s with the same [mqtt] client_id?) or a broker restart; the broker's "
                             "log says which", self.settings.client_id, self.who)
        elif was_connected:
            (self.log.info if self._stopping else self.log.warning)("disconnected from the broker: %s", reason_code)
        elif self._refused:  # the CONNACK said why (already said)
            self._refused = False
        elif not self._stopping:
            # Closed before it accepted us: a TLS listener that wants a client certificate,
            # or one that rejected ours, does this after the handshake.
            self.on_lost(False)
            self._failed(f"{self.url} closed the connection before accepting it ({reason_code}; a client "
                         f"certificate missing or refused?)")
            return
        self.on_lost(was_connected)
        self._schedule_retry()
