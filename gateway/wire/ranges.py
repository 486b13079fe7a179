"""Sans-I/O: ranges of sequence numbers (inclusive ``(first, last)`` pairs).

The holes of a stream come from the rows themselves (each row and the next one's ``seq``),
so they are right however many collectors write one database; what a gateway reported as
dropped (``gap`` events: lost at the edge, never to come) is taken out of them.
"""

from __future__ import annotations

Range = tuple[int, int]


def merged(ranges: list[Range]) -> list[Range]:
    """Sorted, overlapping and touching ranges joined.

    >>> merged([(5, 7), (1, 2), (3, 3), (9, 9)])
    [(1, 3), (5, 7), (9, 9)]
    """
    out: list[Range] = []
    for first, last in sorted(ranges):
        if out and first <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out


def subtract(ranges: list[Range], taken: list[Range]) -> list[Range]:
    """What of ``ranges`` is not in ``taken``.

    >>> subtract([(1, 10)], [(3, 4), (8, 12)])
    [(1, 2), (5, 7)]
    """
    out: list[Range] = []
    taken = merged(taken)
    for first, last in merged(ranges):
        for t_first, t_last in taken:
            if t_last < first or t_first > last:
                continue
            if t_first > first:
                out.append((first, t_first - 1))
            first = t_last + 1
            if first > last:
                break
        if first <= last:
            out.append((first, last))
    return out


def size(ranges: list[Range]) -> int:
    """How many numbers the ranges hold."""
    return sum(last - first + 1 for first, last in merged(ranges))
