"""Names of the HID usages a telephony headset uses (HID Usage Tables: Telephony Device
page 0x0B, LED page 0x08, Consumer page 0x0C, Button page 0x09), and the vendor pages that
mirror them."""

from __future__ import annotations

TELEPHONY, LED, CONSUMER, BUTTON = 0x0B, 0x08, 0x0C, 0x09

PAGES = {0x01: "GD", LED: "LED", BUTTON: "Button", TELEPHONY: "Tel", CONSUMER: "Cons"}

#: Vendor pages that mirror the telephony page (Jabra and Yealink 0xFF30) and the LED
#: page (0xFF40), so vendor software need not share the standard collection.
MIRRORS = {0xFF30: TELEPHONY, 0xFF40: LED}

NAMES = {
    TELEPHONY: {
        0x01: "Phone", 0x05: "Headset", 0x06: "KeyPad", 0x07: "ProgrammableButton",
        0x20: "HookSwitch", 0x21: "Flash", 0x22: "Feature", 0x23: "Hold", 0x24: "Redial",
        0x25: "Transfer", 0x26: "Drop", 0x27: "Park", 0x28: "ForwardCalls", 0x2A: "Line",
        0x2B: "SpeakerPhone", 0x2C: "Conference", 0x2D: "RingEnable", 0x2F: "PhoneMute",
        0x30: "CallerID", 0x31: "Send", 0x50: "SpeedDial", 0x70: "VoiceMail",
        0x72: "DoNotDisturb", 0x74: "AnswerOnOff", 0x97: "LineBusyTone", 0x9E: "Ringer",
        **{0xB0 + d: f"Key{d}" for d in range(10)}, 0xBA: "KeyStar", 0xBB: "KeyPound",
    },
    LED: {0x09: "Mute", 0x17: "OffHook", 0x18: "Ring", 0x1E: "Speaker", 0x20: "Hold",
          0x21: "Microphone", 0x2A: "OnLine"},
    CONSUMER: {0x01: "ConsumerControl", 0xB0: "Play", 0xB1: "Pause", 0xB3: "FastForward",
               0xB4: "Rewind", 0xB5: "NextTrack", 0xB6: "PreviousTrack", 0xB7: "Stop",
               0xCD: "PlayPause", 0xE2: "Mute", 0xE9: "VolumeUp", 0xEA: "VolumeDown"},
}

#: Keypad usages (Telephony Key0..Key9, *, #, extended) -> the key they stand for.
KEYS_EXTENDED = {(TELEPHONY << 16) | u: key for u, key in
                 [*((0xB0 + d, str(d)) for d in range(10)), (0xBA, "*"), (0xBB, "#")]}


def page_of(usage: int) -> int:
    """The page of an extended usage, with a vendor mirror read as the page it mirrors."""
    page = usage >> 16
    return MIRRORS.get(page, page)


def name(usage: int) -> str:
    """``Tel:HookSwitch``, ``LED:Mute``, ``Button:0x07``, ``FF30:HookSwitch``, ``FF99:0x0003``."""
    page, ident = usage >> 16, usage & 0xFFFF
    known = NAMES.get(MIRRORS.get(page, page), {}).get(ident)
    prefix = PAGES.get(page, f"{page:04X}")
    return f"{prefix}:{known}" if known else f"{prefix}:0x{ident:02X}"
