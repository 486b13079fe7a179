"""Field transforms shared by every profile: dates, times of day, durations.

Each function takes the text of one column (already stripped) and returns a value or
raises :class:`~gateway.errors.RecordError` with a reason a technician can read. None of
them reads the clock: where the year is missing, the receive date is an argument.
"""

from __future__ import annotations

import re
from datetime import date, time, timedelta

from gateway.errors import RecordError

#: No true date is earlier than this release's: a receive time before it, from a clock not
#: synchronized, comes from a box that booted without a real-time clock (at 1970).
EARLIEST_TRUE = date(2026, 11, 1)

#: Date orders a profile may declare. Two letters: the PBX prints no year.
DATE_ORDERS = ("YMD", "MDY", "DMY", "MD", "DM")

_DATE_PARTS = re.compile(r"(\d{1,4})[/.\-](\d{1,2})(?:[/.\-](\d{1,4}))?")
#: YYYYMMDD without separators (Alcatel OXE tickets), read when the order is YMD.
_COMPACT_YMD = re.compile(r"(\d{4})(\d{2})(\d{2})")
_TIME = re.compile(r"\*?(\d{1,2}):?(\d{2})(?::(\d{2}))?\s*(?:([AaPp])[Mm]?)?")


def parse_date(text: str, order: str, received: date, earliest: date | None = None) -> date:
    """A date printed in ``order``; 2-digit and missing years are placed near ``received``.

    A 2-digit year is taken in the century that puts it no later than one year after
    the receive date (``98`` received in 2026 is 1998). A missing year is the receive
    year, or the year before when that would put the call more than a day in the future
    (a PBX clock may run a little ahead): a record received on 2 January for a call on
    31 December belongs to last year.

    ``earliest`` is given instead when the receive date is known to be false (a box that
    booted at 1970 and has not been set yet): a 2-digit year is then this century's, and
    a missing year the first that puts the call on or after the day before ``earliest``.

    >>> parse_date("12/31/98", "MDY", date(2026, 1, 5))
    datetime.date(1998, 12, 31)
    >>> parse_date("12/31", "MD", date(2026, 1, 2))
    datetime.date(2025, 12, 31)
    >>> parse_date("20260115", "YMD", date(2026, 1, 15))
    datetime.date(2026, 1, 15)
    >>> boot = date(1970, 1, 1)
    >>> parse_date("12/01/26", "MDY", boot, EARLIEST_TRUE), parse_date("03/02", "MD", boot, EARLIEST_TRUE)
    (datetime.date(2026, 12, 1), datetime.date(2027, 3, 2))
    """
    match = _DATE_PARTS.fullmatch(text) or (order == "YMD" and _COMPACT_YMD.fullmatch(text))
    if not match or (match[3] is None) != (len(order) == 2):
        raise RecordError(f"date {text!r} is not {'/'.join(order)}")
    parts = dict(zip(order, (int(p) for p in match.groups() if p is not None)))
    year_text = dict(zip(order, match.groups())).get("Y")
    month, day = parts["M"], parts["D"]
    try:
        if year_text is None and earliest is not None:
            found = date(earliest.year, month, day)
            if found >= earliest - timedelta(days=1):
                return found
            return date(earliest.year + 1, month, day)
        if year_text is None:
            found = date(received.year, month, day)
            if found <= received + timedelta(days=1):
                return found
            return date(received.year - 1, month, day)
        year = parts["Y"]
        if len(year_text) <= 2:
            year += 2000 if earliest is not None or 2000 + year <= received.year + 1 else 1900
        return date(year, month, day)
    except ValueError:
        raise RecordError(f"date {text!r} does not exist") from None


def parse_time(text: str) -> time:
    """A time of day: 24 h ``HH:MM[:SS]`` or ``HHMM`` (Avaya CM), or 12 h ``h:mmAM``/``h:mmP``
    (a leading ``*``, the transfer mark of older Panasonic systems, is accepted).

    >>> parse_time("1:04PM"), parse_time("12:52AM"), parse_time("09:30:57")
    (datetime.time(13, 4), datetime.time(0, 52), datetime.time(9, 30, 57))
    """
    match = _TIME.fullmatch(text)
    if not match:
        raise RecordError(f"time {text!r} is not hh:mm[:ss][AM|PM]")
    hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
    if match[4]:
        if not 1 <= hour <= 12:
            raise RecordError(f"time {text!r} has hour {hour} on a 12-hour clock")
        hour = hour % 12 + (12 if match[4] in "Pp" else 0)
    try:
        return time(hour, minute, second)
    except ValueError:
        raise RecordError(f"time {text!r} does not exist") from None


#: Duration formats: name -> (pattern, seconds per captured group).
DURATIONS: dict[str, tuple[re.Pattern[str], tuple[int, ...]]] = {
    "seconds": (re.compile(r"(\d+)"), (1,)),
    # Seconds, or asterisks for "never answered" (Mitel MiVoice Business's time to answer).
    "seconds|***": (re.compile(r"(\d+)|\*+"), (1,)),
    "hh:mm:ss": (re.compile(r"(\d+):([0-5]\d):([0-5]\d)"), (3600, 60, 1)),
    # Either, as the PBX's option says (Mitel 5000 / Axxess: "S=000123" for seconds).
    "hh:mm:ss|S=s": (re.compile(r"(\d+):([0-5]\d):([0-5]\d)|S=(\d+)"), (3600, 60, 1, 1)),
    "hh:mm'ss": (re.compile(r"(\d+):([0-5]\d)'([0-5]\d)"), (3600, 60, 1)),
    "m'ss": (re.compile(r"(\d+)'([0-5]\d)"), (60, 1)),
    # Hours, minutes and tenths of a minute run together (Avaya CM: "0123" = 12.3 min).
    "hmmt": (re.compile(r"(\d)([0-5]\d)(\d)"), (3600, 60, 6)),
}


def parse_duration(text: str, fmt: str) -> int | None:
    """Seconds from a duration printed in ``fmt`` (a key of :data:`DURATIONS`); blank, or
    a mark the format reads as "none" (no group matched), is None.

    >>> parse_duration("00:01'05", "hh:mm'ss"), parse_duration("5'15", "m'ss"), parse_duration("***", "seconds|***")
    (65, 315, None)
    """
    if not text:
        return None
    pattern, scale = DURATIONS[fmt]
    match = pattern.fullmatch(text)
    if not match:
        raise RecordError(f"duration {text!r} is not {fmt}")
    if match.lastindex is None:
        return None
    return sum(int(g) * s for g, s in zip(match.groups(), scale) if g is not None)
