"""Framer: terminators, bounded records, skip rules, incremental search."""

import re

import pytest

from gateway.smdr.engine import Framer as EngineFramer
from gateway.smdr.framer import END, NEED_DATA, Continuation, Framer, FramingRules, Record


def frame(data: bytes, rules: FramingRules = FramingRules(), bytewise: bool = False) -> list[Record]:
    framer = Framer(rules)
    out = []
    for piece in ([data[i:i + 1] for i in range(len(data))] if bytewise else [data]):
        framer.feed(piece)
        out += framer.records()
    framer.feed(b"")
    out += framer.records()
    assert framer.next_record() is END
    return out


@pytest.mark.parametrize("terminator, data", [
    ("line", b"a1\r\na2\ra3\na4"),
    ("crlf", b"a1\r\na2\r\na3\r\na4"),
    ("cr", b"a1\ra2\ra3\ra4"),
    ("lf", b"a1\na2\na3\na4"),
    ("nul", b"a1\x00a2\x00a3\x00a4"),
])
@pytest.mark.parametrize("bytewise", [False, True])
def test_each_terminator_splits_records_whole_and_byte_by_byte(terminator, data, bytewise):
    records = frame(data, FramingRules(terminator=terminator), bytewise)
    assert [r.data for r in records] == [b"a1", b"a2", b"a3", b"a4"]


def test_crlf_split_between_feeds_is_one_terminator_not_two():
    framer = Framer(FramingRules(terminator="line"))
    framer.feed(b"rec1\r")
    assert framer.next_record() is NEED_DATA  # the CR may be the start of CR LF
    framer.feed(b"\nrec2\r\n")
    assert [r.data for r in framer.records()] == [b"rec1", b"rec2"]
    assert framer.stats.skipped == 0  # no phantom empty line between CR and LF


def test_stream_without_terminator_is_cut_at_max_record_len_and_memory_stays_bounded():
    framer = Framer(FramingRules(max_record_len=32))
    for _ in range(1000):
        framer.feed(b"x" * 7)
        records = framer.records()
        assert all(len(r.data) == 32 and r.truncated for r in records)
        assert framer.buffered <= 32  # at most one record's worth waits
    assert framer.stats.truncated == 7000 // 32


def test_terminated_record_longer_than_limit_is_cut_and_rest_follows():
    records = frame(b"y" * 40 + b"\n", FramingRules(max_record_len=32))
    assert [(len(r.data), r.truncated) for r in records] == [(32, True), (8, False)]


def test_blank_lines_form_feeds_and_skip_patterns_are_dropped_and_counted():
    rules = FramingRules(skip=(re.compile(rb"^-{5,}$"), re.compile(rb"Date\s+Time")))
    framer = Framer(rules)
    framer.feed(b"\x0c  Date     Time    Ext\r\n" + b"-" * 80 + b"\r\n\r\n  \r\nREC\r\n")
    assert [r.data for r in framer.records()] == [b"REC"]
    assert framer.stats.skipped == 4 and framer.stats.records == 1


def test_nul_padding_is_removed_and_counted_unless_nul_terminates():
    framer = Framer(FramingRules())
    framer.feed(b"AB\x00\x00C\r\n\x00\x00\x00\r\n")
    assert [r.data for r in framer.records()] == [b"ABC"]
    assert framer.stats.nul_bytes == 5


def test_last_unterminated_record_comes_out_at_end_of_stream():
    framer = Framer(FramingRules())
    framer.feed(b"one\r\ntwo")
    assert [r.data for r in framer.records()] == [b"one"]
    assert framer.next_record() is NEED_DATA
    framer.feed(b"")
    assert framer.next_record() == Record(b"two")
    assert framer.next_record() is END


def test_search_resumes_where_it_stopped(monkeypatch):
    framer = Framer(FramingRules(max_record_len=4096))
    scanned = []
    real = framer._terminator
    class Spy:
        def search(self, buf, pos):
            scanned.append(len(buf) - pos)
            return real.search(buf, pos)
    framer._terminator = Spy()
    for _ in range(1000):
        framer.feed(b"z")
        framer.records()
    # Each search looks at the new byte and at most one before it: O(n), not O(n^2).
    assert max(scanned) <= 2


def test_length_prefixed_records_whole_and_byte_by_byte():
    """Mitel 5000: each record after its length, 4 bytes little-endian, CR LF inside."""
    rec = b"TLC 11202 94003 961-9000  08:36 00:00:03 $00.00\r\n"
    data = (len(rec)).to_bytes(4, "little") + rec + (3).to_bytes(4, "little") + b"ab\n"
    for bytewise in (False, True):
        records = frame(data, FramingRules(terminator="length32le"), bytewise)
        assert [r.data for r in records] == [rec.rstrip(), b"ab"]


def test_length_prefix_past_the_limit_is_cut_not_buffered():
    framer = Framer(FramingRules(terminator="length32le", max_record_len=64))
    framer.feed((10**9).to_bytes(4, "little") + b"x" * 100)
    record = framer.next_record()
    assert record.truncated and len(record.data) == 64


def test_strip_patterns_cut_a_glued_page_header():
    rules = FramingRules(terminator="nul", strip=(re.compile(rb"(?s)^\x0c.*====+\r\n"),))
    records = frame(b"\x0cPAGE 1\r\n=====\r\nREC1\x00REC2\x00", rules)
    assert [r.data for r in records] == [b"REC1", b"REC2"]


OXE = FramingRules(terminator="block", max_record_len=64, block_len=8, block_start=b"\x01\x00")


@pytest.mark.parametrize("bytewise", [False, True])
def test_blocks_from_their_mark_with_noise_between_dropped_and_counted(bytewise):
    """Alcatel OXE: fixed-size blocks; link marks and keep-alives between them are noise."""
    data = b"\x03\x04" + b"\x01\x00AB\x00\x00\x00\x00" + b"\x00\x08TEST_REQ" + b"\x01\x00CDEF\x00\x00"
    framer = Framer(OXE)
    for piece in ([data[i:i + 1] for i in range(len(data))] if bytewise else [data]):
        framer.feed(piece)
    framer.feed(b"")
    assert [r.data for r in framer.records()] == [b"\x01AB", b"\x01CDEF"]  # NUL padding removed
    assert framer.stats.noise_bytes == 2 + 10 and framer.stats.nul_bytes == 8


def test_a_stream_without_a_block_mark_keeps_at_most_a_mark_less_one_byte():
    framer = Framer(OXE)
    for _ in range(1000):
        framer.feed(b"no mark here \x01")
        assert framer.next_record() is NEED_DATA and framer.buffered <= 1
    assert framer.stats.noise_bytes == 1000 * 14 - 1


def test_a_block_cut_short_by_the_end_of_the_stream_is_truncated():
    records = frame(b"\x01\x00ABC", OXE)
    assert records == [Record(b"\x01ABC", truncated=True)]


def test_as_framed_returns_blocks_untouched():
    framer = Framer(OXE, as_framed=True)
    framer.feed(b"\x03\x04\x01\x00AB\x00\x00\x00\x00")
    assert framer.records() == [Record(b"\x01\x00AB\x00\x00\x00\x00")]


@pytest.mark.parametrize("terminator, end", [("line", b"\r\n"), ("line", b"\n"), ("crlf", b"\r\n"), ("lf", b"\n")])
def test_a_record_of_exactly_the_limit_is_whole_however_its_bytes_arrive(terminator, end):
    """The terminator right after max_record_len bytes (its CR the last byte so far) ends
    the record: fed byte by byte it is not cut short for want of the next byte."""
    data = b"x" * 16 + end + b"next" + end
    whole, bytewise = Framer(FramingRules(terminator=terminator, max_record_len=16)), \
        Framer(FramingRules(terminator=terminator, max_record_len=16))
    whole.feed(data)
    got = []
    for i in range(len(data)):
        bytewise.feed(data[i:i + 1])
        got += bytewise.records()
    assert got == whole.records() == [Record(b"x" * 16), Record(b"next")]


NEC_NAME_LINES = FramingRules(skip=(re.compile(rb"PAGE \d+$"),), max_record_len=120, continuation=(
    Continuation(re.compile(r"^NEXT (?P<x_caller_name>.+)")),
    Continuation(re.compile(r"^(?P<x_caller_name>\S.{0,15}?)\s*$"), join=" ")))
RECORD = b"PIN  10:52 12/09 001  00:00:20 2017       2142623802           NECinfrontia"


@pytest.mark.parametrize("framer_class", [Framer, EngineFramer], ids=["reference", "engine"])
@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "byte-by-byte"])
def test_lines_that_continue_a_record_are_joined_to_it_across_a_skipped_line(framer_class, bytewise):
    data = RECORD + b"\r\n12/09/26 PAGE 002\r\nCorp.\r\nNEXT NECinfrontia Corp.\r\n" + RECORD + b"\r\n"
    framer = framer_class(NEC_NAME_LINES)
    out = []
    for piece in ([data[i:i + 1] for i in range(len(data))] if bytewise else [data]):
        framer.feed(piece)
        out += framer.records()
    # The second record is held: a line may still continue it. Its bytes are not yet taken.
    assert [r.data for r in out] == [RECORD + b"\nCorp.\nNEXT NECinfrontia Corp."]
    assert framer.holding and framer.buffered == len(RECORD) + 2
    assert framer.release() == Record(RECORD) and not framer.holding and framer.buffered == 0
    assert (framer.stats.records, framer.stats.continued, framer.stats.skipped) == (2, 2, 1)


def test_a_continued_line_at_the_start_or_past_the_record_limit_is_a_record_of_its_own():
    long_name = b"NEXT " + b"N" * 40  # (75 + 1 + 45 > 120)
    records = frame(b"Corp.\r\n" + RECORD + b"\r\n" + long_name + b"\r\n", NEC_NAME_LINES)
    assert [r.data for r in records] == [b"Corp.", RECORD, long_name]


def test_without_continuation_rules_nothing_is_held():
    framer = Framer(FramingRules())
    framer.feed(RECORD + b"\r\nCorp.\r\n")
    assert [r.data for r in framer.records()] == [RECORD, b"Corp."] and not framer.holding
