"""Strict reading of TOML tables: every key checked, every error naming file and key.

Used by the profile loader (and the config loader) so that a typo is an error that says
``profile.toml: layout.delimitr: unknown key`` instead of a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

from gateway.errors import ConfigError

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
#: Byte-order marks, longest first (UTF-32's begins with UTF-16's).
_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"), (b"\xef\xbb\xbf", "UTF-8"),
         (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16"))
_TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false", dict: "a table",
               list: "a list", float: "a number"}


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)


def load_toml(path: Path, error: Callable[[str, str, str], ConfigError] = ConfigError) -> dict:
    """Parse a TOML file; a missing file, a byte-order mark, bytes that are not UTF-8 or a
    syntax error becomes ``error``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(str(path), "", f"cannot read: {exc.strerror}") from None
    for mark, name in _BOMS:
        if data.startswith(mark):
            raise error(str(path), "", f"starts with a {name} byte-order mark; save it as UTF-8 without one")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise error(str(path), "", f"not UTF-8: byte 0x{data[exc.start]:02X} on line {line} "
                                   "(save it as UTF-8; Latin-1 and UTF-16 are not read)") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(str(path), "", f"not valid TOML: {exc}") from None


class Table:
    """A view of one TOML table that hands out keys and complains about the rest.

    :param path: the file, for error messages.
    :param key: the dotted path of this table in the file ("" for the top level).
    :param data: the table.
    :param error: the error class to raise (a :class:`ConfigError` subclass).
    """

    def __init__(self, path: str, key: str, data: Any, error: type[ConfigError] = ConfigError):
        self.path, self.key, self.error = path, key, error
        if not isinstance(data, dict):
            raise self.fail("", f"expected a table, got {data!r}")
        self._data = dict(data)

    def fail(self, key: str, message: str) -> ConfigError:
        """An error about ``key`` of this table (returned, for the caller to raise)."""
        return self.error(self.path, self.dotted(key), message)

    def dotted(self, key: str) -> str:
        return ".".join(k for k in (self.key, key) if k)

    def take(self, key: str, kind: type | tuple[type, ...], default: Any = ...,
             choices: tuple = ()) -> Any:
        """Remove and return ``key``: of type ``kind``, one of ``choices`` if given.

        Without a default the key is required.
        """
        if key not in self._data:
            if default is ...:
                import difflib  # (here, not above: a box's idle memory has no room for an error's aid)
                typo = difflib.get_close_matches(key, list(self._data), 1)
                hint = f" ({typo[0]!r} is there: a typo?)" if typo else ""
                raise self.fail(key, f"missing; expected {_type_name(kind)}{hint}")
            return default
        value = self._data.pop(key)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise self.fail(key, f"expected {_type_name(kind)}, got {value!r}")
        if choices and value not in choices:
            raise self.fail(key, f"expected one of {', '.join(map(str, choices))}; got {value!r}")
        return value

    def table(self, key: str, required: bool = False) -> "Table":
        """Remove and return a sub-table (empty when absent and not required)."""
        data = self.take(key, dict, ... if required else {})
        return Table(self.path, self.dotted(key), data, self.error)

    def tables(self, key: str) -> list["Table"]:
        """Remove and return an array of tables (``[[key]]``), named ``key[1]``, ``key[2]``...
        in file order (counted from 1, as a technician counts them)."""
        items = self.take(key, list, [])
        return [Table(self.path, f"{self.dotted(key)}[{i}]", item, self.error)
                for i, item in enumerate(items, 1)]

    def keys(self) -> list[str]:
        """The keys nobody has taken yet (for tables whose keys are names)."""
        return list(self._data)

    def items(self) -> list[tuple[str, Any]]:
        """Remove and return every remaining key (for tables whose keys are names)."""
        items = list(self._data.items())
        self._data.clear()
        return items

    def done(self) -> None:
        """Raise on any key nobody took: unknown keys are typos until proven otherwise."""
        if self._data:
            key = next(iter(self._data))
            raise self.fail(key, "unknown key")


def defaults(cls: type) -> Any:
    """What each field of the settings dataclass ``cls`` is when its key is left out, by
    name (``t.take("inflight", int, defaults(Settings).inflight)``): a default is written
    once, in the dataclass, and the reader and the docs' tests take it from there."""
    return SimpleNamespace(**{f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
                              for f in dataclasses.fields(cls)
                              if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING})


def seconds(text: str) -> float | None:
    """The seconds of ``"250ms"``/``"5s"``/``"2m"``/``"1h"``/``"30d"``; None if it is none."""
    match = _DURATION.fullmatch(text.strip())
    return float(match[1]) * _SECONDS[match[2]] if match else None


def duration(t: Table, key: str, default: float) -> float:
    """A duration in seconds from ``"250ms"``/``"5s"``/``"2m"``/``"1h"``/``"30d"`` or a number."""
    value = t.take(key, (str, int, float), default)
    if isinstance(value, str):
        text, value = value, seconds(value)
        if value is None:
            raise t.fail(key, f"expected a duration such as \"500ms\", \"5s\", \"2m\" or \"30d\"; got {text!r}")
    if isinstance(value, bool) or value < 0:
        raise t.fail(key, f"expected a duration of 0 or more; got {value!r}")
    return float(value)


_SIZE = re.compile(r"(\d+)\s*(B|kB|KiB|MB|MiB|GB|GiB)")
_UNITS = {"B": 1, "kB": 1000, "KiB": 1024, "MB": 1000**2, "MiB": 1024**2, "GB": 1000**3, "GiB": 1024**3}


def size(t: Table, key: str, default: int) -> int:
    """A size in bytes from ``"256MiB"``-style text or a number."""
    value = t.take(key, (str, int), default)
    if isinstance(value, str):
        match = _SIZE.fullmatch(value.strip())
        if not match:
            raise t.fail(key, f"expected a size such as \"64MiB\" or \"1GB\"; got {value!r}")
        value = int(match[1]) * _UNITS[match[2]]
    if isinstance(value, bool) or value <= 0:
        raise t.fail(key, f"expected a size above 0; got {value!r}")
    return value
