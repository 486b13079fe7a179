"""Sans-I/O: replay requests in, what to publish again and the replies out.

The collector asks a gateway, on ``pbxgw/v1/<site>/<gw>/cmd/replay``, for the events of
one source numbered ``first..last`` in one stream (a msgpack map; docs/events.md). The
gateway publishes again what its queue and archive still hold of them, on their usual
topics marked ``hist: true``, after live traffic and the backlog and at most ``rate``
events a second; then it answers on ``.../replies`` with how many it found and the ranges
it does not have (beyond retention, or never there).

A replay only reads: it changes and deletes nothing, so asking twice is harmless (the
collector's keys absorb the second copy); a request whose id is waiting is not taken
twice, and one whose id was answered lately gets the same reply again, not a replay.
What a gateway takes on is bounded: a range of at most :data:`MAX_RANGE` events, at most
:data:`MAX_JOBS` requests waiting, at most :data:`PER_MINUTE` taken in a minute; past
these, and for anything malformed, the reply says why (``error``) and whether asking again
later may succeed (``retry``). Nothing here touches the network, the disk or a clock: the
caller passes the time.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import msgpack

from gateway.wire import ranges
from gateway.wire.events import SCHEMA_VERSION
from gateway.wire.replay import ID_MAX, MAX_JOBS, malformed

#: Most requests taken in any 60 seconds.
PER_MINUTE = 60
#: Replies kept to answer a repeated request with (the latest ones).
REMEMBERED = 64


@dataclass
class Job:
    """One request being served: its range, how far its rows were read, what was found."""

    id: str
    src: str
    stream: str
    first: int
    last: int
    after: int = 0  # the queue's row id read up to
    found: list[ranges.Range] = field(default_factory=list)
    count: int = 0

    def reply(self, numbered: int | None) -> dict[str, Any]:
        """The reply: how many were found, and the ranges missing, up to the highest seq
        the source has ``numbered`` in this stream (None: not known, an earlier stream's).
        A number not used yet is not missing: it may come yet."""
        top = self.last if numbered is None else min(self.last, numbered)
        asked = [(self.first, top)] if top >= self.first else []
        return {"v": SCHEMA_VERSION, "id": self.id, "src": self.src, "stream": self.stream, "first": self.first,
                "last": self.last, "found": self.count,
                "missing": [list(r) for r in ranges.subtract(asked, ranges.merged(self.found))]}


class Replays:
    """The requests a gateway serves, in the order they came.

    :param stream: the queue's current stream (a request that names none means it).
    :param rate: events per second, at most, published again.
    """

    def __init__(self, stream: str, rate: int):
        self.stream, self.rate = stream, rate
        self.jobs: deque[Job] = deque()
        self._answered: dict[str, dict[str, Any]] = {}  # request id -> its reply, the latest REMEMBERED
        self._taken: deque[float] = deque()  # when each request of the last minute was taken
        self._tokens, self._filled_at = float(rate), 0.0
        self.served = 0  # requests answered with what was found
        self.refused = 0

    def request(self, payload: bytes, now: float) -> dict[str, Any] | None:
        """Take a request; None when it is queued (or is one queued already, by its id),
        else the reply to send now: one refusing it, or the reply a request of this id had."""
        try:
            value = msgpack.unpackb(payload, raw=False)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            return self._refuse(None, f"not msgpack: {exc}", retry=False)
        if not isinstance(value, dict):
            return self._refuse(None, f"expected a map, got {type(value).__name__}", retry=False)
        rid = value.get("id")
        if not (isinstance(rid, str) and 0 < len(rid) <= ID_MAX):
            return self._refuse(None, f"'id': expected text of 1 to {ID_MAX} characters", retry=False)
        reason = malformed(value)
        if reason:
            return self._refuse(rid, reason, retry=False)
        if rid in self._answered:
            return self._answered[rid]
        if any(job.id == rid for job in self.jobs):
            return None
        while self._taken and self._taken[0] <= now - 60:
            self._taken.popleft()
        if len(self.jobs) >= MAX_JOBS:
            return self._refuse(rid, f"busy: {MAX_JOBS} requests are being served", retry=True)
        if len(self._taken) >= PER_MINUTE:
            return self._refuse(rid, f"busy: {PER_MINUTE} requests taken in the last minute", retry=True)
        self._taken.append(now)
        self.jobs.append(Job(rid, value["src"], value.get("stream") or self.stream, value["first"], value["last"]))
        return None

    def _refuse(self, rid: str | None, reason: str, retry: bool) -> dict[str, Any]:
        self.refused += 1
        return {"v": SCHEMA_VERSION, "id": rid, "error": reason, "retry": retry}

    # -- serving ---------------------------------------------------------------------------

    def allowance(self, now: float) -> int:
        """How many events may be published again now (a second's worth at most)."""
        self._tokens = min(float(self.rate), self._tokens + (now - self._filled_at) * self.rate)
        self._filled_at = now
        return int(self._tokens)

    def wait(self) -> float:
        """Seconds until at least one more event may go."""
        return max(0.0, (1 - self._tokens) / self.rate)

    def sent(self, job: Job, rows: list[tuple[int, int]]) -> None:
        """``rows`` (``(row id, seq)``, in id order) of ``job`` were published again."""
        job.after = rows[-1][0]
        job.count += len(rows)
        job.found += [(seq, seq) for _, seq in rows]
        job.found = ranges.merged(job.found)
        self._tokens -= len(rows)

    def finish(self, job: Job, numbered: int | None) -> dict[str, Any]:
        """``job`` has no more rows: its reply (see :meth:`Job.reply`); the next job is served."""
        self.jobs.remove(job)
        self.served += 1
        reply = self._answered[job.id] = job.reply(numbered)
        if len(self._answered) > REMEMBERED:
            del self._answered[next(iter(self._answered))]
        return reply
