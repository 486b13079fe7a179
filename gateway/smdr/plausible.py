"""Sans-I/O: calls whose fields parse but look wrong, the mark of a layout read one column
off (or a wrong zone or date order) that no record turns ``unparsed`` for.

The checks hold on every bundled profile's own samples, so each count is a sign to look:
``pbxgw parse`` ends with them, ``pbxgw status`` and the metrics show them per source.
"""

from __future__ import annotations

import re
from collections import Counter

#: What an extension and a trunk are on every PBX read here: digits (and * #; a trunk may
#: be numbered with . / -). An extension does not start with 0 (0 is the usual trunk
#: access code): one that does is a fixed-width column cut one character late.
_EXTENSION = re.compile(r"[1-9*#][0-9*#]*")
_TRUNK = re.compile(r"[0-9*#./-]+")
#: No call is talked for more than a day, or rung for more than an hour.
DUR_MAX_S = 86400
RING_MAX_S = 3600
#: A call more than a year away from when its record came (a wrong date order or year).
START_AWAY_MAX_S = 366 * 86400

#: The doubts, in the order they are told.
DOUBTS = ("ext", "trunk", "dur", "ring", "start")


def doubts(ext: str | None, trunk: str | None, dur: int | None, ring: int | None, start: int,
           rx: int | None) -> list[str]:
    """What looks wrong in one call (its fields as on the wire; ``rx`` in ms, or None when
    the receive time says nothing, as for a capture read from a file): some of
    :data:`DOUBTS`."""
    found = []
    if ext and not _EXTENSION.fullmatch(ext):
        found.append("ext")  # letters, or a leading 0, where an extension goes: a column off
    if trunk and not _TRUNK.fullmatch(trunk):
        found.append("trunk")
    if dur is not None and dur > DUR_MAX_S:
        found.append("dur")
    if ring is not None and ring > RING_MAX_S:
        found.append("ring")
    if rx is not None and abs(start - rx / 1000) > START_AWAY_MAX_S:
        found.append("start")
    return found


class Doubts:
    """How many calls had each doubt (a call may have several).

    :param live: whether receive times are when the PBX printed (a link, not a file read
        later): only then is a start far from them a doubt.
    """

    def __init__(self, live: bool = True):
        self.live = live
        self.counts: Counter[str] = Counter()

    def add(self, event) -> None:
        """Count an event (only calls have fields to doubt)."""
        if event.KIND == "call":
            self.counts.update(doubts(event.ext, event.trunk, event.dur, event.ring, event.start,
                                      event.rx if self.live else None))

    def told(self) -> str:
        """``ext 3, start 10``, or ``none``."""
        return ", ".join(f"{doubt} {n}" for doubt, n in self.as_map().items()) or "none"

    def as_map(self) -> dict[str, int]:
        return {doubt: self.counts[doubt] for doubt in DOUBTS if self.counts[doubt]}
