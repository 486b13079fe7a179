"""hidraw I/O: a headset's report descriptor and identity (ioctls, or sysfs), and its
reports split one by one.

The ioctl numbers and structs are Linux's ``include/uapi/linux/hidraw.h`` (the generic
``_IOC`` layout of x86 and arm); cffi declares the structs so that their sizes, which are
part of the ioctl numbers, come from the C declarations rather than from counting.
"""

from __future__ import annotations

import fcntl
import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cffi import FFI

_IOC_READ = 2


def _ior(nr: int, size: int) -> int:
    return (_IOC_READ << 30) | (size << 16) | (ord("H") << 8) | nr


@functools.cache
def _declared() -> tuple[FFI, int, int, int]:
    """cffi with the structs declared, and the three ioctl numbers (HIDIOCGRDESCSIZE,
    HIDIOCGRDESC, HIDIOCGRAWINFO): made when a headset is first opened, since cffi and its
    C parser cost a box with no headset about 3 MiB for as long as it runs."""
    from cffi import FFI

    ffi = FFI()
    ffi.cdef("""
        struct hidraw_report_descriptor { uint32_t size; uint8_t value[4096]; };
        struct hidraw_devinfo { uint32_t bustype; int16_t vendor; int16_t product; };
    """)
    return (ffi, _ior(0x01, ffi.sizeof("int")), _ior(0x02, ffi.sizeof("struct hidraw_report_descriptor")),
            _ior(0x03, ffi.sizeof("struct hidraw_devinfo")))


def ioctl_numbers() -> tuple[int, int, int]:
    """HIDIOCGRDESCSIZE, HIDIOCGRDESC and HIDIOCGRAWINFO."""
    return _declared()[1:]


def read_descriptor(fd: int) -> bytes:
    """The report descriptor of an open hidraw node (HIDIOCGRDESCSIZE, HIDIOCGRDESC)."""
    ffi, descriptor_size, descriptor_call, _ = _declared()
    size = ffi.new("int *")
    fcntl.ioctl(fd, descriptor_size, ffi.buffer(size), True)
    descriptor = ffi.new("struct hidraw_report_descriptor *")
    descriptor.size = min(size[0], 4096)
    fcntl.ioctl(fd, descriptor_call, ffi.buffer(descriptor), True)
    return bytes(ffi.buffer(descriptor.value, descriptor.size))


def device_info(fd: int) -> tuple[int, int, int]:
    """(bus, vendor ID, product ID) of an open hidraw node (HIDIOCGRAWINFO; the kernel's
    IDs are signed 16-bit, so they are masked)."""
    ffi, _, _, info_call = _declared()
    info = ffi.new("struct hidraw_devinfo *")
    fcntl.ioctl(fd, info_call, ffi.buffer(info), True)
    return info.bustype, info.vendor & 0xFFFF, info.product & 0xFFFF


def sysfs_descriptor(sys_path: Path) -> bytes:
    """The descriptor as sysfs shows it (``.../hidrawN/device/report_descriptor``),
    readable without access to the node itself."""
    return (sys_path / "device" / "report_descriptor").read_bytes()


def open_nonblocking(path: str) -> int:
    """An open hidraw node (or pipe), read and written without blocking the event loop."""
    return os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
