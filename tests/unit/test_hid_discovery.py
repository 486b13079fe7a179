"""Discovery without udev events from hardware: a fake monitor whose readiness is a real
pipe, fake devices over a fake sysfs tree; the real event loop."""

import asyncio

from fake_udev import Context, Device, Monitor, UsbParent, sysfs
from gateway.edge import devices
from gateway.edge.headsets.discovery import Discovery


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


def test_pbxgw_devices_lists_headsets_with_their_profile_and_access(tmp_path):
    jabra = Device(str(tmp_path / "hidraw1"), sysfs(tmp_path, "hidraw1", "jabra-evolve-link-ms"),
                   UsbParent("/sys/x/1-2", idVendor="0b0e", idProduct="0307", product="Jabra EVOLVE LINK MS",
                             serial="A1B2"))
    (tmp_path / "hidraw1").chmod(0o600)
    report = devices.lines(Context([jabra]))
    line = report[report.index("headsets:") + 1]
    assert "hs-0b0e-0307-A1B2" in line and "profile: jabra" in line and "access: yes" in line
    assert devices.lines(Context([]))[-1] == "  none found"
