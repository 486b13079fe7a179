"""Capture files and stdin; with ``follow = true``, a growing file followed like ``tail -F``.

The read offset is committed with the events it produced, so a restart resumes at the
first byte not yet part of a committed record: nothing lost, nothing ingested twice. The
file's identity (device and inode) is stored with it; a rotated file is finished, then
the new one is read from its start.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from typing import BinaryIO

from gateway.edge.sources.base import CHUNK, Source

#: An event's queued size over its record's: at most this (the record is kept whole, beside its fields).
EXPANSION = 8
#: Reads smaller than this would hold no whole record: wait for room instead.
MIN_READ = 512


def identity_of(st: os.stat_result) -> str:
    return f"{st.st_dev}:{st.st_ino}"


class FileSource(Source):
    async def run(self) -> None:
        if self.settings.path == "-":
            await self._read_stdin()
            return
        while True:
            try:
                fh = open(self.settings.path, "rb")
            except OSError as exc:
                if not self.settings.follow:
                    self.state, self.error = "finished", f"cannot read {self.settings.path}: {exc.strerror}"
                    self.log.error("%s", self.error)
                    return
                await asyncio.sleep(self.waiting(f"cannot open {self.settings.path}: {exc.strerror}"))
                continue
            with fh:
                st = os.fstat(fh.fileno())
                if not stat.S_ISREG(st.st_mode):  # a FIFO or a device: no offsets to resume from
                    await asyncio.sleep(self.waiting(f"{self.settings.path} is not a regular file "
                                                     "(a serial device is type = \"serial\")"))
                    continue
                identity = identity_of(st)
                # Resume where the last committed record ended, unless this is another file
                # (rotated) or the same one cut shorter (truncated): then from its start.
                if identity == self.ingest.identity and (self.ingest.offset or 0) <= st.st_size:
                    fh.seek(self.ingest.offset or 0)
                self.reading(f"{self.settings.path} from byte {fh.tell()}")
                await self._read_file(fh, identity)
            if not self.settings.follow:
                self.state = "finished"
                return

    async def _read_file(self, fh: BinaryIO, identity: str) -> None:
        """Read to the end; when following, keep reading until the file is replaced. While
        the queue is (nearly) full, wait: what is not read yet is safe in the file, and
        reading it would only make the queue drop events."""
        while True:
            if (size := self._read_size()) == 0:
                self.waiting("the queue is full: the rest of the file waits in it, nothing is dropped")
                await asyncio.sleep(self.settings.poll_interval)
                continue
            if self.state == "waiting":
                self.reading(f"{self.settings.path} from byte {fh.tell()}")
            data = fh.read(size)
            if data:
                if not self.ingest.data(data, read_to=fh.tell(), identity=identity):
                    await self._read_again_later(fh)
                continue
            if not self.settings.follow or self._replaced(fh, identity):
                if self.ingest.end(read_to=fh.tell(), identity=identity):
                    return
                await self._read_again_later(fh)
                continue
            # Nothing more yet: a record waiting for lines that would continue it is whole.
            if not self.ingest.release(read_to=fh.tell(), identity=identity):
                await self._read_again_later(fh)
                continue
            await asyncio.sleep(self.settings.poll_interval)

    async def _read_again_later(self, fh: BinaryIO) -> None:
        """The read could not be queued (a full disk): from the last committed offset, later."""
        fh.seek(self.ingest.offset or 0)
        await asyncio.sleep(self.waiting(f"{self.ingest.write_error}; the file is read again from there"))

    def _read_size(self) -> int:
        """How much to read now: what the queue has room for (an event takes up to
        ``EXPANSION`` times its record's bytes), 0 when that is less than a record."""
        size = min(CHUNK, self.ingest.store.room() // EXPANSION)
        return size if size >= MIN_READ else 0

    def _replaced(self, fh: BinaryIO, identity: str) -> bool:
        try:
            st = os.stat(self.settings.path)
        except OSError:
            return False  # between a rename and the new file: keep the old one for now
        return identity_of(st) != identity or st.st_size < fh.tell()

    async def _read_stdin(self) -> None:
        loop = asyncio.get_running_loop()
        self.reading("standard input")
        while data := await loop.run_in_executor(None, sys.stdin.buffer.read1, CHUNK):
            self.ingest.data(data)
        self.ingest.end()
        self.state = "finished"
