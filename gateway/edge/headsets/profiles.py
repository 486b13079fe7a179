"""Headset profiles (``firmware_profiles/headsets/<vendor>.toml``): which devices a
profile covers (vendor ID, optionally product IDs), which telephony collection to read
(the standard one or the vendor mirror), and the family's quirks: whether it needs its
requests acknowledged with the LEDs, and how long to ignore hook reports after an
Off-Hook write. A headset no profile covers is read with :data:`DEFAULT`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.common.tomltable import Table, duration, load_toml
from gateway.errors import ProfileError
from gateway.firmware_profiles import BUNDLED

DIRECTORY = BUNDLED / "headsets"


@dataclass(frozen=True, slots=True)
class HeadsetProfile:
    name: str
    vendor: str
    vid: int
    products: tuple[int, ...]  # empty: every product of the vendor
    mirror: bool  # read the vendor mirror collection (0xFF30) instead of the standard one
    led_echo: bool  # the device reverts requests the host does not acknowledge with the LEDs
    guard: float  # seconds hook reports are ignored after an Off-Hook write

    def covers(self, vid: int, pid: int) -> bool:
        return vid == self.vid and (not self.products or pid in self.products)


DEFAULT = HeadsetProfile("default", "any", 0, (), mirror=False, led_echo=False, guard=0.5)


def load(path: Path) -> HeadsetProfile:
    """One headset profile.

    :raises ProfileError: naming the file, the key and what was expected.
    """
    top = Table(str(path), "", load_toml(path, ProfileError), ProfileError)
    t = top.table("headset", required=True)
    vid = t.take("vid", int)
    products = tuple(t.take("products", list, []))
    if not 0 < vid <= 0xFFFF or not all(isinstance(p, int) and 0 <= p <= 0xFFFF for p in products):
        raise t.fail("vid" if not 0 < vid <= 0xFFFF else "products", "expected USB IDs from 0x0001 to 0xFFFF")
    profile = HeadsetProfile(path.stem, t.take("vendor", str), vid, products,
                             t.take("collection", str, "standard", choices=("standard", "mirror")) == "mirror",
                             t.take("led_echo", bool, False), duration(t, "guard", DEFAULT.guard))
    t.done()
    top.done()
    return profile


def load_all() -> list[HeadsetProfile]:
    """The bundled headset profiles, by name.

    :raises ProfileError: their directory cannot be read (an install this user may not read).
    """
    try:
        paths = sorted(p for p in DIRECTORY.iterdir() if p.suffix == ".toml")
    except OSError as exc:
        raise ProfileError(DIRECTORY, "", f"cannot read the headset profiles: {exc.strerror} "
                                          "(pbxgw's files must be readable to the user it runs as)") from None
    return [load(p) for p in paths]


def match(vid: int, pid: int, known: list[HeadsetProfile] | None = None) -> HeadsetProfile | None:
    """The profile covering a device (a product list beats a whole vendor), or None."""
    candidates = [p for p in (load_all() if known is None else known) if p.covers(vid, pid)]
    return min(candidates, key=lambda p: not p.products, default=None)
