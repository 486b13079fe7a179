"""When something is open: one grammar for a centre's ``business_hours`` (which calls its
summary counts) and a source's ``quiet_hours`` (when its silence is an alarm).

A schedule is one string or a list of them, each one of:

- ``"always"``: every hour of every day (a 24/7 centre);
- ``"<days> <HH:MM>-<HH:MM>"``: a window opening on each of the days, days as
  ``Mon-Fri``, ``Sat``, ``Mon,Wed,Fri``, ``Fri-Mon`` (round the weekend) or ``daily``;
  it may close at ``24:00``, and one that closes at or before it opens runs overnight
  into the next day (``"Fri 22:00-06:00"``: Friday night until Saturday 06:00);
- ``"YYYY-MM-DD"``: a holiday, closed the whole local date (a window of the day before
  that runs overnight stops at its midnight).

Times are local wall-clock times of the site's (or source's) zone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
DAY = 86400
#: How far back :meth:`Schedule.open_for` looks for when a run of open time began.
LOOK_BACK_DAYS = 8
EXAMPLE = '"Mon-Fri 08:00-18:00", a list such as ["Mon-Fri 08:00-18:00", "Sat 09:00-12:00", "2026-12-25"], or "always"'
_WINDOW = re.compile(r"(?P<days>\S+)\s+(?P<opens>\d{2}:\d{2})-(?P<closes>\d{2}:\d{2})")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True, slots=True)
class Window:
    """Opens on each of ``days`` (0 = Monday) at ``opens`` seconds after local midnight,
    closes ``closes`` seconds after that midnight (beyond 86 400: the next day)."""

    days: frozenset[int]
    opens: int
    closes: int


@dataclass(frozen=True, slots=True)
class Schedule:
    """Windows of the week, less holidays; ``text`` as it was written."""

    windows: tuple[Window, ...]
    holidays: frozenset[date]
    text: str

    def covers(self, day: date, second: int) -> bool:
        """Whether local ``second`` of the day ``day`` is open."""
        if day in self.holidays:
            return False
        weekday = day.weekday()
        before = day - timedelta(days=1)
        for w in self.windows:
            if weekday in w.days and w.opens <= second < w.closes:
                return True
            if (w.closes > DAY and (weekday - 1) % 7 in w.days and second + DAY < w.closes
                    and before not in self.holidays):
                return True
        return False

    def __contains__(self, local: datetime) -> bool:
        return self.covers(local.date(), local.hour * 3600 + local.minute * 60 + local.second)

    def open_for(self, local: datetime) -> float | None:
        """How long it has been open without a break at ``local`` (wall-clock seconds, at
        most :data:`LOOK_BACK_DAYS` days), or None when it is closed."""
        if local not in self:
            return None
        day = local.date()
        now = day.toordinal() * DAY + local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
        began = now
        for start, end in sorted(self._runs(day), reverse=True):  # latest first: walk back while they touch
            if start < began <= end:
                began = start
        return now - began

    def _runs(self, day: date):
        """The open intervals (wall seconds since day 1) of windows opening up to ``day``."""
        for back in range(LOOK_BACK_DAYS + 1):
            d = day - timedelta(days=back)
            if d in self.holidays:
                continue
            base = d.toordinal() * DAY
            next_closed = d + timedelta(days=1) in self.holidays
            for w in self.windows:
                if d.weekday() in w.days:
                    yield base + w.opens, base + (min(w.closes, DAY) if next_closed else w.closes)

    def __str__(self) -> str:
        return self.text


def parse(value: object) -> Schedule:
    """A schedule from its config value (a string or a list of strings).

    :raises ValueError: naming what was expected and what did not read.
    """
    items = value if isinstance(value, list) else [value]
    if not items or any(not isinstance(i, str) for i in items):
        raise ValueError(f"expected {EXAMPLE}; got {value!r}")
    windows: list[Window] = []
    holidays: set[date] = set()
    for item in items:
        text = item.strip()
        if not text:
            raise ValueError(f"expected {EXAMPLE}; an empty value is no schedule (leave the key out for the default)")
        if text.lower() == "always":
            windows.append(Window(frozenset(range(7)), 0, DAY))
        elif _DATE.fullmatch(text):
            try:
                holidays.add(date.fromisoformat(text))
            except ValueError:
                raise ValueError(f"{text!r} is no date") from None
        else:
            windows.append(_window(text))
    if not windows:
        raise ValueError(f"expected {EXAMPLE}; holidays alone open nothing")
    shown = value if isinstance(value, str) else ", ".join(items)
    return Schedule(tuple(windows), frozenset(holidays), shown)


def _window(text: str) -> Window:
    match = _WINDOW.fullmatch(text)
    if not match:
        raise ValueError(f"expected {EXAMPLE}; got {text!r}")
    days = _days(match["days"], text)
    opens, closes = _clock(match["opens"], text, allow_24=False), _clock(match["closes"], text, allow_24=True)
    if closes <= opens:
        closes += DAY  # overnight
    return Window(days, opens, closes)


def _days(text: str, whole: str) -> frozenset[int]:
    if text.lower() == "daily":
        return frozenset(range(7))
    names = [d.lower() for d in WEEKDAYS]
    days: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        try:
            a, b = names.index(first.lower()), names.index((last or first).lower())
        except ValueError:
            raise ValueError(f"expected days such as Mon-Fri, Sat, Mon,Wed or daily in {whole!r}; "
                             f"got {part!r}") from None
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return frozenset(days)


def _clock(text: str, whole: str, allow_24: bool) -> int:
    hours, minutes = int(text[:2]), int(text[3:])
    if minutes > 59 or hours > 24 or (hours == 24 and (minutes or not allow_24)):
        raise ValueError(f"{text!r} in {whole!r} is no time of day (00:00 to 24:00)")
    return hours * 3600 + minutes * 60
