"""The wall clock, read only by the I/O shell (the sans-I/O core gets times as arguments)."""

import time


def now_ms() -> int:
    """Milliseconds since the epoch, UTC: the ``rx`` of events."""
    return time.time_ns() // 1_000_000
