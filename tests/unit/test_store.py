"""The SQLite queue: one transaction per read, byte budget and its policies, recovery."""

import sqlite3
import time

import msgpack

from gateway.edge.queue.store import Store
from gateway.wire.events import AlarmEvent, CallEvent, UnparsedEvent, packb


def call(seq: int, src: str = "pbx1", pad: int = 0, stream: str | None = None) -> CallEvent:
    return CallEvent(gw="gw", src=src, stream=stream, seq=seq, rx=1000 + seq, profile="p", start=0, raw="r" * pad)


def confirm(store: Store, ids: list[int]) -> None:
    """What the publisher does on a PUBACK: the rows' ids, and their sizes as peek gave them."""
    sizes = {r.id: len(r.payload) for r in store.peek(0, None, 10**6)}
    store.confirm(ids, [sizes[i] for i in ids])


def test_events_seq_and_offset_commit_together_and_survive_reopen(tmp_path):
    store = Store(tmp_path, 10**6, "drop_oldest")
    store.append("pbx1", [call(1), call(2)], next_seq=3, offset=120, identity="8:77")
    store.close()
    again = Store(tmp_path, 10**6, "drop_oldest")
    assert again.source_state("pbx1") == (3, 120, "8:77")
    assert again.source_state("new") == (1, None, None)
    rows = again.peek(0, None, 10)
    assert [msgpack.unpackb(r.payload)["seq"] for r in rows] == [1, 2]
    assert again.depth == 2 and again.bytes == sum(len(r.payload) for r in rows)


def test_row_ids_keep_growing_when_the_queue_empties(tmp_path):
    store = Store(tmp_path, 10**6, "drop_oldest")
    store.append("pbx1", [call(1), call(2)], next_seq=3)
    confirm(store, [r.id for r in store.peek(0, None, 10)])
    store.sync()  # the confirmed segment is dropped
    assert store.depth == 0 and store.bytes == 0
    store.append("pbx1", [call(3)], next_seq=4)
    assert [r.id for r in store.peek(2, None, 10)] == [3]


def test_drop_oldest_keeps_newest_and_reports_the_exact_range(tmp_path):
    size = len(packb(call(1, pad=100)))
    store = Store(tmp_path, 10 * size, "drop_oldest")
    for seq in range(1, 26):
        store.append("pbx1", [call(seq, pad=100)], next_seq=seq + 1)
    kept = [msgpack.unpackb(r.payload)["seq"] for r in store.peek(0, None, 100)]
    assert kept == list(range(16, 26)) and store.bytes <= 10 * size
    assert store.report_gaps("gw", now_ms=5000) == 1
    gap = msgpack.unpackb(store.peek(0, None, 100)[-1].payload)
    assert (gap["kind"], gap["first"], gap["last"], gap["count"]) == ("gap", 1, 15, 15)
    assert (gap["first_rx"], gap["last_rx"], gap["reason"]) == (1001, 1015, "queue full: drop_oldest")
    assert store.report_gaps("gw", now_ms=6000) == 0  # reported once
    assert store.stats().dropped == 15


def test_a_full_queue_drops_no_alarm_so_its_gap_keeps_the_range_it_lost(tmp_path):
    """An alarm has no seq: dropped with the calls, it made the gap's range null (a gap
    the collector refuses), and the alarm itself was lost unsaid."""
    size = len(packb(call(1, pad=100)))
    store = Store(tmp_path, 10 * size, "drop_oldest")
    store.enqueue([AlarmEvent(gw="gw", src="pbx1", rx=5, alarm="no_data", state="raised", last_rx=None,
                              quiet_s=60.0)])
    for seq in range(1, 26):
        store.append("pbx1", [call(seq, pad=100)], next_seq=seq + 1)
    store.report_gaps("gw", now_ms=5000)
    kinds = [msgpack.unpackb(r.payload) for r in store.peek(0, None, 100)]
    assert [m["alarm"] for m in kinds if m["kind"] == "alarm"] == ["no_data"]
    (gap,) = [m for m in kinds if m["kind"] == "gap"]
    assert gap["first"] == 1 and gap["last"] == gap["count"] >= 15  # (the oldest calls, a range, counted)


def test_a_single_read_over_budget_keeps_its_newest(tmp_path):
    size = len(packb(call(1, pad=100)))
    store = Store(tmp_path, 3 * size, "drop_oldest")
    store.append("pbx1", [call(s, pad=100) for s in range(1, 8)], next_seq=8)
    assert [msgpack.unpackb(r.payload)["seq"] for r in store.peek(0, None, 100)] == [5, 6, 7]


def test_drop_newest_refuses_what_does_not_fit(tmp_path):
    size = len(packb(call(1, pad=100)))
    store = Store(tmp_path, 3 * size, "drop_newest")
    store.append("pbx1", [call(s, pad=100) for s in range(1, 6)], next_seq=6)
    store.append("pbx1", [call(6, pad=100)], next_seq=7)
    assert [msgpack.unpackb(r.payload)["seq"] for r in store.peek(0, None, 100)] == [1, 2, 3]
    assert store.source_state("pbx1")[0] == 7  # numbers of dropped events are not reused
    store.report_gaps("gw", 0)
    gap = msgpack.unpackb(store.peek(3, None, 10)[0].payload)
    assert (gap["first"], gap["last"], gap["count"], gap["reason"]) == (4, 6, 3, "queue full: drop_newest")


def test_rejected_rows_move_to_the_dead_table(tmp_path):
    store = Store(tmp_path, 10**6, "drop_oldest")
    store.append("pbx1", [call(1), UnparsedEvent(gw="g", src="pbx1", seq=2, rx=1, profile="p", raw="x", reason="y")], 3)
    store.dead_letter([r.id for r in store.peek(0, None, 10)], "Not authorized", 99)
    store.sync()
    assert store.depth == 0 and store.bytes == 0 and store.stats().dead == 2


def test_unreadable_database_is_moved_aside_and_a_new_one_started(tmp_path):
    (tmp_path / "queue.db").write_bytes(b"this is not a database" * 100)
    store = Store(tmp_path, 10**6, "drop_oldest")
    assert store.stats().corrupt_recoveries == 1 and store.depth == 0
    assert [p.name for p in tmp_path.glob("queue.db.damaged-*")]
    store.append("pbx1", [call(1)], 2)
    assert store.depth == 1


def test_confirmed_segments_are_dropped_whole_and_the_rest_survives_a_restart(tmp_path):
    store = Store(tmp_path, 10**6, "drop_oldest")
    store.append("pbx1", [call(1), call(2)], 3)
    store.sync()  # segment 1 closed: rows 1, 2
    store.append("pbx1", [call(3), call(4)], 5)
    confirm(store, [1, 4])  # out of order: 4 is confirmed, 3 is not
    store.sync()
    assert store.depth == 2 and [r.id for r in store.peek(0, None, 10)] == [2, 3, 4]
    confirm(store, [2])
    store.sync()
    tables = store._db.execute("SELECT name FROM sqlite_master WHERE name GLOB 'seg_*'").fetchall()
    assert tables == [("seg_2",)]  # segment 1 went whole
    store._db.close()  # a crash: no close()
    again = Store(tmp_path, 10**6, "drop_oldest")
    # The confirmed prefix (1, 2) is not sent again; 4 was confirmed beyond it and is.
    assert again.depth == 2 and [r.id for r in again.peek(0, None, 10)] == [3, 4]
    again.append("pbx1", [call(5)], 6)
    assert [r.id for r in again.peek(4, None, 10)] == [5]


def test_ids_after_a_restart_with_an_empty_queue_stay_above_the_confirmed_prefix(tmp_path):
    store = Store(tmp_path, 10**6, "drop_oldest")
    store.append("pbx1", [call(1), call(2)], 3)
    confirm(store, [1, 2])
    store.close()
    again = Store(tmp_path, 10**6, "drop_oldest")
    again.append("pbx1", [call(3)], 4)
    assert [msgpack.unpackb(r.payload)["seq"] for r in again.peek(0, None, 10)] == [3]


def test_boot_counter_persists(tmp_path):
    assert Store(tmp_path, 10**6, "drop_oldest").bump_boot() == 1
    assert Store(tmp_path, 10**6, "drop_oldest").bump_boot() == 2


def test_a_damaged_payload_goes_to_dead_letters_and_delivery_goes_on(tmp_path):
    store = Store(tmp_path, 10**6, "drop_oldest")
    store.append("pbx1", [call(1), call(2), call(3)], next_seq=4)
    store._db.execute("UPDATE seg_1 SET payload = CAST(X'00' || substr(payload, 2) AS BLOB) WHERE seq = 2")  # a flipped byte
    rows = store.peek(0, None, 10)
    assert [msgpack.unpackb(r.payload)["seq"] for r in rows] == [1, 3]
    assert store.stats().dead == 1 and store.depth == 2
    dead = store._db.execute("SELECT kind, reason FROM dead").fetchall()
    assert dead == [("call", "damaged in the queue: not a msgpack map")]


def queue_after_kill_9(tmp_path, events: int):
    """A queue of ``events`` commits as the disk holds it after a kill -9 (a copy of its files)."""
    import shutil
    store = Store(tmp_path / "a", 10**6, "drop_oldest")
    for seq in range(1, events + 1):  # one commit each: many WAL frames
        store.append("pbx1", [call(seq, pad=200, stream=store.stream)], next_seq=seq + 1)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    stream = store.stream
    store.close()
    return tmp_path / "b", stream


def test_a_damaged_wal_is_said_set_aside_and_everything_readable_salvaged_with_its_keys(tmp_path, caplog):
    state, old_stream = queue_after_kill_9(tmp_path, 40)
    wal = state / "queue.db-wal"
    data = bytearray(wal.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle: SQLite alone would drop the rest
    wal.write_bytes(bytes(data))
    again = Store(state, 10**6, "drop_oldest")
    assert "its WAL is damaged at byte" in caplog.text
    assert [p.name for p in state.glob("queue.db.damaged-*-wal")] != []
    assert again.stats().corrupt_recoveries == 1 and again.stream != old_stream
    rows = [msgpack.unpackb(r.payload) for r in again.peek(0, None, 100)]
    readable = [r for r in rows if r["kind"] == "call"]
    # Every event but those of the one damaged page came back, with its old key.
    assert len(readable) >= 38 and all(r["stream"] == old_stream for r in readable)
    assert again.source_state("pbx1")[0] == 41  # seq goes on above everything used
    again.close()


def test_an_unreadable_part_of_the_queue_is_reported_as_a_gap_with_its_range(tmp_path):
    state, old_stream = queue_after_kill_9(tmp_path, 300)
    db = sqlite3.connect(state / "queue.db")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything into the database file
    root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'seg_1'").fetchone()[0]
    db.close()
    with open(state / "queue.db", "r+b") as fh:  # wreck a page in the middle of the table
        fh.seek((root + 40) * 1024)
        fh.write(b"\xff" * 1024)
    again = Store(state, 10**6, "drop_oldest")
    assert again.stats().corrupt_recoveries == 1
    kept = {msgpack.unpackb(r.payload)["seq"] for r in again.peek(0, None, 1000)}
    assert 0 < len(kept) < 300 and again.source_state("pbx1")[0] == 301
    assert again.report_gaps("gw", now_ms=1) >= 1
    gaps = [msgpack.unpackb(r.payload) for r in again.peek(0, None, 1000)]
    gaps = [g for g in gaps if g["kind"] == "gap"]
    covered = {s for g in gaps for s in range(g["first"], g["last"] + 1)}
    assert set(range(1, 301)) - kept <= covered  # every seq not salvaged is in a gap
    assert all(g["stream"] == old_stream and g["reason"].startswith("queue damaged") for g in gaps)
    again.close()


def test_dead_letters_requeue_with_their_keys_and_a_damaged_one_stays(tmp_path):
    store = Store(tmp_path, 10**6, "drop_oldest")
    store.append("pbx1", [call(1, stream=store.stream), call(2, stream=store.stream)], next_seq=3)
    store.dead_letter([r.id for r in store.peek(0, None, 10)], "Not authorized", 99)
    store._db.execute("UPDATE dead SET payload = X'c1' WHERE id = (SELECT MAX(id) FROM dead)")  # damaged
    assert store.requeue_dead(None) == 1
    rows = [msgpack.unpackb(r.payload) for r in store.peek(0, None, 10)]
    assert [(r["seq"], r["stream"]) for r in rows] == [(1, store.stream)]
    assert store._db.execute("SELECT COUNT(*) FROM dead").fetchone() == (1,)


# -- the archive -----------------------------------------------------------------------------

def recent(seq: int, src: str = "pbx1", stream: str | None = "s1", pad: int = 100) -> CallEvent:
    return CallEvent(gw="gw", src=src, stream=stream, seq=seq, rx=int(time.time() * 1000), profile="p", start=0,
                     raw="r" * pad)


def archive(tmp_path, archive_bytes: int = 32 * 2000, keep: float = 86400.0, queue_bytes: int = 10**6) -> Store:
    """A queue with an archive whose segments close at a 32nd of ``archive_bytes``."""
    return Store(tmp_path, queue_bytes, "drop_oldest", keep=keep, archive_bytes=archive_bytes)


def deliver_all(store: Store) -> None:
    confirm(store, [r.id for r in store.peek(0, None, 10**6)])
    store.sync()


def seqs(found) -> list[int]:
    return [seq for _, seq in found]


def test_confirmed_events_stay_in_the_archive_for_a_replay_and_count_apart_from_the_queue(tmp_path):
    store = archive(tmp_path)
    for n in range(1, 61, 10):
        store.append("pbx1", [recent(seq) for seq in range(n, n + 10)], n + 10)
    deliver_all(store)
    assert store.depth == 0 and store.bytes < 2000 + 1300  # only the open segment (a 32nd and one read)
    stats = store.stats().archive
    assert stats.events == 60 and stats.bytes > store.archived_bytes > 0 and stats.first_rx <= stats.last_rx
    assert store.peek(0, None, 100) == []  # delivered: never sent again by the lanes
    assert seqs(store.kept("pbx1", "s1", 5, 44, 0, 1000)) == list(range(5, 45))
    first = store.kept("pbx1", "s1", 5, 44, 0, 7)
    assert seqs(first) == list(range(5, 12))
    assert seqs(store.kept("pbx1", "s1", 5, 44, first[-1][0].id, 1000)) == list(range(12, 45))
    assert store.kept("pbx1", "other-stream", 1, 60, 0, 1000) == [] and store.kept("pbx2", "s1", 1, 60, 0, 9) == []


def test_the_archive_keeps_its_budget_by_dropping_its_oldest_segments(tmp_path):
    store = archive(tmp_path, archive_bytes=32 * 2000)
    for n in range(1, 3001, 10):
        store.append("pbx1", [recent(seq) for seq in range(n, n + 10)], n + 10)
        deliver_all(store)
    assert store.archived_bytes <= 32 * 2000
    kept = seqs(store.kept("pbx1", "s1", 1, 3000, 0, 10**6))
    assert kept == list(range(kept[0], 3001)) and kept[0] > 1  # the newest kept, the oldest gone
    tables = store._db.execute("SELECT count(*) FROM sqlite_master WHERE name GLOB 'seg_*'").fetchone()[0]
    assert tables <= 34  # a 32nd of the budget each, and the open one


def test_the_archive_drops_what_is_older_than_keep(tmp_path):
    store = archive(tmp_path, keep=3600.0)
    old = [CallEvent(gw="gw", src="pbx1", stream="s1", seq=n, rx=int(time.time() * 1000) - 7200_000, profile="p",
                     start=0, raw="r" * 100) for n in range(1, 31)]
    store.append("pbx1", old, 31)
    store.sync()  # (a segment older than a 32nd of keep closes at a sync)
    store.append("pbx1", [recent(n) for n in range(31, 41)], 41)
    deliver_all(store)
    assert seqs(store.kept("pbx1", "s1", 1, 40, 0, 100)) == list(range(31, 41))


def test_the_archive_survives_a_crash_and_nothing_in_it_is_sent_again(tmp_path):
    store = archive(tmp_path)
    store.append("pbx1", [recent(n) for n in range(1, 41)], 41)
    deliver_all(store)
    store.append("pbx1", [recent(n) for n in range(41, 46)], 46)  # queued, not delivered
    store._db.close()  # a crash
    again = archive(tmp_path)
    assert [msgpack.unpackb(r.payload)["seq"] for r in again.peek(0, None, 100)] == list(range(41, 46))
    assert seqs(again.kept("pbx1", "s1", 1, 45, 0, 100)) == list(range(1, 46))


def test_the_confirmed_prefix_passes_an_archived_segment_once_an_older_one_is_confirmed(tmp_path):
    store = archive(tmp_path)
    store.append("pbx1", [recent(n) for n in range(1, 21)], 21)  # segment 1 (closes at 2000 bytes)
    store.append("pbx1", [recent(n) for n in range(21, 41)], 41)  # segment 2
    store.append("pbx1", [recent(41)], 42)
    ids = [r.id for r in store.peek(0, None, 100)]
    confirm(store, ids[20:40])  # segment 2 first: archived while segment 1 still waits
    store.sync()
    confirm(store, ids[:20] + ids[40:])
    store.sync()
    store.close()
    again = archive(tmp_path)
    assert again.depth == 0 and again.peek(0, None, 100) == []


def test_confirmed_events_free_the_queues_budget_at_once_though_their_segment_stays_open(tmp_path):
    store = archive(tmp_path, archive_bytes=32 * 20_000, queue_bytes=6000)
    store.append("pbx1", [recent(n) for n in range(1, 21)], 21)  # ~4 900 bytes, under the budget
    assert store.room() < 2000 and store.counter("dropped") == 0
    confirm(store, [r.id for r in store.peek(0, None, 100)])
    assert store.bytes == 0 and store.room() == 6000  # (no sync: the segment is still open)
    store.append("pbx1", [recent(n) for n in range(21, 41)], 41)
    assert store.counter("dropped") == 0 and store.depth == 20
    assert store._db.execute("SELECT count(*) FROM sqlite_master WHERE name GLOB 'seg_*'").fetchone()[0] == 1
    store.close()
    again = archive(tmp_path, archive_bytes=32 * 20_000, queue_bytes=6000)
    assert again.depth == 20 and again.bytes == sum(len(r.payload) for r in again.peek(0, None, 100))


def test_a_new_stream_says_where_each_sources_numbers_begin_and_one_going_on_says_nothing(tmp_path):
    """What the status announces (``first_seq``): the centre then knows a new stream's first
    numbers are its own, should the broker lose them."""
    fresh = Store(tmp_path / "fresh", 10**6, "drop_oldest")
    assert fresh.stream_began("pbx1") == 1
    fresh.close()
    state, old_stream = queue_after_kill_9(tmp_path, 5)
    killed = Store(state, 10**6, "drop_oldest")
    assert killed.stream != old_stream
    assert (killed.stream_began("pbx1"), killed.stream_began("added later")) == (6, 1)
    killed.close()
    going_on = Store(state, 10**6, "drop_oldest")  # after a clean stop: the same stream
    assert going_on.stream == killed.stream and going_on.stream_began("pbx1") is None
    going_on.close()
