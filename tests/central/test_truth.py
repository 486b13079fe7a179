"""The report against the truth: a drawn week of a contact centre, printed by ``pbxgw
simulate --traffic`` as its PBX family prints it, read by a real gateway over TCP,
carried by a real Mosquitto, stored by a real collector (SQLite and PostgreSQL) and
reported by ``pbxgw report``; its ``summary.json``, ``extensions.csv`` and
``intervals.csv`` equal the figures worked out here, by a plain computation of the
documented definitions (docs/central.md) from the simulator's truth file: what was drawn,
not what was printed. Then the same with the site's renamed copy of the profile, with 5 %
of the calls garbled on the line (counted as not understood, the rest exact), and with
every record printed twice."""

import csv
import json
import shutil
import subprocess
import sys
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from central_parts import Stored
from helpers import pbxgw
from plugins.processes import wait_until

pytestmark = pytest.mark.central

ZONE = ZoneInfo("Europe/Paris")
MONDAY = date(2026, 11, 23)  # a week without a change of summer time
DAYS = 7
T, SHORT = 20, 5  # the collector's defaults: answer within 20 s, short abandons under 5 s
#: Per family, what its PBX prints of a call beside the truth: hold on its own (IP Office),
#: or inside the talk (Asterisk's billsec, Panasonic's and CUCM's duration count it).
HOLD_PRINTED = {"avaya-ipo": True, "asterisk-csv": False, "panasonic-kx-tda": False, "cisco-cucm": False}
FAMILIES = sorted(HOLD_PRINTED)
#: What each family's drawn centre does (Panasonic's and CUCM's records name one agent a
#: call rang at, and no voicemail; CUCM prints a transfer as a call of its own besides).
OUTCOMES = {"avaya-ipo": {"answered", "abandoned", "voicemail"}, "asterisk-csv": {"answered", "abandoned", "voicemail"},
            "panasonic-kx-tda": {"answered", "abandoned"}, "cisco-cucm": {"answered", "abandoned"}}
PASSED_ON = {"avaya-ipo", "asterisk-csv", "panasonic-kx-tda"}
#: What the report says a family's records do not show.
NOT_SHOWN = {"avaya-ipo": [], "asterisk-csv": ["hold"], "panasonic-kx-tda": ["earlier_extensions", "hold"],
             "cisco-cucm": ["earlier_extensions", "hold"]}


def local(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, ZONE)


def on_the_line(call: dict, family: str) -> tuple[int, int]:
    """When a call was on the line, as its records can tell: from its start until its last
    leg ended. A Panasonic prints when each leg ended, to the minute, and its ring and
    duration (an outgoing call, no ring): its start is the first leg's printed end less
    those; its end, the last leg's printed end."""
    ends, at = [], call["start"]
    for leg in call["legs"]:
        at += leg["ring"] + leg["talk"] + leg["hold"]
        ends.append(at)
    if family != "panasonic-kx-tda":
        return call["start"], ends[-1]
    first = call["legs"][0]
    printed = first["talk"] + first["hold"] + (first["ring"] if call["dir"] == "in" else 0)
    return ends[0] - ends[0] % 60 - printed, ends[-1] - ends[-1] % 60


def as_printed(truth: list[dict], family: str) -> list[dict]:
    """The calls drawn, each with ``at`` and ``until`` (:func:`on_the_line`), that the
    records say started in the week (a Panasonic's first minute of it may say before)."""
    first = datetime.combine(MONDAY, datetime.min.time(), ZONE).timestamp()
    last = datetime.combine(MONDAY + timedelta(days=DAYS), datetime.min.time(), ZONE).timestamp()
    calls = [{**c, **dict(zip(("at", "until"), on_the_line(c, family)))} for c in truth]
    return [c for c in calls if first <= c["at"] < last]


def in_business_hours(ts: int) -> bool:
    at = local(ts)
    return at.weekday() < 5 and 8 <= at.hour < 18


def wait_of(call: dict) -> int:
    """Rings until the first answer; unanswered, all of them (its legs follow one another)."""
    total = 0
    for leg in call["legs"]:
        total += leg["ring"]
        if leg["kind"] == "answered":
            break
    return total


def talk_hold(leg: dict, family: str) -> tuple[int, int]:
    return (leg["talk"], leg["hold"]) if HOLD_PRINTED[family] else (leg["talk"] + leg["hold"], 0)


def pieces(start: int, end: int, size: int):
    """``[start, end)`` cut at local clock boundaries ``size`` seconds apart: (piece's local
    start, seconds)."""
    t = start
    while t < end:
        offset = int(local(t).utcoffset().total_seconds())
        boundary = (t + offset) // size * size - offset
        upto = min(end, boundary + size)
        yield local(boundary), upto - t
        t = upto


def expected(truth: list[dict], family: str, twice: bool) -> dict:
    """The report's figures, worked out from the calls as they were drawn."""
    readable = [c for c in truth if not c["garbled"]]
    offered = [c for c in readable if c["dir"] == "in"]
    scope = [c for c in offered if in_business_hours(c["at"])]
    answered = [c for c in scope if c["outcome"] == "answered"]
    abandoned = [c for c in scope if c["outcome"] == "abandoned"]
    short = [c for c in abandoned if wait_of(c) < SHORT]
    waits = sorted(wait_of(c) for c in answered)
    within = sum(w <= T for w in waits)
    handled = sum(sum(talk_hold(leg, family)) for c in answered for leg in c["legs"] if leg["kind"] == "answered")
    traffic = defaultdict(int)
    for c in readable:
        for at, seconds in pieces(c["at"], c["until"], 3600):
            traffic[(at.date(), at.hour)] += seconds
    open_days = sorted({local(c["at"]).date() for c in scope})
    mean = {h: sum(traffic[(d, h)] for d in open_days) / len(open_days) / 3600 for h in range(24)}
    hour = max(range(24), key=lambda h: (mean[h], -h))
    peak = max(open_days, key=lambda d: traffic[(d, hour)])
    printed = sum(len(c["legs"]) for c in readable)
    figures = {
        "offered": len(scope), "answered": len(answered), "answered_within_t": within,
        "abandoned": len(abandoned), "abandoned_short": len(short),
        "voicemail": sum(c["outcome"] == "voicemail" for c in scope), "busy": 0, "other": 0,
        "service_level": within / (len(answered) + len(abandoned) - len(short)),
        "abandon_rate": len(abandoned) / len(scope),
        "abandon_rate_after_short": (len(abandoned) - len(short)) / (len(scope) - len(short)),
        "answer_rate": len(answered) / len(scope),
        "asa_s": sum(waits) / len(waits), "p90_wait_s": float(waits[-(-9 * len(waits) // 10) - 1]),
        "aht_s": handled / len(answered),
        "transfers": sum(max(0, sum(leg["kind"] == "answered" for leg in c["legs"]) - 1) for c in scope),
        "outside_hours": len(offered) - len(scope),
        "not_understood": sum(len(c["legs"]) for c in truth if c["garbled"]) * (2 if twice else 1),
        "folded_duplicates": printed if twice else 0,
        "busy_hour": {"start": f"{hour:02}:00", "erlangs_open_days": mean[hour], "open_days": len(open_days),
                      "peak_day": peak.isoformat(), "erlangs_peak_day": traffic[(peak, hour)] / 3600},
    }
    return figures


def expected_extensions(truth: list[dict], family: str) -> dict[str, dict]:
    rows = defaultdict(lambda: dict.fromkeys(("presented", "answered", "missed", "talk_s", "hold_s", "outbound",
                                              "outbound_talk_s"), 0))
    for c in truth:
        if c["garbled"]:
            continue
        if c["dir"] == "out":
            ext = c["legs"][0]["ext"]
            rows[ext]["outbound"] += 1
            rows[ext]["outbound_talk_s"] += sum(sum(talk_hold(leg, family)) for leg in c["legs"]
                                                if leg["kind"] == "answered")
            continue
        for ext in {leg["ext"] for leg in c["legs"] if leg["ext"] is not None}:
            here = [leg for leg in c["legs"] if leg["ext"] == ext]
            took = [leg for leg in here if leg["kind"] == "answered"]
            row = rows[ext]
            row["presented"] += 1
            row["answered"] += bool(took)
            row["missed"] += not took
            for leg in took:
                talk, hold = talk_hold(leg, family)
                row["talk_s"] += talk
                row["hold_s"] += hold
    return dict(rows)


def expected_numbers(truth: list[dict]) -> dict[str, tuple]:
    """Offered calls in business hours by the number (hunt group) called: (offered,
    answered, abandoned, voicemail)."""
    rows = defaultdict(lambda: [0, 0, 0, 0])
    for c in truth:
        if not c["garbled"] and c["dir"] == "in" and in_business_hours(c["at"]):
            row = rows[c["called"]]
            row[0] += 1
            row[1:] = [v + (c["outcome"] == o) for v, o in zip(row[1:], ("answered", "abandoned", "voicemail"))]
    return {k: tuple(v) for k, v in rows.items()}


def expected_intervals(truth: list[dict]) -> dict[str, tuple]:
    """Per local half-hour of the week: (calls, offered, answered, abandoned, voicemail,
    seconds on the line)."""
    grid = {}
    first = datetime.combine(MONDAY, datetime.min.time(), ZONE)
    for n in range(DAYS * 48):
        grid[(first + timedelta(minutes=30 * n)).isoformat()] = [0, 0, 0, 0, 0, 0]
    for c in truth:
        if c["garbled"]:
            continue
        at = local(c["at"])
        row = grid[at.replace(minute=at.minute // 30 * 30, second=0).isoformat()]
        row[0] += 1
        if c["dir"] == "in":
            row[1] += 1
            row[2:5] = [v + (c["outcome"] == o) for v, o in zip(row[2:5], ("answered", "abandoned", "voicemail"))]
        for piece, seconds in pieces(c["at"], c["until"], 1800):
            if piece.isoformat() in grid:
                grid[piece.isoformat()][5] += seconds
    return {k: tuple(v) for k, v in grid.items()}


def run_week(tmp_path: Path, broker, start_gateway, start_collector, database_url: str, family: str,
             profile: str | None = None, *simulate_args: str) -> tuple[list[dict], Path]:
    """A drawn week through the whole path; the truth file's calls and the report's directory."""
    collector = start_collector(broker.url, database_url)
    truth_file = tmp_path / "truth.jsonl"
    simulator = subprocess.Popen(
        [sys.executable, "-m", "gateway", "simulate", "--traffic", "--profile", family, "--tcp", "127.0.0.1:0", "--from",
         MONDAY.isoformat(), "--days", str(DAYS), "--timezone", str(ZONE), "--agents", "16", "--calls-per-hour",
         "40", "--seed", "7", "--rate", "3000", "--truth", str(truth_file), *simulate_args],
        stdout=subprocess.PIPE, text=True)
    try:
        host, _, port = simulator.stdout.readline().strip().rpartition(":")
        assert port.isdigit(), port
        truth = [json.loads(line) for line in truth_file.read_text().splitlines()]
        # (TCP, as the PBX's SMDR port serves it: what is sent after the connection is read,
        # where a serial reader that opens a pty late flushes what was printed before)
        start_gateway(broker.url, [{"name": "pbx", "type": "tcp-client", "host": host, "port": int(port),
                                    "profile": profile or family, "timezone": str(ZONE)}])
        printed = sum(len(c["legs"]) for c in truth) * (2 if "--twice" in simulate_args else 1)
        stored = Stored(database_url)
        try:
            wait_until(lambda: stored.count() >= printed, timeout=300, what=f"{printed} records stored")
        finally:
            stored.close()
        assert simulator.wait(timeout=60) == 0
    finally:
        simulator.kill()
        simulator.wait()
    out = tmp_path / "report"
    made = pbxgw("report", "--config", str(collector.config), "--site", "lab", "--from", MONDAY.isoformat(),
                 "--to", (MONDAY + timedelta(days=DAYS - 1)).isoformat(), "--out", str(out), timeout=300)
    assert made.returncode == 0, made.stderr
    return truth, out


def check(truth: list[dict], out: Path, family: str, twice: bool = False) -> None:
    truth = as_printed(truth, family)
    summary = json.loads((out / "summary.json").read_text())
    want = expected(truth, family, twice)
    got = {k: summary[k] for k in want}
    assert _same(got, want), {k: (got[k], v) for k, v in want.items() if not _same({k: got[k]}, {k: v})}
    extensions = {r.pop("extension"): r for r in csv.DictReader((out / "extensions.csv").open())}
    total = extensions.pop("total")
    names = {ext: r.pop("name") for ext, r in extensions.items()}
    assert {ext: {k: int(v) for k, v in r.items()} for ext, r in extensions.items()} == expected_extensions(
        truth, family)
    assert int(total["presented"]) == sum(int(r["presented"]) for r in extensions.values())
    if family == "avaya-ipo":  # (IP Office prints each extension's user name)
        assert all(names.values()), names
    intervals = {r["half_hour_local"]: (int(r["calls"]), int(r["offered"]), int(r["answered"]), int(r["abandoned"]),
                                        int(r["voicemail"]), round(float(r["erlangs"]) * 1800))
                 for r in csv.DictReader((out / "intervals.csv").open())}
    numbers = {r["called"]: (int(r["offered"]), int(r["answered"]), int(r["abandoned"]), int(r["voicemail"]))
               for r in csv.DictReader((out / "numbers.csv").open())}
    assert numbers == expected_numbers(truth)
    want_intervals = expected_intervals(truth)
    assert intervals.keys() == want_intervals.keys()
    # erlangs are printed to 3 decimals: within 1 s of the seconds on the line per half-hour
    off = {k: (intervals[k], v) for k, v in want_intervals.items()
           if intervals[k][:5] != v[:5] or abs(intervals[k][5] - v[5]) > 1}
    assert not off, off


def _same(got: dict, want: dict) -> bool:
    """Equal, floats to 12 significant digits (both are a ratio of the same integers)."""
    def norm(v):
        if isinstance(v, float):
            return float(f"{v:.12g}")
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        return v
    return norm(got) == norm(want)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_drawn_week_is_reported_as_it_happened(tmp_path, broker, start_gateway, start_collector, database_url,
                                                family):
    truth, out = run_week(tmp_path, broker, start_gateway, start_collector, database_url, family)
    assert len(truth) > 800 and {c["outcome"] for c in truth} == OUTCOMES[family]
    assert any(len([leg for leg in c["legs"] if leg["kind"] == "answered"]) > 1 for c in truth) == (
        family in PASSED_ON)
    check(truth, out, family)
    said = json.loads((out / "summary.json").read_text())["not_shown_by_source"]
    assert said == ([{"src": "pbx", "profile": family, "not_shown": NOT_SHOWN[family]}] if NOT_SHOWN[family] else [])
    assert ("What the records of pbx" in (out / "report.html").read_text()) == bool(NOT_SHOWN[family])


@pytest.mark.parametrize("family", FAMILIES)
def test_the_sites_renamed_copy_of_the_profile_gives_the_same_figures(tmp_path, broker, start_gateway,
                                                                     start_collector, family):
    from gateway.smdr import profiles
    copy = tmp_path / f"my-{family}"
    shutil.copytree(profiles.find(family).path.parent, copy)
    toml = copy / "profile.toml"
    toml.write_text(toml.read_text().replace(f'name = "{family}"', f'name = "my-{family}"', 1))
    database = f"sqlite:///{tmp_path / 'central.db'}"
    truth, out = run_week(tmp_path, broker, start_gateway, start_collector, database, family, str(copy))
    check(truth, out, family)


@pytest.mark.parametrize("family", FAMILIES)
def test_garbled_calls_are_counted_as_not_understood_and_the_rest_is_exact(tmp_path, broker, start_gateway,
                                                                         start_collector, family):
    database = f"sqlite:///{tmp_path / 'central.db'}"
    truth, out = run_week(tmp_path, broker, start_gateway, start_collector, database, family, None,
                          "--garble", "0.05")
    assert sum(c["garbled"] for c in truth) == round(0.05 * len(truth))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["not_understood_by_source"] == [{"src": "pbx", "profile": family,
                                                    "records": summary["not_understood"]}]
    check(truth, out, family)
    assert "could not be read" in (out / "report.html").read_text()


@pytest.mark.parametrize("family", FAMILIES)
def test_every_record_printed_twice_counts_once(tmp_path, broker, start_gateway, start_collector, family):
    database = f"sqlite:///{tmp_path / 'central.db'}"
    truth, out = run_week(tmp_path, broker, start_gateway, start_collector, database, family, None, "--twice")
    check(truth, out, family, twice=True)


def test_a_source_read_with_the_wrong_profile_is_reparsed_and_then_reported_as_it_happened(
        tmp_path, broker, start_gateway, start_collector):
    database = f"sqlite:///{tmp_path / 'central.db'}"
    truth, out = run_week(tmp_path, broker, start_gateway, start_collector, database, "avaya-ipo", "asterisk-csv")
    records = sum(len(c["legs"]) for c in truth)
    assert json.loads((out / "summary.json").read_text())["offered"] == 0
    config = tmp_path / "collector" / "collector.toml"
    stored = Stored(database)
    try:  # no call read before them: they belong to when they arrived (today), not to the week drawn
        assert stored.db.fetch("SELECT count(*) FROM events WHERE kind = 'unparsed' AND start IS NULL") == [(records,)]
    finally:
        stored.close()
    fixed = pbxgw("reparse", "--config", str(config), "--site", "lab", "--src", "pbx", "--profile", "avaya-ipo",
                  timeout=300)
    assert fixed.returncode == 0, fixed.stderr
    assert f"{records} records of pbx (gateway gw-test) read again with avaya-ipo: {records} now calls, " \
           "0 still not read" in fixed.stdout.decode()
    again = tmp_path / "again"
    made = pbxgw("report", "--config", str(config), "--site", "lab", "--from", MONDAY.isoformat(), "--to",
                 (MONDAY + timedelta(days=DAYS - 1)).isoformat(), "--out", str(again), timeout=300)
    assert made.returncode == 0, made.stderr
    check(truth, again, "avaya-ipo")
    stored = Stored(database)
    try:  # the rows as they were are kept
        assert stored.db.fetch("SELECT count(*) FROM reparsed WHERE profile = 'avaya-ipo'") == [(records,)]
    finally:
        stored.close()
