"""The reference engine: one decoded record -> the text of each layout column.

This is the narrow surface a compiled engine may replace: slicing, splitting and
stripping only. Dates, time zones and rules stay in :mod:`gateway.smdr.parser`, shared by
every engine, so that two engines can only disagree inside this one function.
"""

from __future__ import annotations

import csv

from gateway.errors import RecordError
from gateway.profiles import Layout


def split_record(layout: Layout, text: str) -> tuple[str, ...]:
    """Column texts (stripped; ``""`` where the record is too short) in layout order.

    The first variant whose ``max_length`` admits the record's length is used; the last
    variant may have none and takes the rest.

    :raises RecordError: a record too long for every variant, or a delimited record with
        too few fields or broken quoting.
    """
    variant = next((v for v in layout.variants if v.max_length is None or len(text) <= v.max_length),
                   None)
    if variant is None:
        raise RecordError(f"{len(text)} characters, longer than any layout variant")
    if layout.kind == "fixed":
        return tuple(text[start:end].strip() for start, end in variant.positions)
    if layout.quote:
        try:
            parts = next(csv.reader([text], delimiter=layout.delimiter,
                                    quotechar=layout.quote, strict=True))
        except csv.Error as exc:
            raise RecordError(f"bad quoting: {exc}") from None
    else:
        parts = text.split(layout.delimiter)
    if len(parts) < layout.min_fields:
        raise RecordError(f"{len(parts)} fields, expected at least {layout.min_fields}")
    return tuple(parts[i].strip() if i < len(parts) else "" for i in variant.positions)
