"""A first profile from a capture: what ``pbxgw profiles new NAME --from FILE`` writes.

It guesses, from the records themselves, whether they are delimited (and by what) or
fixed-width (and where the columns are), and which column holds the date and time. The
result is a starting point a technician then corrects and names; every guess is said in
a comment of the file it writes.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter

from gateway.smdr.framer import Framer, FramingRules
from gateway.smdr.framer import decode
from gateway.smdr.profile import PbxProfile

DELIMITERS = (",", ";", "\t", "|")
#: How many lines are enough to guess from, and how many the samples keep.
SAMPLE_LINES = 200
_DATE = re.compile(r"(\d{1,4})[/.\-](\d{1,2})(?:[/.\-](\d{1,4}))?")
_TIME = re.compile(r"\d{1,2}:\d{2}(?::\d{2})?\s*(?:[AaPp][Mm]?)?")


def capture_lines(data: bytes) -> list[str]:
    """The non-blank lines of a capture (any line end), decoded."""
    framer = Framer(FramingRules(max_record_len=64 * 1024))
    framer.feed(data)
    framer.feed(b"")
    return [decode(r.data) for r in framer.records()][:SAMPLE_LINES]


def are_events(lines: list[str]) -> bool:
    """Whether these lines are pbxgw's own JSON events (``pbxgw parse`` output), not what
    a PBX printed: a profile drafted from them would read JSON."""
    def is_event(line: str) -> bool:
        try:
            return isinstance(event := json.loads(line), dict) and "kind" in event and "raw" in event
        except ValueError:
            return False
    return bool(lines) and sum(map(is_event, lines)) >= 0.8 * len(lines)


def guess_delimiter(lines: list[str]) -> tuple[str, bool, int] | None:
    """``(delimiter, quoted, fields)`` when most lines split into 3 fields or more; ``fields``
    is the fewest of them (firmware versions add fields at the end)."""
    for delimiter in DELIMITERS:
        counts = [len(next(csv.reader([line], delimiter=delimiter))) for line in lines]
        split = [c for c in counts if c >= 3]
        if len(split) >= 0.8 * len(lines):
            quoted = any(f'{delimiter}"' in line or line.startswith('"') for line in lines)
            return delimiter, quoted, min(split)
    return None


def guess_columns(lines: list[str]) -> list[tuple[int, int]]:
    """Fixed-width spans: runs of character positions not blank in most record-like lines
    (lines of about the most common length; headers and other layouts differ)."""
    typical = Counter(len(line) // 8 for line in lines).most_common(1)[0][0]
    lines = [line for line in lines if abs(len(line) // 8 - typical) <= 1]
    width = max(len(line) for line in lines)
    used = [sum(i < len(line) and not line[i].isspace() for line in lines) > 0.1 * len(lines)
            for i in range(width)]
    spans, start = [], None
    for i, busy in enumerate(used + [False]):
        if busy and start is None:
            start = i
        elif not busy and start is not None:
            spans.append((start, i))
            start = None
    return spans


def guess_date_order(values: list[str]) -> str | None:
    """YMD, DMY or MDY from date-like values (a first part over 12 cannot be a month)."""
    parts = [m.groups() for v in values if (m := _DATE.fullmatch(v))]
    if not parts or len(parts) < 0.8 * len(values):
        return None
    if any(len(p[0]) == 4 for p in parts):
        return "YMD"
    order = "DMY" if any(int(p[0]) > 12 for p in parts) else "MDY"
    return order if parts[0][2] is not None else order[:2]


def draft(name: str, source: str, lines: list[str]) -> str:
    """The text of a first ``profile.toml`` for ``lines`` (from ``source``, a file name)."""
    found = guess_delimiter(lines)
    if found:
        delimiter, quoted, count = found
        rows = [next(csv.reader([line], delimiter=delimiter)) for line in lines]
        values = [[r[i].strip() if i < len(r) else "" for r in rows] for i in range(count)]
        layout = ["kind = \"delimited\"", f"delimiter = {_toml(delimiter)}",
                  f"quote = {_toml(chr(34) if quoted else '')}", f"min_fields = {count}"]
        positions = [str(i) for i in range(count)]
        how = f"records split by {delimiter!r} into {count} fields{' (some quoted)' if quoted else ''}"
    else:
        spans = guess_columns(lines)
        values = [[line[a:b].strip() for line in lines] for a, b in spans]
        layout = ['kind = "fixed"']
        positions = [f"[{a}, {b}]" for a, b in spans]
        how = f"fixed-width records; {len(spans)} columns where every line has blanks between them"
    names = [f"col{i + 1}" for i in range(len(positions))]
    start = _start_field(names, values)
    columns = ", ".join(f"{n} = {p}" for n, p in zip(names, positions))
    return "\n".join([
        f"# A first profile for {name}, guessed by `pbxgw profiles new` from {source}:",
        f"# {how}.",
        "# Rename the columns, check every offset, map the event fields under [fields] and add",
        "# [[rules]] for direction and disposition (docs/profiles.md), then run",
        f"# `pbxgw profiles test {name} --update` once the events it prints are right.",
        "",
        "[profile]",
        f"name = {_toml(name)}",
        f"title = {_toml(f'{name} (draft from {source})')}",
        "",
        "[framing]",
        'terminator = "line"',
        f"max_record_len = {max(512, 2 * max(len(line) for line in lines))}",
        "",
        "[layout]",
        *layout,
        "",
        "[[layout.variant]]",
        'name = "main"',
        f"columns = {{ {columns} }}",
        "",
        "[fields]",
        start,
        "",
    ])


def variant(name: str, source: str, base: PbxProfile, what: str, key: str, pattern: str) -> str:
    """The text of a ``profile.toml`` that ``extends`` the bundled ``base`` with one more
    ``[framing]`` ``key`` pattern: for a capture (from ``source``) that ``base`` reads once
    ``what`` it holds is left out. The base's own patterns of that key are kept (an
    array replaces the base's)."""
    patterns = [p.pattern.decode() for p in getattr(base.framing, key)] + [pattern]
    return "\n".join([
        f"# A profile for {name}, drafted by `pbxgw profiles new` from {source}.",
        f"# The capture has {what};",
        f"# the bundled profile {base.name} reads it once [framing] {key} leaves that out.",
        f"# Check the events it prints, then run `pbxgw profiles test {name} --update`.",
        "",
        "[profile]",
        f"extends = {_toml(base.name)}",
        f"name = {_toml(name)}",
        f"title = {_toml(f'{base.title}, as {source} shows it')}",
        "",
        "[framing]",
        f"{key} = [{', '.join(_toml(p) for p in patterns)}]",
        "",
    ])


def _start_field(names: list[str], values: list[list[str]]) -> str:
    """The [fields] start line: a date-and-time column, or a date column and a time column."""
    for name, column in zip(names, values):
        dates = [v.split(" ", 1)[0] for v in column if " " in v]
        if len(dates) >= 0.8 * len(column) and (order := guess_date_order(dates)):
            return f'start = {{ column = "{name}", date_order = "{order}" }}'
    date = next(((n, o) for n, c in zip(names, values) if (o := guess_date_order(c))), None)
    time = next((n for n, c in zip(names, values)
                 if sum(bool(_TIME.fullmatch(v)) for v in c) >= 0.8 * len(c)), None)
    if date and time:
        return f'start = {{ date = "{date[0]}", time = "{time}", date_order = "{date[1]}" }}'
    if time:
        return f'start = {{ time = "{time}", date_order = "none" }}  # no date column found'
    return 'start = { column = "col1", date_order = "YMD" }  # no date or time found: set this'


def _toml(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t") + '"'
