"""MQTT delivery: a thin shell over the MQTT link (:mod:`gateway.common.link`, paho on the
gateway's asyncio loop, as the collector runs it too).

Decisions (what to send, when to retry) are the :class:`~gateway.edge.outbox.Outbox`'s; this
module only carries them out and reports what the broker said.
"""

from __future__ import annotations

import asyncio
import logging
import time

import msgpack
from paho.mqtt.enums import MQTTErrorCode

from gateway import __version__
from gateway.common.link import Link
from gateway.common.mqtt import MqttSettings, Prepared
from gateway.edge.clock import now_ms
from gateway.edge.outbox import Batch, Outbox
from gateway.edge.queue.store import QueueWriteError, Store
from gateway.edge.repeats import Repeats
from gateway.edge.replay import PER_MINUTE, Job, Replays
from gateway.wire.events import StatusEvent, packb
from gateway.wire import topics

log = logging.getLogger("pbxgw.mqtt")

#: Refused replay requests answered in any one second, at most (the rest are counted only).
REFUSALS_ANSWERED = 10


class Publisher:
    """Sends the queue's rows to the broker; see the module docstring.

    :param settings: the ``[mqtt]`` settings.
    :param prepared: the password and TLS context read and built before the start.
    :param store: the queue.
    :param prefix: topic prefix ``pbxgw/v1/<site>/<gw>``.
    :param gw: gateway id; :param site: site id; :param boot: the daemon's start count.
    :param sources: the PBX sources the status message names (``name``, ``profile``, ``timezone``).
    :param replay_rate: events per second, at most, that replay requests publish again.
    """

    def __init__(self, settings: MqttSettings, prepared: Prepared, store: Store, prefix: str, gw: str, site: str,
                 boot: int, sources: list[dict[str, str]], replay_rate: int = 2000):
        self.settings, self.prepared, self.store, self.prefix = settings, prepared, store, prefix
        self.gw, self.site, self.boot, self.sources = gw, site, boot, sources
        self.outbox = Outbox(settings.batch_events, settings.batch_bytes, settings.inflight,
                             settings.backoff_min, settings.backoff_max)
        self.replays = Replays(store.stream, replay_rate)
        self._repeats = Repeats(log.warning)  # refusals and local publish failures, by kind
        self._answered = (0, 0)  # (second, refused requests answered in it)
        self.connected_since: float | None = None
        self.delivered = 0
        self.rejected = 0
        self.last_ack_ms: int | None = None  # when the broker last confirmed a batch
        self._loop = asyncio.get_running_loop()
        self._pump_scheduled = False
        self._drained = asyncio.Event()  # set whenever nothing is in flight
        self._status_mid: int | None = None
        self._status_acked = asyncio.Event()
        # A lost connection also ends what was in flight: the outbox gives the retry's delay.
        self._link = Link(settings, prepared, log, "gateway", self.outbox.disconnected, protocol=settings.protocol,
                          will=(self._topic("status"), self._status("offline")))
        self._link.on_connected, self._link.on_lost = self._on_connect, self._on_lost
        self._client = client = self._link.client
        # paho holds at most the in-flight window (and the status and the replies to replay
        # requests, sent beside it: at most one per request taken, PER_MINUTE a minute;
        # refusals go at QoS 0, outside its queue); the disk queue holds the rest.
        client.max_inflight_messages_set(settings.inflight)
        client.max_queued_messages_set(settings.inflight + PER_MINUTE + 2)
        client.on_publish = self._on_publish
        client.on_message = self._on_replay_request

    def _topic(self, kind: str) -> str:
        return f"{self.prefix}/{kind}"

    def stats(self) -> dict:
        """The broker link as ``pbxgw status`` and the metrics show it (docs/operations.md)."""
        return {"url": self._link.url, "connected_since": self.connected_since,
                "last_ack_ms": self.last_ack_ms, "in_flight": len(self.outbox.in_flight),
                "delivered": self.delivered}

    def publish_metrics(self, payload: bytes) -> bool:
        """Send a metrics map now, QoS 0, if connected (metrics are not queued: the next
        one supersedes a lost one). Whether it was sent."""
        if self.connected_since is None:
            return False
        self._client.publish(self._topic("metrics"), payload, qos=0)
        return True

    def set_sources(self, sources: list[dict]) -> None:
        """The sources after a reload, announced again in the retained status if connected."""
        if sources != self.sources:
            self.sources = sources
            if self.connected_since is not None:
                self._client.publish(self._topic("status"), self._status("online"), qos=1, retain=True)

    def _status(self, state: str) -> bytes:
        return packb(StatusEvent(gw=self.gw, site=self.site, state=state, boot=self.boot,
                                 rx=now_ms(), version=__version__, sources=self.sources))

    # -- connection ----------------------------------------------------------------------

    def start(self) -> None:
        """Begin connecting (in the background; retried with backoff)."""
        self._link.start()

    def _on_connect(self, flags) -> None:
        self.connected_since = time.time()
        log.info("connected to %s:%d; %d events queued to send", self.settings.host, self.settings.port,
                 self.store.depth)
        self._report_gaps()
        self.outbox.connected(self.store.max_id())
        self._client.publish(self._topic("status"), self._status("online"), qos=1, retain=True)
        self._client.subscribe(self._topic(topics.REPLAY), qos=1)
        self.wake()

    def _on_lost(self, was_connected: bool) -> None:
        self.connected_since = None

    # -- sending -------------------------------------------------------------------------

    def wake(self) -> None:
        """New rows are queued: send them after the linger time (so they batch up)."""
        if not self._pump_scheduled:
            self._pump_scheduled = True
            self._loop.call_later(self.settings.linger, self._pump)

    def _report_gaps(self) -> None:
        """Queue a ``gap`` event for what was dropped or lost since the last report."""
        try:
            self.store.report_gaps(self.gw, now_ms())
        except QueueWriteError as exc:  # they stay recorded: reported with the next send
            log.error("%s; gaps reported later", exc)

    def _pump(self) -> None:
        self._pump_scheduled = False
        if self.store.unreported and self.outbox.online:  # drops while connected (a full disk, a slow broker)
            self._report_gaps()
        while self.outbox.can_send():
            batch, replayed = self.outbox.next_batch(self.store.peek), None
            if batch is None:
                replayed = self._replay_batch()
                if replayed is None:
                    return
                batch = replayed[0]
            info = self._client.publish(self._topic(batch.topic), batch.payload, qos=1)
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                self._repeats(f"rc {info.rc}", f"publish failed locally ({info.rc}); retrying", time.monotonic())
                return
            # MQTT_ERR_NO_CONN: paho keeps the message and sends it after reconnecting.
            if replayed is not None:
                self.replays.sent(replayed[1], replayed[2])
            self.outbox.sent(info.mid, batch)
            self._drained.clear()
            log.debug("sent mid %d: %d events on %s (rows %d..%d)%s", info.mid, len(batch.ids),
                      batch.topic, batch.ids[0], batch.ids[-1], " from the backlog" if batch.hist else "")

    # -- replays -------------------------------------------------------------------------

    def _on_replay_request(self, client, userdata, message) -> None:
        reply = self.replays.request(message.payload, time.monotonic())
        if reply is None:
            self.wake()
            return
        if "error" not in reply:
            self._client.publish(self._topic("replies"), msgpack.packb(reply), qos=1)
            return
        # A flood of bad or untimely requests must neither fill the log nor take the room
        # that paho's queue keeps for events: refusals are said once a minute by kind with
        # their count, and answered at most REFUSALS_ANSWERED a second, at QoS 0 (a refusal
        # lost is asked again, as one not answered is).
        now = time.monotonic()
        self._repeats("busy" if reply["retry"] else "malformed", f"replay request refused: {reply['error']}", now)
        second = int(now)
        answered = self._answered[1] + 1 if self._answered[0] == second else 1
        self._answered = (second, answered)
        if answered <= REFUSALS_ANSWERED:
            self._client.publish(self._topic("replies"), msgpack.packb(reply), qos=0)

    def _replay_batch(self) -> tuple[Batch, Job, list[tuple[int, int]]] | None:
        """The next message a replay request asks for, its job and its rows' ``(id, seq)``
        (the job moves on once it is published), when the rate allows (the pump is woken
        again when it does); a request with nothing more is answered."""
        while self.replays.jobs:
            job = self.replays.jobs[0]
            allowed = self.replays.allowance(time.monotonic())
            if allowed < 1:
                if not self._pump_scheduled:
                    self._pump_scheduled = True
                    self._loop.call_later(self.replays.wait(), self._pump)
                return None
            # (what is numbered before the read: the read finds every one of those it keeps)
            numbered = self.store.source_state(job.src)[0] - 1 if job.stream == self.store.stream else None
            found = self.store.kept(job.src, job.stream, job.first, job.last, job.after,
                                    min(allowed, self.settings.batch_events))
            if found:
                batch = self.outbox.replay_batch([row for row, _ in found])
                return batch, job, [(row.id, seq) for row, seq in found[:len(batch.ids)]]
            reply = self.replays.finish(job, numbered)
            log.info("replayed %d events of %s %d..%d (stream %s); %d missing", reply["found"], job.src, job.first,
                     job.last, job.stream, sum(b - a + 1 for a, b in reply["missing"]))
            self._client.publish(self._topic("replies"), msgpack.packb(reply), qos=1)
        return None

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        batch = self.outbox.acked(mid)
        log.debug("PUBACK mid %d: %s", mid, reason_code)
        if not self.outbox.in_flight:
            self._drained.set()
        if batch is None:
            if mid == self._status_mid:
                self._status_acked.set()
            return
        if batch.replay:  # (delivered before: nothing in the queue to confirm)
            if reason_code.is_failure:
                log.error("broker rejected %d replayed events on %s: %s", len(batch.ids),
                          self._topic(batch.topic), reason_code)
        elif reason_code.is_failure:
            self.rejected += len(batch.ids)
            log.error("broker rejected %d events on %s: %s; kept in the dead-letter table",
                      len(batch.ids), self._topic(batch.topic), reason_code)
            self.store.dead_letter(list(batch.ids), str(reason_code), now_ms())
        else:
            self.delivered += len(batch.ids)
            self.last_ack_ms = now_ms()
            self.store.confirm(list(batch.ids), list(batch.sizes))
        # Room in the window: send on at once (linger is for live rows trickling in).
        if not self._pump_scheduled:
            self._pump_scheduled = True
            self._loop.call_soon(self._pump)

    # -- shutdown ------------------------------------------------------------------------

    async def stop(self, timeout: float) -> None:
        """Wait up to ``timeout`` for messages in flight, say ``offline``, disconnect."""
        self._link.stop_retrying()
        if self.connected_since is not None:
            try:
                async with asyncio.timeout(timeout):
                    if self.outbox.in_flight:
                        await self._drained.wait()
                    info = self._client.publish(self._topic("status"), self._status("offline"),
                                                qos=1, retain=True)
                    self._status_mid = info.mid
                    await self._status_acked.wait()
            except TimeoutError:
                log.warning("stopping with %d messages unconfirmed; they stay queued",
                            len(self.outbox.in_flight))
        await self._link.close()
