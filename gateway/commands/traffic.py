"""Sans-I/O: a contact centre's calls drawn as they happen, and printed as a PBX family
prints them; the truth a report is tested against.

:func:`draw` draws the calls of a span of days: agents in hunt groups, inbound calls
by time of day (busier mornings and early afternoons, fewer on Saturday, a few at
night), each ringing agents one after another until one answers, the caller gives up,
or it rolls over to voicemail; talk, hold, transfers to a second agent, and outbound
calls. Agents are busy while they talk, so a busy hour really is busier. Each call is
a :class:`DrawnCall` whose legs say what happened at each extension: the truth, written
as JSON lines by ``pbxgw simulate --traffic --truth FILE``.

:data:`FAMILIES` render a call as the records its PBX prints (IP Office's segments,
Asterisk's legs, ...), in the PBX's local time, printed when the call ends.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

#: Calls per hour of the day on a weekday, as a share of the busiest hour.
WEEKDAY_SHAPE = (0.02, 0.01, 0.01, 0.01, 0.01, 0.02, 0.04, 0.15, 0.6, 0.95, 1.0, 0.85,
                 0.55, 0.65, 0.9, 0.8, 0.6, 0.4, 0.12, 0.06, 0.04, 0.03, 0.02, 0.02)
SATURDAY_SHAPE = tuple(v * 0.3 if 9 <= h < 12 else v * 0.1 for h, v in enumerate(WEEKDAY_SHAPE))
SUNDAY_SHAPE = tuple(v * 0.05 for v in WEEKDAY_SHAPE)
FIRST_NAMES = ("Anna", "Ben", "Chloe", "David", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Karin", "Luca",
               "Maya", "Nils", "Olga", "Pavel", "Quinn", "Rosa", "Sami", "Tara")
LAST_NAMES = ("Meyer", "Novak", "Okafor", "Petit", "Rossi", "Silva", "Tanaka", "Weber", "Young", "Zhang")


@dataclass(frozen=True, slots=True)
class Centre:
    """What is drawn: the centre's size and how its callers and agents behave."""

    agents: int = 50
    groups: tuple[str, ...] = ("7001", "7002")  # hunt groups' numbers; agents split between them
    busiest_hour_calls: float = 120.0  # inbound calls in a weekday's busiest hour
    outbound_share: float = 0.15  # outbound calls, as a share of inbound ones
    agent_timeout: int = 15  # s an agent's phone rings before the call moves on
    agents_tried: int = 2  # agents rung before voicemail
    voicemail: bool = True  # else the last agent tried rings until the caller gives up
    patience_s: float = 60.0  # a caller's mean patience (exponential)
    most_patience_s: int = 300  # ...and the longest: callers hang up after 5 minutes of ringing
    lines: int = 60  # CO lines (trunk channels): a call holds one; with none free it is not placed
    answer_s: float = 6.0  # an agent's mean time to answer (exponential), if free
    talk_s: float = 170.0  # mean talk (exponential, at least 5 s)
    hold_share: float = 0.25  # answered calls with a hold
    transfer_share: float = 0.08  # answered calls passed on to a second agent
    voicemail_s: float = 35.0  # a message's mean length

    def trunks(self) -> list[str]:
        return [str(9001 + i) for i in range(self.lines)]

    def extensions(self) -> list[str]:
        return [str(2001 + i) for i in range(self.agents)]

    def name_of(self, ext: str) -> str:
        i = int(ext) - 2001
        return f"{FIRST_NAMES[i % len(FIRST_NAMES)]} {LAST_NAMES[(i // len(FIRST_NAMES)) % len(LAST_NAMES)]}"


@dataclass(slots=True)
class Leg:
    """What happened at one extension (``ext`` None: voicemail)."""

    ext: str | None
    kind: str  # "answered", "rang" (not answered there), "voicemail"
    ring: int = 0
    talk: int = 0
    hold: int = 0


@dataclass(slots=True)
class DrawnCall:
    """One call as it happened (times UTC, seconds)."""

    id: int
    start: int
    dir: str  # "in" or "out"
    caller: str
    called: str
    trunk: str
    group: str | None
    legs: list[Leg] = field(default_factory=list)
    garbled: bool = False  # its records are printed cut short, as a line fault cuts them: none can be read

    @property
    def outcome(self) -> str:
        kinds = {leg.kind for leg in self.legs}
        return "answered" if "answered" in kinds else "voicemail" if "voicemail" in kinds else "abandoned"

    @property
    def on_line(self) -> int:
        """Seconds from its start until it left the line (legs follow one another)."""
        return sum(leg.ring + leg.talk + leg.hold for leg in self.legs)

    @property
    def end(self) -> int:
        return self.start + self.on_line

    def truth(self) -> dict:
        return {**asdict(self), "outcome": self.outcome}


def draw(centre: Centre, first: date, days: int, zone: ZoneInfo, seed: int = 1,
         until: int | None = None) -> list[DrawnCall]:
    """The calls starting on the local days ``first`` to ``first + days - 1`` (and, given
    ``until``, ending by then), in order of start."""
    rng = random.Random(seed)
    starts: list[tuple[int, str]] = []
    for d in range(days):
        day = first + timedelta(days=d)
        shape = WEEKDAY_SHAPE if day.weekday() < 5 else SATURDAY_SHAPE if day.weekday() == 5 else SUNDAY_SHAPE
        midnight = datetime.combine(day, datetime.min.time(), zone)
        for hour, share in enumerate(shape):
            begin = int((midnight + timedelta(hours=hour)).timestamp())
            starts += _starts(rng, begin, begin + 3600, share * centre.busiest_hour_calls, centre)
    return _calls(centre, rng, sorted(starts), until)


def draw_recent(centre: Centre, begin: int, end: int, seed: int = 1) -> list[DrawnCall]:
    """The calls of ``[begin, end)`` (UTC s) at the busiest hour's rate that have ended by
    ``end``: a demo's few minutes of a busy centre."""
    rng = random.Random(seed)
    return _calls(centre, rng, sorted(_starts(rng, begin, end, centre.busiest_hour_calls, centre)), end)


def _starts(rng: random.Random, begin: int, end: int, per_hour: float, centre: Centre) -> list[tuple[int, str]]:
    """Inbound and outbound calls' starts in ``[begin, end)``, at random (Poisson)."""
    starts = []
    for kind, rate in (("in", per_hour), ("out", per_hour * centre.outbound_share)):
        t = float(begin)
        while rate > 0 and (t := t + rng.expovariate(rate / 3600)) < end:
            starts.append((int(t), kind))
    return starts


def _calls(centre: Centre, rng: random.Random, starts: list[tuple[int, str]], until: int | None) -> list[DrawnCall]:
    exts = centre.extensions()
    group_of = {ext: centre.groups[i % len(centre.groups)] for i, ext in enumerate(exts)}
    free_at = {ext: 0 for ext in exts}
    line_free_at = {trunk: 0 for trunk in centre.trunks()}
    calls = []
    for n, (start, kind) in enumerate(starts, 1):
        free_lines = [t for t, free in line_free_at.items() if free <= start]
        if not free_lines:  # the network says busy: the PBX never sees the call
            continue
        trunk = rng.choice(free_lines)
        call = (_inbound if kind == "in" else _outbound)(n, start, trunk, centre, rng, exts, group_of, free_at)
        line_free_at[trunk] = call.end
        if until is None or call.end <= until:
            calls.append(call)
    return calls


def _number(rng: random.Random) -> str:
    return "0" + "".join(rng.choice("123456789") for _ in range(9))


def _inbound(n: int, start: int, trunk: str, centre: Centre, rng: random.Random, exts: list[str],
             group_of: dict[str, str], free_at: dict[str, int]) -> DrawnCall:
    group = rng.choice(centre.groups)
    call = DrawnCall(n, start, "in", _number(rng), group, trunk, group)
    members = [e for e in exts if group_of[e] == group]
    order = sorted(members, key=lambda e: (free_at[e] > start, rng.random()))[:centre.agents_tried]
    patience = min(rng.expovariate(1 / centre.patience_s), centre.most_patience_s)
    at = start
    for i, ext in enumerate(order):
        free = free_at[ext] <= at
        answer = max(1, round(rng.expovariate(1 / centre.answer_s))) if free else None
        # (the last agent tried, with no voicemail behind, rings until the caller gives up)
        limit = None if i == len(order) - 1 and not centre.voicemail else centre.agent_timeout
        answered = answer is not None and (limit is None or answer <= limit)
        ring = answer if answered else limit
        if ring is None or at + ring - start > patience:  # the caller hangs up while it rings here
            call.legs.append(Leg(ext, "rang", ring=max(1, round(start + patience - at))))
            return call
        if not answered:
            call.legs.append(Leg(ext, "rang", ring=ring))
            at += ring
            continue
        leg = _answer(ext, ring, centre, rng)
        call.legs.append(leg)
        at += leg.ring + leg.talk + leg.hold
        free_at[ext] = at
        if rng.random() < centre.transfer_share:
            others = [e for e in members if e != ext and free_at[e] <= at]
            if others:
                second = _answer(rng.choice(others), max(1, round(rng.expovariate(1 / centre.answer_s))), centre, rng)
                second.ring = min(second.ring, centre.agent_timeout)
                call.legs.append(second)
                free_at[second.ext] = at + second.ring + second.talk + second.hold
        return call
    call.legs.append(Leg(None, "voicemail", talk=max(3, round(rng.expovariate(1 / centre.voicemail_s)))))
    return call


def _answer(ext: str, ring: int, centre: Centre, rng: random.Random) -> Leg:
    hold = round(rng.uniform(10, 90)) if rng.random() < centre.hold_share else 0
    return Leg(ext, "answered", ring=ring, talk=max(5, round(rng.expovariate(1 / centre.talk_s))), hold=hold)


def _outbound(n: int, start: int, trunk: str, centre: Centre, rng: random.Random, exts: list[str],
              group_of: dict[str, str], free_at: dict[str, int]) -> DrawnCall:
    ext = min(exts, key=lambda e: (free_at[e] > start, rng.random()))
    call = DrawnCall(n, start, "out", ext, _number(rng), trunk, None)
    ring = round(rng.uniform(3, 25))
    if rng.random() < 0.75:
        call.legs.append(Leg(ext, "answered", ring=ring, talk=max(5, round(rng.expovariate(1 / 120)))))
        free_at[ext] = max(free_at[ext], call.end)
    else:
        call.legs.append(Leg(ext, "rang", ring=ring))
    return call


# -- how each family prints a call ---------------------------------------------------------

def _local(ts: int, zone: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc).astimezone(zone)


def _hms(seconds: int) -> str:
    return f"{seconds // 3600:02}:{seconds // 60 % 60:02}:{seconds % 60:02}"


def avaya_ipo(call: DrawnCall, centre: Centre, zone: ZoneInfo) -> list[bytes]:
    """IP Office: a segment per leg, each printing the call's start; Continuation 1 while
    more follow; Connected time excludes ring and hold; V<n> is voicemail."""
    start = f"{_local(call.start, zone):%Y/%m/%d %H:%M:%S}"
    lines = []
    for i, leg in enumerate(call.legs):
        more = int(i < len(call.legs) - 1)
        if leg.ext is None:
            party1, name1 = "V9501", "VM Channel 1"
        else:
            party1, name1 = f"E{leg.ext}", centre.name_of(leg.ext)
        if call.dir == "in":
            fields = [start, _hms(leg.talk), str(leg.ring), call.caller, "I", call.called, call.called, "", "0",
                      str(1_000_000 + call.id), str(more), party1, name1, f"T{call.trunk}", f"Line {call.trunk}",
                      str(leg.hold), "0"]
        else:
            fields = [start, _hms(leg.talk), str(leg.ring), call.caller, "O", call.called, call.called, "", "0",
                      str(1_000_000 + call.id), str(more), party1, name1, f"T{call.trunk}", f"Line {call.trunk}",
                      str(leg.hold), "0"]
        lines.append(",".join(fields + [""] * 13).encode() + b"\r\n")
    return lines


def asterisk_csv(call: DrawnCall, centre: Centre, zone: ZoneInfo) -> list[bytes]:
    """Asterisk's Master.csv: a row per leg with its own start, answer and end; billsec
    (the talk) counts hold; a voicemail leg is the VoiceMail application answering."""
    rows = []
    at = call.start
    for i, leg in enumerate(call.legs):
        billsec = leg.talk + leg.hold
        answered = leg.kind != "rang"
        begin, answer, end = at, at + leg.ring if answered else None, at + leg.ring + billsec
        if call.dir == "in":
            context, src, dst, channel = "from-pstn", call.caller, call.called, f"SIP/trunk{call.trunk}-{call.id:08x}"
            dstchannel = f"SIP/{leg.ext}-{call.id:06x}{i:02x}" if leg.ext else ""
            app, data = ("VoiceMail", f"{call.called}@default") if leg.ext is None else ("Dial", f"SIP/{leg.ext},15,tT")
        else:
            context, src, dst = "from-internal", leg.ext, call.called
            channel, dstchannel = f"SIP/{leg.ext}-{call.id:06x}{i:02x}", f"SIP/trunk{call.trunk}-{call.id:08x}"
            app, data = "Dial", f"SIP/trunk{call.trunk}/{call.called},60"
        fmt = lambda ts: "" if ts is None else f"{_local(ts, zone):%Y-%m-%d %H:%M:%S}"  # noqa: E731
        out = io.StringIO()
        csv.writer(out, quoting=csv.QUOTE_NONNUMERIC, lineterminator="").writerow(
            ["", src, dst, context, f'"{src}" <{src}>', channel, dstchannel, app, data, fmt(begin), fmt(answer), fmt(end),
             end - begin, billsec if answered else 0, "ANSWERED" if answered else "NO ANSWER", "DOCUMENTATION",
             f"{call.start}.{call.id}", ""])
        rows.append(out.getvalue().encode() + b"\n")
        at = end
    return rows


def panasonic_kx_tda(call: DrawnCall, centre: Centre, zone: ZoneInfo) -> list[bytes]:
    """KX-TDA Pattern C (120 columns): a record per leg, printed with the time it ended, to
    the minute; an incoming call's ``<D>`` number called and ``<I>`` caller, its ring
    (m'ss) and a duration (hh:mm'ss) that counts its hold; ``TR`` on a leg passed on, the
    next continuing on the same CO line. An outgoing call prints no ring."""
    lines = []
    at = call.start
    for i, leg in enumerate(call.legs):
        at += leg.ring + leg.talk + leg.hold
        end = _local(at, zone)
        if call.dir == "in":
            dial, ring = f"<D>{call.called}<I>{call.caller}", f"{leg.ring // 60}'{leg.ring % 60:02}"
        else:
            dial, ring = call.called, ""
        held = leg.talk + leg.hold
        record = (f"{end:%m/%d/%y} {end.hour % 12 or 12:>2}:{end.minute:02}{end:%p} {leg.ext:<5} {call.trunk:>04} "
                  f"{dial:<50} {ring:>4} {held // 3600:02}:{held // 60 % 60:02}'{held % 60:02} {'':11} {'':10} "
                  f"{'TR' if i < len(call.legs) - 1 else ''}")
        lines.append(record.rstrip().encode() + b"\r\n")
    return lines


def cisco_cucm(call: DrawnCall, centre: Centre, zone: ZoneInfo) -> list[bytes]:
    """Unified CM's CDR flat file (the 10.5 layout of the profile's sample): a CDR per call,
    times in epoch seconds UTC; dateTimeConnect 0 when never answered; duration from the
    answer, hold included; originalCalledPartyNumber and huntPilotDN the hunt pilot,
    finalCalledPartyNumber the member who took it (or last rang); a phone is its device,
    SEP and its MAC address; the gateway is the other device. It prints one CDR whoever
    rang before (so its centre tries one agent, and transfers none: see :data:`FAMILIES`)."""
    [leg] = call.legs
    row = ["0"] * 123
    phone = f"SEP{0x00AABB000000 + int(leg.ext):012X}"
    gateway = f"PSTN-GW-{call.trunk}"
    answered = leg.kind == "answered"
    connect = call.start + leg.ring if answered else 0
    inbound = call.dir == "in"
    values = {
        0: "1", 1: "1", 2: str(call.id), 3: str(10_000_000 + 2 * call.id), 4: str(call.start),
        8: call.caller, 11: "0" if answered else "16", 25: str(10_000_001 + 2 * call.id),
        29: call.called, 30: leg.ext if inbound else call.called, 33: "16" if answered else "0",
        47: str(connect), 48: str(call.end), 49: call.called, 50: f"00000000-0000-4000-8000-{call.id:012d}",
        55: str(leg.talk + leg.hold if answered else 0), 56: gateway if inbound else phone,
        57: phone if inbound else gateway, 65: "StandAloneCluster", 101: call.group or "", 122: call.group or "",
    }
    for column in (9, 31, 51, 52, 53, 54, 67, 68, 70, 77, 78, 79, 80, 81, 104, 105, 108, 109, 110, 111, 119, 120, 121):
        row[column] = ""
    for column, value in values.items():
        row[column] = value
    return [",".join(row).encode() + b"\n"]


@dataclass(frozen=True, slots=True)
class Family:
    """How a PBX family prints a call, and what of a centre its records can show: a
    family that prints one record whoever rang before, or no hand-off, has its centre
    drawn without them (``limits``: :class:`Centre` fields), so that the truth is what
    its records can tell."""

    render: Callable[[DrawnCall, Centre, ZoneInfo], list[bytes]]
    limits: dict = field(default_factory=dict)

    def centre(self, centre: Centre) -> Centre:
        return replace(centre, **self.limits)


#: Family name -> how it prints a call. CUCM writes one CDR a call, and Panasonic's
#: documentation shows no record of an agent a call rang at and left, nor either of them
#: a voicemail leg one can tell (a KX-TDA's voice mail is an extension, CUCM's a redirect
#: to a pilot the site chooses): their calls ring one agent until the caller gives up. CUCM prints a transfer as three CDRs of two call
#: ids (the consultation is a call of its own): its calls are not passed on.
FAMILIES: dict[str, Family] = {
    "avaya-ipo": Family(avaya_ipo),
    "asterisk-csv": Family(asterisk_csv),
    "panasonic-kx-tda": Family(panasonic_kx_tda, {"agents_tried": 1, "voicemail": False}),
    "cisco-cucm": Family(cisco_cucm, {"agents_tried": 1, "voicemail": False, "transfer_share": 0.0}),
}


def garble(calls: list[DrawnCall], share: float, seed: int = 1) -> None:
    """Mark ``share`` of the calls, at random, to be printed garbled."""
    rng = random.Random(seed)
    for call in rng.sample(calls, round(share * len(calls))):
        call.garbled = True


def printout(calls: list[DrawnCall], family: str, centre: Centre, zone: ZoneInfo,
             twice: bool = False) -> Iterator[tuple[int, bytes]]:
    """(when it is printed, UTC s; the record's bytes), in the order the PBX prints them:
    a call's records when it ends; a garbled call's cut after 10 bytes; with ``twice``,
    every record printed again at once (as a PBX that repeats its buffer)."""
    render = FAMILIES[family].render
    for call in sorted(calls, key=lambda c: (c.end, c.id)):
        for record in render(call, centre, zone):
            if call.garbled:
                record = record[:10] + record[len(record.rstrip(b"\r\n")):]
            for _ in range(1 + twice):
                yield call.end, record
