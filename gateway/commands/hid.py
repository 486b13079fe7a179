"""``pbxgw hid describe`` and ``pbxgw hid replay``: a headset's descriptor and reports,
offline (a hid-recorder file, raw descriptor bytes, or a hidraw node)."""

from __future__ import annotations

import argparse
import json
import os
import stat
from pathlib import Path

from gateway.edge.headsets import recording
from gateway.edge.headsets.descriptor import decode
from gateway.edge.headsets.layout import describe, describe_text, telephony_layout
from gateway.edge.headsets.telephony import TelephonyTracker
from gateway.errors import GatewayError


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hid", help="decode a headset's HID descriptor; replay its reports")
    hsub = p.add_subparsers(title="hid commands", metavar="ACTION", required=True)
    q = hsub.add_parser("describe", help="the telephony controls a report descriptor declares",
                        description="Decode a HID report descriptor (a hid-recorder .hid file, raw "
                        "descriptor bytes, or a /dev/hidrawN node) and print its telephony controls "
                        "per report: byte and bit, usage, flags and range; LED outputs too.")
    q.add_argument("file", help=".hid recording, raw descriptor file, or hidraw node")
    q.add_argument("--json", action="store_true", help="print JSON (documented in docs/headsets.md)")
    q.set_defaults(run=run_describe)
    q = hsub.add_parser("replay", help="run a recording's input reports through the tracker",
                        description="Run the E: input reports of a hid-recorder .hid file through "
                        "the telephony tracker and print its headset events as JSON lines.")
    q.add_argument("file", help=".hid recording with E: lines")
    q.add_argument("--mirror", action="store_true", help="read the vendor mirror collection (0xFF30) "
                   "instead of the standard telephony collection")
    q.add_argument("--drive-leds", action="store_true", help="acknowledge state changes with LED "
                   "reports, as the gateway does when it drives the LEDs; they are printed as writes")
    q.set_defaults(run=run_replay)


def _descriptor(name: str) -> bytes:
    path = Path(name)
    try:
        if stat.S_ISCHR(os.stat(path).st_mode):
            from gateway.edge.headsets import hidraw  # cffi: only for a hidraw node

            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                return hidraw.read_descriptor(fd)
            finally:
                os.close(fd)
    except OSError as exc:
        raise GatewayError(f"{name}: {exc.strerror}") from None
    return recording.load(path).descriptor


def run_describe(args: argparse.Namespace) -> int:
    described = describe(decode(_descriptor(args.file)))
    if args.json:
        print(json.dumps(described, indent=2))
    else:
        print("\n".join(describe_text(described)))
    return 0


def run_replay(args: argparse.Namespace) -> int:
    rec = recording.load(Path(args.file))
    layout = telephony_layout(decode(rec.descriptor), mirror=args.mirror)
    if layout is None:
        raise GatewayError(f"{args.file}: no {'vendor mirror ' if args.mirror else ''}telephony collection "
                           "in its descriptor (see pbxgw hid describe)")
    tracker = TelephonyTracker(layout, drive_leds=args.drive_leds)
    for seconds, report in rec.events:
        update = tracker.feed(report, seconds)
        for ev, detail in update.events:
            print(json.dumps({"t": seconds, "ev": ev, **({"detail": detail} if detail else {})}))
        for write in update.writes:
            print(json.dumps({"t": seconds, "write": write.hex()}))
    return 0
