"""Real parts for integration tests: a Mosquitto broker on a free loopback port, the
gateway daemon, and the `pbxgw subscribe` tool, each a real process.

Every wait is bounded and waits for something to happen (a port accepting, a line
printed), never for a fixed time.
"""

from __future__ import annotations

import getpass
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

TIMEOUT = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float = TIMEOUT, what: str = "condition") -> None:
    """Poll ``predicate`` (cheap, local) until true; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


class Broker:
    """Mosquitto on 127.0.0.1:<free port>, restartable on the same port.

    Persistence is on, and queues for subscribers are unbounded, as a central broker for
    billing data must be set up (docs/events.md): a clean restart keeps a named
    subscriber's session and what is queued for it.
    """

    def __init__(self, workdir: Path, acl: str = ""):
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        # Run as ourselves: started as root, mosquitto would switch to the "mosquitto" user,
        # which cannot write the test's private directory.
        lines = [f"user {getpass.getuser()}", f"listener {self.port} 127.0.0.1", "allow_anonymous true",
                 "persistence true", f"persistence_location {workdir}/",
                 "max_queued_messages 0", "max_inflight_messages 0", f"log_dest file {workdir}/mosquitto.log"]
        if acl:
            (workdir / "acl").write_text(acl)
            lines.append(f"acl_file {workdir}/acl")
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._accepting, what=f"mosquitto on port {self.port}")

    def _accepting(self) -> bool:
        assert self.proc.poll() is None, f"mosquitto exited: {(self.workdir / 'mosquitto.log').read_text()}"
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """A clean stop (SIGTERM: sessions saved) or a crash (SIGKILL)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(TIMEOUT)
        self.proc = None


class Gateway:
    """`pbxgw run` with a config written from keyword sections."""

    def __init__(self, workdir: Path, broker_url: str, sources: list[dict], **sections):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.state_dir = workdir / "state"
        self.config = workdir / "config.toml"
        self.log = workdir / "gateway.log"
        self.config.write_text(config_text(self.state_dir, broker_url, sources, **sections))
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "gateway", "run", "--config", str(self.config)],
                                         stdout=log, stderr=log)

    def kill(self, sig: int = signal.SIGKILL) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(TIMEOUT)

    def log_text(self) -> str:
        return self.log.read_text()


def config_text(state_dir: Path, broker_url: str, sources: list[dict], **sections: dict) -> str:
    def value(v):
        return json.dumps(v) if isinstance(v, (str, bool)) else str(v)

    lines = ["[gateway]", 'id = "gw-test"', 'site = "lab"', f'state_dir = "{state_dir}"',
             "[mqtt]", f'url = "{broker_url}"', 'backoff_max = "2s"']
    lines += [f"{k} = {value(v)}" for k, v in sections.get("mqtt", {}).items()]
    for name, table in sections.items():
        if name != "mqtt":
            lines += [f"[{name}]"] + [f"{k} = {value(v)}" for k, v in table.items()]
    for source in sources:
        lines += ["[[source]]"] + [f"{k} = {value(v)}" for k, v in source.items()]
    return "\n".join(lines) + "\n"


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
