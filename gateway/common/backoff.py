"""Exponential backoff with full jitter, shared by reconnecting sources and the publisher."""

from __future__ import annotations

import random


class Backoff:
    """Delays for successive retries: uniform in [0, min(high, low * 2**failures)].

    Full jitter spreads a fleet of site gateways out after a shared outage, so they do
    not all hit the broker (or PBX) in the same second.
    """

    def __init__(self, low: float, high: float, rng: random.Random | None = None):
        self.low, self.high = low, high
        self.rng = rng or random.Random()
        self.failures = 0

    def next(self) -> float:
        """The delay before the next attempt; each call counts one more failure."""
        delay = self.rng.uniform(0, min(self.high, self.low * 2 ** min(self.failures, 32)))
        self.failures += 1
        return delay

    def reset(self) -> None:
        """An attempt succeeded: start again from the shortest delays."""
        self.failures = 0

