"""The gateway's TOML config -> typed, validated settings.

Every key is checked: an unknown key, a wrong type or a bad value is one
:class:`~gateway.errors.ConfigError` naming the file, the key path and what was expected.
Durations may be written ``"250ms"``, ``"5s"``, ``"2m"``, ``"1h"`` (or a number of seconds)
and sizes ``"512KiB"``, ``"256MiB"``, ``"1GB"`` (or a number of bytes).
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.common import schedule
from gateway.common.mqtt import MqttSettings, check_credentials, check_private, identifier, read_link
from gateway.common.tomltable import Table, defaults, duration, load_toml, size
from gateway.errors import ProfileError
from gateway.smdr import profiles
from gateway.smdr.profile import PbxProfile, with_date_order
from gateway.wire import topics

DEFAULT_STATE_DIR = "/var/lib/pbxgw"  # systemd's StateDirectory
DEFAULT_RUNTIME_DIR = "/run/pbxgw"  # systemd's RuntimeDirectory
#: The source types a config may name, and the class that reads each (module, name),
#: imported when first used (:func:`gateway.edge.sources.source_class`).
SOURCES = {
    "serial": ("gateway.edge.sources.serial", "SerialSource"),
    "tcp-client": ("gateway.edge.sources.tcp", "TcpClientSource"),
    "tcp-server": ("gateway.edge.sources.tcp", "TcpServerSource"),
    "file": ("gateway.edge.sources.file", "FileSource"),
}


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """The durable disk queue."""

    max_bytes: int = 256 * 1024**2
    when_full: str = "drop_oldest"
    sync_interval: float = 1.0


@dataclass(frozen=True, slots=True)
class ArchiveSettings:
    """What the box keeps of what the broker confirmed, to replay and export."""

    keep: float = 30 * 86400.0  # seconds (0: nothing is kept)
    max_bytes: int = 128 * 1024**2
    replay_rate: int = 2000  # events/s a replay publishes, at most


@dataclass(frozen=True, slots=True)
class SourceSettings:
    """One PBX link."""

    name: str
    type: str
    profile: PbxProfile
    timezone: ZoneInfo
    device: str = ""
    baudrate: int | None = None
    host: str = ""
    port: int = 0
    allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()  # tcp-server: who may connect (empty: anyone)
    path: str = ""
    follow: bool = False
    poll_interval: float = 0.5
    read_delay: float = 0.1
    backoff_min: float = 1.0
    backoff_max: float = 60.0
    quiet: float = 0.0  # a no-data alarm after this long without a record (0: none)
    quiet_hours: schedule.Schedule | None = None  # watch only within these (the source's zone)
    clock_skew: float = 900.0  # a clock_skew alarm when calls end this far from their receipt (0: none)
    zone_given: bool = True  # whether the config named the source's timezone (else UTC, warned about)
    login_password_file: str = ""  # tcp-client: the PBX's login password, in place of the profile's factory one


@dataclass(frozen=True, slots=True)
class HeadsetDevice:
    """A headset read without udev: a hidraw node, or a pipe of recorded reports (tests)."""

    path: str
    descriptor: str = ""  # a .hid recording or raw descriptor; "": read from the node
    serial: str | None = None


@dataclass(frozen=True, slots=True)
class AgentMapping:
    """The agent (and extension) a headset belongs to, by its serial number."""

    serial: str
    agent: str
    extension: str | None = None


@dataclass(frozen=True, slots=True)
class HeadsetSettings:
    enabled: bool = False
    discover: bool = True  # find headsets through udev, and follow hotplug
    drive_leds: bool = False  # acknowledge every headset's states with its LEDs (some need it always)
    devices: tuple[HeadsetDevice, ...] = ()
    agents: tuple[AgentMapping, ...] = ()


@dataclass(frozen=True, slots=True)
class Settings:
    """A whole, validated config file."""

    path: Path
    gateway_id: str
    site: str
    state_dir: Path
    mqtt: MqttSettings
    queue: QueueSettings
    sources: tuple[SourceSettings, ...]
    headsets: HeadsetSettings = HeadsetSettings()
    archive: ArchiveSettings = ArchiveSettings()
    runtime_dir: Path = Path(DEFAULT_RUNTIME_DIR)  # the status socket (systemd's RuntimeDirectory)
    metrics_interval: float = 60.0  # 0: no metrics messages

    @property
    def topic_prefix(self) -> str:
        return topics.gateway(self.site, self.gateway_id)


def gateway_dirs(path: str | Path) -> tuple[Path, Path]:
    """``(runtime_dir, state_dir)`` from a config file, whatever else is wrong in it (the
    defaults where it says nothing or cannot be read): what ``pbxgw status`` needs."""
    try:
        table = tomllib.loads(Path(path).read_text(encoding="utf-8", errors="replace")).get("gateway", {})
    except (OSError, tomllib.TOMLDecodeError):
        table = {}
    def text(key: str, default: str) -> Path:
        value = table.get(key) if isinstance(table, dict) else None
        return Path(value if isinstance(value, str) else default)
    return text("runtime_dir", DEFAULT_RUNTIME_DIR), text("state_dir", DEFAULT_STATE_DIR)


def load(path: str | Path) -> Settings:
    """Read and validate a config file.

    :raises ConfigError: one line naming the file, the key and what was expected.
    """
    path = Path(path)
    top = Table(str(path), "", load_toml(path))
    gw = top.table("gateway", required=True)
    gateway_id, site = identifier(gw, "id"), identifier(gw, "site")
    state_dir = Path(gw.take("state_dir", str, DEFAULT_STATE_DIR))
    runtime_dir = Path(gw.take("runtime_dir", str, DEFAULT_RUNTIME_DIR))
    metrics_interval = duration(gw, "metrics_interval", defaults(Settings).metrics_interval)
    gw.done()
    mqtt = _mqtt(top.table("mqtt"), gateway_id)
    queue = _queue(top.table("queue"))
    sources = tuple(_source(t) for t in top.tables("source"))
    if not sources:
        raise top.fail("source", "expected at least one [[source]]")
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise top.fail("source", f"two sources are named {dup!r}; names must be unique")
    _one_reader_each(top, sources)
    headsets = _headsets(top.table("headsets"), top.tables("headset"))
    archive = _archive(top.table("archive"))
    top.done()
    return Settings(path, gateway_id, site, state_dir, mqtt, queue, sources, headsets, archive, runtime_dir,
                    metrics_interval)


def _one_reader_each(top: Table, sources: tuple[SourceSettings, ...]) -> None:
    """Two sources on one serial device, or two listeners on one port, would split the
    PBX's records between them (or one would never start)."""
    wildcard = ("", "0.0.0.0", "::")
    for i, s in enumerate(sources, 1):
        for j, other in enumerate(sources[:i - 1], 1):
            if s.type == other.type == "serial" and os.path.realpath(s.device) == os.path.realpath(other.device):
                raise top.fail(f"source[{i}].device", f"{s.device!r} is also the device of source {other.name!r} "
                                                      f"(source[{j}]); one serial line has one reader")
            if s.type == other.type == "tcp-server" and s.port == other.port and (
                    s.host == other.host or s.host in wildcard or other.host in wildcard):
                raise top.fail(f"source[{i}].port", f"port {s.port} is also where source {other.name!r} listens "
                                                    f"(source[{j}]); one port has one listener")


def _headsets(t: Table, mappings: list[Table]) -> HeadsetSettings:
    base = HeadsetSettings()
    settings = HeadsetSettings(
        enabled=t.take("enabled", bool, base.enabled), discover=t.take("discover", bool, base.discover),
        drive_leds=t.take("drive_leds", bool, base.drive_leds),
        devices=tuple(_headset_device(d) for d in t.tables("device")),
        agents=tuple(_agent(m) for m in mappings))
    t.done()
    serials = [a.serial for a in settings.agents]
    if len(set(serials)) != len(serials):
        dup = next(n for n in serials if serials.count(n) > 1)
        raise t.fail("", f"two [[headset]] mappings have serial {dup!r}; a headset belongs to one agent")
    return settings


def _headset_device(t: Table) -> HeadsetDevice:
    base = defaults(HeadsetDevice)
    device = HeadsetDevice(t.take("path", str), t.take("descriptor", str, base.descriptor),
                           t.take("serial", str, base.serial))
    t.done()
    return device


def _agent(t: Table) -> AgentMapping:
    mapping = AgentMapping(t.take("serial", str), t.take("agent", str),
                           t.take("extension", str, defaults(AgentMapping).extension))
    t.done()
    return mapping


def _mqtt(t: Table, gateway_id: str) -> MqttSettings:
    base = MqttSettings(client_id=f"pbxgw-{gateway_id}")
    settings = MqttSettings(
        **read_link(t, base),
        protocol=t.take("protocol", str, base.protocol, choices=("5", "3.1.1")),
        client_id=t.take("client_id", str, base.client_id),
        batch_events=t.take("batch_events", int, base.batch_events),
        batch_bytes=size(t, "batch_bytes", base.batch_bytes),
        linger=duration(t, "linger", base.linger),
        inflight=t.take("inflight", int, base.inflight),
    )
    check_credentials(t, settings)
    for key, low, high in (("batch_events", 1, 10000), ("inflight", 1, 1000)):
        value = getattr(settings, key)
        if not low <= value <= high:
            raise t.fail(key, f"expected {low} to {high}; got {value}")
    t.done()
    return settings


def _queue(t: Table) -> QueueSettings:
    base = QueueSettings()
    settings = QueueSettings(
        max_bytes=size(t, "max_bytes", base.max_bytes),
        when_full=t.take("when_full", str, base.when_full, choices=("drop_oldest", "drop_newest")),
        sync_interval=duration(t, "sync_interval", base.sync_interval),
    )
    t.done()
    return settings


def _archive(t: Table) -> ArchiveSettings:
    base = ArchiveSettings()
    settings = ArchiveSettings(
        keep=duration(t, "keep", base.keep),
        max_bytes=size(t, "max_bytes", base.max_bytes),
        replay_rate=t.take("replay_rate", int, base.replay_rate),
    )
    if not 1 <= settings.replay_rate <= 100_000:
        raise t.fail("replay_rate", f"expected events per second from 1 to 100000; got {settings.replay_rate}")
    t.done()
    return settings


def _networks(t: Table, key: str) -> tuple:
    """A list of addresses (``"192.0.2.10"``) and networks (``"192.0.2.0/24"``)."""
    networks = []
    for entry in t.take(key, list, []):
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except (TypeError, ValueError):
            raise t.fail(key, f"expected IP addresses or networks such as \"192.0.2.10\" or "
                              f"\"192.0.2.0/24\"; got {entry!r}") from None
    return tuple(networks)


def _source(t: Table) -> SourceSettings:
    name = identifier(t, "name")
    kind = t.take("type", str, choices=tuple(SOURCES))
    profile_name = t.take("profile", str)
    try:
        profile = profiles.find(profile_name)
    except ProfileError as exc:
        if exc.path == profile_name:  # not found, rather than malformed
            raise t.fail("profile", exc.message) from None
        raise
    if "date_order" in t.keys():
        try:
            profile = with_date_order(profile, t.take("date_order", str))
        except ValueError as exc:
            raise t.fail("date_order", str(exc)) from None
    zone_given = "timezone" in t.keys()
    zone = t.take("timezone", str, "UTC")
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise t.fail("timezone", f"expected a zone such as Europe/Paris or UTC; got {zone!r}") from None
    options: dict = {}
    base = defaults(SourceSettings)
    if kind == "serial":
        options["device"] = t.take("device", str)
        options["baudrate"] = t.take("baudrate", int, base.baudrate)
    elif kind in ("tcp-client", "tcp-server"):
        options["host"] = t.take("host", str, "0.0.0.0" if kind == "tcp-server" else ...)
        options["port"] = t.take("port", int)
        if not 0 < options["port"] < 65536:
            raise t.fail("port", f"expected 1 to 65535; got {options['port']}")
        if kind == "tcp-server":
            options["allow"] = _networks(t, "allow")
        elif "login_password_file" in t.keys():
            options["login_password_file"] = t.take("login_password_file", str)
            if not any(step.password for step in profile.login):
                raise t.fail("login_password_file", f"profile {profile.name} sends no password at login "
                                                    "(no [[transport.login]] step with password = true)")
            check_private(t, "login_password_file", options["login_password_file"])
    else:
        options["path"] = t.take("path", str)
        options["follow"] = t.take("follow", bool, base.follow)
        options["poll_interval"] = duration(t, "poll_interval", base.poll_interval)
    hours = None
    if "quiet_hours" in t.keys():
        try:
            hours = schedule.parse(t.take("quiet_hours", (str, list)))
        except ValueError as exc:
            raise t.fail("quiet_hours", str(exc)) from None
    settings = SourceSettings(name=name, type=kind, profile=profile, timezone=tz,
                              read_delay=duration(t, "read_delay", base.read_delay),
                              backoff_min=duration(t, "backoff_min", base.backoff_min),
                              backoff_max=duration(t, "backoff_max", base.backoff_max),
                              quiet=duration(t, "quiet", profile.quiet), quiet_hours=hours,
                              clock_skew=duration(t, "clock_skew", base.clock_skew), zone_given=zone_given, **options)
    t.done()
    return settings
