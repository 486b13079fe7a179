"""What ``pbxgw run`` needs before it starts, checked the same way by ``pbxgw check-config``:
the secrets it reads, the TLS context it builds and the state directory it writes.

``run`` uses what :func:`prepare` returns, so a config that ``check-config`` passes cannot
fail later on the same file (a CA that is not PEM, a password file it may not read, a state
directory it cannot create). Each problem is one :class:`ConfigError` line naming the file,
the key and what is wrong.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from gateway.common.mqtt import Prepared, credential, prepare_broker, read_secret
from gateway.edge.config import Settings
from gateway.errors import ConfigError


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
        if source.login_password_file and credential(source.login_password_file) is None:
            read_secret(where, f"source[{i}].login_password_file", source.login_password_file)
    warnings = [f"{where}: source[{i}].timezone: not set: the PBX's times are read as UTC; name its zone "
                f"(e.g. timezone = \"Europe/Paris\") unless the PBX prints UTC"
                for i, source in enumerate(settings.sources, 1) if not source.zone_given]
    return Prepared(broker.password, broker.tls, broker.warnings + tuple(warnings))


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
