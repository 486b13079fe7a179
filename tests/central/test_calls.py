"""Records into calls, per family: the profiles' own samples (real records) and built
multi-record calls (transfer chains, ring-group legs, segments out of order, a replayed
record), and the ``[assembly]`` table's validation."""

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from gateway.central.calls import assemble
from gateway.errors import ProfileError
from gateway.smdr import profiles
from gateway.smdr.framer import Record
from gateway.smdr.parser import RecordParser
from gateway.smdr.profile import holds

pytestmark = pytest.mark.central


def sample_records(name: str) -> list[dict]:
    """The call events of a profile's samples (expected.jsonl), as the collector stores
    them: keyed, received in order."""
    out = []
    for seq, line in enumerate(profiles.find(name).expected_path.read_text().splitlines(), 1):
        e = json.loads(line)
        if e["kind"] == "call":
            e.update(gw="gw", src="pbx", site="hq", stream="s", seq=seq, rx=seq,
                     start=int(datetime.fromisoformat(e["start"].replace("Z", "+00:00")).timestamp()))
            out.append(e)
    return out


def calls_of(name: str, records: list[dict]):
    return assemble(records, profiles.find(name).assembly, name)


def record(seq: int, start: int, **fields) -> dict:
    base = dict(gw="gw", src="pbx", site="hq", stream="s", seq=seq, rx=seq, start=start, ring=None, dur=None,
                dir="in", ext=None, trunk=None, caller="0312", called="200", disp="answered", callid=None, x=None)
    return {**base, **fields}


@pytest.mark.parametrize("name", profiles.bundled_names())
def test_every_sample_record_is_in_exactly_one_call_and_joins_only_its_own_id(name):
    records = sample_records(name)
    calls = calls_of(name, records)
    keys = [k for c in calls for k in c.records]
    assembly = profiles.find(name).assembly
    assert sorted(keys) == sorted((r["stream"], r["seq"]) for r in records if not holds(assembly.not_calls, r))
    by_key = {(r["stream"], r["seq"]): r for r in records}
    for c in calls:
        if assembly.join:
            assert len({by_key[k]["callid"] for k in c.records}) == 1
        assert c.rules == f"{name}/{assembly.version}/{assembly.digest}" and c.start == min(by_key[k]["start"] for k in c.records)


def test_ip_office_segments_of_one_call_are_one_call_and_its_voicemail_leg_is_no_answer_by_a_person():
    calls = {c.key: c for c in calls_of("avaya-ipo", sample_records("avaya-ipo"))}
    transferred = calls["s:3"]  # E4750 answered, then voicemail (Avaya's own example)
    assert transferred.records == (("s", 3), ("s", 4))
    assert (transferred.outcome, transferred.first_ext, transferred.final_ext) == ("answered", "4750", "4750")
    # a roll-over to voicemail is no transfer; the call was on the line for its two segments
    assert (transferred.transfers, transferred.talk, transferred.hold, transferred.complete) == (0, 13, 11, True)
    assert transferred.end_at - transferred.start == (7 + 13 + 11) + (0 + 21 + 0)
    assert [leg[:2] for leg in transferred.legs] == [("4750", "answered"), (None, "voicemail")]
    assert transferred.legs[0][4] == "John Smith"  # the name IP Office prints for the extension
    assert calls["s:2"].outcome == "voicemail"  # straight to V: no person answered
    assert calls["s:1"].outcome == "abandoned" and calls["s:1"].wait == 9


def ipo_segment(seq, callid, continuation, ext, ring, dur, disp, start=1_770_000_000):
    return record(seq, start, callid=str(callid), ext=ext, ring=ring, dur=dur, disp=disp, trunk="9001",
                  x={"continuation": continuation, "party1": f"E{ext}", "party2": "T9001", "hold": 2})


def test_a_transfer_chain_whose_segments_arrive_out_of_order_or_twice_is_the_same_call():
    chain = [ipo_segment(1, 77, 1, "201", 8, 30, "transferred"), ipo_segment(2, 77, 1, "202", 4, 40, "transferred"),
             ipo_segment(3, 77, 0, "203", 3, 50, "answered")]
    [in_order] = calls_of("avaya-ipo", chain)
    [shuffled] = calls_of("avaya-ipo", [chain[2], chain[0], chain[1], chain[2]])
    assert in_order == shuffled
    assert (in_order.first_ext, in_order.final_ext, in_order.transfers) == ("201", "203", 2)
    assert (in_order.ring, in_order.wait, in_order.talk, in_order.hold) == (15, 8, 120, 6)
    [waiting] = calls_of("avaya-ipo", chain[:2])
    assert not waiting.complete  # its last segment (continuation 0) has not come yet


def test_ip_office_ids_that_come_round_again_after_the_window_are_two_calls():
    a = ipo_segment(1, 5, 0, "201", 2, 10, "answered")
    b = ipo_segment(2, 5, 0, "202", 2, 10, "answered", start=a["start"] + 3 * 86400)
    assert len(calls_of("avaya-ipo", [a, b])) == 2


def test_a_record_without_the_id_its_family_promises_is_a_call_of_its_own_counted_as_orphan():
    [orphan] = calls_of("avaya-ipo", [ipo_segment(1, "", 0, "201", 2, 10, "answered")])
    assert orphan.orphan and orphan.records == (("s", 1),)


def test_asterisk_ring_group_legs_sharing_a_uniqueid_are_one_call_waiting_as_long_as_its_answering_leg_rang():
    start = 1_770_000_000
    legs = [record(1, start, callid="1770000000.5", ring=15, dur=0, disp="unanswered", x={"lastapp": "Dial"}),
            record(2, start, callid="1770000000.5", ring=6, dur=60, disp="answered", x={"lastapp": "Dial"}),
            record(3, start + 1, callid="1770000001.7", ring=4, dur=0, disp="unanswered")]
    calls = {c.key: c for c in calls_of("asterisk-csv", legs)}
    group = calls["s:1"]
    assert group.records == (("s", 1), ("s", 2)) and group.outcome == "answered"
    assert (group.ring, group.wait, group.talk) == (21, 6, 60)
    assert calls["s:3"].outcome == "abandoned"
    [to_voicemail] = calls_of("asterisk-csv", [record(4, start, callid="x.1", ring=20, dur=15, disp="answered",
                                                      x={"lastapp": "VoiceMail"})])
    assert to_voicemail.outcome == "voicemail" and to_voicemail.talk == 0


def test_cisco_legs_of_one_global_call_id_are_one_call():
    start = 1_770_000_000
    legs = [record(1, start, callid="22020", ring=10, dur=0, disp="unanswered", dir=None),
            record(2, start + 10, callid="22020", ring=3, dur=90, disp="answered", dir=None, ext="42000")]
    [c] = calls_of("cisco-cucm", legs)
    assert (c.first_ext, c.wait, c.talk, c.outcome) == ("42000", 13, 90, "answered")


def test_a_call_names_the_hunt_pilot_or_queue_its_records_print():
    cucm = {c.key: c.hunt_group for c in calls_of("cisco-cucm", sample_records("cisco-cucm"))}
    assert cucm.pop("s:2") == "42000" and set(cucm.values()) == {None}  # huntPilotDN, printed in the 2nd row only
    # a 3CX v16 row of the sample's, as a call to queue 800 prints it
    row = ("Call 9760,00000171DEE41BB3_2601,00:05:15,2020/05/04 10:53:43,2020/05/04 10:53:50,2020/05/04 10:58:59,"
           "TerminatedByDst,0000000002,800,10000,800,800,,Ext.185,185,,,,,\"Chain: 0000000002,800,Ext.185,\","
           "External,Queue,Internal,from disp,to disp,fin disp,")
    event = RecordParser(profiles.find("3cx"), ZoneInfo("UTC"), "gw", "pbx").parse(Record(row.encode(), False), 1, 1)
    assert (event.x["queue"], event.dir, event.ext) == ("800", "in", "185")
    [call] = calls_of("3cx", [record(1, event.start, **{k: getattr(event, k) for k in (
        "ring", "dur", "dir", "ext", "caller", "called", "disp", "callid", "x")})])
    assert call.hunt_group == "800"
    assert calls_of("avaya-ipo", sample_records("avaya-ipo"))[0].hunt_group is None  # IP Office prints none


def test_panasonic_transfer_marks_join_contiguous_records_on_one_co_line_and_nothing_else():
    start = 1_770_000_000  # times to the minute, as the PBX prints them
    first = record(1, start, trunk="01", ext="101", dur=65, disp="transferred")
    second = record(2, start + 60, trunk="01", ext="102", dur=120, disp="answered")
    after = record(3, start + 240, trunk="01", ext="103", dur=30, disp="answered")  # the next caller
    other_line = record(4, start + 60, trunk="02", ext="104", dur=10, disp="answered")
    calls = {c.key: c for c in calls_of("panasonic-kx-tda", [first, second, after, other_line])}
    assert calls["s:1"].records == (("s", 1), ("s", 2))
    assert (calls["s:1"].first_ext, calls["s:1"].final_ext, calls["s:1"].talk) == ("101", "102", 185)
    assert set(calls) == {"s:1", "s:3", "s:4"}


def test_what_a_panasonic_prints_that_is_no_call_is_in_no_call():
    records = sample_records("panasonic-kx-tda")
    in_calls = {k for c in calls_of("panasonic-kx-tda", records) for k in c.records}
    left_out = [r["x"] for r in records if (r["stream"], r["seq"]) not in in_calls]
    assert sorted(map(str, left_out)) == sorted(map(str, [{"event": "LOG IN"}, {"event": "LOG OUT"}, {"cd": "RC"}]))


@pytest.mark.parametrize("name", ["nec-sl", "siemens-hipath", "avaya-cm", "mitel-mivb", "mitel-5000"])
def test_the_fixed_width_families_join_by_time_window_on_one_trunk_after_a_transfer(name):
    start = 1_770_000_000
    transferred = record(1, start, trunk="001", ext="2001", dur=50, disp="transferred")
    continued = record(2, start + 60, trunk="001", ext="2002", dur=50, disp="answered")
    too_late = record(3, start + 60 + 50 + 10 * 60, trunk="001", ext="2003", dur=5, disp="answered")
    assert [c.records for c in calls_of(name, [transferred, continued, too_late])] == [
        (("s", 1), ("s", 2)), (("s", 3),)]


def write_profile(tmp_path, assembly: str):
    base = profiles.find("avaya-ipo").path.read_text()
    text = base[:base.index("\n[assembly]\n") + 1] + assembly + "\n" + base[base.index("\n[test]\n") + 1:]
    path = tmp_path / "ipo-copy" / "profile.toml"
    path.parent.mkdir()
    path.write_text(text.replace('name = "avaya-ipo"', 'name = "ipo-copy"'))
    return path


@pytest.mark.parametrize("assembly, key, says", [
    ('[assembly]\njoin = ["callid"]\n', "assembly.window", "seconds within which"),
    ('[assembly]\njoin = ["call_id"]\nwindow = "1h"\n', "assembly.join", "expected an event field"),
    ('[assembly]\njoin = ["callid"]\nline = "trunk"\nwindow = "1h"\n', "assembly.line", "not both"),
    ('[assembly]\njoin = ["callid"]\nwindow = "1h"\nends = { "x.continuaton" = "0" }\n', "x.continuaton",
     "x.continuation"),
    ('[assembly]\njoin = ["callid"]\nwindow = "1h"\nvoicemail = [{ "x.party1" = "V(" }]\n', "x.party1",
     "bad regular expression"),
    ('[assembly]\njoin = ["callid"]\nwindow = "1h"\nstarts = "segment"\n', "assembly.starts", "leg, call"),
    ('[assembly]\njoin = ["callid"]\nwindow = "1h"\njion = 1\n', "assembly.jion", "unknown key"),
])
def test_a_wrong_assembly_table_is_one_error_naming_file_key_and_what_was_expected(tmp_path, assembly, key, says):
    with pytest.raises(ProfileError) as caught:
        profiles.load(write_profile(tmp_path, assembly))
    assert key in str(caught.value) and says in str(caught.value) and "profile.toml" in str(caught.value)


def test_records_the_pbx_printed_again_are_folded_into_their_call_and_counted_once():
    first = ipo_segment(1, 88, 1, "2020", 6, 221, "transferred")
    second = ipo_segment(2, 88, 0, "2031", 0, 52, "answered")
    first["raw"], second["raw"] = "2018/03/14 11:02:13,00:03:41,6,...", "2018/03/14 11:02:13,00:00:52,0,..."
    printed = [{**r, "seq": r["seq"] + 2 * n} for n in range(200) for r in (first, second)]
    [call] = calls_of("avaya-ipo", printed)
    assert (call.talk, call.transfers, call.folded, len(call.records)) == (221 + 52, 1, 398, 400)
    assert [leg[0] for leg in call.legs] == ["2020", "2031"]
    # Two records of the same bytes but different starts are two records (two calls' worth).
    later = {**first, "seq": 999, "start": first["start"] + 60}
    assert calls_of("avaya-ipo", [first, later])[0].folded == 0
