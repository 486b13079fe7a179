"""The headsets on the box, read on the event loop: one reader per headset, each feeding
its tracker and queueing its events like a PBX source's (its own ``src`` and ``seq``).

Headsets come from udev (:mod:`gateway.edge.headsets.discovery`, hotplug included) and from
the config's ``[[headsets.device]]`` list (a hidraw node read without udev, or a pipe of
recorded reports in tests).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from gateway.edge.clock import Clock, now_ms
from gateway.edge.config import HeadsetDevice, HeadsetSettings
from gateway.edge.headsets import hidraw, recording
from gateway.edge.headsets import profiles as headset_profiles
from gateway.edge.headsets.descriptor import INPUT, decode
from gateway.edge.headsets.discovery import Discovery, HeadsetInfo
from gateway.edge.headsets.layout import telephony_layout
from gateway.edge.headsets.profiles import HeadsetProfile
from gateway.edge.headsets.reports import ReportSplitter
from gateway.edge.headsets.telephony import TelephonyTracker
from gateway.edge.queue.store import QueueWriteError, Store
from gateway.wire.events import HeadsetEvent

log = logging.getLogger("pbxgw.headsets")

#: A hidraw read returns one report; a pipe may hold several.
READ_SIZE = 4096


class HeadsetReader:
    """Reads one headset's reports, turns them into events, writes its LED reports."""

    def __init__(self, info: HeadsetInfo, descriptor: bytes, profile: HeadsetProfile, drive_leds: bool,
                 queue: Callable[[HeadsetInfo, list[tuple[str, str | None]]], None]):
        decoded = decode(descriptor)
        layout = telephony_layout(decoded, mirror=profile.mirror) or telephony_layout(decoded)
        if layout is None:
            raise ValueError(f"{info.node}: no telephony collection in its descriptor")
        self.info, self.profile, self._queue = info, profile, queue
        self._tracker = TelephonyTracker(layout, drive_leds or profile.led_echo, profile.guard)
        sizes = {rid: decoded.report_bytes(INPUT, rid) for kind, rid in decoded.report_bits if kind == INPUT}
        self._splitter = ReportSplitter(sizes, decoded.uses_report_ids)
        self._fd: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._said = ""  # the last fault logged

    def open(self, loop: asyncio.AbstractEventLoop) -> None:
        self._fd, self._loop = hidraw.open_nonblocking(self.info.node), loop
        loop.add_reader(self._fd, self._readable)
        self._queue(self.info, [("connected", None)])

    def close(self, gone: bool = False) -> None:
        """Stop reading; ``gone``: the headset went away (a ``disconnected`` event)."""
        if self._fd is None:
            return
        self._loop.remove_reader(self._fd)
        os.close(self._fd)
        self._fd = None
        if gone:
            self._queue(self.info, [("disconnected", None)])

    def _readable(self) -> None:
        """The loop's callback: whatever goes wrong in a report is said (once per kind) and
        the headset read on, never a traceback per report."""
        try:
            self._read_reports()
        except Exception as exc:  # noqa: BLE001 - a fault is a state, the next report is read
            error = f"{type(exc).__name__}: {exc}"
            if error != self._said:
                log.error("%s: a report could not be read (%s); reading on", self.info.id, error)
                self._said = error

    def _read_reports(self) -> None:
        try:
            data = os.read(self._fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:  # ENODEV, EIO: unplugged
            log.info("%s: %s", self.info.id, exc.strerror)
            data = b""
        if not data:
            self.close(gone=True)
            return
        events: list[tuple[str, str | None]] = []
        for report in self._splitter.feed(data):
            update = self._tracker.feed(report, time.monotonic())
            events += update.events
            for write in update.writes:
                try:
                    os.write(self._fd, write)
                except OSError as exc:
                    log.warning("%s: could not write its LEDs: %s", self.info.id, exc.strerror)
        if events:
            self._queue(self.info, events)


class Headsets:
    """Every headset's reader, and the queueing of their events."""

    def __init__(self, settings: HeadsetSettings, store: Store, gw: str, on_queued: Callable[[], None],
                 clock: Clock):
        self.settings, self.store, self.gw, self.on_queued, self.clock = settings, store, gw, on_queued, clock
        self.readers: dict[str, HeadsetReader] = {}  # by node
        self._agents = {a.serial: a for a in settings.agents}
        self._profiles = headset_profiles.load_all()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._discovery = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        for device in self.settings.devices:
            try:
                self.add(*_static(device))
            except (OSError, ValueError, recording.RecordingError) as exc:
                log.error("[[headsets.device]] %s: %s", device.path, exc)
        if self.settings.discover:
            self._discovery = Discovery(self.add, self.remove)
            try:
                self._discovery.start(loop)
            except (OSError, ImportError) as exc:  # no udev here (a container), or no libudev
                log.warning("headset discovery through udev is not available: %s; only [[headsets.device]] "
                            "entries are read", exc)
                self._discovery = None

    def add(self, info: HeadsetInfo, descriptor: bytes) -> None:
        if info.node in self.readers:
            return
        profile = headset_profiles.match(info.vid, info.pid, self._profiles) or headset_profiles.DEFAULT
        try:
            reader = HeadsetReader(info, descriptor, profile, self.settings.drive_leds, self._queue)
            reader.open(self._loop)
        except (OSError, ValueError) as exc:
            log.warning("headset %s (%s): not read: %s", info.id, info.node, exc)
            return
        self.readers[info.node] = reader
        log.info("headset %s on %s (%s; profile %s)", info.id, info.node, info.model or "no name", profile.name)

    def stats(self) -> list[dict]:
        """The headsets read now, as ``pbxgw status`` shows them."""
        return [{"id": r.info.id, "node": r.info.node, "model": r.info.model, "profile": r.profile.name}
                for r in self.readers.values()]

    def remove(self, node: str) -> None:
        reader = self.readers.pop(node, None)
        if reader is not None:
            reader.close(gone=True)

    def close(self) -> None:
        for reader in self.readers.values():
            reader.close()
        if self._discovery is not None:
            self._discovery.close()

    def _queue(self, info: HeadsetInfo, happened: list[tuple[str, str | None]]) -> None:
        next_seq, _, _ = self.store.source_state(info.id)
        agent = self._agents.get(info.serial or "")
        ts = now_ms()
        events = [HeadsetEvent(gw=self.gw, src=info.id, stream=self.store.stream, seq=next_seq + i, ts=ts, vid=info.vid, pid=info.pid,
                               model=info.model, serial=info.serial, agent=agent and agent.agent,
                               ext=agent and agent.extension, ev=ev, detail=detail,
                               unsynced=not self.clock.synchronized)
                  for i, (ev, detail) in enumerate(happened)]
        try:
            self.store.append(info.id, events, next_seq + len(events))
        except QueueWriteError as exc:  # their seq numbers were not spent: no hole, said here
            log.error("%s; %d events of %s not queued", exc, len(events), info.id)
            return
        self.on_queued()


def _static(device: HeadsetDevice) -> tuple[HeadsetInfo, bytes]:
    """A configured headset's identity and descriptor: from its recording, or its node."""
    if device.descriptor:
        rec = recording.load(Path(device.descriptor))
        return HeadsetInfo(device.path, rec.vid or 0, rec.pid or 0, rec.name, device.serial), rec.descriptor
    fd = os.open(device.path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _, vid, pid = hidraw.device_info(fd)
        return HeadsetInfo(device.path, vid, pid, None, device.serial), hidraw.read_descriptor(fd)
    finally:
        os.close(fd)
