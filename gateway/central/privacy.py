"""Personal data kept only as long as the centre decides (``[privacy]``, docs/central.md).

Callers' numbers are personal data (Taiwan's PDPA, the GDPR), and so are the numbers they
called and the record text that prints both. After ``numbers_after`` the collector masks a
stored call record's ``caller`` and ``called`` (``•`` and the last ``keep_digits`` digits: a
mark no PBX prints, so a number masked already is known)
or replaces them with a keyed hash (``h:`` and an HMAC-SHA256: the same number gives the
same hash, so repeat callers still show, and no one without the key can reverse it), in
its record text too, and in the calls assembled from it. After ``raw_after`` it empties the
record text (``pbxgw reparse`` can then read those records no more). Both run at the
collector's start and every hour after, a few thousand rows a transaction
(:mod:`gateway.central.retention`). Sans-I/O: the settings, and how a number is hidden.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

#: What a masked number begins with (then its last digits), and a hashed one.
MASK, HASHED = "•", "h:"


@dataclass(frozen=True, slots=True)
class PrivacySettings:
    """``[privacy]``: 0 seconds keeps the data whole for good."""

    numbers_after: float = 0.0
    numbers: str = "mask"  # or "hash"
    keep_digits: int = 4
    hash_key: bytes = b""  # (read from hash_key_file)
    raw_after: float = 0.0

    @property
    def active(self) -> bool:
        return bool(self.numbers_after or self.raw_after)

    def hidden(self, number: str | None) -> str | None:
        """``number`` as it is kept after ``numbers_after`` (a number so kept already stays)."""
        if not number or self.done(number):
            return number
        if self.numbers == "hash":
            return HASHED + hmac.new(self.hash_key, number.encode(), hashlib.sha256).hexdigest()[:24]
        return MASK + number[-self.keep_digits:] if self.keep_digits else MASK

    def done(self, number: str) -> bool:
        return number.startswith(HASHED if self.numbers == "hash" else MASK)

    @property
    def mark(self) -> str:
        """A SQL LIKE pattern for a number kept so already."""
        return (HASHED if self.numbers == "hash" else MASK) + "%"

    def described(self) -> str:
        """What a report's definitions say of it."""
        numbers = ("kept whole" if not self.numbers_after else
                   f"kept whole for {_days(self.numbers_after)}, then " +
                   (f"masked to their last {self.keep_digits} digits" if self.numbers == "mask"
                    else "replaced with a keyed hash (the same number, the same hash)"))
        raw = "kept" if not self.raw_after else f"emptied after {_days(self.raw_after)}"
        return f"callers' and called numbers {numbers}; the record text {raw}"


def _days(seconds: float) -> str:
    return f"{seconds / 86400:g} days" if seconds >= 86400 else f"{seconds:g} s"
