"""pytest plugins: real processes (broker, PostgreSQL, gateway, collector, subscriber) for the
integration tests."""

from __future__ import annotations

import itertools
import json
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from gateway.commands.simulate import PtyLine
from tools.parts import TIMEOUT, Broker, CollectorProcess, GatewayProcess, Postgres, free_port, wait_for

__all__ = ["TIMEOUT", "Broker", "CollectorProcess", "GatewayProcess", "Postgres", "PtyLine", "Subscriber", "free_port",
           "wait_until"]


def wait_until(predicate, timeout: float = TIMEOUT, what: str = "condition") -> None:
    """:func:`tools.parts.wait_for` as a test failure."""
    try:
        wait_for(predicate, timeout, what)
    except TimeoutError as exc:
        pytest.fail(str(exc))


class Subscriber:
    """`pbxgw subscribe` with a persistent session; its JSON lines collected by a thread."""

    def __init__(self, broker_url: str, client_id: str = "test-central"):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "subscribe", "--broker", broker_url, "--client-id", client_id],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.events: list[dict] = []
        self._lines: queue.Queue = queue.Queue()
        self._subscribed = threading.Event()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        if not self._subscribed.wait(TIMEOUT):
            pytest.fail("pbxgw subscribe did not subscribe")

    def _read_stdout(self) -> None:
        for line in self.proc.stdout:
            self._lines.put(json.loads(line))

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            if "subscribed to" in line:
                self._subscribed.set()

    def calls(self) -> list[dict]:
        return [e for e in self.events if "seq" in e]

    def collect(self, predicate, timeout: float = TIMEOUT, what: str = "events") -> list[dict]:
        """Gather printed events until ``predicate(events)`` holds."""
        deadline = time.monotonic() + timeout
        while not predicate(self.events):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"timed out waiting for {what}; have {len(self.calls())} events")
            try:
                self.events.append(self._lines.get(timeout=remaining))
            except queue.Empty:
                continue
        return self.events

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(TIMEOUT)


@pytest.fixture
def start_gateway(tmp_path, processes):
    """A factory of gateways, each killed at the end of the test: ``start_gateway(broker_url,
    sources, **sections)`` writes its config (in ``tmp_path / "gw"``, or ``workdir=``), starts
    it (with ``env=`` added to its environment) and returns its :class:`GatewayProcess`."""
    def start(broker_url: str, sources: list[dict], workdir=None, env: dict | None = None,
              **sections) -> GatewayProcess:
        gw = GatewayProcess(workdir or tmp_path / "gw", broker_url, sources, **sections)
        processes.append(gw)
        gw.start(env)
        return gw
    return start


@pytest.fixture
def start_collector(tmp_path, processes):
    """A factory of collectors, each killed at the end of the test: ``start_collector(broker_url,
    database, name="collector", **settings)`` writes its config (``[collector]`` settings) and
    starts it, and returns its :class:`CollectorProcess` once it has subscribed."""
    def start(broker_url: str, database: str, name: str = "collector", **settings) -> CollectorProcess:
        collector = CollectorProcess(tmp_path / name, broker_url, database, **settings)
        processes.append(collector)
        collector.start()
        wait_until(lambda: "INFO: subscribed to" in collector.log_text(), what=f"{name} to subscribe")
        return collector
    return start


@pytest.fixture
def serial_gateway(start_gateway):
    """A factory: ``serial_gateway(broker_url, device, **sections)``, a gateway reading the
    Avaya IP Office records of one serial source ``ipo`` on ``device``, started and reading."""
    def start(broker_url: str, device: str, **sections) -> GatewayProcess:
        source = {"name": "ipo", "type": "serial", "device": device, "profile": "avaya-ipo"}
        gw = start_gateway(broker_url, [source], **sections)
        wait_until(lambda: "pbxgw.source.ipo: INFO: reading" in gw.log_text(), what="the port to be read")
        return gw
    return start


@pytest.fixture
def pbx_line():
    line = PtyLine()
    yield line
    line.close()


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop(signal.SIGKILL)


@pytest.fixture
def processes():
    """Registers processes to be killed at the end of the test, whatever happened."""
    started: list = []
    yield started
    for p in started:
        proc = getattr(p, "proc", None)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(TIMEOUT)


@pytest.fixture(scope="session")
def postgres_cluster():
    """One private PostgreSQL cluster for the session; each test takes a database of its own."""
    cluster = Postgres()
    cluster.start()
    yield cluster
    cluster.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A new, empty database of each engine in turn: a SQLite file, a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'central.db'}"
    cluster = request.getfixturevalue("postgres_cluster")
    return cluster.create_database(f"t{next(_DATABASES)}")


_DATABASES = itertools.count(1)


class NotifySocket:
    """What systemd's end of NOTIFY_SOCKET receives, message by message."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages: list[tuple[float, set[str]]] = []

    def next(self, timeout: float) -> set[str] | None:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            return None
        lines = set(data.decode().splitlines())
        self.messages.append((time.monotonic(), lines))
        return lines

    def wait_for(self, line: str, timeout: float = TIMEOUT) -> set[str]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            got = self.next(left)
            if got and line in got:
                return got
        pytest.fail(f"no {line} within {timeout} s")

    def quiet_for(self, line: str, quiet: float, within: float) -> bool:
        """Whether ``line`` stops coming for ``quiet`` seconds at some time within ``within``."""
        deadline, last = time.monotonic() + within, time.monotonic()
        while time.monotonic() < deadline:
            got = self.next(min(quiet, deadline - time.monotonic()))
            if got is not None and line in got:
                last = time.monotonic()
            elif time.monotonic() - last >= quiet:
                return True
        return False

    def close(self):
        self.sock.close()


@pytest.fixture
def notify(tmp_path):
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()
