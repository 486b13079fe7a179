"""No key is ever reused: whatever the queue lives through (reloads, clean restarts,
kill -9, a power cut that rolls the WAL back to its last fsync, a damaged WAL, a damaged or
lost file), no ``(gw, src, stream, seq)`` a central side may have received ever names a
different record.

The queue's files are copied as each fault would leave them on disk and the next run is
opened on the copy; "central" is every row that was ever queued (the broker may deliver a
committed row before the fsync that would have kept it through a power cut)."""

import os
import shutil

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.edge.queue.schema import DB_NAME
from gateway.edge.queue.store import Store
from gateway.wire.events import CallEvent

FAULTS = ("reload", "restart", "kill", "power_cut", "wal_damage", "file_damage", "new_card")


class Box:
    """A gateway's queue and two sources' sequence counters, as Ingest keeps them."""

    def __init__(self, root):
        self.root, self.generation = root, 0
        self.dir = root / "0"
        self.store = Store(self.dir, 10**8, "drop_oldest")
        self.durable_wal = self._wal_size()  # the WAL's size at its last fsync
        self.next_seq = {}
        self.records = 0

    def _wal_size(self) -> int:
        wal = self.dir / f"{DB_NAME}-wal"
        return wal.stat().st_size if wal.exists() else 0

    def read(self, src: str, count: int) -> None:
        if src not in self.next_seq:  # a (re)started source reads its state, as Ingest does
            self.next_seq[src] = self.store.source_state(src)[0]
        first = self.next_seq[src]
        events = []
        for seq in range(first, first + count):
            self.records += 1
            events.append(CallEvent(gw="gw", src=src, stream=self.store.stream, seq=seq, rx=seq,
                                    profile="p", start=0, raw=f"record {self.records}"))
        self.next_seq[src] = first + count
        self.store.append(src, events, first + count)

    def sync(self) -> None:
        self.store.sync()
        self.durable_wal = self._wal_size()

    def rows(self) -> list[dict]:
        return [msgpack.unpackb(r.payload) for r in self.store.peek(0, None, 10**6)]

    def fault(self, kind: str) -> None:
        self.next_seq.clear()  # every fault restarts the sources
        if kind == "reload":
            return
        if kind == "restart":
            self.store.close()
            self._reopen(self.dir)
            return
        # What the disk holds at the fault: the files as they are (the kernel had every commit).
        copy = self.root / str(self.generation + 1)
        shutil.copytree(self.dir, copy)
        self.store.close()  # the old process is gone; its files are not used again
        wal, db = copy / f"{DB_NAME}-wal", copy / DB_NAME
        if kind == "power_cut" and wal.exists():
            os.truncate(wal, self.durable_wal)
            (copy / f"{DB_NAME}-shm").unlink(missing_ok=True)  # shared memory does not survive it
        elif kind == "wal_damage" and wal.exists() and wal.stat().st_size > 4096:
            with open(wal, "r+b") as fh:
                fh.seek(wal.stat().st_size // 2)
                fh.write(b"\xff" * 64)
        elif kind == "file_damage":
            with open(db, "r+b") as fh:
                fh.write(b"garbage!" * 16)
        elif kind == "new_card":
            shutil.rmtree(copy)
        self._reopen(copy)

    def _reopen(self, directory) -> None:
        self.generation += 1
        self.dir = directory
        self.store = Store(directory, 10**8, "drop_oldest")
        self.durable_wal = self._wal_size()


steps = st.lists(st.one_of(
    st.tuples(st.just("read"), st.sampled_from(["pbx1", "pbx2"]), st.integers(1, 30)),
    st.tuples(st.just("sync")),
    st.tuples(st.just("deliver")),
    st.tuples(st.sampled_from(FAULTS)),
), min_size=5, max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps)
def test_no_key_ever_names_two_records(tmp_path_factory, steps):
    box = Box(tmp_path_factory.mktemp("box"))
    central: dict[tuple, str] = {}
    try:
        for step in steps:
            if step[0] == "read":
                box.read(step[1], step[2])
            elif step[0] == "sync":
                box.sync()
            elif step[0] == "deliver":
                for row in box.rows():
                    key = (row["gw"], row["src"], row["stream"], row["seq"])
                    assert central.setdefault(key, row["raw"]) == row["raw"], f"key {key} reused"
            else:
                box.fault(step[0])
        for row in box.rows():
            key = (row["gw"], row["src"], row["stream"], row["seq"])
            assert central.setdefault(key, row["raw"]) == row["raw"], f"key {key} reused"
    finally:
        box.store.close()


def test_a_clean_restart_keeps_the_stream_and_any_other_start_takes_a_new_one(tmp_path):
    box = Box(tmp_path)
    box.read("pbx1", 3)
    first = box.store.stream
    box.fault("restart")
    assert box.store.stream == first and box.store.source_state("pbx1")[0] == 4
    for fault in ("kill", "power_cut", "file_damage", "new_card"):
        before = box.store.stream
        box.fault(fault)
        assert box.store.stream != before, fault
    box.store.close()
