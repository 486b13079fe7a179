"""Sans-I/O HID report-descriptor decoder (HID 1.11 section 6.2.2), read as Linux reads it.

Theory of operation
-------------------
A descriptor is a list of items: *global* items (usage page, logical range, report size,
count and ID, push/pop) set state that lasts; *local* items (usages, usage ranges) describe
the next *main* item only; main items (Input, Output, Feature, Collection, End Collection)
declare fields and collections and clear the local state.

Where the spec leaves room, this decoder does what Linux's hid-core does, because that is
what headsets are tested against:

* a 1- or 2-byte usage takes the usage page current when it is declared; at the main item
  the usages declared before the last Usage Page change take that page, back to the first
  usage already on it (``hid_concatenate_last_usage_page``: Jabra's ``09 07 05 09 ... 81``
  is Button 7, EPOS's ``09 07 05 09 09 01 81`` keeps Telephony 7 then Button 1);
* a 4-byte usage is extended (page in the high 16 bits) and never re-paged;
* Logical Maximum is signed only when Logical Minimum is negative;
* a variable field with fewer usages than values repeats the last usage;
* bit offsets run per (report type, report ID), the ID byte not counted;
* a field without usages is padding, Constant or not; a Constant field *with* usages is
  kept (Jabra flags hook and mute Constant and still reports them).

It never raises: a malformed descriptor gives the fields read up to the fault and a
warning naming it. Work and memory are bounded by the descriptor's length and
:data:`MAX_USAGES`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Linux's HID_MAX_USAGES: usages one main item may carry (ranges are cut here).
MAX_USAGES = 12288
#: Linux's HID_MAX_IDS: report IDs run from 1 to 255.
MAX_REPORT_ID = 255
#: Nesting deeper than this is a broken descriptor (Linux allows 8 push levels).
MAX_DEPTH = 64

INPUT, OUTPUT, FEATURE = "input", "output", "feature"
_MAIN_KINDS = {0x8: INPUT, 0x9: OUTPUT, 0xB: FEATURE}

# Main item data bits (HID 1.11 6.2.2.5).
CONSTANT, VARIABLE, RELATIVE, WRAP, NONLINEAR, NO_PREFERRED, NULL_STATE, VOLATILE, BUFFERED = \
    (1 << bit for bit in range(9))

APPLICATION = 1  # collection type


@dataclass(frozen=True, slots=True)
class Field:
    """One Input, Output or Feature main item: ``count`` values of ``size`` bits from
    ``bit`` (counted from the first byte after the report ID). ``usages`` are extended
    (page << 16 | id): one per value for a variable field, the selectable list for an
    array. ``application`` is the usage of its top-level collection."""

    kind: str
    report_id: int
    bit: int
    size: int
    count: int
    flags: int
    usages: tuple[int, ...]
    logical_min: int
    logical_max: int
    application: int
    collections: tuple[int, ...]

    @property
    def is_variable(self) -> bool:
        return bool(self.flags & VARIABLE)

    @property
    def is_relative(self) -> bool:
        return bool(self.flags & RELATIVE)

    @property
    def is_constant(self) -> bool:
        return bool(self.flags & CONSTANT)

    @property
    def has_preferred_state(self) -> bool:
        return not self.flags & NO_PREFERRED

    @property
    def has_null(self) -> bool:
        return bool(self.flags & NULL_STATE)


@dataclass(frozen=True, slots=True)
class Collection:
    """A collection: its type (1 application, 2 logical, ...), usage and depth (0: top)."""

    type: int
    usage: int
    depth: int


@dataclass(frozen=True, slots=True)
class Descriptor:
    """What a report descriptor declares."""

    fields: tuple[Field, ...]
    collections: tuple[Collection, ...]
    uses_report_ids: bool
    #: Bits of each (kind, report ID) report, padding included, the ID byte not counted.
    report_bits: dict[tuple[str, int], int]
    warnings: tuple[str, ...] = ()

    def report_bytes(self, kind: str, report_id: int) -> int:
        """Data bytes of a report (the ID byte not counted)."""
        return (self.report_bits.get((kind, report_id), 0) + 7) // 8


@dataclass(slots=True)
class _Globals:
    usage_page: int = 0
    logical_min: int = 0
    logical_max: int = 0
    report_size: int = 0
    report_count: int = 0
    report_id: int = 0


@dataclass(slots=True)
class _Locals:
    usages: list[int] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    usage_min: int = 0


def _unsigned(data: bytes) -> int:
    return int.from_bytes(data, "little")


def _signed(data: bytes) -> int:
    return int.from_bytes(data, "little", signed=True) if data else 0


def decode(data: bytes) -> Descriptor:
    """The fields, collections and report sizes a report descriptor declares."""
    g, local = _Globals(), _Locals()
    stack: list[_Globals] = []
    open_collections: list[Collection] = []
    collections: list[Collection] = []
    fields: list[Field] = []
    sizes: dict[tuple[str, int], int] = {}
    warnings: list[str] = []
    uses_ids = False
    at = 0
    while at < len(data):
        prefix = data[at]
        if prefix == 0xFE:  # long item: size, tag, data; none is defined, so skip it
            if at + 2 >= len(data):
                warnings.append(f"long item at byte {at} runs past the end")
                break
            at += 3 + data[at + 1]
            continue
        size = (0, 1, 2, 4)[prefix & 3]
        if at + 1 + size > len(data):
            warnings.append(f"item 0x{prefix:02x} at byte {at} runs past the end")
            break
        item = data[at + 1:at + 1 + size]
        kind, tag = (prefix >> 2) & 3, prefix >> 4
        at += 1 + size
        if kind == 1:  # global
            if tag == 0x0:
                g.usage_page = _unsigned(item) & 0xFFFF
            elif tag == 0x1:
                g.logical_min = _signed(item)
            elif tag == 0x2:
                g.logical_max = _signed(item) if g.logical_min < 0 else _unsigned(item)
            elif tag == 0x7:
                g.report_size = _unsigned(item)
            elif tag == 0x8:
                report_id = _unsigned(item)
                if not 1 <= report_id <= MAX_REPORT_ID:
                    warnings.append(f"report ID {report_id} at byte {at - 1 - size} is out of 1..255")
                    break
                g.report_id, uses_ids = report_id, True
            elif tag == 0x9:
                g.report_count = _unsigned(item)
            elif tag == 0xA:
                if len(stack) >= MAX_DEPTH:
                    warnings.append("push nested too deep")
                    break
                stack.append(_Globals(**{k: getattr(g, k) for k in g.__slots__}))
            elif tag == 0xB:
                if not stack:
                    warnings.append(f"pop without push at byte {at - 1 - size}")
                    break
                g = stack.pop()
        elif kind == 2:  # local
            if tag == 0x0:
                _add_usage(local, g, _unsigned(item), size)
            elif tag == 0x1:
                local.usage_min = _unsigned(item)
            elif tag == 0x2:
                first, last = local.usage_min, _unsigned(item)
                if last < first or last - first + len(local.usages) >= MAX_USAGES:
                    warnings.append(f"usage range 0x{first:x}..0x{last:x} is empty or too long")
                    last = min(last, first + MAX_USAGES - len(local.usages) - 1)
                for usage in range(first, last + 1):
                    _add_usage(local, g, usage, size)
        elif kind == 0:  # main
            _concatenate_last_usage_page(local, g)
            if tag == 0xA:  # Collection
                if len(open_collections) >= MAX_DEPTH:
                    warnings.append("collections nested too deep")
                    break
                collection = Collection(_unsigned(item) & 0xFF, local.usages[0] if local.usages else 0,
                                        len(open_collections))
                open_collections.append(collection)
                collections.append(collection)
            elif tag == 0xC:  # End Collection
                if not open_collections:
                    warnings.append(f"end of collection without one open at byte {at - 1 - size}")
                    break
                open_collections.pop()
            elif tag in _MAIN_KINDS:
                main = _MAIN_KINDS[tag]
                key = (main, g.report_id)
                offset = sizes.get(key, 0)
                bits = g.report_size * g.report_count
                sizes[key] = offset + bits
                if local.usages and g.report_count and g.report_size:
                    flags = _unsigned(item)
                    usages = tuple(local.usages)
                    if flags & VARIABLE:
                        count = min(g.report_count, MAX_USAGES)
                        usages = (usages + (usages[-1],) * count)[:count]
                    top = open_collections[0].usage if open_collections else 0
                    fields.append(Field(main, g.report_id, offset, g.report_size, g.report_count, flags,
                                        usages, g.logical_min, g.logical_max, top,
                                        tuple(c.usage for c in open_collections)))
            local = _Locals()
    if open_collections:
        warnings.append(f"{len(open_collections)} collection(s) not closed")
    return Descriptor(tuple(fields), tuple(collections), uses_ids, sizes, tuple(warnings))


def _add_usage(local: _Locals, g: _Globals, usage: int, size: int) -> None:
    if len(local.usages) >= MAX_USAGES:
        return
    if size <= 2:
        usage = (g.usage_page << 16) | (usage & 0xFFFF)
    local.usages.append(usage)
    local.sizes.append(size)


def _concatenate_last_usage_page(local: _Locals, g: _Globals) -> None:
    """Usages declared before the last Usage Page change take that page, walking back to
    the first one already on it; extended usages keep theirs."""
    for i in range(len(local.usages) - 1, -1, -1):
        if local.sizes[i] > 2:
            continue
        if local.usages[i] >> 16 == g.usage_page:
            break
        local.usages[i] = (g.usage_page << 16) | (local.usages[i] & 0xFFFF)
