"""``pbxgw collect``: the MQTT shell that stores every gateway's events once.

One asyncio loop runs it all: the MQTT link (:mod:`gateway.common.link`: paho without a
thread of its own, as the gateway's publisher runs it), and the database written from one
worker thread (its calls block).
Messages are read into rows (decoded, checked) in a second process (see
:mod:`gateway.central.reader`), one batch while the one before it is written. A message
is acknowledged (PUBACK, paho's ``manual_ack``) only after the transaction holding
its rows has committed, so a collector that dies or a database that goes away costs a
redelivery, never a loss. The session is persistent (a fixed client id, clean start off, a
long session expiry), so the broker keeps what arrives while the collector is away.

The collector holds at most ``inflight`` messages unacknowledged: it asks the broker for
that (MQTT 5 Receive Maximum) and, since a broker may send past it (Mosquitto 2.0 does when
draining a session's queue), it also stops reading its socket until acknowledgements bring
it back under: TCP then holds the broker. That, and the batch size, bound its memory
whatever the backlog.

A batch the database refuses is written again message by message, and the message it
refuses alone goes to ``rejected`` with the database's reason: a poison message never
blocks the session. A database that cannot be reached is a state, retried with backoff,
while the broker keeps the messages.

Every ``hole_grace`` / 2 (at most 30 s) the collector looks for holes in what it stored
(by the counters it keeps per source; by counting the rows every :data:`RECOUNT_EVERY` looks)
and asks their gateways to publish them again (:mod:`gateway.central.asker`); the events
come back on their usual topics, the replies on ``.../replies``. Every few seconds, when
no backlog is draining, it assembles the records stored since into calls
(:mod:`gateway.central.callstore`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import msgpack
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from gateway.central import callstore, retention, summary
from gateway.central.asker import Asker
from gateway.central.database import Database, Refused, Unavailable, Written
from gateway.central.fleet import open_holes
from gateway.central.flow import Flow, Message
from gateway.central.ingest import Rows, rows_of
from gateway.central.probe import anonymous_allowed
from gateway.central.reader import Reader, ReaderGone
from gateway.central.register import SiteRegister
from gateway.central.settings import CollectorSettings
from gateway.common.backoff import Backoff
from gateway.common.link import Link
from gateway.common.mqtt import Prepared
from gateway.common.notify import Notifier

log = logging.getLogger("pbxgw.collect")
#: Seconds between two assemblies of the calls of the records stored since.
ASSEMBLE_EVERY = 5
#: Seconds after which calls are assembled even while batches come full.
ASSEMBLE_AT_LEAST = 60
#: Every this many looks for holes, the rows stored are counted (the looks between read
#: the sources' counters): 20 looks are 10 grace periods, 10 minutes by default.
RECOUNT_EVERY = 20


class Collector:
    """Subscribes, batches, writes, acknowledges; see the module docstring."""

    def __init__(self, settings: CollectorSettings, prepared: Prepared, notifier: Notifier | None = None):
        self.settings, self.prepared = settings, prepared
        self.notifier = notifier or Notifier({})
        self.stored = self.duplicates = self.rejected = self.batches = self.calls = 0
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Message] = asyncio.Queue()
        self._stopping = asyncio.Event()
        self._db_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pbxgw-db")
        # Looking for holes only reads, on a connection of its own: a look over thousands of
        # sources takes seconds, which the writes must not wait for.
        self._looks_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pbxgw-looks")
        self._looks_db: Database | None = None
        # The reader process's pipes take one request at a time: from one thread.
        self._reader_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pbxgw-reader")
        self._reader = Reader()
        self._db: Database | None = None
        # what to acknowledge, when to read, when a batch is full, whether a backlog drains
        self._flow = Flow(settings.inflight, settings.batch_messages, settings.batch_bytes)
        self._said = ""  # the last fault told: told once, then again only when it changes
        self._backoff = Backoff(settings.mqtt.backoff_min, settings.mqtt.backoff_max)
        self._link = self._make_link()
        self._client = self._link.client
        self._asker = Asker(settings.hole_grace, settings.mqtt.client_id, secrets.token_hex(4))
        self._register = SiteRegister(dict(settings.gateways))
        self._probe: asyncio.Task | None = None

    # -- MQTT, on the loop ----------------------------------------------------------------

    def _make_link(self) -> Link:
        """A persistent session (a fixed client id, clean start off, a long expiry) that
        sends at most ``inflight`` messages unacknowledged (MQTT 5 Receive Maximum)."""
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = int(self.settings.session_expiry)
        properties.ReceiveMaximum = self.settings.inflight
        link = Link(self.settings.mqtt, self.prepared, log, "collector", self._backoff.next, manual_ack=True,
                    connect=dict(clean_start=False, properties=properties))
        link.on_connected, link.on_lost = self._on_connect, self._on_lost
        link.client.on_message, link.client.on_subscribe = self._on_message, self._on_subscribe
        return link

    @property
    def _connected(self) -> bool:
        return self._link.connected

    def _on_connect(self, flags) -> None:
        if self._flow.generation == 0 and self._probe is None:  # (once a run)
            self._probe = self._loop.create_task(self._probe_anonymous())
        self._flow.connected(time.monotonic())
        log.info("connected to the broker (%s session)", "resumed" if flags.session_present else "new")
        # A subscription the session already has keeps its queue; the retained status of
        # each gateway is sent when a subscription is new (retain handling 1).
        options = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        self._client.subscribe([(topic, options) for topic in self.settings.topics])

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        refused = [str(code) for code in reason_codes if code.is_failure]
        if refused:
            log.error("the broker refused the subscription to %s: %s", ", ".join(self.settings.topics),
                      ", ".join(refused))
        else:
            log.info("subscribed to %s", ", ".join(self.settings.topics))

    def _on_lost(self, was_connected: bool) -> None:
        if self._flow.lost(time.monotonic()):
            self._backoff.reset()

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        arrival = self._flow.received(message.qos, len(message.payload))
        if arrival.pause:
            self._link.pause_reading()  # until acknowledgements make room
        if arrival.overflow:
            log.warning("the broker sent more than %d messages unacknowledged, the Receive Maximum asked "
                        "for (on Mosquitto, max_inflight_messages must be a number, not 0: docs/central.md)",
                        self.settings.inflight)
        self._queue.put_nowait(Message(arrival.generation, message.mid, message.qos, message.topic,
                                       bytes(message.payload), int(time.time() * 1000)))

    def _ack(self, messages: list[Message]) -> None:
        acked, reading = self._flow.stored(messages)
        for m in acked:
            self._client.ack(m.mid, m.qos)
        if reading:
            self._link.resume_reading()

    # -- the loop ---------------------------------------------------------------------------

    async def run(self) -> int:
        """Until SIGTERM or SIGINT: 0 after a clean stop."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._loop.add_signal_handler(sig, self._stopping.set)
        self._db = await self._open_database()
        if self._db is None:
            return 0
        self._link.start()
        self.notifier.ready(f"storing into {self._db.kind}")
        watchdog = self._loop.create_task(self._watchdog())
        asking = self._loop.create_task(self._ask_for_holes()) if self.settings.hole_grace else None
        assembling = self._loop.create_task(self._assemble_calls())
        private = self._loop.create_task(self._keep_privacy()) if self.settings.privacy.active else None
        try:
            await self._write_batches()
        finally:
            watchdog.cancel()
            assembling.cancel()
            for task in (self._probe, private):
                if task is not None:
                    task.cancel()
            if asking is not None:
                asking.cancel()
            self.notifier.stopping()
            await self._link.close()  # (the session stays: what comes meanwhile is kept for us)
            await self._loop.run_in_executor(self._db_thread, self._db.close)
            self._db_thread.shutdown()
            if self._looks_db is not None:
                await self._loop.run_in_executor(self._looks_thread, self._looks_db.close)
            self._looks_thread.shutdown()
            self._reader.close()
            self._reader_thread.shutdown()
        log.info("stopped: %d events stored, %d duplicates absorbed, %d rejected; %d calls assembled", self.stored,
                 self.duplicates, self.rejected, self.calls)
        return 0

    async def _probe_anonymous(self) -> None:
        """Try the broker as an intruder would, without a user name: said loudly, and kept
        for ``pbxgw fleet``, when it lets one in."""
        allowed = await self._loop.run_in_executor(None, anonymous_allowed, self.settings.mqtt)
        if allowed is None:
            return
        said = (f"the broker at {self._link.url} lets in clients without a user name: anyone who reaches it can "
                "publish as any gateway (mosquitto.conf: allow_anonymous false; docs/central.md)") if allowed else None
        if said:
            log.error("%s", said)
        try:
            await self._loop.run_in_executor(self._db_thread, self._db.finding, "broker_anonymous", said,
                                             int(time.time() * 1000))
        except Unavailable:
            pass  # (said by the writes, which meet it too; probed again at the next start)

    async def _open_database(self) -> Database | None:
        """The database, its migrations applied; retried while it cannot be reached (None:
        asked to stop meanwhile)."""
        backoff = Backoff(self.settings.mqtt.backoff_min, self.settings.mqtt.backoff_max)
        while not self._stopping.is_set():
            try:
                db = await self._loop.run_in_executor(self._db_thread, Database.open, self.settings.database)
                applied = await self._loop.run_in_executor(self._db_thread, db.migrate)
                if applied:
                    log.info("database schema migrated to version %d", applied[-1])
                self._register.heard(await self._loop.run_in_executor(
                    self._db_thread, db.fetch, "SELECT gw, site FROM gateways"))
                return db
            except Unavailable as exc:
                self._unavailable(exc)
            await self._sleep(backoff.next())
        return None

    async def _write_batches(self) -> None:
        """Take messages as they come, in batches of at most ``batch_messages`` or
        ``batch_bytes`` that wait at most ``linger`` to fill; store each, then acknowledge its
        messages. While one batch is written, the next is read into rows and the one after
        fills; batches are written one at a time, in order."""
        storing: list[asyncio.Task] = []  # at most two: one read into rows, one written
        while not (self._stopping.is_set() and self._queue.empty()):
            batch = await self._next_batch(self.settings.linger)
            if not batch:
                continue
            if len(storing) == 2:
                await storing.pop(0)
            storing.append(self._loop.create_task(self._store(batch, after=storing[-1] if storing else None)))
        for task in storing:
            await task

    async def _next_batch(self, linger: float) -> list[Message]:
        batch: list[Message] = []
        if self._queue.empty():
            if self._stopping.is_set():
                return batch
            stop = self._loop.create_task(self._stopping.wait())
            get = self._loop.create_task(self._queue.get())
            done, _ = await asyncio.wait({stop, get}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if get not in done:
                get.cancel()
                return batch
            batch.append(get.result())
        size = sum(len(m.payload) for m in batch)
        deadline = self._loop.time() + linger
        while not self._flow.full(len(batch), size):
            if self._queue.empty():
                if self._stopping.is_set() or self._loop.time() >= deadline:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), deadline - self._loop.time()))
                except TimeoutError:
                    break
            else:
                batch.append(self._queue.get_nowait())
            size += len(batch[-1].payload)
        self._flow.batched(len(batch), size, time.monotonic())
        return batch

    async def _store(self, batch: list[Message], after: asyncio.Task | None) -> None:
        """Read a batch into rows, write them once the batch before (``after``) is
        written (retried while the database is unavailable), then acknowledge its
        messages; asked to stop before they could be written, they are not acknowledged:
        the broker delivers them again."""
        foreign = {id(m): reason for m in batch if (reason := self._register.refusal(m.topic))}
        rows = await self._read_rows([m for m in batch if id(m) not in foreign])
        if after is not None:
            await after
        if rows is None:
            log.warning("stopping with %d messages not stored: the broker keeps them", len(batch))
            return
        for m in batch:
            if id(m) in foreign:
                rows.reject(m.topic, m.payload, foreign[id(m)], m.received_at)
                if self._register.first_refusal(m.topic):
                    log.warning("%s; refused, kept in rejected (said once a site)", foreign[id(m)])
        verdicts = {}  # per reply, why it is refused ("": it answers a request of this collector)
        for reply in rows.replies:
            verdicts[reply.payload, reply.received_at] = refused = self._asker.answered(reply.gw, reply.body)
            rows.take_reply(reply, refused)
            if refused:
                log.warning("%s: %s; kept in rejected", reply.gw, refused)
        backoff = Backoff(self.settings.mqtt.backoff_min, self.settings.mqtt.backoff_max)
        while True:
            try:
                written = await self._loop.run_in_executor(self._db_thread, self._write_all, batch, rows, verdicts,
                                                           foreign)
            except Unavailable as exc:
                self._unavailable(exc)
                if self._stopping.is_set():
                    log.warning("stopping with %d messages not stored: the broker keeps them", len(batch))
                    return
                await self._sleep(backoff.next())
                continue
            self.stored += written.new
            self.duplicates += written.duplicates
            self.rejected += written.rejected
            self.batches += 1
            if backoff.failures:
                log.info("the database is back")
                self._said = ""
            self.notifier.status(f"{self.stored} events stored, {self.duplicates} duplicates, "
                                 f"{self.rejected} rejected")
            self._ack(batch)
            if written.duplicates:
                log.info("%d duplicates absorbed (events stored already: delivered again, or replayed)",
                         written.duplicates)
            for status in rows.statuses:
                if status["state"] == "online":
                    self._asker.online(status["gw"], time.monotonic())
            for reply in (r for r in rows.replies if not verdicts[r.payload, r.received_at]):
                body = reply.body
                if "error" in body:
                    log.warning("%s refused a replay request: %s", reply.gw, body["error"])
                elif body["missing"]:
                    log.warning("%s has not %s %s: %s; stored as lost at the edge", reply.gw, body["src"],
                                body["stream"], ", ".join(f"{a}..{b}" for a, b in body["missing"]))
            return

    async def _read_rows(self, batch: list[Message]) -> Rows | None:
        """The rows of a batch, from the reader process (started again if it died); None
        when asked to stop meanwhile."""
        messages = [m.parts for m in batch]
        backoff = Backoff(self.settings.mqtt.backoff_min, self.settings.mqtt.backoff_max)
        while not self._stopping.is_set() or not backoff.failures:
            try:
                return await self._loop.run_in_executor(self._reader_thread, self._reader.rows, messages)
            except ReaderGone as exc:
                self._warn(f"{exc}; starting another")
                await self._sleep(backoff.next())
        return None

    def _write_all(self, batch: list[Message], rows: Rows, verdicts: dict[tuple[bytes, int], str],
                   foreign: dict[int, str]) -> Written:
        """In the database thread: the batch's rows in one transaction, or, when the
        database refuses them, message by message, a refused one kept in ``rejected`` (a
        reply's rows as its ``verdicts`` made them; a message from a gateway under another
        site ``foreign``, kept in ``rejected`` as it was)."""
        try:
            return self._db.write(rows)
        except Refused:
            pass
        new = duplicates = rejected = 0
        for m in batch:
            try:
                one = rows_of([] if id(m) in foreign else [m.parts])
                if id(m) in foreign:
                    one.reject(m.topic, m.payload, foreign[id(m)], m.received_at)
                for reply in one.replies:
                    one.take_reply(reply, verdicts[reply.payload, reply.received_at])
                written = self._db.write(one)
            except Refused as exc:
                log.warning("%s: the database refused a message: %s; kept in rejected", m.topic, exc)
                written = self._db.write(Rows(rejected=[(m.topic, m.payload, f"the database refused it: {exc}",
                                                         m.received_at)]))
            new, duplicates, rejected = new + written.new, duplicates + written.duplicates, rejected + written.rejected
        return Written(new, duplicates, rejected)

    def _unavailable(self, exc: Exception) -> None:
        self._warn(f"database unavailable: {exc}; messages stay with the broker, retrying")
        self.notifier.status(f"database unavailable: {exc}")

    def _warn(self, text: str) -> None:
        """A fault, told once (then at debug level while it lasts), as the gateway does."""
        (log.debug if text == self._said else log.warning)("%s", text)
        self._said = text

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            pass

    async def _ask_for_holes(self) -> None:
        """Look for holes every ``hole_grace`` / 2 (at most 30 s) and publish the replay
        requests due for them, while connected: by the sources' counters, and at the first
        look and every :data:`RECOUNT_EVERY` looks by counting the rows stored (which shows
        rows deleted by hand too)."""
        every = min(30.0, self.settings.hole_grace / 2)
        looks = 0
        while True:
            await asyncio.sleep(every)
            if not self._connected:
                continue
            try:
                if self._looks_db is None:
                    self._looks_db = await self._loop.run_in_executor(self._looks_thread, Database.open,
                                                                      self.settings.database)
                holes = await self._loop.run_in_executor(self._looks_thread, open_holes, self._looks_db,
                                                         looks % RECOUNT_EVERY == 0, self._asker.open)
                looks += 1
            except Unavailable:
                continue  # (said by the writes, which meet it too)
            for (gw, _, src, stream), count in self._asker.too_large(holes):
                log.warning("%s %s %s misses %d numbers, more than any gateway keeps (a forged or damaged seq?): "
                            "not asked for", gw, src, stream, count)
            for topic, payload in self._asker.requests(holes, time.monotonic()):
                log.info("asking for events missing: %s", _request_text(topic, payload))
                self._client.publish(topic, payload, qos=1)

    async def _assemble_calls(self) -> None:
        """Every :data:`ASSEMBLE_EVERY`, assemble the calls of the records stored since
        (:mod:`gateway.central.callstore`), a piece of records at a time, then make the
        summaries of the quarter-hours whose calls changed (:mod:`gateway.central.summary`),
        on the database's thread, between the batches' writes. Not while batches come full (storing, and so
        acknowledging, a backlog comes first, its calls after), unless the last pass ended
        :data:`ASSEMBLE_AT_LEAST` ago: thousands of live sites fill batches all day, and
        their calls must show all the same."""
        assembled = time.monotonic()

        def overdue() -> bool:
            return time.monotonic() - assembled >= ASSEMBLE_AT_LEAST

        while True:
            await asyncio.sleep(ASSEMBLE_EVERY)
            if self._flow.draining(time.monotonic()) and not overdue():
                continue
            try:
                assembly = await self._loop.run_in_executor(self._db_thread, callstore.Pass, self._db)
                while not assembly.over and (overdue() or not self._flow.draining(time.monotonic())):
                    self.calls += await self._loop.run_in_executor(self._db_thread, assembly.piece)
                while assembly.over and (overdue() or not self._flow.draining(time.monotonic())):
                    if not await self._loop.run_in_executor(self._db_thread, summary.make_due, self._db):
                        assembled = time.monotonic()
                        break
            except (Unavailable, Refused) as exc:
                log.warning("calls not assembled now (tried again in %d s): %s", ASSEMBLE_EVERY, exc)
            except Exception:  # a fault is retried, never a dead task (and a bug is told whole)
                log.exception("calls not assembled now (tried again in %d s)", ASSEMBLE_EVERY)

    async def _keep_privacy(self) -> None:
        """At the start and every :data:`retention.EVERY_S`, mask the numbers and empty the
        record text that ``[privacy]`` says are due (:mod:`gateway.central.retention`)."""
        while True:
            try:
                records, calls, emptied = await self._loop.run_in_executor(
                    self._db_thread, retention.apply, self._db, self.settings.privacy, int(time.time() * 1000))
                if records or calls or emptied:
                    log.info("privacy: numbers masked in %d records and %d calls; the text of %d records emptied",
                             records, calls, emptied)
            except (Unavailable, Refused) as exc:
                log.warning("privacy schedule not applied now (tried again in %d s): %s", retention.EVERY_S, exc)
            except Exception:  # a fault is retried, never a dead task (and a bug is told whole)
                log.exception("privacy schedule not applied now (tried again in %d s)", retention.EVERY_S)
            await asyncio.sleep(retention.EVERY_S)

    async def _watchdog(self) -> None:
        interval = self.notifier.watchdog_interval
        while interval:
            self.notifier.watchdog()
            await asyncio.sleep(interval)


def _request_text(topic: str, payload: bytes) -> str:
    request = msgpack.unpackb(payload)
    return f"{topic.split('/')[3]} {request['src']} stream {request['stream']} {request['first']}..{request['last']}"


def run(settings: CollectorSettings, prepared: Prepared) -> int:
    """Run the collector in the foreground until SIGTERM; its exit status."""
    async def main() -> int:
        return await Collector(settings, prepared, Notifier()).run()

    return asyncio.run(main())
