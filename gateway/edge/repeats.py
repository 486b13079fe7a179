"""Log lines that can come thousands of times a second (a flood of refused requests,
strangers at a port, a publish that keeps failing): said once, then counted."""

from __future__ import annotations

from collections.abc import Callable


class Repeats:
    """Says a message the first time its kind comes, then counts the kind, and says it again,
    with how many came meanwhile, at most once per ``interval`` seconds. A kind must be one
    of a few fixed words (or an address), never text from what arrived, so that what is
    kept stays small whatever arrives.

    :param say: writes one line (a logger's method).
    """

    def __init__(self, say: Callable[[str], None], interval: float = 60.0):
        self.say, self.interval = say, interval
        self._kinds: dict[str, tuple[float, int]] = {}  # kind -> (when last said, how many since)

    def __call__(self, kind: str, message: str, now: float) -> bool:
        """Say ``message`` (at ``now``, monotonic seconds) if its kind is due; whether it was said."""
        said, since = self._kinds.get(kind, (now - self.interval, 0))
        if now - said < self.interval:
            self._kinds[kind] = (said, since + 1)
            return False
        self.say(f"{message} ({since} more like it in the last {now - said:.0f} s)" if since else message)
        self._kinds[kind] = (now, 0)
        return True
