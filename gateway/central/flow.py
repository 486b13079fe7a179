"""The collector's decisions about the broker's messages, sans I/O, as the gateway's outbox
is for what it sends: bytes and sockets are the shell's (:mod:`gateway.central.collector`).

* **What is in hand, and when to read.** The collector asks the broker for at most
  ``inflight`` messages unacknowledged (MQTT 5 Receive Maximum); a broker may send past it
  (Mosquitto 2.0 does when it drains a session's queue), and the window says nothing of
  QoS 0 messages or of bytes. So the messages in hand (received, not yet stored: of any
  QoS, of any connection) are counted, and at ``inflight`` of them or
  :data:`BATCHES_IN_HAND` batches' bytes the shell stops reading the socket, and TCP
  holds the broker, until storing makes room.
* **What to acknowledge.** Only a message stored, and only on the connection it came on: a
  packet id means nothing on another (what came before a reconnection is delivered again).
* **When a batch is full**: at ``batch_messages`` messages or ``batch_bytes`` of payloads
  (live traffic: many one-event messages; a backlog: fewer, of a hundred events each).
* **Whether a backlog is draining**: a batch came full within :data:`DRAIN_S`. Calls are
  assembled once it has been stored, not while it is (but for a pass a minute: thousands
  of live sites fill batches too).
* **When the backoff starts afresh**: after a connection that lasted :data:`STABLE_S` (one
  that keeps being taken over backs off instead).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Batches' bytes in hand at most: one written, one read into rows, one filling, and room
#: for each to pass its bound by a message.
BATCHES_IN_HAND = 4
#: A connection that lasted this long was no flap: its end starts the backoff afresh.
STABLE_S = 30.0
#: A backlog is draining while batches came full within this long (the batches of a drain
#: are not all full: one fills only as the one before is acknowledged, and a linger may end it).
DRAIN_S = 5.0


@dataclass(frozen=True, slots=True)
class Message:
    """A message received and not yet acknowledged: ``generation`` is the connection it
    came on (a packet id means nothing on another one)."""

    generation: int
    mid: int
    qos: int
    topic: str
    payload: bytes
    received_at: int

    @property
    def parts(self) -> tuple[str, bytes, int]:
        """What its rows are made of (:func:`~gateway.central.ingest.rows_of`)."""
        return self.topic, self.payload, self.received_at


@dataclass(frozen=True, slots=True)
class Arrival:
    """What one message received means: the connection it came on; whether to stop reading
    the socket; whether the broker has just sent past the Receive Maximum (said once)."""

    generation: int
    pause: bool
    overflow: bool


class Flow:
    """The collector's flow of messages over its connections (see the module docstring)."""

    def __init__(self, inflight: int, batch_messages: int, batch_bytes: int):
        """:param batch_messages: a batch is full at this many messages,
        :param batch_bytes: or at this many payload bytes (with the message that passed it:
            a broker sends a message whole); reading stops while the messages in hand hold
            :data:`BATCHES_IN_HAND` batches' bytes."""
        self.inflight, self.batch_messages, self.batch_bytes = inflight, batch_messages, batch_bytes
        self.generation = 0  # counts connections
        self.unacked = 0  # messages of this connection received and not yet acknowledged
        self.held = 0  # messages received and not yet stored (of any QoS and connection)
        self.held_bytes = 0  # ... their payloads' bytes
        self._overflow_said = False
        self._connected_at: float | None = None
        self._full_at = -float("inf")

    def connected(self, now: float) -> None:
        self._connected_at = now

    def lost(self, now: float) -> bool:
        """A connection ended (or an attempt failed): its packet ids mean nothing any more.
        Whether it had lasted :data:`STABLE_S`, so that the backoff starts afresh."""
        stable = self._connected_at is not None and now - self._connected_at >= STABLE_S
        self.generation, self.unacked, self._connected_at = self.generation + 1, 0, None
        return stable

    def received(self, qos: int, size: int) -> Arrival:
        """A message of ``size`` payload bytes came, at ``qos`` (0 needs no acknowledgement,
        and takes room in hand all the same)."""
        self.held += 1
        self.held_bytes += size
        if qos:
            self.unacked += 1
        overflow = self.unacked > self.inflight and not self._overflow_said
        self._overflow_said = self._overflow_said or overflow
        return Arrival(self.generation, not self._room(), overflow)

    def stored(self, messages: list[Message]) -> tuple[list[Message], bool]:
        """``messages`` are stored: those to acknowledge now (of this connection, at QoS 1
        or 2), and whether reading goes on (there is room in hand again)."""
        acked = [m for m in messages if m.qos and m.generation == self.generation]
        self.unacked -= len(acked)
        self.held -= len(messages)
        self.held_bytes -= sum(len(m.payload) for m in messages)
        return acked, self._room()

    def _room(self) -> bool:
        return self.held < self.inflight and self.held_bytes < BATCHES_IN_HAND * self.batch_bytes

    def full(self, messages: int, size: int) -> bool:
        """Whether a batch of ``messages`` holding ``size`` payload bytes is full."""
        return messages >= self.batch_messages or size >= self.batch_bytes

    def batched(self, messages: int, size: int, now: float) -> None:
        """A batch of ``messages`` holding ``size`` payload bytes was taken at ``now``."""
        if self.full(messages, size):
            self._full_at = now

    def draining(self, now: float) -> bool:
        """Whether a backlog is being stored (a batch came full within :data:`DRAIN_S`)."""
        return now - self._full_at < DRAIN_S
