"""hidraw I/O without a headset: ioctl numbers, sysfs descriptors, reports read from a pipe."""

import os

from gateway.headsets import hidraw, recording
from gateway.headsets.descriptor import INPUT, decode
from helpers import FIXTURES


def test_ioctl_numbers_are_the_kernel_s():
    """From include/uapi/linux/hidraw.h on x86 and arm; the struct sizes come from cffi."""
    assert (hidraw.HIDIOCGRDESCSIZE, hidraw.HIDIOCGRDESC, hidraw.HIDIOCGRAWINFO) == \
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
        splitter, got = hidraw.ReportSplitter(sizes, d.uses_report_ids), []
        while chunk := os.read(reader, 5):  # reads that cut reports anywhere
            got += splitter.feed(chunk)
    finally:
        os.close(reader)
    assert got == reports
