"""``pbxgw devices``: the serial ports and headsets on this box."""

from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("devices", help="serial ports and headsets present, their profile and access",
                       description="List the serial ports and USB telephony headsets on this box, "
                       "which profile would read each headset, and whether this user may open them.")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gateway.edge import devices

    print("\n".join(devices.lines()))
    return 0
