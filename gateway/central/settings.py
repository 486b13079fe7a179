"""The collector's TOML config (``collector.toml``) -> typed, validated settings.

As strict as the gateway's: an unknown key, a wrong type or a bad value is one
:class:`~gateway.errors.ConfigError` naming the file, the key and what was expected. The
``[mqtt]`` table reads as the gateway's does (URL, TLS, credentials).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


from gateway.central.kpi import FORMULAS, KpiSettings
from gateway.central.privacy import PrivacySettings
from gateway.common import mqtt
from gateway.common import schedule
from gateway.common.mqtt import MqttSettings, identifier
from gateway.common.tomltable import Table, defaults, duration, load_toml, size
from gateway.wire import topics
from gateway.wire.topics import ID

DEFAULT_CONFIG = "/etc/pbxgw/collector.toml"
DEFAULT_DATABASE = "sqlite:////var/lib/pbxgw-collect/pbxgw.db"  # systemd's StateDirectory
#: How long the broker keeps the collector's session, and queues for it, while it is away.
DEFAULT_SESSION_EXPIRY = 7 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class CollectorSettings:
    """A whole, validated ``collector.toml``."""

    path: Path
    mqtt: MqttSettings
    database: str = DEFAULT_DATABASE
    sites: tuple[str, ...] = ()  # () : every site
    session_expiry: float = DEFAULT_SESSION_EXPIRY
    batch_messages: int = 500  # messages written per transaction, at most (live traffic: an event each)
    batch_bytes: int = 1024 * 1024  # their payloads' bytes, at most (a backlog: a hundred events a message)
    linger: float = 0.2  # how long a batch waits to fill before it is written
    inflight: int = 1000  # messages received and not yet acknowledged (MQTT 5 Receive Maximum)
    hole_grace: float = 60.0  # how long a hole may fill by itself before the gateway is asked (0: never asked)
    kpi: KpiSettings = KpiSettings()
    #: ``[gateways]``: the site each gateway belongs to (one not named: where it was first heard).
    gateways: tuple[tuple[str, str], ...] = ()
    privacy: PrivacySettings = PrivacySettings()

    @property
    def topics(self) -> list[str]:
        """The topic filters subscribed to: every gateway of each site (or of every site)."""
        return [topics.every_gateway(site) for site in self.sites] or [topics.every_gateway()]


def database_kind(url: str) -> str:
    """``sqlite`` or ``postgresql`` for a database URL.

    :raises ValueError: saying what a database URL looks like.
    """
    scheme = urlsplit(url).scheme
    if scheme == "sqlite" and url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        return "sqlite"
    if scheme in ("postgresql", "postgres"):
        return "postgresql"
    raise ValueError(f"expected sqlite:///PATH (sqlite:////var/lib/x.db for an absolute path) or "
                     f"postgresql://[USER@]HOST[:PORT]/DBNAME; got {url!r}")


def load(path: str | Path) -> CollectorSettings:
    """Read and validate a collector config.

    :raises ConfigError: one line naming the file, the key and what was expected.
    """
    path = Path(path)
    top = Table(str(path), "", load_toml(path))
    c = top.table("collector")
    database = c.take("database", str, defaults(CollectorSettings).database)
    try:
        database_kind(database)
    except ValueError as exc:
        raise c.fail("database", str(exc)) from None
    sites = tuple(_site(c, i, s) for i, s in enumerate(c.take("sites", list, []), 1))
    base = defaults(CollectorSettings)
    settings = dict(
        database=database, sites=sites,
        session_expiry=duration(c, "session_expiry", base.session_expiry),
        batch_messages=c.take("batch_messages", int, base.batch_messages),
        batch_bytes=size(c, "batch_bytes", base.batch_bytes),
        linger=duration(c, "linger", base.linger),
        inflight=c.take("inflight", int, base.inflight),
        hole_grace=duration(c, "hole_grace", base.hole_grace),
    )
    for key, low, high in (("batch_messages", 1, 10_000), ("inflight", 1, 65_535),
                           ("batch_bytes", 64 * 1024, 64 * 1024 * 1024)):
        if not low <= settings[key] <= high:
            raise c.fail(key, f"expected {low} to {high}; got {settings[key]}")
    if settings["batch_messages"] > settings["inflight"]:
        raise c.fail("batch_messages", f"expected at most inflight ({settings['inflight']}): a batch is made of "
                                       f"messages not yet acknowledged; got {settings['batch_messages']}")
    c.done()
    gateways = _gateways(top.table("gateways"))
    privacy = _privacy(top.table("privacy"), str(path))
    mqtt = _mqtt(top.table("mqtt"))
    kpi = _kpi(top.table("kpi"))
    top.done()
    return CollectorSettings(path, mqtt, kpi=kpi, gateways=gateways, privacy=privacy, **settings)


def _privacy(t: Table, where: str) -> PrivacySettings:
    """``[privacy]``: how long callers' numbers and the record text are kept (docs/central.md)."""
    base = PrivacySettings()
    numbers = t.take("numbers", str, base.numbers, choices=("mask", "hash"))
    keep = t.take("keep_digits", int, base.keep_digits)
    if not 0 <= keep <= 8:
        raise t.fail("keep_digits", f"expected 0 to 8 (the last digits a masked number keeps); got {keep}")
    key_file = t.take("hash_key_file", str, "")
    if numbers == "hash" and not key_file:
        raise t.fail("hash_key_file", "expected a file holding a secret key (numbers = \"hash\" keys its hash with "
                                      "it, so that no one without it can reverse a hash); got none")
    settings = PrivacySettings(numbers_after=duration(t, "numbers_after", base.numbers_after), numbers=numbers,
                               keep_digits=keep, raw_after=duration(t, "raw_after", base.raw_after),
                               hash_key=mqtt.read_secret(where, "privacy.hash_key_file", key_file).encode()
                               if key_file else b"")
    if numbers == "hash" and len(settings.hash_key) < 16:
        raise t.fail("hash_key_file", "expected a key of 16 characters or more")
    t.done()
    return settings


def _gateways(t: Table) -> tuple[tuple[str, str], ...]:
    """``[gateways]``: ``gw-01 = "paris"``, each gateway's site (ids as the topics spell them)."""
    out = []
    for gw in t.keys():
        if not ID.fullmatch(gw):
            raise t.fail(gw, "expected a gateway id (1-64 of A-Z a-z 0-9 . _ -) as the key")
        site = t.take(gw, str)
        if not ID.fullmatch(site):
            raise t.fail(gw, f"expected a site id (1-64 of A-Z a-z 0-9 . _ -); got {site!r}")
        out.append((gw, site))
    t.done()
    return tuple(out)


def _kpi(t: Table) -> KpiSettings:
    """``[kpi]``: the definitions the report's figures follow (docs/central.md)."""
    default = KpiSettings()
    within = int(duration(t, "answer_within", default.answer_within))
    formula = t.take("service_level", str, default.formula, choices=tuple(FORMULAS))
    short = int(duration(t, "short_abandon", default.short_abandon))
    target = t.take("target", (int, float), default.target)
    if not 0 < target <= 1:
        raise t.fail("target", f"expected a share above 0 and at most 1 (0.8 for 80 %); got {target!r}")
    hours = _hours(t, "business_hours", default.hours)
    site_hours, site_zones = [], []
    sites = t.table("site")
    for name in sites.keys():
        site = sites.table(name)
        if "business_hours" in site.keys():
            site_hours.append((name, _hours(site, "business_hours", hours)))
        if "timezone" in site.keys():
            zone = site.take("timezone", str)
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                raise site.fail("timezone", f"expected an IANA time zone such as \"Europe/Paris\"; got {zone!r}") \
                    from None
            site_zones.append((name, zone))
        site.done()
    sites.done()
    t.done()
    return KpiSettings(within, formula, short, float(target), hours, tuple(site_hours), tuple(site_zones))


def _hours(t: Table, key: str, default: schedule.Schedule) -> schedule.Schedule:
    if key not in t.keys():
        return default
    try:
        return schedule.parse(t.take(key, (str, list)))
    except ValueError as exc:
        raise t.fail(key, str(exc)) from None


def _site(t: Table, index: int, value: object) -> str:
    if not isinstance(value, str) or not ID.fullmatch(value):
        raise t.fail(f"sites[{index}]", f"expected a site id (1-64 of A-Z a-z 0-9 . _ -); got {value!r}")
    return value


#: The collector retries its broker sooner than a gateway does (at most every 30 s, not
#: 60): it is one process that every site waits on.
COLLECTOR_BACKOFF_MAX = 30.0


def _mqtt(t: Table) -> MqttSettings:
    """The broker, as the gateway's ``[mqtt]`` names it (MQTT 5 only: the collector's
    session and flow control need it; it neither batches nor lingers)."""
    base = MqttSettings(client_id=f"pbxgw-collect-{_host_id()}", backoff_max=COLLECTOR_BACKOFF_MAX)
    settings = MqttSettings(**mqtt.read_link(t, base), client_id=identifier(t, "client_id", base.client_id))
    mqtt.check_credentials(t, settings)
    t.done()
    return settings


def _host_id() -> str:
    """This machine's name as a client id part (a fixed id keeps the broker session)."""
    name = "".join(ch for ch in socket.gethostname() if ch.isalnum() or ch in "._-")[:40]
    return name or "host"
