"""The PBX profile model: what a loaded profile says about a PBX's records.

Frozen data only: :mod:`gateway.smdr.profiles` builds it from a profile's TOML file (and
is the one module of this package that reads files); the framer, the parsers and the
compiled engine's plan read it.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.smdr.fields import DATE_ORDERS, DURATIONS
from gateway.smdr.framer import FramingRules

#: Event fields a profile may fill from text, and the values the closed ones allow.
TEXT_FIELDS = ("dir", "ext", "trunk", "caller", "called", "acct", "disp", "callid")
DURATION_FIELDS = ("ring", "dur")
CLOSED_VALUES = {
    "dir": ("in", "out", "int"),
    "disp": ("answered", "unanswered", "busy", "transferred", "forwarded", "other"),
}
#: Formats of a column: text, a plain integer, or a duration (see fields.DURATIONS).
FORMATS = ("text", "int", "ipv4-le", *DURATIONS, "datetime")


@dataclass(frozen=True, slots=True)
class Variant:
    """One record layout. ``positions`` follow :attr:`Layout.columns`: ``(start, end)``
    character slices for fixed-width records, field indexes for delimited ones."""

    name: str
    max_length: int | None
    match: re.Pattern[str] | None
    positions: tuple[Any, ...]

    def admits(self, text: str) -> bool:
        """Whether this variant reads ``text`` (its length and its pattern allow it)."""
        return ((self.max_length is None or len(text) <= self.max_length)
                and (self.match is None or self.match.search(text) is not None))


@dataclass(frozen=True, slots=True)
class Layout:
    """How a record splits into named columns (the part the compiled engine runs)."""

    kind: str
    columns: tuple[str, ...]
    variants: tuple[Variant, ...]
    delimiter: str = ","
    quote: str = ""
    min_fields: int = 1


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """Event field ``target`` (``x_`` prefix: a vendor field) from column ``column`` (or,
    when it is blank, or a time of 0 in a difference, column ``otherwise``), less column
    ``minus`` when given: a number or duration in the same format (Asterisk's ring is its
    ``duration`` less its ``billsec``), or two ``datetime`` columns (3CX's ring is its
    answer time less its start time; Cisco's its connect time, 0 when never answered, or
    else its disconnect time, less its origination)."""

    target: str
    column: int
    format: str
    minus: int | None = None
    otherwise: int | None = None


@dataclass(frozen=True, slots=True)
class StartSpec:
    """Where the call's start time comes from.

    ``date`` and ``time`` are column indexes (the same column when the PBX prints date
    and time together; ``date`` is None when it prints no date, ``time`` is None for
    epoch seconds); ``time_is`` ``"end"`` means the PBX prints the end of the call, so
    ring and talk time are subtracted to get its start.
    """

    date: int | None
    time: int | None
    date_order: str
    time_is: str
    #: A blank date column is allowed: the record is dated as by a PBX that prints no
    #: date (NEC leaves it blank on extension calls, or prints none with PRG 35-02-14 = 0).
    date_optional: bool = False

    def texts(self, columns: tuple[str, ...]) -> tuple[str, str]:
        """A record's date and time texts (``""`` for what it does not print; a shared
        column split at its first blank). Epoch seconds come as the date text."""
        date_text = columns[self.date] if self.date is not None else ""
        if self.time is None:
            return date_text, ""
        if self.date == self.time:
            date_text, _, time_text = date_text.partition(" ")
            return date_text, time_text.strip()
        return date_text, columns[self.time].strip()


@dataclass(frozen=True, slots=True)
class Rule:
    """When every column regex matches (full match), the rule decides the fields it
    names (its named groups and its ``set`` keys) that no earlier rule has decided. A
    group that did not take part decides its field as null."""

    when: tuple[tuple[int, re.Pattern[str]], ...]
    set: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class LoginStep:
    """One step of a TCP login dialogue: wait for ``expect`` (text, any case; empty: no
    wait), then send ``send``. With ``password``, ``send`` (less its line end) is the PBX's
    factory password, which a source's ``login_password_file`` replaces."""

    expect: str
    send: bytes
    timeout: float
    password: bool = False

    def sent(self, password: bytes | None) -> bytes:
        """What this step sends: ``send``, or ``password`` in its place before its line end."""
        if not self.password or password is None:
            return self.send
        return password + self.send[len(self.send.rstrip(b"\r\n")):]


@dataclass(frozen=True, slots=True)
class Reply:
    """A request the PBX sends on the link that needs an answer (a keep-alive test): when
    ``receive`` arrives, ``send`` goes back. The request still reaches the framer, which
    must drop it (a skip pattern, or noise between blocks)."""

    receive: bytes
    send: bytes


#: A condition on an event's fields: any of its alternatives, each a tuple of ``(field,
#: regex)`` that must all fully match the field's text (a number as its digits, null as
#: ""); ``field`` is an event field or ``x.<name>``.
Condition = tuple[tuple[tuple[str, re.Pattern[str]], ...], ...]


def event_value(event: dict, field: str) -> Any:
    """``field`` of ``event``: an event field, or ``x.<name>`` for a vendor field."""
    if field.startswith("x."):
        return (event.get("x") or {}).get(field[2:])
    return event.get(field)


def holds(condition: Condition, event: dict) -> bool:
    """Whether ``event`` meets one of the alternatives of ``condition`` (none: never)."""
    for alternative in condition:
        for field, pattern in alternative:
            value = event_value(event, field)
            if pattern.fullmatch("" if value is None else str(value)) is None:
                break
        else:
            return True
    return False


@dataclass(frozen=True, slots=True)
class Assembly:
    """How a PBX's records join into calls: the ``[assembly]`` table, read by the
    collector (docs/profiles.md). Two ways, as PBXes print them:

    - ``join``: records whose join fields are all equal (and not null) belong to one
      call while each starts within ``window`` seconds of the end of the call so far
      (the PBX's ids come round again after a restart or a wrap);
    - no ``join``: records on one ``line`` (a CO line, a trunk) join when the record
      before on that line was a transfer and the next one starts within ``window``
      seconds of its end (contiguous times on one line);

    without either, each record is a call of its own.

    ``starts`` says what a record's start is: ``"leg"``, when its own leg began (legs
    of a ring group ring at once: the answer wait is from the call's start to when its
    answering leg was answered), or ``"call"``, when each record prints the call's start
    (IP Office: segments follow each other, so the wait is their rings added up)."""

    version: int = 1
    join: tuple[str, ...] = ()
    window: int = 0
    line: str | None = None
    ends: Condition = ()
    transfer: Condition = ()
    voicemail: Condition = ()
    hold: str | None = None
    starts: str = "leg"
    not_calls: Condition = ()  # records that are no call (an agent logging in, a ringing notice)
    name: str | None = None  # the field holding the name the PBX prints for a leg's extension
    group: str | None = None  # the field holding the hunt group or queue a call was offered to
    every_leg: bool = False  # a record per extension a call rang at, not only the one that took it (or rang last)
    digest: str = ""  # of the ``[assembly]`` table as written: which rules built a call (``profiles.assembly_digest``)

    @property
    def promises_id(self) -> bool:
        """Whether every record should carry the join fields (a record without: orphan)."""
        return bool(self.join)


@dataclass(frozen=True, slots=True)
class PbxProfile:
    """A loaded PBX profile."""

    name: str
    title: str
    source: str
    path: Path
    framing: FramingRules
    layout: Layout
    start: StartSpec
    fields: tuple[FieldSpec, ...]
    rules: tuple[Rule, ...]
    test_timezone: str
    test_received: datetime
    serial: dict[str, Any]
    login: tuple[LoginStep, ...]
    replies: tuple[Reply, ...]
    quiet: float = 0.0  # default no-data alarm period of its sources (0: none)
    assembly: Assembly = Assembly()
    #: ``[assembly]`` as written (over its base's): what a gateway tells the centre, which
    #: assembles the records of a site's own copy as the site runs it.
    assembly_table: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    extends: str | None = None  # the bundled profile this one is a variant of

    @property
    def samples_path(self) -> Path:
        return self.path.parent / "samples.txt"

    @property
    def expected_path(self) -> Path:
        return self.path.parent / "expected.jsonl"


def with_framing(profile: PbxProfile, key: str, pattern: str) -> PbxProfile:
    """The profile with one more ``skip`` or ``strip`` pattern in its ``[framing]`` (what a
    site's copy would add: a counter column cut, title lines skipped)."""
    framing = profile.framing
    added = (*getattr(framing, key), re.compile(pattern.encode()))
    return dataclasses.replace(profile, framing=dataclasses.replace(framing, **{key: added}))


def with_date_order(profile: PbxProfile, order: str) -> PbxProfile:
    """The profile reading dates in ``order`` instead (a site's DD/MM against MM/DD).

    :raises ValueError: ``order`` does not fit the profile (with or without a year).
    """
    current = profile.start.date_order
    allowed = [o for o in DATE_ORDERS if len(o) == len(current)] if current in DATE_ORDERS else []
    if order not in allowed:
        raise ValueError(f"expected one of {', '.join(allowed) or '(none: this profile prints no such date)'}"
                         f" for profile {profile.name}; got {order!r}")
    framing = profile.framing
    if framing.page_date is not None and (current.index("M") < current.index("D")) != (order.index("M") < order.index("D")):
        # A site printing day first does so in its page headers too.
        framing = dataclasses.replace(framing, page_date_order=framing.page_date_order.translate(str.maketrans("MD", "DM")))
    return dataclasses.replace(profile, framing=framing, start=dataclasses.replace(profile.start, date_order=order))
