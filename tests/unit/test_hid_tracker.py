"""The telephony tracker: states by HID flags, one-shots, LED acknowledgement and its echo guard."""

from gateway.edge.headsets import recording
from gateway.edge.headsets.descriptor import decode
from gateway.edge.headsets.layout import telephony_layout
from gateway.edge.headsets.telephony import TelephonyTracker
from helpers import FIXTURES


def layout(name):
    return telephony_layout(decode(recording.load(FIXTURES / "hid" / f"{name}.hid").descriptor))


def feed(tracker, *reports, start=0.0, step=1.0):
    return [tracker.feed(bytes.fromhex(r), start + i * step) for i, r in enumerate(reports)]


def test_jabra_acknowledges_each_state_with_its_whole_led_report():
    """P1/P4: Off-Hook, Mute and Microphone LEDs share output report 2; each write carries all."""
    tracker = TelephonyTracker(layout("jabra-evolve-link-ms"), drive_leds=True)
    off, mute, release, unhook = feed(tracker, "020100", "020500", "020100", "020000")
    assert off.writes == (bytes.fromhex("020100"),)
    assert mute.events == (("mute_on", None),) and mute.writes == (bytes.fromhex("021300"),)  # 0x13: bits 0, 1, 4
    assert release.events == () and release.writes == ()
    assert unhook.events == (("on_hook", None), ("mute_off", None)) and unhook.writes == (bytes.fromhex("020000"),)


def test_poly_writes_each_led_in_its_own_report():
    tracker = TelephonyTracker(layout("plantronics-blackwire-c5220"), drive_leds=True)
    off, mute = feed(tracker, "0802", "0803")
    assert off.writes == (bytes.fromhex("1701"),)  # report 23: Off-Hook
    assert mute.writes == (bytes.fromhex("0901"),)  # report 9: Mute


def test_hook_reports_echoing_an_off_hook_write_are_ignored_for_the_guard_interval():
    """P3: after writing Off-Hook, a device may echo a hook report; it must not end the call."""
    tracker = TelephonyTracker(layout("jabra-evolve-link-ms"), drive_leds=True, guard_s=0.5)
    assert tracker.feed(bytes.fromhex("020100"), 10.0).events == (("off_hook", None),)
    assert tracker.feed(bytes.fromhex("020000"), 10.2).events == ()  # the echo, within the guard
    assert tracker.feed(bytes.fromhex("020100"), 10.9).events == ()  # still off-hook: no change
    assert tracker.feed(bytes.fromhex("020000"), 11.0).events == (("on_hook", None),)


def test_without_driving_leds_nothing_is_written_and_no_guard_applies():
    tracker = TelephonyTracker(layout("jabra-evolve-link-ms"))
    updates = feed(tracker, "020100", "020000", step=0.01)
    assert [u.events for u in updates] == [(("off_hook", None),), (("on_hook", None),)]
    assert all(u.writes == () for u in updates)


def test_a_hook_switch_that_is_off_hook_in_the_first_report_is_an_off_hook():
    tracker = TelephonyTracker(layout("poly-bt700"))
    assert tracker.feed(bytes.fromhex("2001"), 0).events == (("off_hook", None),)


def test_one_shots_need_a_press_after_the_first_report():
    tracker = TelephonyTracker(layout("plantronics-blackwire-c5220"))
    down_at_start, up, press, repeat, release = feed(tracker, "0808", "0800", "0808", "0808", "0800")
    assert down_at_start.events == () and up.events == ()  # down in the first report: a baseline
    assert press.events == (("redial", None),)
    assert repeat.events == () and release.events == ()


def test_on_off_button_pairs_turn_a_state_on_and_off():
    """HUT 3.4.1.2: a relative control without a preferred state, -1..1."""
    data = bytes.fromhex("05 0b 09 05 a1 01 85 01 15 ff 25 01 75 02 95 01 09 2f 81 46 75 06 81 01 c0")
    tracker = TelephonyTracker(telephony_layout(decode(data)))
    on, rest, off = feed(tracker, "0101", "0100", "0103")  # +1, 0, -1 (two bits: 0b11)
    assert on.events == (("mute_on", None),) and rest.events == () and off.events == (("mute_off", None),)


def test_reports_of_other_ids_and_short_reports_give_nothing():
    tracker = TelephonyTracker(layout("poly-bt700"))
    assert tracker.feed(b"", 0).events == ()
    assert tracker.feed(b"\x20", 0).events == ()
    assert tracker.feed(bytes.fromhex("0101"), 0).events == ()  # report 1 is not telephony here
