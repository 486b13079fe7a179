"""Sources in-process, with a real queue: bytes in, committed events out."""

import asyncio
import dataclasses
from zoneinfo import ZoneInfo

import msgpack
import serial

from gateway.edge.clock import Clock
from gateway.edge.config import SourceSettings
from gateway.edge.queue.store import Store
from gateway.edge.sources import Ingest, source_class
from gateway.smdr import profiles

RECORDS = b"".join(
    b"2026/01/15 10:00:%02d,00:00:10,3,0312,I,200,200,,0,%d,0,E200,Agent,T9001,Line 1.1,0,0\r\n" % (i, i)
    for i in range(1, 11))


def test_a_serial_url_without_a_descriptor_is_read_in_the_executor(tmp_path):
    """loop:// (like rfc2217://) has no file descriptor; the bytes still arrive."""
    settings = SourceSettings(name="lp", type="serial", profile=profiles.find("avaya-ipo"),
                              timezone=ZoneInfo("UTC"), device="loop://", read_delay=0)
    store = Store(tmp_path, 10**6, "drop_oldest")
    queued = asyncio.Event()

    async def main():
        source = source_class("serial")(settings, Ingest(settings, store, "gw", queued.set, Clock(lambda: True)))
        port = serial.serial_for_url("loop://", timeout=0)
        port.write(RECORDS)  # what the line carries back to the reader
        source._open = lambda: port
        task = asyncio.create_task(source.run())
        while store.depth < 10:
            await asyncio.wait_for(queued.wait(), 10)
            queued.clear()
        task.cancel()

    asyncio.run(main())
    seqs = [msgpack.unpackb(r.payload)["seq"] for r in store.peek(0, None, 100)]
    assert seqs == list(range(1, 11)) and store.source_state("lp")[0] == 11


def test_a_part_that_fails_is_said_once_per_kind_and_started_again(caplog):
    import asyncio
    import random

    from gateway.common.backoff import Backoff
    from gateway.edge.daemon import keep_running

    runs, faults = [], []

    async def part():
        runs.append(1)
        if len(runs) < 4:
            raise OSError(5, "Input/output error")

    asyncio.run(keep_running("source x", part, Backoff(0.001, 0.001, random.Random(1)), faults.append))
    assert len(runs) == 4 and faults == ["OSError: [Errno 5] Input/output error"] * 3
    assert caplog.text.count("source x failed (OSError: [Errno 5] Input/output error); started again") == 1


def test_a_record_no_line_continues_is_queued_once_the_serial_line_is_quiet(tmp_path):
    """NEC may print a NEXT line with the caller's name after a record, so the record waits
    for the next line; on a real pty where none comes, the quiet line releases it."""
    import os

    settings = SourceSettings(name="nec", type="serial", profile=profiles.find("nec-sl"),
                              timezone=ZoneInfo("UTC"), device="", read_delay=0)
    store = Store(tmp_path, 10**6, "drop_oldest")
    queued = asyncio.Event()
    record = b"PIN  10:52 12/09 001  00:00:20 2017       2142623802"
    master, slave = os.openpty()
    settings = dataclasses.replace(settings, device=os.ttyname(slave))

    async def until(depth: int):
        while store.depth < depth:
            await asyncio.wait_for(queued.wait(), 30)
            queued.clear()

    async def main():
        source = source_class("serial")(settings, Ingest(settings, store, "gw", queued.set, Clock(lambda: True)))
        task = asyncio.create_task(source.run())
        for _ in range(3000):  # (bytes written before the port is open and raw would be flushed)
            if source.state == "reading":
                break
            await asyncio.sleep(0.01)
        os.write(master, record + b"\r\nNEXT Acme Corp.\r\n" + record + b"\r\n")
        await until(1)  # the first, joined to its NEXT line as soon as the second record came
        await until(2)  # the second: no byte follows it
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    try:
        asyncio.run(main())
    finally:
        os.close(master)
        os.close(slave)
    first, second = (msgpack.unpackb(r.payload) for r in store.peek(0, None, 10))
    assert first["x"]["caller_name"] == "Acme Corp." and first["raw"] == record.decode() + "\nNEXT Acme Corp."
    assert "caller_name" not in second["x"] and second["raw"] == record.decode()
