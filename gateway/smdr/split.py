"""The reference engine: one decoded record -> the text of each layout column.

This is the narrow surface a compiled engine may replace: slicing, splitting and
stripping only. Dates, time zones and rules stay in :mod:`gateway.smdr.parser`, shared by
every engine, so that two engines can only disagree inside this one function.
"""

from __future__ import annotations

import csv

from gateway.errors import RecordError
from gateway.smdr.profile import Layout


def split_record(layout: Layout, text: str) -> tuple[str, ...]:
    """Column texts (stripped; ``""`` where the record is too short) in layout order.

    The first variant that admits the record (by its ``max_length`` and ``match``) reads it.

    :raises RecordError: a record no variant admits, or a delimited record with too few
        fields or a line end inside an unquoted field.
    """
    variant = next((v for v in layout.variants if v.admits(text)), None)
    if variant is None:
        raise RecordError(f"{len(text)} characters, no layout variant reads it")
    if layout.kind == "fixed":
        return tuple(text[start:end].strip() for start, end in variant.positions)
    if layout.quote:
        try:
            # Lenient, as Python's csv reads by default: Asterisk's cdr_csv writes an empty
            # quoted caller name ("" <2105551234>) with its quotes doubled, which a strict
            # reader refuses.
            parts = next(csv.reader([text], delimiter=layout.delimiter, quotechar=layout.quote))
        except csv.Error as exc:
            raise RecordError(f"not readable as CSV: {exc}") from None  # a line end in an unquoted field
    else:
        parts = text.split(layout.delimiter)
    if len(parts) < layout.min_fields:
        raise RecordError(f"{len(parts)} fields, expected at least {layout.min_fields}")
    return tuple(parts[i].strip() if i < len(parts) else "" for i in variant.positions)
