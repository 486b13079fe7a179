"""The HID descriptor decoder on every real descriptor of the corpus, Linux's rules, fuzz."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.edge.headsets import recording
from gateway.edge.headsets.descriptor import CONSTANT, decode
from gateway.edge.headsets.layout import describe, telephony_layout
from gateway.edge.headsets.telephony import TelephonyTracker
from helpers import FIXTURES

HID = FIXTURES / "hid"

#: Where hook switch and mute are, and the Off-Hook and Mute LEDs, per real descriptor:
#: (report ID, byte, bit) in the hidraw buffer, as ../shared/corpus/hid/NOTES.md section 8
#: lists them (decoded there by hand with another parser).
EXPECTED = {
    "epos-impact-d": {"Tel:HookSwitch": (2, 1, 2), "Tel:PhoneMute": (2, 1, 5), "LED:OffHook": (3, 1, 1), "LED:Mute": (3, 1, 4)},
    "epos-impact-d1": {"Tel:HookSwitch": (2, 1, 0), "Tel:PhoneMute": (2, 1, 3), "LED:OffHook": (3, 1, 0), "LED:Mute": (3, 1, 3)},
    "epos-impact-dw": {"Tel:HookSwitch": (2, 1, 2), "Tel:PhoneMute": (2, 1, 5), "LED:OffHook": (3, 1, 1), "LED:Mute": (3, 1, 4)},
    "epos-sennheiser-sc660-anc-usb": {"Tel:HookSwitch": (8, 1, 1), "Tel:PhoneMute": (8, 1, 0), "LED:OffHook": (9, 1, 1), "LED:Mute": (9, 1, 0)},
    "jabra-biz-2400-ii": {"Tel:HookSwitch": (2, 1, 0), "Tel:PhoneMute": (2, 1, 2), "LED:OffHook": (2, 1, 0), "LED:Mute": (2, 1, 1)},
    "jabra-evolve-link-ms": {"Tel:HookSwitch": (2, 1, 0), "Tel:PhoneMute": (2, 1, 2), "LED:OffHook": (2, 1, 0), "LED:Mute": (2, 1, 1)},
    "jabra-speak-810": {"Tel:HookSwitch": (2, 1, 0), "Tel:PhoneMute": (2, 1, 2), "LED:OffHook": (2, 1, 0), "LED:Mute": (2, 1, 1)},
    "plantronics-blackwire-3220-col-tel": {"Tel:HookSwitch": (8, 1, 1), "Tel:PhoneMute": (8, 1, 0), "LED:OffHook": (23, 1, 0), "LED:Mute": (9, 1, 0)},
    "plantronics-blackwire-c5220": {"Tel:HookSwitch": (8, 1, 1), "Tel:PhoneMute": (8, 1, 0), "LED:OffHook": (23, 1, 0), "LED:Mute": (9, 1, 0)},
    "poly-bt700": {"Tel:HookSwitch": (32, 1, 0), "Tel:PhoneMute": (32, 1, 1), "LED:OffHook": (36, 1, 0), "LED:Mute": (35, 1, 0)},
    "poly-voyager-base-cd": {"Tel:HookSwitch": (1, 1, 0), "Tel:PhoneMute": (1, 1, 1), "LED:OffHook": (4, 1, 0), "LED:Mute": (3, 1, 0)},
    "yealink-wh66": {"Tel:HookSwitch": (2, 1, 0), "Tel:PhoneMute": (2, 1, 2), "LED:OffHook": (2, 1, 0), "LED:Mute": (2, 1, 1)},
}
NEGATIVE = ["logitech-g535", "logitech-0a37-col-consumer", "plantronics-blackwire-3220-col-consumer",
            "plantronics-blackwire-3220-col-ffa0"]


def descriptor(name):
    return decode(recording.load(HID / f"{name}.hid").descriptor)


def positions(described):
    found = {}
    for report in described["reports"]:
        for c in report["controls"]:
            if c.get("usage") in ("Tel:HookSwitch", "Tel:PhoneMute", "LED:OffHook", "LED:Mute") \
                    and report["application"] == "Tel:Headset":
                found.setdefault(c["usage"], (report["id"], c["byte"], c["bit_in_byte"]))
    return found


def test_the_corpus_is_all_here():
    assert sorted(p.stem for p in HID.glob("*.hid")) == sorted([*EXPECTED, *NEGATIVE])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hook_mute_and_their_leds_are_where_the_notes_found_them(name):
    d = descriptor(name)
    assert not d.warnings
    described = describe(d)
    assert described["telephony"] and positions(described) == EXPECTED[name]


@pytest.mark.parametrize("name", NEGATIVE)
def test_headsets_without_a_telephony_page_have_no_controls(name):
    described = describe(descriptor(name))
    assert not described["telephony"] and described["reports"] == []
    assert telephony_layout(descriptor(name)) is None


def test_a_usage_before_a_page_change_takes_the_new_page_as_linux_does():
    """P7: Jabra's 09 07 05 09 ... 81 02 is Button 7; EPOS's 09 07 05 09 09 01 81 40 keeps
    Telephony 7 (Programmable Button) beside Button 1."""
    jabra = describe(descriptor("jabra-evolve-link-ms"))
    usages = [c.get("usage") for r in jabra["reports"] if r["kind"] == "input" for c in r["controls"]]
    assert "Button:0x07" in usages and "Tel:ProgrammableButton" not in usages
    epos = describe(descriptor("epos-impact-d1"))
    arrays = [c["array"] for r in epos["reports"] for c in r["controls"] if "array" in c]
    assert ["Tel:ProgrammableButton", "Button:0x01"] in arrays


def test_constant_fields_with_usages_are_kept_and_padding_is_not():
    """P6: a Jabra Link 380c declares hook and mute Constant (81 23, 81 07) and reports them."""
    data = bytes.fromhex("05 0b 09 05 a1 01 85 02 15 00 25 01 75 01"
                         " 09 20 95 01 81 23"      # hook switch, Const Var Abs NoPref
                         " 09 2f 95 01 81 07"      # mute, Const Var Rel
                         " 95 06 81 01 c0")        # padding: Const without usages
    d = decode(data)
    assert [(f.usages, f.bit, bool(f.flags & CONSTANT)) for f in d.fields] == \
        [((0x000B0020,), 0, True), ((0x000B002F,), 1, True)]
    assert d.report_bytes("input", 2) == 1
    tracker = TelephonyTracker(telephony_layout(d))
    assert tracker.feed(bytes([2, 0b01]), 0).events == (("off_hook", None),)


def test_keypad_array_straddles_a_byte_and_reads_its_keys():
    """P9: a 4-bit keypad array at data bits 7..10 (Jabra BIZ 2400 II: null state 12)."""
    layout = telephony_layout(descriptor("jabra-biz-2400-ii"))
    keypad = [c for c in layout.inputs if c.is_array]
    assert [(c.bit, c.size, c.logical_max, c.null) for c in keypad] == [(7, 4, 12, True)]
    tracker = TelephonyTracker(layout)
    tracker.feed(bytes([2, 0x00, 0x06]), 0)  # baseline: null (12 = 0b1100 at bits 7..10)
    key7 = (7 << 7).to_bytes(2, "little")
    assert tracker.feed(bytes([2]) + key7, 1).events == (("key", "7"),)


def test_malformed_descriptors_give_warnings_not_exceptions():
    assert decode(bytes.fromhex("05 0b 09 05 a1 01 85 00")).warnings  # report ID 0
    assert decode(bytes.fromhex("05 0b 09 05 a1 01 75")).warnings  # cut inside an item
    assert decode(bytes.fromhex("c0")).warnings  # end without a collection
    assert decode(bytes.fromhex("b4")).warnings  # pop without push


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400), st.lists(st.binary(max_size=12), max_size=20))
def test_random_descriptors_and_reports_never_raise(data, reports):
    d = decode(data)
    describe(d)
    for mirror in (False, True):
        layout = telephony_layout(d, mirror=mirror)
        if layout is not None:
            tracker = TelephonyTracker(layout, drive_leds=True)
            for i, report in enumerate(reports):
                tracker.feed(report, float(i))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(EXPECTED)), st.lists(st.binary(min_size=1, max_size=4), max_size=30))
def test_random_reports_on_real_layouts_never_raise(name, reports):
    layout = telephony_layout(descriptor(name))
    tracker = TelephonyTracker(layout, drive_leds=True)
    report_ids = sorted({c.report_id for c in layout.inputs})
    for i, report in enumerate(reports):
        tracker.feed(bytes([report_ids[report[0] % len(report_ids)]]) + report[1:], i * 0.1)
