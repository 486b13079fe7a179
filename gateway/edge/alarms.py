"""Sans-I/O alarms of a PBX link: silent longer than its quiet period (``no_data``), its
records ending far from when they arrive (``clock_skew``), or most of them not read by its
profile (``unparsed``).

A PBX prints a record when a call ends, so silence is normal at night and alarming in the
middle of a working day. A source's ``quiet`` period says how long a silence may last;
``quiet_hours`` (a :mod:`gateway.common.schedule`, in the source's time zone) limits the watch to
working hours, and silence is then counted from the later of the last record and when
the hours opened, so the first minutes of a morning are not taken for an outage.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from gateway.common.schedule import Schedule

@dataclass(slots=True)
class QuietWatch:
    """Raises once when a source stays silent past ``quiet_s``; clears on its next record.

    Silence is measured on the monotonic clock, so a wall clock that is stepped (a box that
    boots at 1970 until NTP sets it, a summer-time change) neither raises an alarm nor hides
    one; the wall clock, in the source's zone, only says whether working hours are on.
    """

    quiet_s: float
    hours: Schedule | None = None
    silent_since: float | None = None  # set while raised: when (monotonic s) the silence began

    def check(self, now: datetime, mono: float, last_record: float | None, since: float) -> str | None:
        """``"raised"``, ``"cleared"`` or None.

        :param now: the wall time (aware, in the source's zone), for the working hours.
        :param mono: the monotonic time now, s; :param last_record: that of the source's last
            record (None: none yet); :param since: that of when the watch began.
        """
        if self.silent_since is not None:
            if last_record is not None and last_record > self.silent_since:
                self.silent_since = None
                return "cleared"
            return None
        if self.quiet_s <= 0:
            return None
        silent_since = since if last_record is None else max(last_record, since)
        if self.hours is not None:
            open_for = self.hours.open_for(now)
            if open_for is None:
                return None
            silent_since = max(silent_since, mono - open_for)
        if mono - silent_since < self.quiet_s:
            return None
        self.silent_since = silent_since
        return "raised"


@dataclass(slots=True)
class SkewWatch:
    """How far a source's calls end from when their records arrive: the PBX's clock (and
    the source's ``timezone`` and date order) against the box's.

    A PBX prints a call's record when it ends, so a receive time minus the call's end is
    seconds. The median of the last :data:`WINDOW` calls past ``limit_s`` (a PBX clock that
    missed a summer-time change, a wrong zone, DD/MM read as MM/DD) raises the alarm once;
    back within it, the alarm clears. A PBX that sends a stored backlog after an outage
    raises it too, until its live calls come.
    """

    WINDOW = 20  # calls the median is taken over
    FEWEST = 5  # calls before anything is said

    limit_s: float
    skews: deque = field(default_factory=lambda: deque(maxlen=SkewWatch.WINDOW))
    raised: bool = False

    @property
    def median_s(self) -> float | None:
        """Receive time less call end, s (positive: the PBX's clock is behind), or None."""
        if not self.skews:
            return None
        # (by hand: the statistics module brings decimal and fractions, 0.6 MiB of a box's idle 30)
        ordered, middle = sorted(self.skews), len(self.skews) // 2
        return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2

    def add(self, received_s: float, call_end_s: float) -> str | None:
        """One call; ``"raised"``, ``"cleared"`` or None."""
        self.skews.append(received_s - call_end_s)
        if self.limit_s <= 0 or len(self.skews) < self.FEWEST:
            return None
        off = abs(self.median_s) > self.limit_s
        if off == self.raised:
            return None
        self.raised = off
        return "raised" if off else "cleared"



@dataclass(slots=True)
class UnparsedWatch:
    """The share of a source's recent records its profile could not read: a wrong baud
    rate, a wrong profile, a PBX upgraded to print otherwise. Raised once when at least
    :data:`RAISE_AT` of the last :data:`WINDOW` records were unread (after :data:`FEWEST`),
    cleared when at most :data:`CLEAR_AT` of them are: a record now and then that a PBX
    garbles is no alarm, a link that reads nothing is."""

    WINDOW = 50
    FEWEST = 10
    RAISE_AT = 0.5
    CLEAR_AT = 0.1

    recent: deque = field(default_factory=lambda: deque(maxlen=UnparsedWatch.WINDOW))
    raised: bool = False

    @property
    def share(self) -> float | None:
        return sum(self.recent) / len(self.recent) if self.recent else None

    def add(self, unread: list[bool]) -> str | None:
        """Records in the order read, True for each unread; ``"raised"``, ``"cleared"`` or None."""
        self.recent.extend(unread)
        share = self.share
        if share is None or len(self.recent) < self.FEWEST:
            return None
        if not self.raised and share >= self.RAISE_AT:
            self.raised = True
            return "raised"
        if self.raised and share <= self.CLEAR_AT:
            self.raised = False
            return "cleared"
        return None
