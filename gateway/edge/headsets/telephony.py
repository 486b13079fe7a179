"""Sans-I/O telephony tracker: a headset's input reports in, agent events out, and, when
the gateway drives the headset's LEDs, the output reports to write back.

Theory of operation
-------------------
``feed(report, now)`` reads every control of the report's ID from the layout the
descriptor declared (never from fixed positions: they differ per vendor) and compares it
with the previous report of that ID:

* A report equal to the previous one of its ID is a repeat (devices resend) and gives
  nothing.
* The hook switch and mute are *states*. How a control changes a state follows its HID
  flags (HUT 3.4.1.2): an absolute control is a level (the value is the state: the hook
  switch of every headset in the corpus); a relative one with a preferred state is a
  toggle button (a press, 0 -> 1, flips the state: the mute of every headset); a relative
  one without a preferred state and a -1..1 range is an on/off button pair. A state that
  changes gives ``off_hook``/``on_hook`` or ``mute_on``/``mute_off``; going on-hook also
  ends mute (the call it applied to is over).
* Flash, redial and line are one-shots: a press (0 -> non-zero) is the event. Other
  buttons (programmable, speed dial, drop, Button page...) give ``button`` with the
  usage's name; a keypad array gives ``key`` with the key, when its value changes to a
  key. An array without a null value (Jabra EVOLVE, Yealink) idles at its first value, so
  a change back to it is a release, not a press of that key.
* The first report of an ID is the baseline for one-shots and arrays (a keypad without a
  null value reads "key 0" when idle); states take their level from it.
* Tones, the ringer and consumer controls (volume, play) are not agent events: ignored.

When the gateway drives the LEDs (``drive_leds``), every state change is acknowledged
by writing the Off-Hook, Mute and Microphone LEDs (Jabra and others revert a request
that is not acknowledged). A device packs several LEDs into one output report, so the
whole report is written from a shadow of all its bits. After an Off-Hook write, hook
reports are ignored for ``guard_s`` seconds: some devices echo the write as a hook report,
which would otherwise end or restart the call.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.edge.headsets import usages
from gateway.edge.headsets.layout import Control, TelephonyLayout

_TEL, _LED, _BUTTON = usages.TELEPHONY << 16, usages.LED << 16, usages.BUTTON << 16
HOOK, MUTE = _TEL | 0x20, _TEL | 0x2F

#: The states and their events (on, off).
STATES = {HOOK: ("off_hook", "on_hook"), MUTE: ("mute_on", "mute_off")}
#: One-shot controls and their events.
ONE_SHOTS = {_TEL | 0x21: "flash", _TEL | 0x24: "redial", _TEL | 0x2A: "line"}
#: Telephony usages that are not agent actions: tones, the ringer, the keypad collection.
IGNORED = {_TEL | u for u in (0x06, 0x9E, *range(0x90, 0x9E))}
#: The LEDs that show each state.
STATE_LEDS = {HOOK: (_LED | 0x17,), MUTE: (_LED | 0x09, _LED | 0x21)}

#: Agent events, in the order docs/events.md lists them.
EVENTS = ("connected", "disconnected", "off_hook", "on_hook", "mute_on", "mute_off",
          "flash", "redial", "line", "key", "button")


@dataclass(frozen=True, slots=True)
class Update:
    """What one report gave: events ``(ev, detail)`` and output reports to write."""

    events: tuple[tuple[str, str | None], ...] = ()
    writes: tuple[bytes, ...] = ()


def _standard(usage: int) -> int:
    """A vendor mirror usage read as the standard usage it mirrors."""
    return (usages.page_of(usage) << 16) | (usage & 0xFFFF)


class TelephonyTracker:
    """The agent state of one headset, from its input reports."""

    def __init__(self, layout: TelephonyLayout, drive_leds: bool = False, guard_s: float = 0.5):
        self._layout, self._drive_leds, self._guard_s = layout, drive_leds, guard_s
        self._inputs: dict[int, list[Control]] = {}
        for control in layout.inputs:
            self._inputs.setdefault(control.report_id, []).append(control)
        self._last: dict[int, bytes] = {}
        self._values: dict[Control, int] = {}
        self.state = {HOOK: False, MUTE: False}
        self._shadow = {rid: bytearray(size) for rid, size in layout.output_bytes.items()}
        self._guard_until = float("-inf")

    def feed(self, report: bytes, now: float) -> Update:
        """The events of one input report (as hidraw reads it: the report ID first when
        the device numbers its reports), received at ``now`` (seconds, monotonic)."""
        numbered = self._layout.uses_report_ids
        if not report or (numbered and len(report) < 2):
            return Update()
        report_id, payload = (report[0], report[1:]) if numbered else (0, report)
        controls = self._inputs.get(report_id)
        if controls is None or self._last.get(report_id) == payload:
            return Update()
        first = report_id not in self._last
        self._last[report_id] = payload
        number = int.from_bytes(payload, "little")
        events: list[tuple[str, str | None]] = []
        for control in controls:
            value = control.value(number)
            previous = self._values.get(control)
            self._values[control] = value
            if control.is_array:
                if not first and value != previous:
                    events += self._selection(control, value)
                continue
            usage = _standard(control.usage)
            if usage in STATES:
                if usage == HOOK and now < self._guard_until:
                    continue  # the device echoing our Off-Hook write
                events += self._state(usage, control, previous or 0, value)
            elif not first and value and not previous:
                events += self._press(usage, control.usage)
        return Update(tuple(events), self._acknowledge(events, now))

    def _state(self, usage: int, control: Control, previous: int, value: int) -> list[tuple[str, None]]:
        if not control.relative:
            new = bool(value)  # a level
        elif control.preferred:
            if not value or previous:
                return []  # a toggle button acts on the press only
            new = not self.state[usage]
        elif value:
            new = value > 0  # on/off buttons: +1 on, -1 off
        else:
            return []
        if new == self.state[usage]:
            return []
        self.state[usage] = new
        on, off = STATES[usage]
        events: list[tuple[str, None]] = [(on if new else off, None)]
        if usage == HOOK and not new and self.state[MUTE]:
            self.state[MUTE] = False
            events.append(("mute_off", None))
        return events

    def _press(self, usage: int, declared: int) -> list[tuple[str, str | None]]:
        if usage in ONE_SHOTS:
            return [(ONE_SHOTS[usage], None)]
        if usage in usages.KEYS_EXTENDED:
            return [("key", usages.KEYS_EXTENDED[usage])]
        if usage in IGNORED or usage >> 16 not in (usages.TELEPHONY, usages.BUTTON):
            return []
        return [("button", usages.name(declared))]

    def _selection(self, control: Control, value: int) -> list[tuple[str, str | None]]:
        if not control.null and value == control.logical_min:
            return []  # without a null value the idle value reads as the first key: a release
        selected = control.selected(value)
        return [] if selected is None else self._press(_standard(selected), selected)

    def _acknowledge(self, events: list, now: float) -> tuple[bytes, ...]:
        """The LED reports that show the new states, when the gateway drives the LEDs."""
        if not self._drive_leds or not any(ev in STATES[HOOK] + STATES[MUTE] for ev, _ in events):
            return ()
        wanted = {led: self.state[state] for state, leds in STATE_LEDS.items() for led in leds}
        changed: set[int] = set()
        for control in self._layout.outputs:
            led = _standard(control.usage)
            if control.is_array or led not in wanted or control.report_id not in self._shadow:
                continue
            shadow = self._shadow[control.report_id]
            number = int.from_bytes(shadow, "little")
            mask = ((1 << control.size) - 1) << control.bit
            updated = (number & ~mask) | ((int(wanted[led]) << control.bit) & mask)
            if updated != number:
                shadow[:] = updated.to_bytes(len(shadow), "little")
                changed.add(control.report_id)
                if led == _LED | 0x17:
                    self._guard_until = now + self._guard_s
        prefix = (lambda rid: bytes((rid,))) if self._layout.uses_report_ids else (lambda rid: b"\0")
        return tuple(prefix(rid) + bytes(self._shadow[rid]) for rid in sorted(changed))
