"""hidraw I/O without a headset: ioctl numbers, sysfs descriptors, reports read from a pipe."""

import os

from gateway.edge.headsets import hidraw, recording
from gateway.edge.headsets.descriptor import INPUT, decode
from gateway.edge.headsets.reports import ReportSplitter
from helpers import FIXTURES


def test_ioctl_numbers_are_the_kernel_s():
    """From include/uapi/linux/hidraw.h on x86 and arm; the struct sizes come from cffi."""
    assert hidraw.ioctl_numbers() == \
        (0x80044801, 0x90044802, 0x80084803)


def test_the_descriptor_is_read_from_sysfs(tmp_path):
    data = recording.load(FIXTURES / "hid" / "poly-bt700.hid").descriptor
    (tmp_path / "hidraw3" / "device").mkdir(parents=True)
    (tmp_path / "hidraw3" / "device" / "report_descriptor").write_bytes(data)
    assert hidraw.sysfs_descriptor(tmp_path / "hidraw3") == data


def test_reports_written_to_a_pipe_come_out_one_by_one_however_they_are_read():
    d = decode(recording.load(FIXTURES / "hid" / "jabra-evolve-link-ms.hid").descriptor)
    sizes = {rid: d.report_bytes(INPUT, rid) for kind, rid in d.report_bits if kind == INPUT}
    reports = [bytes.fromhex(h) for h in ("020100", "020500", "010100", "020000")]  # 01: volume (consumer)
    reader, writer = os.pipe()
    try:
        os.write(writer, b"".join(reports))
        os.close(writer)
        splitter, got = ReportSplitter(sizes, d.uses_report_ids), []
        while chunk := os.read(reader, 5):  # reads that cut reports anywhere
            got += splitter.feed(chunk)
    finally:
        os.close(reader)
    assert got == reports


def test_a_report_that_cannot_be_read_is_said_once_and_the_headset_read_on(caplog, tmp_path):
    import os

    from gateway.edge.headsets import profiles
    from gateway.edge.headsets.discovery import HeadsetInfo
    from gateway.edge.headsets.service import HeadsetReader

    rec = recording.load(FIXTURES / "hid" / "poly-bt700.hid")
    queued = []
    reader = HeadsetReader(HeadsetInfo(str(tmp_path / "node"), 0x047F, 0x02EE, "BT700", "S1"), rec.descriptor,
                           profiles.DEFAULT, False, lambda info, events: queued.append(events))
    read, write = os.pipe()
    reader._fd = read
    os.write(write, b"\x00" * 64)
    reader._splitter = None  # a fault inside the report path (here: no splitter at all)
    reader._readable()
    os.write(write, b"\x00" * 64)
    reader._readable()  # the same fault again: not said again
    assert caplog.text.count("a report could not be read (AttributeError") == 1
    os.close(read)
    os.close(write)
