"""Sans-I/O: the answers a PBX link's keep-alive requests need (the profile's ``[[reply]]``).

Some PBXes (Alcatel OXE) send a test request on the link and stop sending records until
it is answered. :class:`Responder` finds those requests in the incoming bytes, however
they are split across reads, and gives what to send back; the TCP source writes it.
"""

from __future__ import annotations

from gateway.smdr.profile import Reply


class Responder:
    """Sans-I/O: finds the profile's reply requests in the incoming bytes, however they are
    split across reads, and says what to send back."""

    def __init__(self, replies: tuple[Reply, ...]):
        self._replies = replies
        self._keep = max((len(r.receive) for r in replies), default=1) - 1
        self._tail = b""

    def feed(self, data: bytes) -> bytes:
        """The answers due for ``data``, in the order their requests arrived."""
        if not self._replies:
            return b""
        window = self._tail + data
        found = sorted((at, reply.send) for reply in self._replies
                       for at in _occurrences(window, reply.receive, len(self._tail)))
        self._tail = window[-self._keep:] if self._keep else b""
        return b"".join(send for _, send in found)


def _occurrences(data: bytes, pattern: bytes, tail: int):
    """Where ``pattern`` ends past ``tail`` bytes of ``data`` (so a request that straddles
    two reads is found once, in the read that completes it)."""
    at = data.find(pattern)
    while at >= 0:
        if at + len(pattern) > tail:
            yield at
        at = data.find(pattern, at + 1)
