"""What ``pbxgw run`` needs before it starts, checked the same way by ``pbxgw check-config``:
the secrets it reads, the TLS context it builds and the state directory it writes.

``run`` uses what :func:`prepare` returns, so a config that ``check-config`` passes cannot
fail later on the same file (a CA that is not PEM, a password file it may not read, a state
directory it cannot create). Each problem is one :class:`ConfigError` line naming the file,
the key and what is wrong.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gateway import config
from gateway.config import Settings
from gateway.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Prepared:
    """What the daemon takes from :func:`prepare`: the MQTT password, the TLS context."""

    password: str | None
    tls: ssl.SSLContext | None
    warnings: tuple[str, ...] = ()  # what works but should not be so (said by check-config and run)


def prepare(settings: Settings, environ: Mapping[str, str] = os.environ, checking: bool = False) -> Prepared:
    """Read and build what ``run`` needs, as the user running this would.

    A secret named as a systemd credential (``$CREDENTIALS_DIRECTORY/NAME``) is read from
    the directory systemd gives the service. Without one, ``run`` cannot start; when
    ``checking`` (``check-config`` by hand), a warning says it was not checked.

    :raises ConfigError: one line naming the file, the key and what is wrong.
    """
    where = str(settings.path)
    broker = prepare_broker(where, settings.mqtt, environ, checking)
    _writable(where, "gateway.state_dir", settings.state_dir)
    for i, source in enumerate(settings.sources, 1):  # read as the service would (it reads them at each login)
        if source.login_password_file and config.credential(source.login_password_file) is None:
            _secret(where, f"source[{i}].login_password_file", source.login_password_file)
    warnings = [f"{where}: source[{i}].timezone: not set: the PBX's times are read as UTC; name its zone "
                f"(e.g. timezone = \"Europe/Paris\") unless the PBX prints UTC"
                for i, source in enumerate(settings.sources, 1) if not source.zone_given]
    return Prepared(broker.password, broker.tls, broker.warnings + tuple(warnings))


def prepare_broker(where: str, m: config.MqttSettings, environ: Mapping[str, str] = os.environ,
                   checking: bool = False) -> Prepared:
    """The ``[mqtt]`` part of :func:`prepare`, for the gateway and the collector alike: the
    password read, the TLS context built (``where``: the config file, for errors)."""
    warnings = []

    def resolve(key: str) -> str | None:
        path = getattr(m, key)
        name = config.credential(path) if path else None
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
    password = _secret(where, "mqtt.password_file", password_file) if password_file else None
    tls = _tls_context(where, m, key_file) if m.tls and (key_file or not m.key_file) else None
    if m.password_file and not m.tls:
        warnings.append(f"{where}: mqtt.password_file: the password goes to {m.host}:{m.port} in clear text "
                        "(mqtt://); use mqtts:// so that nobody on the network can read it")
    return Prepared(password, tls, tuple(warnings))


def _secret(where: str, key: str, path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError as exc:
        raise ConfigError(where, key, f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(where, key, f"{path} is not UTF-8 text") from None


def _tls_context(where: str, m: config.MqttSettings, key_file: str | None) -> ssl.SSLContext:
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


def _writable(where: str, key: str, directory: Path) -> None:
    """The directory, or the nearest one above it that exists, must let us write."""
    existing = directory
    while existing != existing.parent:
        try:
            if existing.exists():
                break
        except PermissionError:  # inside a directory this user may not enter: look above
            pass
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(where, key, f"cannot create {directory}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        detail = "" if existing == directory else f" ({existing} does not let this user write in it)"
        raise ConfigError(where, key, f"cannot write {directory} as this user{detail}")
    # Permissions are not all: /proc, /sys or a read-only mount refuse what they allow.
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".pbxgw-check-", dir=existing))
    except OSError as exc:
        raise ConfigError(where, key, f"cannot create {directory}: {existing} refuses it ({exc.strerror})") from None
