"""Headsets found through udev: the hidraw nodes present at start and those plugged in
later, with their USB identity, on the event loop.

The monitor starts before the enumeration, so that a headset plugged in meanwhile is not
missed (it may then be seen twice: nodes are deduplicated). On removal the sysfs parents
are already gone, so a node is forgotten by its path, kept from when it was added. A node
whose descriptor has no telephony collection (a webcam, a keyboard) is left alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.edge.headsets import hidraw
from gateway.edge.headsets.descriptor import decode
from gateway.edge.headsets.layout import telephony_layout

log = logging.getLogger("pbxgw.headsets")


@dataclass(frozen=True, slots=True)
class HeadsetInfo:
    """Who a headset is: its node and the USB device's identity."""

    node: str
    vid: int
    pid: int
    model: str | None = None
    serial: str | None = None
    usb_path: str | None = None  # the USB port path (sysfs), when there is no serial

    @property
    def id(self) -> str:
        """``hs-<vid>-<pid>-<serial>``: the same across plugs and restarts."""
        where = self.serial or self.usb_path or Path(self.node).name
        return f"hs-{self.vid:04x}-{self.pid:04x}-{where}"


def usb_identity(device) -> dict:
    """vid, pid, model, serial and USB port path of a hidraw device, from its USB parent
    (empty for a headset on another bus)."""
    usb = device.find_parent("usb", "usb_device")
    if usb is None:
        return {}
    attributes = usb.attributes

    def text(name: str) -> str | None:
        try:
            return attributes.asstring(name).strip() or None
        except KeyError:
            return None

    return {"vid": int(text("idVendor") or "0", 16), "pid": int(text("idProduct") or "0", 16),
            "model": text("product"), "serial": text("serial"), "usb_path": Path(usb.sys_path).name}


class Discovery:
    """Calls ``on_add(info, descriptor)`` for each telephony headset's hidraw node, now
    and when one is plugged in, and ``on_remove(node)`` when one goes.

    :param context: a ``pyudev.Context`` (default: the system's).
    :param monitor: a ``pyudev.Monitor`` on hidraw (default: udev's, from netlink).
    """

    def __init__(self, on_add: Callable, on_remove: Callable[[str], None], context=None, monitor=None):
        self._on_add, self._on_remove = on_add, on_remove
        self._context, self._monitor = context, monitor
        self._seen: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the monitor, then enumerate what is present."""
        import pyudev

        self._loop = loop
        if self._context is None:
            self._context = pyudev.Context()
        if self._monitor is None:
            self._monitor = pyudev.Monitor.from_netlink(self._context)
            self._monitor.filter_by("hidraw")
        self._monitor.start()
        loop.add_reader(self._monitor.fileno(), self._changed)
        for device in self._context.list_devices(subsystem="hidraw"):
            self._added(device)

    def close(self) -> None:
        if self._loop is not None and self._monitor is not None:
            self._loop.remove_reader(self._monitor.fileno())

    def _changed(self) -> None:
        while (device := self._monitor.poll(timeout=0)) is not None:
            if device.action == "add":
                self._added(device)
            elif device.action == "remove" and device.device_node in self._seen:
                self._seen.discard(device.device_node)
                self._on_remove(device.device_node)

    def _added(self, device) -> None:
        if device.device_node in self._seen:
            return
        found = headset_of(device)
        if found is not None:
            self._seen.add(device.device_node)
            self._on_add(*found)


def headset_of(device) -> tuple[HeadsetInfo, bytes] | None:
    """A hidraw device's identity and descriptor, when it is a telephony headset."""
    node = device.device_node
    if node is None:
        return None
    try:
        descriptor = hidraw.sysfs_descriptor(Path(device.sys_path))
    except OSError as exc:
        log.debug("%s: no descriptor: %s", node, exc)
        return None
    if telephony_layout(decode(descriptor)) is None:
        return None
    identity = usb_identity(device)
    return HeadsetInfo(node, identity.get("vid", 0), identity.get("pid", 0), identity.get("model"),
                       identity.get("serial"), identity.get("usb_path")), descriptor


def present(context=None) -> list[tuple[HeadsetInfo, bytes]]:
    """The telephony headsets present now (``pbxgw devices``)."""
    import pyudev

    context = context or pyudev.Context()
    found = [headset_of(device) for device in context.list_devices(subsystem="hidraw")]
    return [f for f in found if f is not None]
