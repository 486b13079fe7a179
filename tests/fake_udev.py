"""What pyudev gives the discovery code, faked over a fake sysfs tree: devices, their USB
parents, a context that lists them, and a monitor whose readiness is a real pipe."""

import os

from gateway.edge.headsets import recording
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
