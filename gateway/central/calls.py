"""Sans-I/O: the call records of one source in, its calls out.

A PBX prints records, and one call may be several (a segment per transfer, a leg per
bridged party, a share per extension): counting records counts calls two to five times.
How a family's records join is data, its profile's ``[assembly]``
(:class:`~gateway.smdr.profile.Assembly`); this module applies it. It is a pure function
of the set of records: however they arrived (split, out of order, twice), the same set
gives the same calls, which is what lets the collector re-assemble a call when a late or
replayed record comes (:mod:`gateway.central.callstore`).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, Iterable

from gateway.smdr.profile import Assembly, event_value, holds

#: Outcomes of a call, as the report names them.
OUTCOMES = ("answered", "abandoned", "busy", "voicemail", "other")

#: The columns of the ``calls`` table, in its order (see :meth:`Call.row`).
CALL_COLUMNS = ("gw", "src", "key", "site", "rules", "start", "last_start", "end_at", "dir", "trunk", "caller",
                "called", "first_ext", "final_ext", "ring", "wait", "talk", "hold", "transfers", "outcome",
                "orphan", "complete", "records")


@dataclass(frozen=True, slots=True)
class Call:
    """One call, built from its records (times in s since the epoch, UTC)."""

    gw: str
    src: str
    key: str  # its first record's "stream:seq": the same records, the same key
    site: str
    rules: str  # "<profile>/<assembly version>": what built it
    start: int
    last_start: int  # the latest start among its records
    end_at: int  # when its last record ended (start + ring + talk)
    dir: str | None
    trunk: str | None
    caller: str | None
    called: str | None
    first_ext: str | None  # the first extension that answered it
    final_ext: str | None  # the last one (after transfers)
    ring: int | None  # ring summed over its records (None: the PBX prints none)
    wait: int | None  # ring until first answered (or, unanswered, until given up)
    talk: int  # connected seconds at extensions (not voicemail)
    hold: int | None  # where the PBX prints it
    transfers: int
    outcome: str
    orphan: bool  # a record without the id its family promises
    complete: bool  # its last record is there (families that print one; else true)
    records: tuple[tuple[str, int], ...]  # (stream, seq) of its records, in order

    def row(self) -> tuple:
        """The call as a ``calls`` row (``records`` left for the caller to encode)."""
        return _ROW(self)


_ROW = operator.attrgetter(*CALL_COLUMNS)


def assemble(records: Iterable[dict[str, Any]], assembly: Assembly, profile: str) -> list[Call]:
    """The calls of ``records``: call events of one source and one profile, as dicts
    (``gw, src, site, stream, seq, rx, start, ring, dur, dir, ext, trunk, caller, called,
    disp, callid, x``). A record given twice counts once; one that is no call (its
    profile's ``not_calls``) is in none."""
    return [call_of(chain, orphan, assembly, profile) for chain, orphan in chains(records, assembly)]


def chains(records: Iterable[dict[str, Any]], assembly: Assembly) -> list[tuple[list[dict], bool]]:
    """The records of each call, in order, and whether it is an orphan (the first half
    of :func:`assemble`: a caller that needs only some calls builds only those)."""
    unique = {(r["stream"], r["seq"]): r for r in records if not holds(assembly.not_calls, r)}
    return list(_chains(sorted(unique.values(), key=_order), assembly))


def _order(r: dict[str, Any]) -> tuple:
    """Records in the order the PBX printed them: by start, then by receipt."""
    return r["start"], r["rx"], r["stream"], r["seq"]


def _end(r: dict[str, Any]) -> int:
    return r["start"] + (r["ring"] or 0) + (r["dur"] or 0)


def _chains(ordered: list[dict], assembly: Assembly) -> Iterable[tuple[list[dict], bool]]:
    """The records of each call, in order, and whether it is an orphan."""
    if not assembly.join and not assembly.line:
        for r in ordered:
            yield [r], False
        return
    fields = assembly.join or (assembly.line,)
    groups: dict[tuple, list[dict]] = {}
    for r in ordered:
        key = tuple(event_value(r, f) for f in fields)
        if any(v is None or v == "" for v in key):
            yield [r], assembly.promises_id
        else:
            groups.setdefault(key, []).append(r)
    for group in groups.values():
        chain, end = [group[0]], _end(group[0])
        for r in group[1:]:
            joins = r["start"] <= end + assembly.window and (
                assembly.join or holds(assembly.transfer, chain[-1]))
            if joins:
                chain.append(r)
                end = max(end, _end(r))
            else:
                yield chain, False
                chain, end = [r], _end(r)
        yield chain, False


def _answered(r: dict[str, Any]) -> bool:
    """A record of a leg someone answered: the PBX says answered, or it was connected
    before being passed on."""
    return r["disp"] == "answered" or (r["disp"] == "transferred" and (r["dur"] or 0) > 0)


def _first(chain: list[dict], field: str) -> Any:
    return next((r[field] for r in chain if r[field] is not None), None)


def _wait(chain: list[dict], answered: int | None, starts: str) -> int | None:
    """How long the caller waited: until the first answer, or (unanswered) until the
    last leg stopped ringing; None when the PBX prints no ring."""
    legs = chain[:answered + 1] if answered is not None else chain
    if all(r["ring"] is None for r in legs):
        return None
    if starts == "call":  # segments one after another, each printing the call's start
        return sum(r["ring"] or 0 for r in legs)
    if answered is not None:
        return legs[-1]["start"] + (legs[-1]["ring"] or 0) - chain[0]["start"]
    return max(r["start"] + (r["ring"] or 0) for r in legs) - chain[0]["start"]


def call_of(chain: list[dict], orphan: bool, assembly: Assembly, profile: str) -> Call:
    """The call of one chain of :func:`chains`."""
    to_voicemail = [holds(assembly.voicemail, r) for r in chain]
    by_person = [i for i, r in enumerate(chain) if _answered(r) and not to_voicemail[i]]
    rings = [r["ring"] for r in chain if r["ring"] is not None]
    if by_person:
        outcome = "answered"
    elif any(to_voicemail):
        outcome = "voicemail"
    elif any(r["disp"] == "busy" for r in chain):
        outcome = "busy"
    elif any(r["disp"] == "unanswered" for r in chain):
        outcome = "abandoned"
    else:
        outcome = "other"
    wait = _wait(chain, by_person[0] if by_person else None, assembly.starts)
    holds_printed = [v for r in chain if assembly.hold and isinstance(v := event_value(r, assembly.hold), int)]
    first = chain[0]
    return Call(
        gw=first["gw"], src=first["src"], key=f"{first['stream']}:{first['seq']}", site=first["site"],
        rules=f"{profile}/{assembly.version}",
        start=first["start"], last_start=max(r["start"] for r in chain), end_at=max(map(_end, chain)),
        dir=_first(chain, "dir"), trunk=_first(chain, "trunk"), caller=_first(chain, "caller"),
        called=_first(chain, "called"),
        first_ext=chain[by_person[0]]["ext"] if by_person else None,
        final_ext=chain[by_person[-1]]["ext"] if by_person else None,
        ring=sum(rings) if rings else None, wait=wait,
        talk=sum(chain[i]["dur"] or 0 for i in by_person),
        hold=sum(holds_printed) if holds_printed else None,
        transfers=sum(holds(assembly.transfer, r) for r in chain),
        outcome=outcome, orphan=orphan,
        complete=not assembly.ends or any(holds(assembly.ends, r) for r in chain),
        records=tuple((r["stream"], r["seq"]) for r in chain))
