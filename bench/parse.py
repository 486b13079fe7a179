"""Parser benchmark: the compiled engine against the pure-Python reference, same process.

    python -m bench.parse [--profile panasonic-kx-tda] [--records 1000000] [--rounds 3]

Prints figures, never asserts them (shared machines are noisy). The input is the
profile's sample records that give call events, repeated to ``--records`` records (so
the dates, times and durations repeat as they do in a real capture). Rounds alternate
between the engines, one core, and each prints records/s (median, min, max) for:

* parse: bytes -> framed records -> one event object per record (the daemon's path);
* parse+encode: bytes -> concatenated msgpack events (the batch path of
  ``pbxgw parse --format msgpack``: framed and parsed in one pass, no event objects on
  the compiled engine);

then the ratio compiled/reference of the medians and the input MB/s. The reference runs
on ``--reference-records`` records (default a tenth: it is slow), the compiled engine on
all of them. Last, the whole process: ``pbxgw parse --format msgpack`` on the input as a
file, records/s from start to exit (median of the rounds) and its peak RSS, and its ratio to
the compiled parse+encode figure above (what start-up and file I/O cost).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from zoneinfo import ZoneInfo

from bench import as_installed
from gateway.commands import simulate
from gateway.commands.common import CHUNK
from gateway.smdr import _smdr_c as compiled
from gateway.smdr import profiles
from gateway.smdr.framer import Framer as ReferenceFramer
from gateway.smdr.parser import RecordParser
from gateway.smdr.profile import PbxProfile
from gateway.wire.events import CallEvent

ENGINES = {"compiled": (compiled.Framer, compiled.Engine), "reference": (ReferenceFramer, RecordParser)}


def call_units(profile: PbxProfile) -> list[bytes]:
    """The printed sample units whose record gives a call event."""
    rx = int(profile.test_received.timestamp() * 1000)
    calls = []
    for unit in simulate.printed_units(profile):
        framer = ReferenceFramer(profile.framing)
        framer.feed(unit)
        framer.feed(b"")
        records = framer.records()
        parser = RecordParser(profile, ZoneInfo(profile.test_timezone), "gw", "src")
        if records and all(isinstance(parser.parse(r, rx, 1), CallEvent) for r in records):
            calls.append(unit)
    return calls


def capture(units: list[bytes], records: int) -> bytes:
    return b"".join(units[i % len(units)] for i in range(records))


def run(engine: str, profile, data: bytes, encode: bool) -> float:
    """Seconds to turn ``data`` into events (or msgpack), fed in 1 MiB chunks."""
    framer_class, parser_class = ENGINES[engine]
    framer = framer_class(profile.framing)
    parser = parser_class(profile, ZoneInfo(profile.test_timezone), "gw", "src")
    rx, seq = int(profile.test_received.timestamp() * 1000), 1
    began = time.perf_counter()
    for at in range(0, len(data) + 1, CHUNK):
        framer.feed(data[at:at + CHUNK] or b"")
        if encode:
            seq += parser.pack_framed(framer, rx, seq)[2]
        else:
            records = framer.records()
            for i, record in enumerate(records):
                parser.parse(record, rx, seq + i)
            seq += len(records)
    return time.perf_counter() - began


#: Runs a command and prints its seconds from start to exit and its peak RSS in KiB. A small
#: process forks it: the child's peak would otherwise count the pages of this benchmark,
#: copied before the exec; and it times the command alone, not its own start-up.
RSS_OF = ("import resource, subprocess, sys, time; began = time.perf_counter(); "
          "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
          "print(time.perf_counter() - began, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def whole_process(profile, data: bytes, records: int) -> tuple[float, float]:
    """(records/s, peak RSS MiB) of `pbxgw parse --format msgpack FILE > /dev/null`."""
    with tempfile.NamedTemporaryFile(suffix=".txt") as fh:
        fh.write(data)
        fh.flush()
        run = subprocess.run([sys.executable, "-c", RSS_OF, sys.executable, "-m", "gateway", "parse",
                              "--profile", profile.name, "--format", "msgpack", fh.name],
                             capture_output=True, text=True, check=True,
                             env={**os.environ, "PBXGW_PUREPYTHON": ""})
    seconds, peak_kib = run.stdout.split()
    return records / float(seconds), int(peak_kib) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="panasonic-kx-tda")
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--reference-records", type=int, default=0, help="default: a tenth of --records")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    as_installed()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    profile = profiles.find(args.profile)
    units = call_units(profile)
    sizes = {"compiled": args.records, "reference": args.reference_records or max(1, args.records // 10)}
    inputs = {engine: capture(units, n) for engine, n in sizes.items()}
    print(f"bench.parse: profile {profile.name}, {len(units)} distinct sample records repeated; "
          f"compiled {sizes['compiled']:,} records, reference {sizes['reference']:,}; one core")
    for encode, label in ((False, "parse"), (True, "parse+encode")):
        rates: dict[str, list[float]] = {engine: [] for engine in ENGINES}
        for _ in range(args.rounds):
            for engine in ENGINES:  # interleaved, so both see the same machine
                rates[engine].append(sizes[engine] / run(engine, profile, inputs[engine], encode))
        for engine in ENGINES:
            r = rates[engine]
            mbs = statistics.median(r) * len(inputs[engine]) / sizes[engine] / 1e6
            print(f"  {label:13} {engine:9} median {statistics.median(r):>11,.0f} records/s "
                  f"(min {min(r):,.0f}, max {max(r):,.0f}), {mbs:.1f} MB/s")
        ratio = statistics.median(rates["compiled"]) / statistics.median(rates["reference"])
        print(f"  {label:13} compiled/reference {ratio:.1f}x")
    batch = statistics.median(rates["compiled"])  # the last loop's: parse+encode
    wholes = [whole_process(profile, inputs["compiled"], sizes["compiled"]) for _ in range(args.rounds)]
    rate = statistics.median(rate for rate, _ in wholes)
    print(f"  pbxgw parse --format msgpack, whole process: median {rate:,.0f} records/s, peak RSS "
          f"{max(rss for _, rss in wholes):.1f} MiB; whole process / batch path {rate / batch:.2f}")


if __name__ == "__main__":
    main()
