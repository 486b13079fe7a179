"""Real parts shared by the demo, the chaos script, the benchmarks and the tests: a
Mosquitto broker on a free loopback port, a private PostgreSQL cluster, the gateway daemon
and the collector as processes.

Every wait is bounded and waits for something to happen (a port accepting, a log line).
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

TIMEOUT = 60


def how_many(text: str) -> int:
    """A command-line count (``--collectors``, ``--gateways``, ``--cycles``): a whole number,
    at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1; got {text!r}")
    return value


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports free now. Each stays bound until all are chosen:
    a port closed at once can be handed out again by the next call."""
    with contextlib.ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def free_port() -> int:
    return free_ports(1)[0]


def wait_for(predicate, timeout: float = TIMEOUT, what: str = "condition") -> None:
    """Poll ``predicate`` (cheap, local) until true; TimeoutError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise FileNotFoundError("mosquitto is not installed (Debian: apt-get install mosquitto)")
    return found



def subscriber(url: str, topics: list[str], on_message) -> mqtt.Client:
    """An MQTT 5 client of the broker at ``url`` (``mqtt://HOST:PORT``), subscribed at QoS 1
    to ``topics`` once this returns, its network thread running ``on_message``."""
    host, port = url.removeprefix("mqtt://").rsplit(":", 1)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    client.on_message = on_message
    subscribed = threading.Event()
    client.on_subscribe = lambda *a: subscribed.set()
    client.connect(host, int(port))
    client.subscribe([(topic, 1) for topic in topics])
    client.loop_start()
    if not subscribed.wait(TIMEOUT):
        raise TimeoutError(f"no SUBACK from {url} in {TIMEOUT} s")
    return client

class Broker:
    """Mosquitto on 127.0.0.1:<free port>, restartable on the same port.

    Persistence is on, and queues for subscribers are unbounded, as a central broker for
    billing data must be set up (docs/events.md, docs/central.md): a clean restart keeps a
    named subscriber's session and what is queued for it. The in-flight limit is a number,
    not 0: with 0 ("no limit"), Mosquitto 2.0 sends a client past the Receive Maximum it
    asked for once it starts acknowledging (measured: 51 unacknowledged of a maximum of 10).
    """

    def __init__(self, workdir: Path, acl: str = "", tls: dict | None = None, anonymous: bool = True,
                 users: dict[str, str] | None = None, persistence: bool = True, conf: tuple[str, ...] = ()):
        """:param tls: a second listener, TLS only, on ``tls_port``: mosquitto's ``cafile``,
            ``certfile``, ``keyfile`` and ``require_certificate`` settings.
        :param anonymous: whether clients without a user name are let in.
        :param users: user names and their passwords, for mosquitto's password file.
        :param persistence: whether sessions and queued messages outlive the broker (off:
            a broker killed loses what it held).
        :param conf: more lines of mosquitto.conf."""
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        # Run as ourselves: started as root, mosquitto would switch to the "mosquitto" user,
        # which cannot write the test's private directory.
        self._lines = [f"user {getpass.getuser()}", f"allow_anonymous {str(anonymous).lower()}",
                       f"persistence {str(persistence).lower()}", f"persistence_location {workdir}/",
                       "max_queued_messages 0", "max_inflight_messages 65535", f"log_dest file {workdir}/mosquitto.log"]
        self._lines += conf
        if acl:
            (workdir / "acl").write_text(acl)
            self._lines.append(f"acl_file {workdir}/acl")
        if users:
            passwords = workdir / "passwords"
            passwords.write_text("".join(f"{user}:{password}\n" for user, password in users.items()))
            subprocess.run(["mosquitto_passwd", "-U", str(passwords)], check=True, capture_output=True)
            self._lines.append(f"password_file {passwords}")
        self._tls = [f"{key} {str(value).lower() if isinstance(value, bool) else value}"
                     for key, value in (tls or {}).items()]
        self.conf = workdir / "mosquitto.conf"
        self._choose_ports(tls is not None)
        self.proc: subprocess.Popen | None = None
        self._started = False

    def _choose_ports(self, tls: bool) -> None:
        self.port, self.tls_port = free_ports(2) if tls else (free_port(), None)
        self.url = f"mqtt://127.0.0.1:{self.port}"
        lines = [f"listener {self.port} 127.0.0.1", *self._lines]
        if tls:
            lines += [f"listener {self.tls_port} 127.0.0.1", *self._tls]
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        """Start, on the same ports as before once it has started. A first start whose port
        was taken meanwhile (a client's outgoing connection can get it too) tries new ones."""
        for attempt in range(5):
            self.proc = subprocess.Popen([mosquitto_binary(), "-c", str(self.conf)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_for(self._accepting, what=f"mosquitto on port {self.port}")
                self._started = True
                return
            except RuntimeError:
                if self._started or attempt == 4 or "Address already in use" not in self._log():
                    raise
                (self.workdir / "mosquitto.log").unlink()
                self._choose_ports(self.tls_port is not None)

    def _log(self) -> str:
        log = self.workdir / "mosquitto.log"
        return log.read_text() if log.exists() else ""

    def _accepting(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"mosquitto exited: {self._log()}")
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


def postgres_binary(name: str) -> str:
    """A PostgreSQL server program (Debian keeps them in /usr/lib/postgresql/<version>/bin)."""
    for directory in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(os.path.join(directory, name), os.X_OK):
            return os.path.join(directory, name)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"PostgreSQL's {name} is not installed (Debian: apt-get install postgresql)")
    return found


class Postgres:
    """A private PostgreSQL cluster on 127.0.0.1:<free port>, restartable on the same port.

    Started as root, it runs as the ``postgres`` user (PostgreSQL refuses root), in a
    directory of its own outside the test's (which that user could not enter). No socket
    file, trust authentication on loopback: a throwaway cluster.
    """

    def __init__(self):
        self.workdir = Path(tempfile.mkdtemp(prefix="pbxgw-pg-"))
        self.port = free_port()
        self.data = self.workdir / "data"
        self.log = self.workdir / "postgres.log"
        self._user = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        if self._user:
            os.chown(self.workdir, self._user.pw_uid, self._user.pw_gid)
        self._run([postgres_binary("initdb"), "-D", str(self.data), "-U", "pbxgw", "--auth=trust", "-E", "UTF8",
                   "--no-sync"])
        self.proc: subprocess.Popen | None = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://pbxgw@127.0.0.1:{self.port}/{database}"

    def _as_owner(self) -> None:
        if self._user:
            os.setgid(self._user.pw_gid)
            os.setuid(self._user.pw_uid)

    def _run(self, argv: list[str]) -> None:
        done = subprocess.run(argv, capture_output=True, text=True, preexec_fn=self._as_owner)
        if done.returncode:
            raise RuntimeError(f"{argv[0]} failed: {done.stderr.strip()}")

    def start(self) -> None:
        log = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [postgres_binary("postgres"), "-D", str(self.data), "-p", str(self.port), "-c", "listen_addresses=127.0.0.1",
             "-c", "unix_socket_directories=", "-c", "fsync=off", "-c", "max_connections=50"],
            stdout=log, stderr=log, preexec_fn=self._as_owner)
        log.close()
        wait_for(self._accepting, what=f"PostgreSQL on port {self.port}")

    def _accepting(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"postgres exited: {self.log.read_text()[-2000:]}")
        import psycopg
        try:
            psycopg.connect(self.url(), connect_timeout=2).close()
            return True
        except psycopg.OperationalError:
            return False

    def create_database(self, name: str) -> str:
        """A new, empty database; its URL."""
        import psycopg
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self, sig: int = signal.SIGINT) -> None:
        """SIGINT: PostgreSQL's fast shutdown (clients cut off); SIGKILL: a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(TIMEOUT)
        self.proc = None

    def close(self) -> None:
        self.stop(signal.SIGKILL)
        shutil.rmtree(self.workdir, ignore_errors=True)


class DaemonProcess:
    """A pbxgw daemon (``command``: ``run``, ``collect``) with its config file and its log."""

    command: str
    config: Path
    log: Path
    proc: subprocess.Popen | None

    def start(self, env: dict[str, str] | None = None) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "gateway", self.command, "--config", str(self.config)],
                                         stdout=log, stderr=log, env={**os.environ, **(env or {})})

    def kill(self, sig: int = signal.SIGKILL) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(TIMEOUT)

    def log_text(self) -> str:
        return self.log.read_text()


class CollectorProcess(DaemonProcess):
    """`pbxgw collect` with a config written from its settings."""

    command = "collect"

    def __init__(self, workdir: Path, broker_url: str, database: str, mqtt: dict | None = None,
                 kpi: dict | None = None, gateways: dict | None = None, privacy: dict | None = None, **collector):
        """:param mqtt: ``[mqtt]`` settings beside the URL, client id and backoff; :param kpi:
        ``[kpi]`` settings; :param gateways: ``[gateways]``, each gateway's site; :param
        privacy: ``[privacy]`` settings."""
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "collector.toml"
        self.log = workdir / "collector.log"
        settings = {"database": database, "linger": "50ms", **collector}
        lines = ["[collector]"] + [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
        lines += ["[mqtt]", f"url = {json.dumps(broker_url)}", f'client_id = "collector-{free_port()}"',
                  'backoff_max = "2s"'] + [f"{k} = {json.dumps(v)}" for k, v in (mqtt or {}).items()]
        if kpi:
            lines += ["[kpi]"] + [f"{k} = {json.dumps(v)}" for k, v in kpi.items()]
        if gateways:
            lines += ["[gateways]"] + [f"{json.dumps(k)} = {json.dumps(v)}" for k, v in gateways.items()]
        if privacy:
            lines += ["[privacy]"] + [f"{k} = {json.dumps(v)}" for k, v in privacy.items()]
        self.config.write_text("\n".join(lines) + "\n")
        self.proc = None


class GatewayProcess(DaemonProcess):
    """`pbxgw run` with a config written from keyword sections."""

    command = "run"

    def __init__(self, workdir: Path, broker_url: str, sources: list[dict], **sections):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.state_dir = workdir / "state"
        self.config = workdir / "config.toml"
        self.log = workdir / "gateway.log"
        self.config.write_text(config_text(self.state_dir, broker_url, sources, **sections))
        self.proc = None


def config_text(state_dir: Path, broker_url: str, sources: list[dict], **sections: dict) -> str:
    def value(v):
        return json.dumps(v) if isinstance(v, (str, bool)) else str(v)

    mqtt = {"url": broker_url, "backoff_max": "2s", **sections.get("mqtt", {})}
    gateway = {"id": "gw-test", "site": "lab", "state_dir": str(state_dir),
               "runtime_dir": str(state_dir.parent / "run"), **sections.get("gateway", {})}
    lines = ["[gateway]"] + [f"{k} = {value(v)}" for k, v in gateway.items()] + ["[mqtt]"]
    lines += [f"{k} = {value(v)}" for k, v in mqtt.items()]
    for name, table in sections.items():
        if name in ("mqtt", "gateway"):
            continue
        for entry in table if isinstance(table, list) else [table]:  # a list: an array of tables
            header = f"[[{name}]]" if isinstance(table, list) else f"[{name}]"
            lines += [header] + [f"{k} = {value(v)}" for k, v in entry.items()]
    for source in sources:
        # The profiles' samples and the tests' records carry their own fixed dates, months
        # from now: no clock_skew alarm unless a test asks for one.
        source = {"clock_skew": "0s", **source}
        lines += ["[[source]]"] + [f"{k} = {value(v)}" for k, v in source.items()]
    return "\n".join(lines) + "\n"


class StateDisk:
    """A small tmpfs (mounting needs root) for a gateway's state directory, that can be
    filled, as a runaway log fills a card, and freed.

    :raises OSError: it cannot be mounted here.
    """

    def __init__(self, where: Path, size: str):
        where.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
                              capture_output=True, text=True)
        if done.returncode:
            raise OSError(done.stderr.strip() or "mount failed")
        self.where = where

    def fill(self, leave: int = 0) -> None:
        """Fill the disk, as other logs would, until ``leave`` bytes are free (or it is full)."""
        st = os.statvfs(self.where)
        ballast = max(0, st.f_bavail * st.f_frsize - leave) if leave else None
        try:
            with open(self.where / "ballast", "ab") as fh:
                while ballast is None or fh.tell() < ballast:
                    fh.write(b"\0" * 65536)
                    fh.flush()
        except OSError:
            pass  # full (perhaps already, by the queue itself)

    def free(self) -> None:
        (self.where / "ballast").unlink(missing_ok=True)

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.where)], check=False)
