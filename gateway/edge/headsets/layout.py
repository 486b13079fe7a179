"""The telephony controls of a decoded descriptor: which bits of which report carry the
hook switch, mute, keys and buttons, and which output bits drive the LEDs.

A headset's interface usually declares several top-level collections (telephony,
consumer, vendor pages). The telephony collection is found by its usage (Telephony
Headset or Phone), never by position; a vendor mirror of it (page 0xFF30) can be chosen
instead, as some vendor software does to share the device with other applications.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.edge.headsets import usages
from gateway.edge.headsets.descriptor import INPUT, OUTPUT, Descriptor, Field

#: Application collections that hold telephony controls: Telephony Headset and Phone.
STANDARD = (0x000B0005, 0x000B0001)
#: The vendor page that mirrors the telephony page (Jabra, Yealink).
MIRROR_PAGE = 0xFF30


@dataclass(frozen=True, slots=True)
class Control:
    """One control: a variable (``usage``) or an array (``choices``, selected by value)."""

    kind: str
    report_id: int
    bit: int  # from the first byte after the report ID
    size: int
    usage: int
    choices: tuple[int, ...]
    relative: bool
    preferred: bool
    constant: bool
    null: bool
    logical_min: int
    logical_max: int

    @property
    def is_array(self) -> bool:
        return bool(self.choices)

    def value(self, payload: int) -> int:
        """This control's value in a report's data bytes read as one little-endian integer."""
        raw = (payload >> self.bit) & ((1 << self.size) - 1)
        if self.logical_min < 0 and raw >> (self.size - 1):
            raw -= 1 << self.size
        return raw

    def selected(self, value: int) -> int | None:
        """The usage an array value selects, or None (out of range: no control)."""
        index = value - self.logical_min
        if not self.logical_min <= value <= self.logical_max or not 0 <= index < len(self.choices):
            return None
        return self.choices[index]


@dataclass(frozen=True, slots=True)
class TelephonyLayout:
    """The controls of one telephony collection."""

    application: int
    inputs: tuple[Control, ...]
    outputs: tuple[Control, ...]
    uses_report_ids: bool
    output_bytes: dict[int, int]  # output report ID -> data bytes


def controls(field: Field) -> list[Control]:
    """A field as controls: one per value of a variable, one per slot of an array."""
    common = dict(kind=field.kind, report_id=field.report_id, size=field.size, relative=field.is_relative,
                  preferred=field.has_preferred_state, constant=field.is_constant, null=field.has_null,
                  logical_min=field.logical_min, logical_max=field.logical_max)
    if field.is_variable:
        return [Control(bit=field.bit + i * field.size, usage=usage, choices=(), **common)
                for i, usage in enumerate(field.usages)]
    return [Control(bit=field.bit + i * field.size, usage=0, choices=field.usages, **common)
            for i in range(min(field.count, 64))]


def applications(descriptor: Descriptor) -> list[int]:
    """Usages of the top-level application collections, in order."""
    return [c.usage for c in descriptor.collections if c.depth == 0 and c.type == 1]


def is_telephony(application: int) -> bool:
    return application in STANDARD or application >> 16 == MIRROR_PAGE


def telephony_layout(descriptor: Descriptor, mirror: bool = False) -> TelephonyLayout | None:
    """The standard telephony collection's controls (or its vendor mirror's), or None when
    the descriptor has none."""
    wanted = (lambda app: app >> 16 == MIRROR_PAGE) if mirror else (lambda app: app in STANDARD)
    apps = [app for app in applications(descriptor) if wanted(app)]
    if not apps:
        return None
    fields = [f for f in descriptor.fields if f.application == apps[0]]
    inputs = tuple(c for f in fields if f.kind == INPUT for c in controls(f))
    outputs = tuple(c for f in fields if f.kind == OUTPUT for c in controls(f))
    ids = {c.report_id for c in outputs}
    return TelephonyLayout(apps[0], inputs, outputs, descriptor.uses_report_ids,
                           {i: descriptor.report_bytes(OUTPUT, i) for i in ids})


def describe(descriptor: Descriptor) -> dict:
    """The telephony controls per report, as ``pbxgw hid describe --json`` prints them
    (documented in docs/headsets.md)."""
    apps = applications(descriptor)
    reports: dict[tuple[str, int], list[dict]] = {}
    for field in descriptor.fields:
        if not is_telephony(field.application) or field.kind == "feature":
            continue
        for c in controls(field):
            entry = {
                "bit": c.bit, "byte": (1 if descriptor.uses_report_ids else 0) + c.bit // 8, "bit_in_byte": c.bit % 8,
                "size": c.size, "relative": c.relative, "preferred": c.preferred, "constant": c.constant,
                "null": c.null, "min": c.logical_min, "max": c.logical_max,
            }
            if c.is_array:
                entry["array"] = [usages.name(u) for u in c.choices]
            else:
                entry["usage"] = usages.name(c.usage)
            reports.setdefault((field.kind, field.report_id), []).append(entry)
    return {
        "applications": [usages.name(a) for a in apps],
        "telephony": any(a in STANDARD for a in apps),
        "reports": [{"kind": kind, "id": report_id, "application": _application_of(descriptor, kind, report_id),
                     "bytes": descriptor.report_bytes(kind, report_id), "controls": entries}
                    for (kind, report_id), entries in sorted(reports.items(), key=lambda kv: (kv[0][0] != INPUT, kv[0]))],
        "warnings": list(descriptor.warnings),
    }


def _application_of(descriptor: Descriptor, kind: str, report_id: int) -> str:
    apps = {f.application for f in descriptor.fields if f.kind == kind and f.report_id == report_id
            and is_telephony(f.application)}
    return ", ".join(sorted(usages.name(a) for a in apps))


def describe_text(described: dict) -> list[str]:
    """The lines ``pbxgw hid describe`` prints."""
    lines = ["applications: " + ", ".join(described["applications"])]
    if not described["reports"]:
        lines.append("no telephony controls")
    for report in described["reports"]:
        lines.append(f"{report['kind']} report {report['id']} ({report['application']}, {report['bytes']} data bytes)")
        for c in report["controls"]:
            where = f"buf[{c['byte']}] bit{c['bit_in_byte']}" if c["size"] == 1 else \
                f"bits {c['bit']}..{c['bit'] + c['size'] - 1}"
            what = c.get("usage") or "array of " + (", ".join(c["array"]) if len(c["array"]) <= 4
                                                    else f"{c['array'][0]}..{c['array'][-1]} ({len(c['array'])})")
            flags = ["Const"] if c["constant"] else []
            flags += ["Rel" if c["relative"] else "Abs", "Pref" if c["preferred"] else "NoPref"]
            flags += ["Null"] if c["null"] else []
            lines.append(f"  {where:16} {what} [{','.join(flags)},{c['min']}..{c['max']}]")
    lines += [f"warning: {w}" for w in described["warnings"]]
    return lines
