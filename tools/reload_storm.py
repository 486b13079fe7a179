"""Reload storm: a PBX prints N unique records while the gateway's config is edited and
``SIGHUP`` sent R times, one every I seconds (a technician saving twice, ``systemctl
reload`` run twice, a configuration tool that reloads on every save); then count what a
central subscriber received, by key.

    python -m tools.reload_storm --source tcp-server --records 2000 --reloads 20 --every 0.05

Each edit changes the source's ``read_delay`` and ``timezone``, so each reload restarts the
source; its link (a serial port, a PBX's TCP connection, a followed file's offset) must
carry over. Prints `sent`, `received unique`, `duplicates`, `key collisions`, `lost`, the
reloads the log shows, and whether the last edit is what runs. Exit status 1 on any loss,
collision, traceback or task exception in the log, or a last edit not applied.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from gateway.commands.simulate import PtyLine
from gateway.edge import status
from tools.chaos import Central, record
from tools.parts import TIMEOUT, Broker, GatewayProcess, free_port, wait_for

SOURCES = ("serial", "tcp-server", "tcp-client", "file")
#: The zones the edits go through (each edit a new one, so the last is known).
ZONES = [f"Etc/GMT{sign}{hours}" for hours in range(1, 13) for sign in "+-"]


@dataclass
class Outcome:
    sent: int
    unique: int
    duplicates: int
    collisions: int
    reloads: int
    last_applied: bool
    faults: list[str]  # what the log should never say

    @property
    def lost(self) -> int:
        return self.sent - self.unique

    @property
    def ok(self) -> bool:
        return not (self.lost or self.collisions or self.faults) and self.last_applied

    def lines(self) -> list[str]:
        return [f"sent {self.sent}", f"received unique {self.unique}", f"duplicates {self.duplicates}",
                f"key collisions {self.collisions}", f"lost {self.lost}", f"reloads logged {self.reloads}",
                f"last edit applied {'yes' if self.last_applied else 'NO'}",
                *(f"log: {fault}" for fault in self.faults)]


class Pbx:
    """The PBX of one source kind: ``start()`` gives the source's settings, ``write()``
    prints records, ``close()`` ends the link."""

    def __init__(self, kind: str, work: Path):
        self.kind, self.work = kind, work
        self._conn: socket.socket | None = None

    def start(self) -> dict:
        common = {"name": "pbx", "profile": "avaya-ipo", "read_delay": "20ms", "timezone": "UTC"}
        if self.kind == "serial":
            self._line = PtyLine()
            return {**common, "type": "serial", "device": self._line.path}
        if self.kind == "file":
            self._path = self.work / "smdr.log"
            self._path.touch()
            self._out = open(self._path, "ab", buffering=0)
            return {**common, "type": "file", "path": str(self._path), "follow": True, "poll_interval": "20ms"}
        if self.kind == "tcp-server":  # the gateway listens; the PBX connects (Avaya IP Office)
            self._port = free_port()
            return {**common, "type": "tcp-server", "host": "127.0.0.1", "port": self._port}
        self._server = socket.create_server(("127.0.0.1", 0))  # the PBX listens (Panasonic, Mitel)
        self._server.settimeout(TIMEOUT)
        return {**common, "type": "tcp-client", "host": "127.0.0.1", "port": self._server.getsockname()[1]}

    def connect(self) -> None:
        """For the TCP kinds: the link up (once the gateway listens, or has connected)."""
        if self.kind == "tcp-server":
            deadline = time.monotonic() + TIMEOUT
            while self._conn is None:
                try:
                    self._conn = socket.create_connection(("127.0.0.1", self._port), timeout=TIMEOUT)
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)
        elif self.kind == "tcp-client":
            self._conn, _ = self._server.accept()

    def write(self, data: bytes) -> None:
        if self.kind == "serial":
            self._line.write(data)
        elif self.kind == "file":
            self._out.write(data)
        else:
            self._conn.sendall(data)  # a connection the gateway dropped fails here: the storm's loss

    def close(self) -> None:
        if self.kind == "serial":
            self._line.close()
        elif self.kind == "file":
            self._out.close()
        else:
            if self._conn is not None:
                self._conn.close()
            if self.kind == "tcp-client":
                self._server.close()


def storm(kind: str, work: Path, records: int = 2000, reloads: int = 20, every: float = 0.05,
          stall: float = 30.0) -> Outcome:
    """One storm on a source of ``kind``, in ``work``; what a central subscriber received."""
    broker = Broker(work / "broker")
    broker.start()
    central = Central(broker.url)
    pbx = Pbx(kind, work)
    gateway = GatewayProcess(work / "gateway", broker.url, [pbx.start()], queue={"sync_interval": "1s"})
    zone, delay = "UTC", "20ms"
    try:
        gateway.start()
        wait_for(lambda: "pbxgw started" in gateway.log_text(), what="the gateway to start")
        pbx.connect()
        writer_error: list[BaseException] = []

        def print_records() -> None:  # over about 2 s: before, during and after the storm
            try:
                for first in range(1, records + 1, 20):
                    pbx.write(b"".join(record(i) for i in range(first, min(first + 20, records + 1))))
                    time.sleep(0.02)
            except OSError as exc:
                writer_error.append(exc)

        printer = threading.Thread(target=print_records)
        printer.start()
        time.sleep(0.3)
        for n in range(reloads):
            new_zone, new_delay = ZONES[n % len(ZONES)], f"{20 + (n + 1) % 2 * 10}ms"
            gateway.config.write_text(gateway.config.read_text()
                                      .replace(f'timezone = "{zone}"', f'timezone = "{new_zone}"')
                                      .replace(f'read_delay = "{delay}"', f'read_delay = "{new_delay}"'))
            zone, delay = new_zone, new_delay
            gateway.proc.send_signal(1)  # SIGHUP
            time.sleep(every)
        printer.join()
        last, last_change = -1, time.monotonic()
        while central.unique() < records and time.monotonic() - last_change < stall:
            time.sleep(0.1)
            if central.unique() != last:
                last, last_change = central.unique(), time.monotonic()
        sock = gateway.state_dir.parent / "run" / status.SOCKET_NAME
        # The SIGHUPs of a running reload make one more, with the config as it is then.
        try:
            wait_for(lambda: status.query(sock)["sources"][0]["timezone"] == zone, timeout=stall,
                     what="the last edit applied")
            applied = True
        except TimeoutError:
            applied = False
    finally:
        pbx.close()
        if gateway.proc and gateway.proc.poll() is None:
            gateway.kill(15)
        central.close()
        broker.stop()
    log = gateway.log_text()
    faults = [f"the PBX's writes failed: {exc}" for exc in writer_error]
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if "Traceback" in line:  # with the lines that say where and what
            end = next((j for j in range(i + 1, len(lines)) if not lines[j].startswith((" ", "\t"))), len(lines))
            faults.append("\n".join(lines[i:end + 1]))
        elif "Task exception" in line or "failed (" in line:
            faults.append(line)
    with central.lock:
        return Outcome(records, len(central.callids), central.duplicates, central.collisions,
                       log.count("INFO: reloaded "), applied, faults)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", choices=(*SOURCES, "all"), default="all")
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--reloads", type=int, default=20)
    parser.add_argument("--every", type=float, default=0.05, help="seconds between SIGHUPs (default: %(default)s)")
    args = parser.parse_args(argv)
    ok = True
    for kind in SOURCES if args.source == "all" else (args.source,):
        with tempfile.TemporaryDirectory(prefix="pbxgw-storm-") as tmp:
            outcome = storm(kind, Path(tmp), args.records, args.reloads, args.every)
        print(f"source {kind}: {args.reloads} reloads, one every {args.every:g} s: " + ", ".join(outcome.lines()))
        ok = ok and outcome.ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
