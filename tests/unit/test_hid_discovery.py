"""Discovery without udev events from hardware: a fake monitor whose readiness is a real
pipe, fake devices over a fake sysfs tree; the real event loop."""

import asyncio
import os

from gateway.headsets import recording
from gateway.headsets.discovery import Discovery
from helpers import FIXTURES


class Attributes:
    def __init__(self, values):
        self.values = values

    def asstring(self, name):
        return self.values[name]


class UsbParent:
    def __init__(self, sys_path, **attributes):
        self.sys_path, self.attributes = sys_path, Attributes(attributes)


class Device:
    """The parts of a pyudev Device that discovery reads."""

    def __init__(self, node, sys_path, usb=None, action=None):
        self.device_node, self.sys_path, self.action, self._usb = node, str(sys_path), action, usb

    def find_parent(self, subsystem, device_type=None):
        return self._usb if (subsystem, device_type) == ("usb", "usb_device") else None


class Monitor:
    """Queued devices; readable on a real pipe while some wait."""

    def __init__(self):
        self._read, self._write = os.pipe()
        self._queue = []

    def start(self):
        pass

    def fileno(self):
        return self._read

    def deliver(self, device):
        self._queue.append(device)
        os.write(self._write, b"!")

    def poll(self, timeout=None):
        if not self._queue:
            return None
        os.read(self._read, 1)
        return self._queue.pop(0)


class Context:
    def __init__(self, present):
        self.present = present

    def list_devices(self, subsystem):
        assert subsystem == "hidraw"
        return list(self.present)


def sysfs(tmp_path, name, fixture):
    node_dir = tmp_path / name / "device"
    node_dir.mkdir(parents=True)
    descriptor = recording.load(FIXTURES / "hid" / f"{fixture}.hid").descriptor
    (node_dir / "report_descriptor").write_bytes(descriptor)
    return tmp_path / name


def test_present_and_plugged_headsets_are_added_others_ignored_and_removals_seen(tmp_path):
    jabra_usb = UsbParent("/sys/devices/pci0000:00/usb1/1-2", idVendor="0b0e", idProduct="0307",
                          product="Jabra EVOLVE LINK MS", serial="A1B2")
    jabra = Device("/dev/hidraw1", sysfs(tmp_path, "hidraw1", "jabra-evolve-link-ms"), jabra_usb)
    gaming = Device("/dev/hidraw2", sysfs(tmp_path, "hidraw2", "logitech-g535"), UsbParent("/x/1-3"))
    poly_usb = UsbParent("/sys/devices/pci0000:00/usb1/1-4", idVendor="047f", idProduct="02e6",
                         product="Poly BT700", serial="\n")  # an empty serial
    added, removed = [], []
    monitor = Monitor()

    async def scenario():
        done = asyncio.Event()
        discovery = Discovery(lambda info, descriptor: added.append(info),
                              lambda node: (removed.append(node), done.set()),
                              context=Context([jabra, gaming, jabra]), monitor=monitor)
        discovery.start(asyncio.get_running_loop())  # the present ones: jabra (once), not gaming
        monitor.deliver(Device("/dev/hidraw3", sysfs(tmp_path, "hidraw3", "poly-bt700"), poly_usb, action="add"))
        monitor.deliver(Device("/dev/hidraw2", "/gone", None, action="remove"))
        monitor.deliver(Device("/dev/hidraw1", "/gone", None, action="remove"))
        await done.wait()
        discovery.close()

    asyncio.run(asyncio.wait_for(scenario(), 10))
    assert [(a.node, a.id, a.model) for a in added] == [
        ("/dev/hidraw1", "hs-0b0e-0307-A1B2", "Jabra EVOLVE LINK MS"),
        ("/dev/hidraw3", "hs-047f-02e6-1-4", "Poly BT700")]  # no serial: the USB port path
    assert removed == ["/dev/hidraw1"]  # the gaming headset was never added, so never removed
