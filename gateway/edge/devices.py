"""``pbxgw devices``: the serial ports and headsets on this box, which profile would read
each, and whether the gateway's user may open it (what a technician checks first)."""

from __future__ import annotations

import os

from serial.tools import list_ports

from gateway.edge.headsets import discovery
from gateway.edge.headsets import profiles as headset_profiles

#: What to do when the gateway may not open a device.
ACCESS_HINT = "no: install systemd/70-pbxgw-headsets.rules and run the gateway in group pbxgw"


def access(node: str) -> str:
    return "yes" if os.access(node, os.R_OK | os.W_OK) else ACCESS_HINT


def lines(context=None) -> list[str]:
    """The report, line by line; ``context``: a pyudev context (tests give a fake one)."""
    out = ["serial ports:"]
    ports = sorted(list_ports.comports(), key=lambda p: p.device)
    for port in ports:
        ids = f" ({port.vid:04x}:{port.pid:04x})" if port.vid is not None else ""
        out.append(f"  {port.device}  {port.description}{ids}  access: {access(port.device)}")
    if not ports:
        out.append("  none found")
    out.append("headsets:")
    try:
        headsets = discovery.present(context)
    except (ImportError, OSError) as exc:
        out.append(f"  cannot list them: {exc}")
        return out
    for info, _ in headsets:
        profile = headset_profiles.match(info.vid, info.pid)
        out.append(f"  {info.node}  {info.id}  {info.model or 'no name'}  profile: "
                   f"{profile.name if profile else 'none (defaults)'}  access: {access(info.node)}")
    if not headsets:
        out.append("  none found")
    return out
