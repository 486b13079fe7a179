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
from dataclasses import dataclass, field
from typing import Any, Iterable

from gateway.smdr.profile import Assembly, event_value, holds

#: Outcomes of a call, as the report names them.
OUTCOMES = ("answered", "abandoned", "busy", "voicemail", "other")

#: The columns of the ``calls`` table, in its order (see :meth:`Call.row`).
CALL_COLUMNS = ("gw", "src", "key", "site", "rules", "start", "last_start", "end_at", "dir", "trunk", "caller",
                "called", "hunt_group", "first_ext", "final_ext", "ring", "wait", "talk", "hold", "transfers",
                "outcome", "orphan", "complete", "folded", "legs", "records")

#: What a leg (one record of a call) was at its extension: answered by a person there,
#: rung there and not answered (the caller gave up, or the call moved on), or a
#: voicemail message.
LEG_KINDS = ("answered", "rang", "voicemail")


@dataclass(frozen=True, slots=True)
class Call:
    """One call, built from its records (times in s since the epoch, UTC)."""

    gw: str
    src: str
    key: str  # its first record's "stream:seq": the same records, the same key
    site: str
    rules: str  # "<profile>/<assembly version>/<digest of its [assembly] table>": what built it
    start: int
    last_start: int  # the latest start among its records
    end_at: int  # when it left the line: its start plus its time on the line (see :func:`call_of`)
    dir: str | None
    trunk: str | None
    caller: str | None
    called: str | None
    hunt_group: str | None  # the hunt group or queue it was offered to, where the PBX prints one
    first_ext: str | None  # the first extension that answered it
    final_ext: str | None  # the last one (after transfers)
    ring: int | None  # ring summed over its records (None: the PBX prints none)
    wait: int | None  # ring until first answered (or, unanswered, until given up)
    talk: int  # connected seconds at extensions (not voicemail)
    hold: int | None  # where the PBX prints it
    transfers: int  # hand-offs from one answered leg to the next (a roll-over to voicemail is none)
    outcome: str
    orphan: bool  # a record without the id its family promises
    complete: bool  # its last record is there (families that print one; else true)
    folded: int  # records that were the same bytes as another of the call: printed twice, counted once
    legs: tuple[tuple[str | None, str, int, int, str | None], ...]  # per record: (ext, kind in LEG_KINDS, talk s,
    #                                                                   hold s, the name the PBX prints for ext)
    records: tuple[tuple[str, int], ...]  # (stream, seq) of its records, folded ones included, in order

    def row(self) -> tuple:
        """The call as a ``calls`` row (``legs`` and ``records`` left for the caller to encode)."""
        return _ROW(self)


_ROW = operator.attrgetter(*CALL_COLUMNS)


def assemble(records: Iterable[dict[str, Any]], assembly: Assembly, profile: str) -> list[Call]:
    """The calls of ``records``: call events of one source and one profile, as dicts
    (``gw, src, site, stream, seq, rx, start, ring, dur, dir, ext, trunk, caller, called,
    disp, callid, x``, and ``raw`` where known). A record given twice counts once; one
    that is no call (its profile's ``not_calls``) is in none."""
    return [call_of(chain, assembly, profile) for chain in chains(records, assembly)]


@dataclass(slots=True)
class Chain:
    """The records of one call, in order, as :func:`chains` found them."""

    records: list[dict[str, Any]]
    orphan: bool  # a record without the id its family promises
    folded: list[dict[str, Any]] = field(default_factory=list)  # the same bytes as a record of ``records``


def chains(records: Iterable[dict[str, Any]], assembly: Assembly) -> list[Chain]:
    """The records of each call (the first half of :func:`assemble`: a caller that
    needs only some calls builds only those).

    A record stored twice (one ``stream:seq``) is one record. A record the PBX printed
    twice (a second ``seq``, the same bytes) is folded into the call of the first: a
    PBX that prints again after a link drop, or two serial taps on one port, would
    otherwise count its talk and transfers twice."""
    unique = {(r["stream"], r["seq"]): r for r in records if not holds(assembly.not_calls, r)}
    first_of: dict[tuple[int, str], dict] = {}
    repeats: list[tuple[dict, dict]] = []
    kept = []
    for r in sorted(unique.values(), key=_order):
        raw = r.get("raw")
        first = first_of.setdefault((r["start"], raw), r) if raw is not None else r
        if first is r:
            kept.append(r)
        else:
            repeats.append((first, r))
    found = [Chain(rs, orphan) for rs, orphan in _chains(kept, assembly)]
    chain_of = {id(r): c for c in found for r in c.records}
    for first, repeat in repeats:
        chain_of[id(first)].folded.append(repeat)
    return found


def _order(r: dict[str, Any]) -> tuple:
    """Records in the order the PBX printed them: by start, then by receipt."""
    return r["start"], r["rx"], r["stream"], r["seq"]


def _end(r: dict[str, Any]) -> int:
    """When a leg stopped ringing or talking (joining records only: hold is not printed
    by every family, and its time is after the leg's talk started)."""
    return r["start"] + (r["ring"] or 0) + (r["dur"] or 0)


def _ended(r: dict[str, Any]) -> tuple:
    """Records in the order their legs ended, then as received (the order printed)."""
    return _end(r), r["rx"], r["stream"], r["seq"]


def _hold(r: dict[str, Any], assembly: Assembly) -> int | None:
    value = event_value(r, assembly.hold) if assembly.hold else None
    return value if isinstance(value, int) and value >= 0 else None


def _on_line(chain: list[dict], assembly: Assembly) -> int:
    """The seconds a call was on the line, ring, talk and hold of every leg, a voicemail
    message included: segments that each print the call's start follow one another, so
    their times add up; legs with their own starts (a ring group's at once) end at the
    latest leg's end."""
    spans = [(r["ring"] or 0) + (r["dur"] or 0) + (_hold(r, assembly) or 0) for r in chain]
    if assembly.starts == "call":
        return sum(spans)
    return max(r["start"] + span for r, span in zip(chain, spans)) - chain[0]["start"]


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
        if assembly.line:  # legs on one line follow each other: in the order they ended, which a PBX
            group.sort(key=_ended)  # that prints the end to the minute (and derives the start) keeps
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


def _group(chain: list[dict], assembly: Assembly) -> str | None:
    """The first hunt group or queue a record of the call names (its profile's ``group``)."""
    if not assembly.group:
        return None
    return next((v for r in chain if isinstance(v := event_value(r, assembly.group), str) and v.strip()), None)


def _leg(r: dict[str, Any], by_person: bool, voicemail: bool, assembly: Assembly) -> tuple:
    kind = "answered" if by_person else "voicemail" if voicemail else "rang"
    name = event_value(r, assembly.name) if assembly.name and r["ext"] is not None else None
    return (r["ext"], kind, (r["dur"] or 0) if by_person else 0, (_hold(r, assembly) or 0) if by_person else 0,
            name if isinstance(name, str) and name.strip() else None)


def call_of(found: Chain, assembly: Assembly, profile: str) -> Call:
    """The call of one chain of :func:`chains`."""
    chain = found.records
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
    holds_printed = [v for r in chain if (v := _hold(r, assembly)) is not None]
    first = chain[0]
    people = set(by_person)
    return Call(
        gw=first["gw"], src=first["src"], key=f"{first['stream']}:{first['seq']}", site=first["site"],
        rules=f"{profile}/{assembly.version}/{assembly.digest}",
        start=first["start"], last_start=max(r["start"] for r in chain),
        end_at=first["start"] + _on_line(chain, assembly),
        dir=_first(chain, "dir"), trunk=_first(chain, "trunk"), caller=_first(chain, "caller"),
        called=_first(chain, "called"), hunt_group=_group(chain, assembly),
        first_ext=chain[by_person[0]]["ext"] if by_person else None,
        final_ext=chain[by_person[-1]]["ext"] if by_person else None,
        ring=sum(rings) if rings else None, wait=wait,
        talk=sum(chain[i]["dur"] or 0 for i in by_person),
        hold=sum(holds_printed) if holds_printed else None,
        transfers=max(0, len(by_person) - 1),
        outcome=outcome, orphan=found.orphan,
        complete=not assembly.ends or any(holds(assembly.ends, r) for r in chain),
        folded=len(found.folded),
        legs=tuple(_leg(r, i in people, to_voicemail[i], assembly) for i, r in enumerate(chain)),
        records=tuple((r["stream"], r["seq"]) for r in (*chain, *found.folded)))
