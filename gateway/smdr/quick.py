"""Quick tests that rule a regex out without running it.

The compiled engine runs a rule's pattern only on a column that could match it: one whose
first byte is among those a match may start with, and that contains the text every match
must contain. Both are read here from the pattern's parse tree (``re._parser``, the
standard library's own), once per profile; being plain Python they are tested on their
own (tests/unit/test_quick.py), and a pattern they cannot read simply has no quick test.
"""

from __future__ import annotations

import re
import re._parser as _parser

def _first_bytes(items: list) -> tuple[set[int], bool] | None:
    """The bytes a match of this parsed sequence may start with, and whether it may be
    empty; None when unknown (anything, a category, a case-insensitive part)."""
    first = set()
    for op, arg in items:
        if op is _parser.LITERAL:
            first.add(arg)
            return first, False
        if op is _parser.IN:
            if any(kind is not _parser.LITERAL and kind is not _parser.RANGE for kind, _ in arg):
                return None
            for kind, value in arg:
                first.update([value] if kind is _parser.LITERAL else range(value[0], value[1] + 1))
            return first, False
        if op is _parser.SUBPATTERN:
            if arg[1] & re.IGNORECASE:
                return None
            inner = _first_bytes(arg[3])
        elif op is _parser.BRANCH:
            inner, empty = set(), False
            for branch in arg[1]:
                got = _first_bytes(branch)
                if got is None:
                    return None
                inner |= got[0]
                empty = empty or got[1]
            inner = (inner, empty)
        elif op in (_parser.MAX_REPEAT, _parser.MIN_REPEAT):
            got = _first_bytes(arg[2])
            if got is None:
                return None
            inner = (got[0], got[1] or arg[0] == 0)
        elif op is _parser.AT:
            continue
        else:
            return None
        if inner is None:
            return None
        first |= inner[0]
        if not inner[1]:
            return first, False
    return first, True


def _required_text(items: list) -> bytes:
    """The longest run of ASCII text every match contains (consecutive literals of the
    top-level sequence; a repeated literal counts its minimum), or b""."""
    best, run = b"", b""
    for op, arg in items:
        if op is _parser.LITERAL and arg < 128:
            run += bytes([arg])
            continue
        if op in (_parser.MAX_REPEAT, _parser.MIN_REPEAT) and arg[0] >= 1 and len(arg[2]) == 1 \
                and arg[2][0][0] is _parser.LITERAL and arg[2][0][1] < 128:
            run += bytes([arg[2][0][1]]) * min(arg[0], 16)  # more may follow: the run ends here
        best, run = max(best, run, key=len), b""
    return max(best, run, key=len)


def quick_test(pattern: re.Pattern) -> tuple[bytes | None, bytes]:
    """(first bytes as a 256-byte table or None, text every match contains or b"") for
    ``pattern``: a text that fails either test cannot match."""
    if pattern.flags & re.IGNORECASE:
        return None, b""
    try:
        items = list(_parser.parse(pattern.pattern, pattern.flags))
    except Exception:  # noqa: BLE001 - no quick test; the regex always runs
        return None, b""
    first = _first_bytes(items)
    table = None
    if first is not None and not first[1] and all(b < 128 for b in first[0]):
        table = bytes(1 if b in first[0] else 0 for b in range(256))
    return table, _required_text(items)
