"""Sans-I/O: a headset's byte stream cut into its input reports."""

from __future__ import annotations


class ReportSplitter:
    """Sans-I/O: cuts a byte stream into input reports by the sizes the descriptor
    declares. A hidraw read returns one report, so on a device this only checks lengths;
    on a pipe (recorded reports replayed) it is what finds the report boundaries. Bytes of
    an undeclared report ID are given as one report (the tracker ignores it)."""

    def __init__(self, sizes: dict[int, int], numbered: bool):
        self._sizes, self._numbered, self._buffer = sizes, numbered, b""

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        reports = []
        while self._buffer:
            size = (1 + self._sizes[self._buffer[0]] if self._buffer[0] in self._sizes else len(self._buffer)) \
                if self._numbered else self._sizes.get(0, len(self._buffer))
            if size <= 0 or len(self._buffer) < size:
                break
            reports.append(self._buffer[:size])
            self._buffer = self._buffer[size:]
        return reports
