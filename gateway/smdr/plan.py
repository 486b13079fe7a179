"""A profile as the compiled engine's tables: what its C path does with each record.

Theory of operation
-------------------
The compiled engine (``gateway.smdr._smdr_c``) reads a record with no Python object for what
repeats: it needs the profile as flat tables of small integers, which it copies into C
arrays once. They are made here, in plain Python, so that what the C path will do with
a profile is decided (and tested) without a compiler:

* the layout: per variant its length limit, the pattern that chooses it (if any; the one
  Python object a record may meet there) and its column slices (fixed width) or field
  indexes (delimited);
* each ``[fields]`` conversion: its target, column, code and cache;
* each rule: its column patterns as operations (a pattern the C path can answer by
  itself, a groupless pattern whose answer is cached per text, or a regex run after its
  quick test, see :mod:`gateway.smdr.quick`) and its settings;
* the caches: dates and times (filled by the reference's functions), one per duration
  format and one per groupless pattern.

A target is an event field's slot (its index in :data:`FILLED`) or, from
:data:`TARGET_X` on, a vendor field. :attr:`Plan.supported` is false for what the C path
never reads (a multi-byte delimiter, IPv4 fields, lines that continue a record):
the reference then reads every record of the profile. (Nor a field less another, or one
with an ``else`` column: the profiles with those, Asterisk's, FreeSWITCH's and 3CX's,
quote their fields, which the C path leaves to the reference anyway.)
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from gateway.smdr.quick import quick_test
from gateway.wire.events import CallEvent

_CALL_KEYS = [f.name for f in dataclasses.fields(CallEvent)]
#: The call fields a profile fills, in wire order (after ``start``, before ``raw``).
FILLED = tuple(_CALL_KEYS[_CALL_KEYS.index("start") + 1:_CALL_KEYS.index("raw")])

# Conversion codes.
CONV_TEXT, CONV_INT, CONV_DURATION = 0, 1, 2
_CONVERSIONS = {"text": CONV_TEXT, "int": CONV_INT}  # any other format but ipv4-le: a duration

# Rule operations.
OP_ANY = 0       # (?P<g>.*): the column, captured
OP_NONEMPTY = 1  # (?P<g>.+): a non-empty column, captured
OP_PREFIX = 2    # LITERAL(?P<g>.+) or LITERAL(?P<g>.*): the rest, captured
OP_PLAIN = 3     # no groups: the answer per column text, cached
OP_REGEX = 4     # the regex runs, unless its quick test rules the text out

#: Targets from here on are vendor fields (``x``).
TARGET_X = 100
#: The caches of dates and times (the others follow).
DATE_CACHE, TIME_CACHE = 0, 1


@dataclass
class Plan:
    """The tables of one profile (see the module's docstring)."""

    supported: bool = True
    fixed: bool = False
    n_columns: int = 0
    var_max: list[int] = field(default_factory=list)  # per variant, -1: no limit
    var_pos: list[int] = field(default_factory=list)  # per variant and column: (start, end) or (index, index)
    var_match: list[re.Pattern | None] = field(default_factory=list)  # per variant, the pattern that chooses it
    delimiter: int = 0
    quote: int = -1
    min_fields: int = 0
    conversions: list[tuple[int, int, int, int]] = field(default_factory=list)  # target, column, code, cache
    ops: list[tuple[int, int, int, int, int, int]] = field(default_factory=list)  # column, kind, target, plus, cache, index
    sets: list[tuple[int, int]] = field(default_factory=list)  # target, constant (-1: null)
    rules: list[tuple[int, int, int, int]] = field(default_factory=list)  # first op, ops, first set, sets
    caches: list = field(default_factory=lambda: [None, None])  # per cache: None, a duration format or a pattern
    patterns: list[re.Pattern] = field(default_factory=list)  # OP_PLAIN and OP_REGEX patterns, by index
    quick: list[tuple[bytes | None, bytes]] = field(default_factory=list)  # their quick tests
    regex_targets: list[dict[str, int]] = field(default_factory=list)  # their groups' targets
    prefixes: list[bytes] = field(default_factory=list)  # OP_PREFIX literals, by index
    consts: list[str] = field(default_factory=list)
    x_names: list[str] = field(default_factory=list)
    skip_required: list[bytes] = field(default_factory=list)  # per skip pattern, text a match contains

    @property
    def found_most(self) -> int:
        """The most values one rule can find (its settings and captures)."""
        return max([n_sets + sum(1 if self.ops[i][1] != OP_REGEX else len(self.regex_targets[self.ops[i][5]])
                                 for i in range(first, first + n_ops))
                    for first, n_ops, _, n_sets in self.rules] or [0])

    def target(self, name: str) -> int:
        """An event field's slot, or a vendor field's target (``x_`` names)."""
        if not name.startswith("x_"):
            return FILLED.index(name)
        if name[2:] not in self.x_names:
            self.x_names.append(name[2:])
        return TARGET_X + self.x_names.index(name[2:])

    def cache(self, how) -> int:
        self.caches.append(how)
        return len(self.caches) - 1


def plan(profile) -> Plan:
    """The tables of ``profile`` (a :class:`~gateway.smdr.profile.PbxProfile`)."""
    layout, out = profile.layout, Plan()
    out.skip_required = [quick_test(p)[1] for p in profile.framing.skip]
    out.supported = all(spec.format != "ipv4-le" and spec.minus is None and spec.otherwise is None for spec in profile.fields) \
        and not profile.framing.continuation and (layout.kind == "fixed" or (len(layout.delimiter) == 1 and layout.delimiter.isascii()
                                       and (not layout.quote or layout.quote.isascii())))
    if not out.supported:
        return out
    out.fixed, out.n_columns = layout.kind == "fixed", len(layout.columns)
    for variant in layout.variants:
        out.var_max.append(-1 if variant.max_length is None else variant.max_length)
        out.var_match.append(variant.match)
        for position in variant.positions:
            out.var_pos.extend(position if out.fixed else (position, position))
    if not out.fixed:
        out.delimiter, out.quote = ord(layout.delimiter), ord(layout.quote) if layout.quote else -1
        out.min_fields = layout.min_fields
    for spec in profile.fields:
        code = _CONVERSIONS.get(spec.format, CONV_DURATION)
        out.conversions.append((out.target(spec.target), spec.column, code,
                                out.cache(spec.format) if code == CONV_DURATION else -1))
    for rule in profile.rules:
        first_op, first_set = len(out.ops), len(out.sets)
        out.ops.extend(_operation(out, column, pattern) for column, pattern in rule.when)
        for name, value in rule.set:
            out.sets.append((out.target(name), -1 if not value else len(out.consts)))
            if value:
                out.consts.append(value)
        out.rules.append((first_op, len(out.ops) - first_op, first_set, len(out.sets) - first_set))
    return out


def _operation(out: Plan, column: int, pattern: re.Pattern) -> tuple[int, int, int, int, int, int]:
    """(column, kind, target, plus, cache, index) of one column pattern of a rule."""
    groups, source = tuple(pattern.groupindex), pattern.pattern
    if len(groups) == 1:
        target = out.target(groups[0])
        if source == f"(?P<{groups[0]}>.*)":
            return column, OP_ANY, target, 0, -1, -1
        if source == f"(?P<{groups[0]}>.+)":
            return column, OP_NONEMPTY, target, 0, -1, -1
        for plus, tail in ((1, f"(?P<{groups[0]}>.+)"), (0, f"(?P<{groups[0]}>.*)")):
            literal = source[:-len(tail)]
            if source.endswith(tail) and literal and literal.isalnum() and literal.isascii():
                out.prefixes.append(literal.encode())
                return column, OP_PREFIX, target, plus, -1, len(out.prefixes) - 1
    out.patterns.append(pattern)
    out.quick.append(quick_test(pattern) if groups else (None, b""))
    out.regex_targets.append({g: out.target(g) for g in groups})
    index = len(out.patterns) - 1
    if not groups:
        return column, OP_PLAIN, -1, 0, out.cache(pattern), index
    return column, OP_REGEX, -1, 0, -1, index
