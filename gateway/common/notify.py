"""The sd_notify protocol without libsystemd: state lines as datagrams to ``$NOTIFY_SOCKET``.

systemd passes the socket's path (or an abstract address starting with ``@``) in
``NOTIFY_SOCKET``, and for ``WatchdogSec=`` the period in ``WATCHDOG_USEC`` (for the
process in ``WATCHDOG_PID``). The variables are taken out of the environment, so that
processes the gateway starts do not talk to systemd in its name. Without them (a run from
a shell) every call does nothing.
"""

from __future__ import annotations

import os
import socket
import time


class Notifier:
    """Tells systemd how the service is: ``READY=1``, ``STATUS=``, ``WATCHDOG=1``..."""

    def __init__(self, environ: dict[str, str] | None = None):
        env = os.environ if environ is None else environ
        address = env.pop("NOTIFY_SOCKET", "")
        usec, pid = env.pop("WATCHDOG_USEC", ""), env.pop("WATCHDOG_PID", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._socket: socket.socket | None = None
        if self._address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        watched = usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid()))
        #: How often to ping: half the period systemd waits (None: no watchdog).
        self.watchdog_interval = int(usec) / 2e6 if watched else None

    def send(self, *lines: str) -> None:
        """Send state lines (``"READY=1"``, ``"STATUS=..."``); a lost datagram is not an error."""
        if self._socket is None:
            return
        try:
            self._socket.sendto("\n".join(lines).encode(), self._address)
        except OSError:
            pass  # systemd went away or is restarting: nothing to tell

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")

    def reloading(self) -> None:
        self.send("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
