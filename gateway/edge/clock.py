"""The wall clock, read only by the I/O shell (the sans-I/O core gets times as arguments)."""

import ctypes
import functools
import time
from datetime import datetime, timezone

from gateway.smdr.fields import EARLIEST_TRUE

#: No true clock reads earlier than this release's date: a box that booted without a
#: real-time clock starts at 1970 until NTP sets it.
EARLIEST_TRUE_S = datetime.combine(EARLIEST_TRUE, datetime.min.time(), timezone.utc).timestamp()
_TIME_ERROR = 5  # adjtimex(2): "the clock is not synchronized"


def now_ms() -> int:
    """Milliseconds since the epoch, UTC: the ``rx`` of events."""
    return time.time_ns() // 1_000_000


def wall_ms(monotonic_s: float) -> int:
    """The wall time (ms since the epoch) of a moment taken on the monotonic clock, as the
    wall clock now sees it: for saying when, not for measuring how long."""
    return now_ms() - int((time.monotonic() - monotonic_s) * 1000)


def synchronized() -> bool:
    """Whether the wall clock can be trusted: not before this release, and the kernel does
    not say it is unsynchronized (adjtimex(2) read only: modes 0)."""
    if time.time() < EARLIEST_TRUE_S:
        return False
    try:
        return _adjtimex()(ctypes.create_string_buffer(512)) != _TIME_ERROR  # (a struct timex, larger than any libc's)
    except (OSError, AttributeError):
        return True  # no way to ask: the date alone said yes


@functools.cache
def _adjtimex():
    """libc's adjtimex(2), looked up once among the symbols the process has loaded (libc's
    among them): ``ctypes.util.find_library`` would run ``ldconfig`` at every look."""
    return ctypes.CDLL(None, use_errno=True).adjtimex


class Clock:
    """Whether the wall clock could be trusted when last looked at: what the parts that
    stamp events read (``synchronized``), so that events received before it was true are
    marked ``unsynced``. The daemon looks again every few seconds (:meth:`check`), not at
    every read (adjtimex is a system call)."""

    def __init__(self, is_synchronized=synchronized):
        self._is_synchronized = is_synchronized
        self.synchronized = is_synchronized()

    def check(self) -> bool:
        """Look again; whether the answer changed."""
        before, self.synchronized = self.synchronized, self._is_synchronized()
        return before != self.synchronized
