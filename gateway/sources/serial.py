"""Serial PBX links through pyserial: device paths (``/dev/serial/by-id/...``, ptys) and
any ``serial_for_url`` URL whose port has a file descriptor (``socket://``).

The port's descriptor is watched on the event loop. After each read the source pauses
``read_delay`` before the next, so that at high rates one read (and one disk commit)
takes many records, while a lone record is still read at once.
"""

from __future__ import annotations

import asyncio

import serial

from gateway.sources.base import Source

#: How much to read at most in one go.
CHUNK = 64 * 1024


class SerialSource(Source):
    async def run(self) -> None:
        while True:
            self.state = "connecting"
            try:
                port = self._open()
            except (serial.SerialException, OSError, ValueError) as exc:
                await asyncio.sleep(self.waiting(f"cannot open {self.settings.device}: {exc}"))
                continue
            try:
                self.reading()
                await self._read(port)
            finally:
                port.close()
                self.ingest.end()
            await asyncio.sleep(self.waiting(f"{self.settings.device} went away"))

    def _open(self) -> serial.SerialBase:
        options = dict(self.settings.profile.serial)
        if self.settings.baudrate:
            options["baudrate"] = self.settings.baudrate
        port = serial.serial_for_url(self.settings.device, timeout=0, **options)
        try:
            port.fileno()
        except (AttributeError, NotImplementedError, serial.SerialException):
            port.close()
            raise ValueError("this kind of serial URL has no file descriptor to watch") from None
        return port

    async def _read(self, port: serial.SerialBase) -> None:
        """Read until the device hangs up or goes away."""
        loop = asyncio.get_running_loop()
        while True:
            readable = loop.create_future()
            loop.add_reader(port.fileno(), readable.set_result, None)
            try:
                await readable
            finally:
                loop.remove_reader(port.fileno())
            try:
                data = port.read(max(port.in_waiting, 1) + CHUNK)
            except (serial.SerialException, OSError):
                return
            if not data:
                return  # readable but empty: hung up
            self.ingest.data(data)
            await asyncio.sleep(self.settings.read_delay)
