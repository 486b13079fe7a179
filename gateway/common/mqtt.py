"""The broker, as both wings name and reach it: ``[mqtt]``'s settings, the URL, the
secrets (a private file or a systemd credential), the TLS context, and the ids that go
into topics and client ids. The gateway's and the collector's config readers build a
:class:`MqttSettings`; :func:`prepare_broker` reads what connecting needs, the same way
for ``run``, ``collect`` and ``check-config``."""

from __future__ import annotations

import grp
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from gateway.common.tomltable import Table, duration
from gateway.errors import ConfigError
from gateway.wire.topics import ID

#: The group the service runs in (systemd/pbxgw.sysusers.conf): it may read secrets made so.
SERVICE_GROUP = "pbxgw"
#: A secret's path may start with this: a systemd credential (LoadCredential= in the unit).
CREDENTIALS = "$CREDENTIALS_DIRECTORY"


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """How to reach the broker and how to batch what is sent to it."""

    host: str = "127.0.0.1"
    port: int = 1883
    tls: bool = False
    protocol: str = "5"
    client_id: str = ""
    username: str = ""
    password_file: str = ""
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    keepalive: int = 30
    batch_events: int = 100
    batch_bytes: int = 256 * 1024
    linger: float = 0.05
    inflight: int = 10
    backoff_min: float = 0.5
    backoff_max: float = 60.0


@dataclass(frozen=True, slots=True)
class Prepared:
    """What the daemon takes from :func:`prepare`: the MQTT password, the TLS context."""

    password: str | None
    tls: ssl.SSLContext | None
    warnings: tuple[str, ...] = ()  # what works but should not be so (said by check-config and run)


def read_link(t: Table, base: MqttSettings) -> dict:
    """The keys of ``[mqtt]`` both wings read alike: the broker, the credentials, TLS, the
    keep-alive and the retry pacing, each defaulting to ``base``'s (a wing's own defaults:
    the dataclass's, its client id, the collector's shorter backoff). The wing reads its
    own keys after, then :func:`check_credentials`."""
    host, port, tls = broker_url(t, f"mqtt://{base.host}:{base.port}")
    return dict(host=host, port=port, tls=tls,
                username=t.take("username", str, base.username),
                password_file=t.take("password_file", str, base.password_file),
                ca_file=t.take("ca_file", str, base.ca_file), cert_file=t.take("cert_file", str, base.cert_file),
                key_file=t.take("key_file", str, base.key_file),
                keepalive=int(duration(t, "keepalive", base.keepalive)),
                backoff_min=duration(t, "backoff_min", base.backoff_min),
                backoff_max=duration(t, "backoff_max", base.backoff_max))


def check_credentials(t: Table, settings: MqttSettings) -> None:
    """A password file is private, and goes with a user name."""
    if settings.password_file:
        check_private(t, "password_file", settings.password_file)
        if not settings.username:
            raise t.fail("password_file", "expected a username too (username = \"...\")")


def identifier(t: Table, key: str, default: str | None = None) -> str:
    value = t.take(key, str, ... if default is None else default)
    if not ID.fullmatch(value):
        raise t.fail(key, f"expected 1-64 of A-Z a-z 0-9 . _ - (it goes into MQTT topics); got {value!r}")
    return value


def broker_address(url: str) -> tuple[str, int, bool]:
    """(host, port, TLS) of a broker URL: ``mqtt://HOST[:PORT]`` or ``mqtts://HOST[:PORT]``
    (the gateway's ``[mqtt] url`` and ``pbxgw subscribe --broker``).

    :raises ValueError: saying what is wrong (a user name or password in it is refused
        without repeating the URL, which holds a secret).
    """
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        raise ValueError("a user name or password in the URL is not read; put them in "
                         "username = \"...\" and password_file = \"...\" instead")
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError(f"expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT]; got {url!r}")
    try:
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
    except ValueError:
        raise ValueError(f"the port in {url!r} is not a number from 1 to 65535") from None
    return parts.hostname, port, parts.scheme == "mqtts"


def broker_url(t: Table, default: str) -> tuple[str, int, bool]:
    """``[mqtt] url`` of a config (the gateway's, the collector's) as :func:`broker_address` reads it."""
    try:
        return broker_address(t.take("url", str, default))
    except ValueError as exc:
        raise t.fail("url", str(exc)) from None


def credential(path: str) -> str | None:
    """The name of the systemd credential ``path`` names (``$CREDENTIALS_DIRECTORY/NAME``), or None."""
    prefix = CREDENTIALS + "/"
    return path[len(prefix):] if path.startswith(prefix) else None


def check_private(t: Table, key: str, path: str) -> None:
    """A secret's file must exist and be readable by its owner only, or also by the
    service's group (``root:pbxgw``, mode 640: the unit's user is in that group). It is
    never logged. A systemd credential is private by construction, and read at start."""
    if credential(path) is not None:
        return
    try:
        st = os.stat(path)
    except OSError as exc:
        raise t.fail(key, f"cannot read {path}: {exc.strerror}") from None
    others = st.st_mode & 0o077
    if others and not (others == 0o040 and _group_name(st.st_gid) == SERVICE_GROUP):
        raise t.fail(key, f"expected {path} readable by its owner only (chmod 600), or by group {SERVICE_GROUP} "
                          f"too (chgrp {SERVICE_GROUP}; chmod 640); its mode is {st.st_mode & 0o777:o}")


def _group_name(gid: int) -> str | None:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return None


def prepare_broker(where: str, m: MqttSettings, environ: Mapping[str, str] = os.environ,
                   checking: bool = False) -> Prepared:
    """The ``[mqtt]`` part of :func:`prepare`, for the gateway and the collector alike: the
    password read, the TLS context built (``where``: the config file, for errors)."""
    warnings = []

    def resolve(key: str) -> str | None:
        path = getattr(m, key)
        name = credential(path) if path else None
        if name is None:
            return path or None
        directory = environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            why = f"systemd credential {name!r}: $CREDENTIALS_DIRECTORY is not set (systemd sets it for the " \
                  "service's LoadCredential=)"
            if not checking:
                raise ConfigError(where, f"mqtt.{key}", why)
            warnings.append(f"{where}: mqtt.{key}: {why}; not checked here")
            return None
        found = os.path.join(directory, name)
        if not os.path.exists(found):
            raise ConfigError(where, f"mqtt.{key}", f"no credential {name!r} in $CREDENTIALS_DIRECTORY: add "
                                                    f"LoadCredential={name}:/etc/pbxgw/{name} to the unit")
        return found

    password_file, key_file = resolve("password_file"), resolve("key_file")
    password = read_secret(where, "mqtt.password_file", password_file) if password_file else None
    tls = _tls_context(where, m, key_file) if m.tls and (key_file or not m.key_file) else None
    if m.password_file and not m.tls:
        warnings.append(f"{where}: mqtt.password_file: the password goes to {m.host}:{m.port} in clear text "
                        "(mqtt://); use mqtts:// so that nobody on the network can read it")
    return Prepared(password, tls, tuple(warnings))


def read_secret(where: str, key: str, path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError as exc:
        raise ConfigError(where, key, f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(where, key, f"{path} is not UTF-8 text") from None


def _tls_context(where: str, m: MqttSettings, key_file: str | None) -> ssl.SSLContext:
    """The broker's certificate and name are checked; the client certificate if given
    (``key_file``: its key, the credential resolved)."""
    context = ssl.create_default_context()  # CERT_REQUIRED, host names checked, the system's CAs
    if m.ca_file:
        try:
            context.load_verify_locations(cafile=m.ca_file)
        except ssl.SSLError:  # (before OSError, of which it is one)
            raise ConfigError(where, "mqtt.ca_file", f"{m.ca_file} holds no PEM certificate") from None
        except OSError as exc:
            raise ConfigError(where, "mqtt.ca_file", f"cannot read {m.ca_file}: {exc.strerror}") from None
    if m.cert_file or key_file:
        key = "mqtt.cert_file" if m.cert_file else "mqtt.key_file"
        if not m.cert_file:
            raise ConfigError(where, key, "expected cert_file too (the client certificate for this key)")
        try:
            context.load_cert_chain(m.cert_file, key_file or None)
        except ssl.SSLError as exc:
            raise ConfigError(where, key, f"{m.cert_file} and {m.key_file or 'its key'} are not a PEM "
                                          f"certificate and its private key ({exc.reason})") from None
        except OSError as exc:
            raise ConfigError(where, key, f"cannot read {exc.filename or m.cert_file}: {exc.strerror}") from None
    return context
