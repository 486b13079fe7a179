"""Sans-I/O: the holes in what was stored in, replay requests out (docs/central.md).

A hole (a ``seq`` range missing in a stream, not reported lost) is asked for once it has
been seen for ``grace`` seconds, unless its stream misses more than
:data:`gateway.wire.replay.MAX_HOLE` numbers (a forged or damaged ``seq``: said once, and
shown in ``pbxgw fleet``, never asked): events out of order or a backlog on its way fill most
holes by themselves. A request names at most :data:`gateway.wire.replay.MAX_RANGE` events; a
gateway takes at most :data:`gateway.wire.replay.MAX_JOBS` at once, so no more are asked of
it until they are answered or time out. A hole still open after its request is asked
for again after a backoff (``backoff_min`` doubling up to ``backoff_max``), whether the
reply was lost, the gateway was away or busy; and at once when its gateway comes online
again (a request made before then may have found it gone). A reply counts only when it
answers a request this collector made and still waits for, of the gateway that sends it,
about the range asked (so no reply, sent unasked or about numbers not yet used, makes a
loss). What a reply says the gateway does not have is stored as lost at the edge (``gap`` rows, made by :mod:`gateway.central.ingest`), so
it is no hole any more and is never asked for again. The caller passes the time.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass
from typing import Any

import msgpack

from gateway.wire import ranges
from gateway.wire.replay import MAX_JOBS, MAX_RANGE, request, too_large
from gateway.wire import topics

#: ``(gw, site, src, stream)``: a stream of one source of one gateway.
StreamKey = tuple[str, str, str, str]


@dataclass
class _Hole:
    seen_at: float
    asked: int = 0  # how many times
    asked_at: float = 0.0
    retry_at: float = 0.0  # not asked again before
    request: str | None = None  # the id of the request not answered yet


class Asker:
    """The holes known and the requests made for them.

    :param grace: seconds a hole is left to fill by itself before it is asked for.
    :param name: the collector's name, in each request's id (with a number).
    :param run: this run of the collector, in each id too: a gateway answers an id it
        answered lately with that reply again, so a collector started again must not
        number its requests as the run before did.
    """

    def __init__(self, grace: float, name: str, run: str, backoff_min: float = 30.0, backoff_max: float = 3600.0):
        self.grace, self.backoff_min, self.backoff_max = grace, backoff_min, backoff_max
        self._holes: dict[tuple[StreamKey, int, int], _Hole] = {}
        self._ids = (f"{name[:40]}-{run[:8]}-{n}" for n in itertools.count(1))
        self._waiting: dict[str, tuple[StreamKey, int, int]] = {}  # request id -> its hole
        self.asked = self.lost = 0
        self._too_large: set[StreamKey] = set()  # streams past asking for, said already

    def too_large(self, holes: dict[StreamKey, list[ranges.Range]]) -> list[tuple[StreamKey, int]]:
        """The streams among ``holes`` past asking for, not said before: ``(key, how many
        numbers missing)``, for the log."""
        found = {key for key, missing in holes.items() if too_large(missing)}
        new = sorted(found - self._too_large)
        self._too_large = found
        return [(key, ranges.size(holes[key])) for key in new]

    @property
    def open(self) -> set[StreamKey]:
        """The streams with holes open at the last look."""
        return {key for key, _, _ in self._holes}

    def requests(self, holes: dict[StreamKey, list[ranges.Range]], now: float) -> list[tuple[str, bytes]]:
        """The requests to publish now, ``(topic, payload)``, for the holes open now (all
        of them: a hole no longer among them was filled and is forgotten)."""
        current = {(key, first, last) for key, missing in holes.items() if not too_large(missing)
                   for first, last in _pieces(missing)}
        for gone in self._holes.keys() - current:
            hole = self._holes.pop(gone)
            self._waiting.pop(hole.request, None)
        busy = Counter(where[0][0] for where, hole in self._holes.items() if hole.request and now < hole.retry_at)
        out = []
        for where in sorted(current):
            hole = self._holes.setdefault(where, _Hole(seen_at=now))
            (gw, site, src, stream), first, last = where
            if now - hole.seen_at < self.grace or now < hole.retry_at or busy[gw] >= MAX_JOBS:
                continue
            if hole.request:
                self._waiting.pop(hole.request, None)
            hole.request = next(self._ids)
            hole.asked, hole.asked_at = hole.asked + 1, now
            hole.retry_at = now + min(self.backoff_max, self.backoff_min * 2 ** (hole.asked - 1))
            self._waiting[hole.request] = where
            busy[gw] += 1
            self.asked += 1
            out.append((topics.topic(site, gw, topics.REPLAY),
                        msgpack.packb(request(hole.request, src, stream, first, last))))
        return out

    def online(self, gw: str, now: float) -> None:
        """Gateway ``gw`` came online: what was asked of it before, unanswered, is asked
        again at the next look."""
        for (key, _, _), hole in self._holes.items():
            if key[0] == gw and hole.request and hole.asked_at < now:
                self._waiting.pop(hole.request, None)
                hole.request, hole.retry_at = None, now

    def answered(self, gw: str, reply: dict[str, Any]) -> str:
        """A gateway's reply: "" when it answers a request made of ``gw`` and still
        waited for, about what it asked (what it lacks is then stored as a ``gap``); else why
        it is refused, and it changes nothing. A request refused as busy is asked again
        after its backoff; one answered frees a place at the gateway at once."""
        where = self._waiting.get(reply["id"])
        if where is None:
            return f"a reply to {reply['id']!r}, no request this collector waits for (answered, asked again or never asked)"
        (asked_of, _, src, stream), first, last = where
        if gw != asked_of:
            return f"a reply from {gw} to a request made of {asked_of}"
        if "error" not in reply and (reply["src"], reply["stream"], reply["first"], reply["last"]) != (
                src, stream, first, last):
            return (f"a reply about {reply['src']} {reply['stream']} {reply['first']}..{reply['last']} to a request "
                    f"for {src} {stream} {first}..{last}")
        del self._waiting[reply["id"]]
        if where in self._holes:
            self._holes[where].request = None
        if "error" not in reply:
            self.lost += sum(b - a + 1 for a, b in reply["missing"])
        return ""


def _pieces(missing: list[ranges.Range]) -> list[ranges.Range]:
    """The ranges cut to at most MAX_RANGE events each (what one request may name)."""
    out = []
    for first, last in missing:
        for start in range(first, last + 1, MAX_RANGE):
            out.append((start, min(last, start + MAX_RANGE - 1)))
    return out
