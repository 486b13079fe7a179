"""What the collector's tests share: distinct PBX records in a capture file, a gateway's
file source reading it, and the collector's database as a test reads it beside it."""

from __future__ import annotations

from gateway.central.database import Database
from gateway.wire.events import CallEvent, to_wire


def ipo_record(i: int) -> bytes:
    """A distinct Avaya IP Office record; its call id is ``i``."""
    return (f"2026/01/15 10:{i // 60 % 60:02}:{i % 60:02},00:00:10,3,0312{i:06},I,200,200,,0,{i},0,"
            f"E200,Agent,T9001,Line 1.1,0,0\r\n").encode()


def segment(seq: int, callid: int, start: int, ext: str, continuation: int, ring: int, dur: int) -> dict:
    """An IP Office call segment as its gateway sends it."""
    disp = "transferred" if continuation else ("answered" if dur else "unanswered")
    return to_wire(CallEvent(gw="gw-1", src="pbx", stream="s1", seq=seq, rx=start * 1000 + seq, profile="avaya-ipo",
                             start=start, ring=ring, dur=dur, dir="in", ext=ext, trunk="9001", caller="0312",
                             called="200", disp=disp, callid=str(callid), raw=f"record {seq}",
                             x={"continuation": continuation, "party1": f"E{ext}", "hold": 0}))


def capture_of(path, first: int, last: int):
    with open(path, "ab") as fh:
        fh.write(b"".join(ipo_record(i) for i in range(first, last + 1)))
    return path


def file_source(path, follow: bool = False) -> dict:
    return {"name": "ipo", "type": "file", "path": str(path), "follow": follow, "poll_interval": "50ms",
            "profile": "avaya-ipo", "timezone": "Europe/Paris"}


class Stored:
    """The collector's database as a test reads it beside the collector."""

    def __init__(self, url: str):
        self.db = Database.open(url, create=True)

    def count(self, table: str = "events") -> int:
        try:
            return self.db.fetch(f"SELECT count(*) FROM {table}")[0][0]
        except Exception:  # (the collector may not have made its tables yet)
            return 0

    def callids(self) -> list[int]:
        return sorted(int(c) for (c,) in self.db.fetch("SELECT callid FROM events"))

    def close(self) -> None:
        self.db.close()
