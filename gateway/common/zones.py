"""Time zones named from outside (a gateway's status, a config, a command line)."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def known_zone(name: object) -> ZoneInfo | None:
    """The IANA zone ``name`` names; None when it names none (not text, unknown, or a path
    such as ``../../etc/passwd``, which zoneinfo refuses to read)."""
    if not isinstance(name, str) or not name or len(name) > 255:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None
