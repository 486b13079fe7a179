"""What every source shares: the ingest path into the queue, state, and retry pacing."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable

from gateway.common.backoff import Backoff
from gateway.edge.alarms import SkewWatch, UnparsedWatch
from gateway.edge.clock import EARLIEST_TRUE_S, Clock, now_ms
from gateway.edge.config import SourceSettings
from gateway.edge.queue.store import QueueWriteError, Store
from gateway.smdr.framer import CONTINUATION_WAIT_S
from gateway.smdr.plausible import Doubts
from gateway.smdr.stream import StreamParser


#: How much a source reads at most in one go (a serial line, a socket, a file).
CHUNK = 64 * 1024


class Ingest:
    """One source's bytes -> events committed to the queue, each read in one transaction.

    The next ``seq`` (and a followed file's read offset) are stored in the same
    transaction as the events, so a restart neither skips nor repeats a number.

    :param on_queued: called after each commit that queued events (wakes the publisher).
    :param clock: whether the clock is synchronized (events received while it is not are
        marked ``unsynced``).
    """

    def __init__(self, settings: SourceSettings, store: Store, gw: str, on_queued: Callable[[], None],
                 clock: Clock, carried: bytes = b""):
        """:param carried: the start of a record its predecessor (before a reload) had read."""
        self.settings, self.store, self.gw, self.on_queued, self.clock = settings, store, gw, on_queued, clock
        self.hand_over = False  # set before a stop whose successor reads on from the same bytes
        self.carried = b""  # what end() kept for that successor
        next_seq, self.offset, self.identity = store.source_state(settings.name)
        self._committed_seq = next_seq  # the stream's next seq as last committed
        self.records = self.unparsed = 0
        # Calls whose fields look wrong (a column off?), by doubt; a file read once was
        # printed before it is read, so its starts are not doubted against receive times.
        self.doubts = Doubts(live=settings.type != "file" or settings.follow)
        self.skew = SkewWatch(settings.clock_skew if self.doubts.live else 0)
        self.skew_changes: list[str] = []  # clock_skew alarm changes, for the daemon to queue
        self.unread = UnparsedWatch()
        self.unread_changes: list[str] = []  # unparsed alarm changes, for the daemon to queue
        self.last_rx: int | None = None  # when the last record arrived, ms
        self.last_start: int | None = None  # the start of the last call read
        self.last_seen: float | None = None  # the same on the monotonic clock, s (for the no-data alarm)
        self.write_error = ""  # why the last commit failed ("" when it did not)
        self._stream = self._new_stream(next_seq)
        self._release: asyncio.TimerHandle | None = None  # commits a held record when no line continues it
        if carried:  # (feed(b"") would mean the end of the stream)
            self._stream.framer.feed(carried)

    def _new_stream(self, next_seq: int) -> StreamParser:
        s = self.settings
        return StreamParser(s.profile, s.timezone, self.gw, s.name, next_seq, self.store.stream)

    @property
    def last_seq(self) -> int:
        """The seq of the last event committed to the queue (0 before the first)."""
        return self._committed_seq - 1

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a whole record (not yet committed)."""
        return self._stream.framer.buffered

    def data(self, chunk: bytes, read_to: int | None = None, identity: str | None = None) -> bool:
        """Frame, parse and commit ``chunk``; whether it was committed.

        :param read_to: for a file, the offset just after ``chunk``; the offset committed is
            the start of the first record not yet complete, where a restart resumes. A
            file's read that cannot be committed (a full disk) is forgotten: the file
            source reads it again from :attr:`offset` later.
        :param identity: for a file, which file (device and inode).
        """
        events = self._feed(chunk)
        committed = self._commit(events, None if read_to is None else read_to - self.buffered, identity)
        if read_to is None:  # (a file source calls release() itself when the file has no more)
            self._await_continuation()
        return committed

    def release(self, read_to: int | None = None, identity: str | None = None) -> bool:
        """Commit the record held for lines that would continue it: none came in time (a
        quiet link, a file with no more yet); whether it was committed (see :meth:`data`)."""
        self._release = None
        self._stream.parser.synchronized = self.clock.synchronized
        events = self._placed(self._stream.release(now_ms()))
        return self._commit(events, None if read_to is None else read_to - self.buffered, identity)

    def _await_continuation(self) -> None:
        if self._release is not None:
            self._release.cancel()
            self._release = None
        if self._stream.framer.holding:
            self._release = asyncio.get_running_loop().call_later(CONTINUATION_WAIT_S, self.release)

    def end(self, read_to: int | None = None, identity: str | None = None, carry: bool | None = None) -> bool:
        """The stream ended (connection closed, device gone, file done): commit the last
        partial record as what it is, and start a fresh stream for what comes next. When
        ``carry`` (by default: when :attr:`hand_over` is set), the partial record is kept in
        :attr:`carried` instead, for the successor that reads on from the same link."""
        if self._release is not None:  # (the end of the stream releases the held record)
            self._release.cancel()
            self._release = None
        if self.hand_over if carry is None else carry:
            self.carried += self._stream.framer.take_buffered()
        events = self._feed(b"")
        committed = self._commit(events, read_to, identity)
        self._stream = self._new_stream(self._stream.next_seq)
        return committed

    def _feed(self, chunk: bytes) -> list:
        self._stream.parser.synchronized = self.clock.synchronized
        return self._placed(self._stream.feed(chunk, now_ms()))

    def _placed(self, events: list) -> list:
        for i, event in enumerate(events):  # an unread record is placed after the last call read
            if event.KIND == "call":
                self.last_start = event.start
            elif event.KIND == "unparsed" and self.last_start is not None:
                events[i] = dataclasses.replace(event, after_start=self.last_start)
        return events

    def _commit(self, events: list, offset: int | None, identity: str | None) -> bool:
        if not events and (offset, identity) == (self.offset, self.identity):
            return True
        try:
            self.store.append(self.settings.name, events, self._stream.next_seq, offset, identity)
        except QueueWriteError as exc:
            self.write_error = str(exc)
            if offset is not None:  # a file: nothing of this read happened; it is read again
                self._stream = self._new_stream(self._committed_seq)
                return False
            # Bytes from a line or a socket cannot be read again: their seq numbers are
            # spent and reported as a gap.
            self.store.lost(events, f"queue write failed: {exc.__cause__ or exc}")
            self._seen(events)
            return False
        self.write_error = ""
        self._committed_seq = self._stream.next_seq
        self.offset, self.identity = offset, identity
        if events:
            self._seen(events)
            self.records += len(events)
            self.unparsed += sum(e.KIND == "unparsed" for e in events)
            for event in events:
                self.doubts.add(event)
            self.on_queued()
        return True


    def _seen(self, events: list) -> None:
        if events:
            self.last_rx, self.last_seen = events[-1].rx, time.monotonic()
            if change := self.unread.add([e.KIND == "unparsed" for e in events]):
                self.unread_changes.append(change)
        if not self.doubts.live:
            return
        for event in events:
            # (A box clock that reads before this release says nothing of the PBX's.)
            if event.KIND == "call" and event.rx >= EARLIEST_TRUE_S * 1000:
                if change := self.skew.add(event.rx / 1000, event.start + (event.ring or 0) + (event.dur or 0)):
                    self.skew_changes.append(change)


class Source:
    """Base of the source types: ``run()`` reads until cancelled, never raising for a lost
    device or connection (that is the ``waiting`` state, retried with backoff).

    :ivar state: ``starting``, ``connecting``, ``reading``, ``waiting`` or ``finished``.
    """

    def __init__(self, settings: SourceSettings, ingest: Ingest, predecessor: "Source | None" = None):
        """:param predecessor: the stopped source this one replaces after a reload (it may
            take over what that one kept for it, see :meth:`hands_over_to`)."""
        self.settings, self.ingest = settings, ingest
        self.state = "starting"
        self.error = ""
        self.last_data = 0.0  # time.monotonic() of the last bytes read (tcp-server: is the PBX sending?)
        self._said = ""  # the error last logged
        self._failing_since: float | None = None  # time.monotonic() of the first failure since reading
        self.backoff = Backoff(settings.backoff_min, settings.backoff_max)
        self.log = logging.getLogger(f"pbxgw.source.{settings.name}")

    async def run(self) -> None:
        raise NotImplementedError

    def hands_over_to(self, successor: SourceSettings) -> bool:
        """Whether a successor with these settings (a reload) reads on from this source's
        link: a serial line's open port, a PBX's TCP connection, when what they were opened
        with is unchanged. Closing and opening again would lose what arrives in between (a
        port's input is flushed when it is opened; a PBX may not reconnect for minutes). A
        file needs nothing handed over: it resumes at its committed offset."""
        return False

    def release(self) -> None:
        """Let go of what a stopped source kept for a successor that did not take it."""

    def waiting(self, error: str) -> float:
        """Enter ``waiting`` after ``error``; the delay before the next attempt. An error is
        said when it starts or changes, not at every retry of a night-long outage."""
        if error != self._said:
            self.log.warning("%s; retrying", error)
            self._said = error
        if self._failing_since is None:
            self._failing_since = time.monotonic()
        self.state, self.error = "waiting", error
        return self.backoff.next()

    def stats(self) -> dict:
        """What ``pbxgw status`` and the metrics show of this source (docs/operations.md)."""
        s = self.settings
        where = {"serial": s.device, "tcp-client": f"{s.host}:{s.port}", "tcp-server": f"{s.host}:{s.port}"}
        return {"name": s.name, "type": s.type, "where": where.get(s.type, s.path), "profile": s.profile.name,
                "timezone": str(s.timezone), "state": self.state, "error": self.error,
                "records": self.ingest.records, "unparsed": self.ingest.unparsed,
                "implausible": self.ingest.doubts.as_map(),
                "clock_skew_s": None if (skew := self.ingest.skew.median_s) is None else round(skew),
                "last_record_ms": self.ingest.last_rx, "stream": self.ingest.store.stream, "seq": self.ingest.last_seq}

    def reading(self, what: str) -> None:
        """Enter ``reading``; ``what`` says what is read (a device and its speed, a peer,
        a file), and the log says how long the source was failing before."""
        if self.state != "reading":
            after = "" if self._failing_since is None else \
                f" (recovered after {time.monotonic() - self._failing_since:.0f} s)"
            self.log.info("reading %s%s", what, after)
        self._said, self._failing_since = "", None
        self.state, self.error = "reading", ""
        self.backoff.reset()
