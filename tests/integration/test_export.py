"""`pbxgw export`: what the box holds of a source, from queue and archive, while the
gateway runs; `raw` gives the PBX's record bytes back exactly."""

import json
import signal

import msgpack

from helpers import pbxgw
from plugins.processes import Subscriber, wait_until

# Records as an IP Office prints them, one in UTF-8 and one in Latin-1 (names with an é),
# each with its call id in the tenth column.
RECORDS = [f"2026/01/15 10:00:{i:02},00:00:10,3,0312{i:06},I,200,200,,0,{i},0,E200,{name},T9001,Line 1.1,0,0\r\n"
           for i, name in ((1, "Agent"), (2, "José"), (3, "Agent"), (4, "René"), (5, "Agent"))]
CAPTURE = b"".join(line.encode("latin-1" if i == 3 else "utf-8") for i, line in enumerate(RECORDS))


def test_export_gives_the_records_bytes_back_from_archive_and_queue_while_the_gateway_runs(
        tmp_path, broker, start_gateway):
    capture = tmp_path / "smdr.log"
    capture.write_bytes(CAPTURE)
    central = Subscriber(broker.url)
    gateway = start_gateway(broker.url, [{"name": "ipo", "type": "file", "path": str(capture), "follow": True,
                                          "poll_interval": "50ms", "profile": "avaya-ipo"}])
    try:
        central.collect(lambda events: len([e for e in events if e.get("kind") == "call"]) >= 5, what="5 calls")
    finally:
        central.close()
    broker.stop()  # what comes now stays in the queue: export takes it from there
    with open(capture, "ab") as fh:
        fh.write(b"2026/01/15 10:00:06,00:00:10,3,0312000006,I,200,200,,0,6,0,E200,Agent,T9001,Line 1.1,0,0\r\n")
    wait_until(lambda: "queue: 1 events" in pbxgw("status", "--config", str(gateway.config)).stdout.decode(),
               what="the sixth record queued")
    shown = pbxgw("status", "--config", str(gateway.config)).stdout.decode()
    assert "archive: 5 events delivered" in shown

    raw = pbxgw("export", "--config", str(gateway.config), "--src", "ipo", "--format", "raw")
    assert raw.returncode == 0, raw.stderr
    assert raw.stdout == capture.read_bytes()  # byte for byte, Latin-1 and UTF-8 alike
    assert b"6 events of ipo exported" in raw.stderr

    out = tmp_path / "stick" / "ipo.jsonl"
    out.parent.mkdir()
    some = pbxgw("export", "--config", str(gateway.config), "--src", "ipo", "--seq", "2-4", "--format", "jsonl",
                 "--out", str(out))
    assert some.returncode == 0, some.stderr
    assert [json.loads(line)["callid"] for line in out.read_text().splitlines()] == ["2", "3", "4"]

    packed = pbxgw("export", "--config", str(gateway.config), "--src", "ipo", "--format", "msgpack",
                   "--since", "2000-01-01", "--until", "2000-01-02")
    assert packed.returncode == 0 and packed.stdout == b""  # nothing received in 2000
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(pbxgw("export", "--config", str(gateway.config), "--src", "ipo", "--format", "msgpack").stdout)
    every = list(unpacker)
    assert [e["seq"] for e in every] == [1, 2, 3, 4, 5, 6] and [e.get("latin1") for e in every][3] is True

    unknown = pbxgw("export", "--config", str(gateway.config), "--src", "ipx", "--format", "raw")
    assert unknown.returncode == 1 and b"no source named 'ipx' in this queue; it has ipo" in unknown.stderr
    assert b"Traceback" not in unknown.stderr
    assert gateway.proc.poll() is None
    gateway.kill(signal.SIGTERM)
