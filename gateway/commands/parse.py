"""``pbxgw parse``: a capture offline, one event per record on stdout."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TextIO

from gateway.commands.common import add_line_options, find_profile, is_device, line_options, open_capture, zone
from gateway.edge.clock import now_ms
from gateway.errors import GatewayError
from gateway.smdr import offline
from gateway.smdr.framer import CONTINUATION_WAIT_S
from gateway.smdr.plausible import Doubts
from gateway.smdr.profile import with_date_order
from gateway.smdr.stream import StreamParser
from gateway.wire.events import UnparsedEvent, packb, to_json

#: How many unparsed records are described on stderr before they are only counted.
UNPARSED_SHOWN = 20


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("parse", help="parse a capture offline: one JSON line per record",
                       description="Parse a PBX capture (a file, - for stdin, or a serial "
                       "device such as /dev/ttyUSB0 or a pty) and print one event per record "
                       "on stdout; a summary and every unparsed record go to stderr.")
    p.add_argument("--profile", required=True, help="profile name, or a path to a profile.toml")
    p.add_argument("--tz", metavar="ZONE", help="time zone the PBX prints in, e.g. Asia/Taipei "
                   "(default: this machine's zone; UTC prints the PBX's times unchanged)")
    p.add_argument("--format", choices=("jsonl", "msgpack"), default="jsonl",
                   help="jsonl: one JSON object per line (start in ISO-8601 UTC); "
                   "msgpack: the wire encoding, one map per event (default: jsonl)")
    p.add_argument("--date-order", metavar="ORDER", help="read dates in this order instead of the "
                   "profile's: YMD, MDY, DMY (or MD, DM without a year), e.g. DMY for DD/MM/YY")
    p.add_argument("--strict", action="store_true", help="exit 1 if any record is unparsed")
    p.add_argument("file", nargs="?", default="-", help="capture file, serial device, or - (default)")
    add_line_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    profile = find_profile(args.profile)
    if args.date_order:
        try:
            profile = with_date_order(profile, args.date_order)
        except ValueError as exc:
            raise GatewayError(f"--date-order: {exc}") from None
    stream = StreamParser(profile, zone(args.tz), gw="local", src=args.file)
    # A quiet line lets go of a record held for lines that would continue it (NEC's names).
    chunks = open_capture(args.file, line_options(args, profile.serial), idle=CONTINUATION_WAIT_S)
    out = sys.stdout.buffer
    progress = Progress(sys.stderr) if sys.stderr.isatty() else None
    unparsed_count = 0
    doubts = Doubts(live=args.file == "-" or is_device(args.file))  # a file was printed before it is read

    def show(unparsed: list[UnparsedEvent]) -> None:
        nonlocal unparsed_count
        for event in unparsed:
            unparsed_count += 1
            if unparsed_count <= UNPARSED_SHOWN:
                print(f"unparsed record {event.seq}: {event.reason}: {event.raw!r}", file=sys.stderr)

    def feed(data: bytes, quiet: bool = False) -> None:
        """``data`` framed and parsed; ``quiet``: the line was quiet (``data`` is empty),
        so a record held for lines that would continue it is whole."""
        if args.format == "msgpack" and not quiet:  # the batch path: no event objects on the compiled engine
            packed, unparsed = stream.feed_packed(data, now_ms())
            out.write(packed)
        else:
            events = stream.release(now_ms()) if quiet else stream.feed(data, now_ms())
            if args.format == "msgpack":
                out.write(b"".join(map(packb, events)))
            else:
                out.write(b"".join(to_json(e).encode() + b"\n" for e in events))
                for event in events:
                    doubts.add(event)
            unparsed = [e for e in events if isinstance(e, UnparsedEvent)]
        out.flush()
        show(unparsed)
        if progress:
            progress.update(stream.framer.stats.records, unparsed_count)

    try:
        for chunk in chunks:
            feed(chunk, quiet=not chunk)
    finally:
        feed(b"")
        if progress:
            progress.close()
        # (The batch path writes no event objects: decoding them again to doubt them would
        # cost it two thirds of its speed.)
        looked = "not counted with --format msgpack" if args.format == "msgpack" else doubts.told()
        print(f"pbxgw parse: {offline.summary(profile, stream.framer.stats, unparsed_count)}; "
              f"calls that look wrong: {looked}", file=sys.stderr)
    return 1 if args.strict and unparsed_count else 0


class Progress:
    """One self-overwriting line on a terminal (records, rate, unparsed), shown only for
    inputs that take more than a second, refreshed at most 4 times a second."""

    def __init__(self, tty: TextIO):
        self._tty, self._began = tty, time.monotonic()
        self._shown_at = self._began + 1.0  # nothing in the first second
        self._shown = False

    def update(self, records: int, unparsed: int) -> None:
        now = time.monotonic()
        if now < self._shown_at:
            return
        self._shown_at, self._shown = now + 0.25, True
        rate = records / (now - self._began)
        self._tty.write(f"\r{records:,} records, {rate:,.0f}/s, {unparsed:,} unparsed ")
        self._tty.flush()

    def close(self) -> None:
        if self._shown:
            self._tty.write("\n")
