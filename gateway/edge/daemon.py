"""``pbxgw run``: one asyncio loop that owns the sources, the queue and the publisher.

Start: config is valid (checked before we get here), the queue is opened (recovered if
damaged), the boot counter goes up, sources start reading and the publisher starts
connecting. A missing device or an unreachable broker is a state, retried, never a
reason to stop.

Stop (SIGTERM, SIGINT): sources stop reading (every read is already committed), the
publisher waits a bounded time for messages in flight and says ``offline``, the queue is
synced, exit 0.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import sqlite3
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING

from gateway import __version__

from gateway.common.backoff import Backoff
from gateway.common.mqtt import Prepared
from gateway.common.notify import Notifier
from gateway.edge import clock, config, memory, preflight, status
from gateway.edge.alarms import QuietWatch
from gateway.edge.clock import now_ms, wall_ms
from gateway.edge.config import Settings, SourceSettings
from gateway.edge.lock import lock_state_dir
from gateway.edge.publisher import Publisher
from gateway.edge.queue.store import QueueWriteError, Store
from gateway.edge.sources import Ingest, Source, source_class
from gateway.errors import ConfigError
from gateway.smdr.engine import ENGINE
from gateway.wire.events import AlarmEvent, MetricsEvent, packb

if TYPE_CHECKING:  # (imported where headsets are enabled, not here: see Gateway.run)
    from gateway.edge.headsets.service import Headsets

log = logging.getLogger("pbxgw")

#: How long a stop waits for the broker to confirm what is in flight.
STOP_FLUSH_S = 5.0
#: How often the sources' alarms are checked.
ALARM_CHECK_S = 1.0
#: How often STATUS= is refreshed (and, at most, the watchdog pinged).
STATUS_INTERVAL_S = 10.0


class Gateway:
    """The running daemon's parts, for the loop and for status reports."""

    def __init__(self, settings: Settings, prepared: Prepared):
        self.settings, self.prepared = settings, prepared
        self.store = Store(settings.state_dir, settings.queue.max_bytes, settings.queue.when_full,
                           settings.archive.keep, settings.archive.max_bytes)
        self.boot = self.store.bump_boot()
        self.publisher: Publisher | None = None
        self.sources: list[Source] = []
        self.notifier = Notifier()
        self.headsets: Headsets | None = None
        self.started = time.monotonic()  # up_s: not moved by a clock step
        self._tasks: dict[str, asyncio.Task] = {}  # each source's, by name
        self._watches: dict[str, tuple[QuietWatch, float]] = {}  # no-data alarm, its start (monotonic), by source
        self._active: dict[str, dict[str, int]] = {}  # raised alarms by source: alarm -> since (ms), in the status
        self.restart_needed: list[str] = []  # config keys changed on disk that only a restart applies
        self._reload_wanted = asyncio.Event()  # set by SIGHUP
        self.clock = clock.Clock()

    def _start_source(self, settings: SourceSettings, predecessor: Source | None = None) -> None:
        """Start reading a source; in place of ``predecessor`` (stopped, still listed) in
        one step, so that every part that looks at the sources sees the old one or the new
        one, never neither."""
        carried = predecessor.ingest.carried if predecessor else b""
        ingest = Ingest(settings, self.store, self.settings.gateway_id, self.publisher.wake, self.clock, carried)
        source = source_class(settings.type)(settings, ingest, predecessor)
        def fault(error: str) -> None:
            source.state, source.error = "waiting", error

        task = asyncio.get_running_loop().create_task(
            keep_running(f"source {settings.name}", source.run, source.backoff, fault), name=settings.name)
        if predecessor is not None:
            self.sources[self.sources.index(predecessor)] = source
        else:
            self.sources.append(source)
        self._tasks[settings.name] = task
        self._watches[settings.name] = (QuietWatch(settings.quiet, settings.quiet_hours), time.monotonic())
        self._clear_alarms(settings.name)

    async def _stop_source(self, name: str, successor: SourceSettings | None) -> Source:
        """Stop a source, once it has committed what it read. It stays listed (its state,
        figures and alarms still shown) until :meth:`_start_source` replaces it, or
        :meth:`_forget_source` takes it off. When the ``successor``'s settings let it read on
        from the same link (``Source.hands_over_to``), the source keeps that link for it (a
        serial port, a PBX's TCP connection) and the start of the record it was reading."""
        source = next(src for src in self.sources if src.settings.name == name)
        source.ingest.hand_over = successor is not None and source.hands_over_to(successor)
        task = self._tasks[name]
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return source

    def _forget_source(self, source: Source) -> None:
        self.sources.remove(source)
        del self._tasks[source.settings.name], self._watches[source.settings.name]
        self._clear_alarms(source.settings.name)

    def _clear_alarms(self, name: str) -> None:
        """A source restarted or gone: its alarms are cleared (a restarted one's watches
        begin again, and raise again what still holds), so that none stays raised with
        nothing left to clear it."""
        self._queue_alarms([AlarmEvent(gw=self.settings.gateway_id, src=name, rx=now_ms(), alarm=alarm,
                                       state="cleared", last_rx=None) for alarm in self._active.pop(name, {})])

    def _queue_alarms(self, alarms: list[AlarmEvent]) -> None:
        """Queue alarm events like any others (nothing is lost on an outage)."""
        if not alarms:
            return
        try:
            self.store.enqueue(alarms)
        except QueueWriteError as exc:
            log.error("%s; %d alarm events not queued", exc, len(alarms))
            return
        self.publisher.wake()

    async def _reload_on_signal(self) -> None:
        """Reloads one at a time: the SIGHUPs that arrive during one make exactly one more,
        which reads the config as it is then (a technician saving twice, a tool that reloads
        on every save). A reload that fails (not a bad config: that is refused) is said and
        tried again after a backoff delay, so that no source it stopped stays stopped."""
        said, backoff = "", Backoff(1, 60)
        while True:
            await self._reload_wanted.wait()
            self._reload_wanted.clear()
            try:
                await self.reload()
                said = ""
                backoff.reset()
            except Exception as exc:  # noqa: BLE001 - a reload that fails must not end reloading
                error = f"{type(exc).__name__}: {exc}"
                if error != said:
                    log.error("reload failed (%s); trying again", error)
                    said = error
                self.notifier.ready(self.status_line())
                await asyncio.sleep(backoff.next())
                self._reload_wanted.set()

    async def reload(self) -> None:
        """Read the config (and the profiles) again; restart only the sources whose
        settings changed, start new ones, stop removed ones. The queue is never touched,
        except its own limits. A config that does not load is refused: the running one
        stays. What only a restart can change (gateway ids, broker, headsets, archive) is
        said. Not to be run twice at once: :meth:`_reload_on_signal` runs it."""
        self.notifier.reloading()
        try:
            new = config.load(self.settings.path)
        except ConfigError as exc:
            log.error("reload refused, the running config stays: %s", exc)
            self.notifier.ready(self.status_line())
            return
        old = self.settings  # what runs: its [gateway] ids, [mqtt], [headsets], [archive] are those of the start
        self.restart_needed = _restart_keys(old, new)
        if self.restart_needed:
            log.warning("reload: %s changed; that takes a restart (systemctl restart pbxgw)",
                        ", ".join(self.restart_needed))
        before = {src.name: src for src in old.sources}
        after = {src.name: src for src in new.sources}
        # (A source stopped by a reload that failed before it started its successor is
        # started now.)
        changed = [name for name in before if before[name] != after.get(name) or self._tasks[name].cancelled()]
        stopped = {name: await self._stop_source(name, after.get(name)) for name in changed}
        # From here to the end no await: the other parts see the old sources or the new ones.
        self.settings = dataclasses.replace(new, gateway_id=old.gateway_id, site=old.site, state_dir=old.state_dir,
                                            runtime_dir=old.runtime_dir, mqtt=old.mqtt, headsets=old.headsets,
                                            archive=old.archive)
        started = [src for src in new.sources if src.name in stopped or src.name not in before]
        for source_settings in started:
            self._start_source(source_settings, stopped.get(source_settings.name))
        for name, source in stopped.items():
            if name not in after:
                self._forget_source(source)
            source.release()
        self.publisher.set_sources(_announced(self.settings, self._active, self.store))
        applied = [f"queue.{f.name}" for f in dataclasses.fields(new.queue)
                   if getattr(old.queue, f.name) != getattr(new.queue, f.name)]
        applied += ["gateway.metrics_interval"] if old.metrics_interval != new.metrics_interval else []
        self.store.set_budget(new.queue.max_bytes)
        self.store.when_full = new.queue.when_full
        done = [f"{what} {', '.join(names)}" for what, names in (
            ("restarted sources", [n for n in changed if n in after]),
            ("started", [s.name for s in started if s.name not in before]),
            ("stopped", [n for n in changed if n not in after]), ("applied", applied)) if names]
        log.info("reloaded %s: %s", new.path, "; ".join(done) or "nothing changed that runs")
        self.notifier.ready(self.status_line())

    async def run(self) -> None:
        s = self.settings
        # Before any source opens its line: the collection holds the GIL, and a serial port
        # opened meanwhile would flush (pyserial, as it opens) what a PBX printed after it.
        memory.give_back()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload_wanted.set)
        self.publisher = Publisher(s.mqtt, self.prepared, self.store, s.topic_prefix, s.gateway_id, s.site, self.boot,
                                   _announced(s, self._active, self.store), s.archive.replay_rate)
        for source_settings in s.sources:
            self._start_source(source_settings)
        self.publisher.start()
        parts = [loop.create_task(keep_running(name, part, Backoff(1, 60)), name=name)
                 for name, part in (("queue sync", self._sync_every), ("alarms", self._watch_alarms),
                                    ("metrics", self._send_metrics), ("reloads", self._reload_on_signal))]
        log.info("pbxgw started (boot %d): %d sources, queue %d events, broker %s:%d, parser engine %s",
                 self.boot, len(self.sources), self.store.depth, s.mqtt.host, s.mqtt.port, ENGINE)
        if not self.clock.synchronized:
            log.warning("the clock is not synchronized (%s UTC; see timedatectl): events received until it is "
                        "are marked unsynced (their receive time may be wrong)",
                        time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()))
        # The config was valid, the queue is recovered and the loop runs: ready.
        self.notifier.ready(self.status_line())
        watchdog = loop.create_task(self._watchdog())
        if s.headsets.enabled:
            # (imported here: a box without headsets does not carry their code, 0.4 MiB)
            from gateway.edge.headsets.service import Headsets
            self.headsets = Headsets(s.headsets, self.store, s.gateway_id, self.publisher.wake, self.clock)
            self.headsets.start(loop)
        status_server = await self._serve_status()
        await stop.wait()
        log.info("stopping")
        self.notifier.stopping()
        tasks = [*self._tasks.values(), *parts, watchdog]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.headsets is not None:
            self.headsets.close()
        if status_server is not None:
            status_server.close()
        await self.publisher.stop(STOP_FLUSH_S)
        self.store.close()
        for src in self.sources:
            log.info("source %s: %d records this run, %d unparsed", src.settings.name,
                     src.ingest.records, src.ingest.unparsed)
        log.info("stopped: %d events delivered and %d rejected this run; %d left in the queue",
                 self.publisher.delivered, self.publisher.rejected, self.store.depth)

    async def _serve_status(self) -> asyncio.AbstractServer | None:
        path = self.settings.runtime_dir / status.SOCKET_NAME
        try:
            self.settings.runtime_dir.mkdir(parents=True, exist_ok=True)
            return await status.serve(self.snapshot, path)
        except OSError as exc:
            log.warning("no status socket at %s (pbxgw status will not answer): %s", path, exc)
            return None

    def snapshot(self) -> dict:
        """The daemon's state, as ``pbxgw status --json`` prints it (docs/operations.md):
        each part's own figures, gathered."""
        s, queue = self.settings, self.store.stats()
        return {
            "running": True,
            "gateway": {"id": s.gateway_id, "site": s.site, "version": __version__, "engine": ENGINE,
                        "boot": self.boot, "up_s": round(time.monotonic() - self.started, 1),
                        "restart_needed": self.restart_needed, "clock_synchronized": self.clock.synchronized},
            "sources": [source.stats() for source in self.sources],
            "alarms": self.active_alarms(),
            "queue": {"depth": queue.depth, "bytes": queue.bytes,
                      "oldest_age_s": None if queue.oldest_rx is None else round(time.time() - queue.oldest_rx / 1000, 1),
                      "dropped": queue.dropped, "dead": queue.dead,
                      "max_bytes": self.store.max_bytes, "max_bytes_configured": s.queue.max_bytes},
            "archive": status.archive_map(queue.archive),
            "broker": self.publisher.stats(),
            "headsets": [] if self.headsets is None else self.headsets.stats(),
        }

    def active_alarms(self) -> list[dict]:
        """The alarms raised and not yet cleared (for ``pbxgw status``)."""
        silent = [{"source": name, "alarm": "no_data", "since_ms": wall_ms(watch.silent_since)}
                  for name, (watch, _) in self._watches.items() if watch.silent_since is not None]
        skewed = [{"source": src.settings.name, "alarm": "clock_skew", "skew_s": round(src.ingest.skew.median_s)}
                  for src in self.sources if src.ingest.skew.raised]
        unread = [{"source": src.settings.name, "alarm": "unparsed", "share": round(src.ingest.unread.share or 0, 3),
                   "profile": src.settings.profile.name} for src in self.sources if src.ingest.unread.raised]
        return silent + skewed + unread

    def status_line(self) -> str:
        """One line for systemd's STATUS= (``systemctl status pbxgw`` shows it)."""
        reading = sum(src.state == "reading" for src in self.sources)
        broker = "connected" if self.publisher and self.publisher.connected_since else "not connected"
        return (f"{reading} of {len(self.sources)} sources reading, queue {self.store.depth} events, "
                f"broker {broker}")

    async def _watchdog(self) -> None:
        """WATCHDOG=1 from the event loop: a loop blocked by a stuck read sends nothing, and
        systemd restarts the gateway. (No part can die for good: each is kept running by
        :func:`keep_running`.) STATUS= is refreshed on the way."""
        interval = self.notifier.watchdog_interval or STATUS_INTERVAL_S
        while True:
            await asyncio.sleep(min(interval, STATUS_INTERVAL_S))
            if self.notifier.watchdog_interval:
                self.notifier.watchdog()
            self.notifier.status(self.status_line())
            if self.clock.check():
                (log.info if self.clock.synchronized else log.warning)(
                    "the clock is %s now (%s UTC)", "synchronized" if self.clock.synchronized else "not synchronized",
                    time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()))

    async def _watch_alarms(self) -> None:
        """Every source's alarms, checked every second and queued like events: ``no_data``
        (raised once when it has been silent past its quiet period, cleared on its next
        record), ``clock_skew`` (its calls' ends against their receive times) and
        ``unparsed`` (the share of its recent records its profile could not read), which
        its ingest watches. Those raised are in the retained status too, so a collector that
        joins later knows them."""
        while True:
            await asyncio.sleep(ALARM_CHECK_S)
            raised = []
            for source in self.sources:
                s, ingest = source.settings, source.ingest
                watch, since = self._watches[s.name]
                change = watch.check(datetime.now(s.timezone), time.monotonic(), ingest.last_seen, since)
                if change is not None:
                    (log.warning if change == "raised" else log.info)(
                        "source %s: no-data alarm %s (quiet period %g s)", s.name, change, s.quiet)
                    raised.append(AlarmEvent(gw=self.settings.gateway_id, src=s.name, rx=now_ms(), alarm="no_data",
                                             state=change, last_rx=ingest.last_rx, quiet_s=s.quiet))
                for change in ingest.skew_changes:
                    skew = ingest.skew.median_s
                    (log.warning if change == "raised" else log.info)(
                        "source %s: clock_skew alarm %s: %s (limit %g s; the PBX's clock, the source's timezone, "
                        "its date order?)", s.name, change, status.skew_text(skew), s.clock_skew)
                    raised.append(AlarmEvent(gw=self.settings.gateway_id, src=s.name, rx=now_ms(), alarm="clock_skew",
                                             state=change, last_rx=ingest.last_rx, skew_s=round(skew, 1)))
                ingest.skew_changes.clear()
                for change in ingest.unread_changes:
                    share = ingest.unread.share or 0.0
                    (log.warning if change == "raised" else log.info)(
                        "source %s: unparsed alarm %s: %.0f %% of its last %d records could not be read by profile "
                        "%s (a wrong baud rate or framing, the wrong profile, a PBX upgraded to print otherwise?)",
                        s.name, change, 100 * share, len(ingest.unread.recent), s.profile.name)
                    raised.append(AlarmEvent(gw=self.settings.gateway_id, src=s.name, rx=now_ms(), alarm="unparsed",
                                             state=change, last_rx=ingest.last_rx, unparsed_share=round(share, 3)))
                ingest.unread_changes.clear()
            for alarm in raised:
                active = self._active.setdefault(alarm.src, {})
                if alarm.state == "raised":
                    active[alarm.alarm] = alarm.rx
                else:
                    active.pop(alarm.alarm, None)
            if raised:
                self.publisher.set_sources(_announced(self.settings, self._active, self.store))
                self._queue_alarms(raised)

    async def _send_metrics(self) -> None:
        """A ``metrics`` message every ``metrics_interval`` while connected."""
        while True:
            interval = self.settings.metrics_interval
            await asyncio.sleep(interval or STATUS_INTERVAL_S)
            if not interval:
                continue
            snap = self.snapshot()
            self.publisher.publish_metrics(packb(MetricsEvent(
                gw=self.settings.gateway_id, rx=now_ms(), up_s=snap["gateway"]["up_s"], sources=snap["sources"],
                queue=snap["queue"], broker=snap["broker"], headsets=len(snap["headsets"]))))

    async def _sync_every(self) -> None:
        while True:
            await asyncio.sleep(self.settings.queue.sync_interval)  # a reload may change it
            self.store.sync()


def _announced(settings: Settings, active: dict[str, dict[str, int]], store: Store) -> list[dict]:
    """The sources as the retained status names them: what the centre reads their records
    with, how it joins them into calls (a site's own copy of a profile included), their
    alarms raised now (alarm -> since, ms), and where their numbers begin in a stream new
    with this run (so that the centre asks this stream, not the one before, for its first
    events when the broker lost them)."""
    announced = []
    for src in settings.sources:
        entry = {"name": src.name, "profile": src.profile.name, "timezone": src.timezone.key,
                 "extends": src.profile.extends, "assembly": src.profile.assembly_table,
                 "assembly_digest": src.profile.assembly.digest, "alarms": dict(active.get(src.name, {}))}
        if (began := store.stream_began(src.name)) is not None:
            entry.update(stream=store.stream, first_seq=began)
        announced.append(entry)
    return announced


def _restart_keys(running: Settings, new: Settings) -> list[str]:
    """The keys of ``new`` that differ from what runs and that only a restart applies."""
    keys = [f"gateway.{key}" for key, attr in (("id", "gateway_id"), ("site", "site"), ("state_dir", "state_dir"),
                                               ("runtime_dir", "runtime_dir"))
            if getattr(running, attr) != getattr(new, attr)]
    for section in ("mqtt", "headsets", "archive"):
        was, now = getattr(running, section), getattr(new, section)
        for f in dataclasses.fields(was):
            if getattr(was, f.name) != getattr(now, f.name):
                # host, port and tls come from one key, the URL
                keys.append(f"{section}.{'url' if f.name in ('host', 'port', 'tls') else f.name}")
    return sorted(set(keys))


async def keep_running(name: str, part: Callable[[], Awaitable[None]], backoff: Backoff,
                       on_fault: Callable[[str], None] = lambda error: None) -> None:
    """Run ``part()`` until it returns. An exception nothing inside it caught (an I/O error
    of a kind not foreseen, a bug) is a state, not the end: said once per kind of error,
    handed to ``on_fault``, and ``part`` is started again after a backoff delay. So no
    part of the gateway dies for good, and the watchdog needs to watch only the loop."""
    said = ""
    while True:
        try:
            await part()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the point: whatever it is, it is retried
            error = f"{type(exc).__name__}: {exc}"
            if error != said:
                log.error("%s failed (%s); started again", name, error)
                said = error
            on_fault(error)
            await asyncio.sleep(backoff.next())


def run(settings: Settings) -> int:
    """Run the daemon until SIGTERM or SIGINT; the exit status.

    :raises ConfigError: it cannot start (what ``check-config`` checks, or a state
        directory that fails when it is used): one line, exit 78.
    """
    prepared = preflight.prepare(settings)
    for warning in prepared.warnings:
        log.warning("%s", warning)
    os.umask(0o077)  # the queue holds call records: nothing it writes is for other users
    try:
        lock_state_dir(settings.state_dir)  # held until the process ends
        gateway = Gateway(settings, prepared)
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(str(settings.path), "gateway.state_dir",
                          f"cannot use {settings.state_dir}: {getattr(exc, 'strerror', None) or exc}") from None
    asyncio.run(gateway.run())
    return 0
