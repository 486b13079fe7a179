"""paho-mqtt on an asyncio loop, without a thread of its own: its socket hooks.

paho's external-loop hooks say when its socket opens and closes and when it has bytes to
write; the loop then calls ``loop_read``/``loop_write`` as the socket is ready (and the
owner calls ``loop_misc`` once a second). The hooks may run in the executor thread that
makes the blocking TCP connect, so each is handed over to the loop thread. Used by the
gateway's publisher and by the collector.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Callable

import paho.mqtt.client as mqtt

#: What paho reports for a connection that ended without a DISCONNECT saying why: on
#: Mosquitto 2.0, often another client taking over the same client id.
NO_REASON = ("Unspecified error",)


class LoopHooks:
    """Attach a paho client's socket to ``loop`` (the running loop of the thread that makes it)."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self._thread = threading.get_ident()

    def call(self, fn: Callable, *args) -> None:
        """``fn(*args)`` on the loop's thread: now if this is it, else soon."""
        if threading.get_ident() == self._thread:
            fn(*args)
        else:
            self.loop.call_soon_threadsafe(fn, *args)

    def attach(self, client: mqtt.Client, opened: Callable[[socket.socket], None],
               closed: Callable[[socket.socket], None]) -> None:
        """``opened``/``closed`` with the socket as it opens and closes (on the loop's
        thread); writes registered with the loop while paho has bytes to send."""
        loop = self.loop
        client.on_socket_open = lambda c, u, sock: self.call(opened, sock)
        client.on_socket_close = lambda c, u, sock: self.call(closed, sock)
        client.on_socket_register_write = lambda c, u, sock: self.call(loop.add_writer, sock.fileno(), c.loop_write)
        client.on_socket_unregister_write = lambda c, u, sock: self.call(loop.remove_writer, sock.fileno())
