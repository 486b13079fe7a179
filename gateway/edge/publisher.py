"""MQTT delivery: a thin paho-mqtt 2.x shell on the gateway's asyncio loop.

paho runs without a thread of its own: its socket is watched with ``add_reader`` /
``add_writer`` and ``loop_misc()`` runs once a second (paho's external-loop hooks). The
blocking TCP connect runs in an executor so that a slow broker never stalls the readers.
Decisions (what to send, when to retry) are the :class:`~gateway.edge.outbox.Outbox`'s; this
module only carries them out and reports what the broker said.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time

import msgpack
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from gateway import __version__
from gateway.common.loophooks import NO_REASON, LoopHooks
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
        self._client = self._make_client()
        self._pump_scheduled = False
        self._stopping = False
        self._drained = asyncio.Event()  # set whenever nothing is in flight
        self._status_mid: int | None = None
        self._status_acked = asyncio.Event()
        self._retry: asyncio.TimerHandle | None = None
        self._last_error = ""
        self._refused = False  # the broker's CONNACK refused us (its reason is logged)
        self._misc = self._loop.call_later(1, self._loop_misc)

    def _make_client(self) -> mqtt.Client:
        s = self.settings
        v5 = s.protocol == "5"
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=s.client_id,
                             protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
                             clean_session=None if v5 else True, reconnect_on_failure=False)
        # paho holds at most the in-flight window (and the status and the replies to replay
        # requests, sent beside it: at most one per request taken, PER_MINUTE a minute;
        # refusals go at QoS 0, outside its queue); the disk queue holds the rest.
        client.max_inflight_messages_set(s.inflight)
        client.max_queued_messages_set(s.inflight + PER_MINUTE + 2)
        if self.prepared.tls is not None:
            client.tls_set_context(self.prepared.tls)
        if s.username:
            client.username_pw_set(s.username, self.prepared.password)
        client.will_set(self._topic("status"), self._status("offline"), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_replay_request
        # paho's socket is watched by our loop (gateway.common.loophooks).
        loop = self._loop
        LoopHooks(loop).attach(client, lambda sock: loop.add_reader(sock.fileno(), client.loop_read),
                               lambda sock: loop.remove_reader(sock.fileno()))
        return client

    def _topic(self, kind: str) -> str:
        return f"{self.prefix}/{kind}"

    def stats(self) -> dict:
        """The broker link as ``pbxgw status`` and the metrics show it (docs/operations.md)."""
        m = self.settings
        return {"url": f"mqtt{'s' if m.tls else ''}://{m.host}:{m.port}", "connected_since": self.connected_since,
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
        self._loop.create_task(self._connect())

    async def _connect(self) -> None:
        self._retry = None
        s = self.settings
        try:
            await self._loop.run_in_executor(None, self._client.connect, s.host, s.port, s.keepalive)
        except (OSError, ssl.SSLError, ValueError) as exc:
            self._connect_failed(f"cannot connect to mqtt{'s' if s.tls else ''}://{s.host}:{s.port}: {exc}")

    def _connect_failed(self, error: str) -> None:
        # Said once per kind of failure, not at every retry of a long outage.
        (log.debug if error == self._last_error else log.warning)("%s; retrying", error)
        self._last_error = error
        self._schedule_retry()

    def _schedule_retry(self) -> None:
        if self._stopping or self._retry is not None:
            return
        delay = self.outbox.disconnected()
        self._retry = self._loop.call_later(delay, lambda: self._loop.create_task(self._connect()))

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            error = f"broker refused the connection: {reason_code}"
            (log.debug if error == self._last_error else log.error)("%s; retrying", error)
            self._last_error, self._refused = error, True
            return  # paho closes the socket; _on_disconnect schedules the retry
        self.connected_since = time.time()
        self._last_error = ""
        log.info("connected to %s:%d; %d events queued to send", self.settings.host, self.settings.port,
                 self.store.depth)
        self._report_gaps()
        self.outbox.connected(self.store.max_id())
        client.publish(self._topic("status"), self._status("online"), qos=1, retain=True)
        client.subscribe(self._topic(topics.REPLAY), qos=1)
        self.wake()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self.connected_since is not None and not self._stopping and str(reason_code) in NO_REASON:
            # Mosquitto 2.0 closes a session another client takes over without saying so.
            log.warning("the broker closed the connection without a reason: another client with client id %r "
                        "(a second gateway with the same [mqtt] client_id?) or a broker restart; the broker's "
                        "log says which", self.settings.client_id)
        elif self.connected_since is not None:
            (log.info if self._stopping else log.warning)("disconnected from the broker: %s", reason_code)
        elif self._refused:  # the CONNACK said why (already logged)
            self._refused = False
        elif not self._stopping:
            # Closed before it accepted us: a TLS listener that wants a client certificate,
            # or one that rejected ours, does this after the handshake.
            s = self.settings
            self._connect_failed(f"mqtt{'s' if s.tls else ''}://{s.host}:{s.port} closed the connection "
                                 f"before accepting it ({reason_code}; a client certificate missing or refused?)")
            return
        self.connected_since = None
        self._schedule_retry()

    def _loop_misc(self) -> None:
        self._client.loop_misc()
        self._misc = self._loop.call_later(1, self._loop_misc)

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
            found = self.store.kept(job.src, job.stream, job.first, job.last, job.after,
                                    min(allowed, self.settings.batch_events))
            if found:
                batch = self.outbox.replay_batch([row for row, _ in found])
                return batch, job, [(row.id, seq) for row, seq in found[:len(batch.ids)]]
            reply = self.replays.finish(job)
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
        self._stopping = True
        if self._retry is not None:
            self._retry.cancel()
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
        self._client.disconnect()
        self._misc.cancel()
