"""``pbxgw report`` as a manager gets it: the page opened in a real headless Chromium
(every image loaded, the summary's figures in its text, a screenshot that is no blank
page), nothing referenced outside the file, the CSVs, and clear errors."""

import csv
import json
import html.parser
import io
import resource
import signal
import subprocess
import sys
from datetime import date, datetime

import msgpack
import pytest

from gateway.central import report
from gateway.central.database import Database
from gateway.central.ingest import Rows
from gateway.central.kpi import KpiSettings
from gateway.smdr import profiles
from gateway.wire.events import HeadsetEvent, StatusEvent, to_wire
from central_parts import segment
from helpers import pbxgw

pytestmark = pytest.mark.central

PARIS_MONDAY = date(2026, 3, 9)


def at(day: date, hh: int, mm: int) -> int:
    from zoneinfo import ZoneInfo
    return int(datetime(day.year, day.month, day.day, hh, mm, tzinfo=ZoneInfo("Europe/Paris")).timestamp())


def send(db: Database, kind: str, events) -> None:
    rows = Rows()
    rows.add(f"pbxgw/v1/hq/gw-1/{kind}", msgpack.packb(events), 1_773_000_000_000)
    assert not rows.rejected, rows.rejected
    db.write(rows)


def two_days(db: Database) -> None:
    """Two working days of calls at a Paris site, one agent's headset, the gateway's status."""
    send(db, "status", to_wire(StatusEvent(gw="gw-1", site="hq", state="online", boot=1, rx=1, version="t",
                                           sources=[{"name": "pbx", "profile": "avaya-ipo",
                                                     "timezone": "Europe/Paris"}])))
    records, seq = [], 0
    for day in (PARIS_MONDAY, date(2026, 3, 10)):
        for n in range(40):
            seq += 1
            start = at(day, 8 + n // 5, n % 5 * 11)
            answered = n % 6 != 0
            records.append(segment(seq, seq, start, str(201 + n % 4), 0, 4 + n % 30, 60 + n if answered else 0))
    send(db, "calls", records)
    headset = [to_wire(HeadsetEvent(gw="gw-1", src="hs-1", stream="h1", seq=i + 1, ts=ts * 1000, vid=0x47f,
                                    pid=0xc056, agent="ana", ext="201", ev=ev))
               for i, (ts, ev) in enumerate([(at(PARIS_MONDAY, 8, 0), "off_hook"), (at(PARIS_MONDAY, 12, 0), "on_hook")])]
    send(db, "headsets", headset)


@pytest.fixture
def site(tmp_path, database_url):
    db = Database.open(database_url)
    db.migrate()
    two_days(db)
    db.close()
    config = tmp_path / "collector.toml"
    config.write_text(f'[collector]\ndatabase = "{database_url}"\n[mqtt]\nurl = "mqtt://127.0.0.1:1"\n'
                      '[kpi]\nanswer_within = "20s"\nbusiness_hours = "Mon-Fri 08:00-18:00"\n')
    return config, database_url


def expected_summary(url: str) -> list[tuple[str, str]]:
    db = Database.open(url)
    try:
        figures, _ = report.build(db, "hq", PARIS_MONDAY, date(2026, 3, 10), KpiSettings())
    finally:
        db.close()
    return report.summary(figures)


@pytest.fixture
def out(site, tmp_path):
    """The report of the two days, written by ``pbxgw report``: its directory."""
    config, _ = site
    made = pbxgw("report", "--config", str(config), "--from", "2026-03-09", "--to", "2026-03-10", "--calls", "--out",
                 str(tmp_path / "out"), timeout=120)
    assert made.returncode == 0, made.stderr
    return tmp_path / "out"


class References(html.parser.HTMLParser):
    """Every tag and every attribute that could fetch something."""

    def __init__(self):
        super().__init__()
        self.tags, self.urls, self.styles = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.urls += [v for k, v in attrs if k in ("src", "href", "srcset", "data", "poster", "action")]
        self.styles += [v for k, v in attrs if k == "style"]

    def handle_data(self, data):
        if self.tags and self.tags[-1] == "style":
            self.styles.append(data)


def test_the_report_opens_in_a_real_browser_with_every_image_and_the_summarys_figures(site, tmp_path):
    from matplotlib import image

    from browser import chromium

    config, url = site
    out = tmp_path / "out"
    made = pbxgw("report", "--config", str(config), "--site", "hq", "--from", "2026-03-09", "--to", "2026-03-10",
                 "--out", str(out), timeout=120)
    assert made.returncode == 0, made.stderr
    assert f"80 calls of site hq (2026-03-09 to 2026-03-10, Europe/Paris): {out / 'report.html'}" in made.stdout.decode()
    with chromium(width=1200, height=1000) as browser:
        browser.open((out / "report.html").as_uri())
        images = browser.evaluate("[...document.images].map(i => [i.alt, i.complete, i.naturalWidth])")
        text = browser.evaluate("document.body.innerText")
        png = browser.screenshot()
    assert len(images) == 6 and all(done and width > 0 for _, done, width in images), images
    for name, value in expected_summary(url):
        assert f"{name}\t{value}" in text, (name, value)
    assert "Europe/Paris" in text and "answered within T" in text and "ana" in text
    pixels = image.imread(io.BytesIO(png))
    ink = (pixels[..., :3].min(axis=2) < 0.9).mean()  # share of pixels that are not white
    assert pixels.shape[0] > 1000 and ink > 0.02, ink


def test_on_a_narrow_window_no_text_runs_off_the_page(out):
    from browser import chromium

    with chromium(width=480, height=800) as browser:
        browser.open((out / "report.html").as_uri())
        wider = browser.evaluate("""[...document.body.querySelectorAll('*')]
            .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
            .map(e => e.tagName + ': ' + e.textContent.slice(0, 40))""")
        widths = browser.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert wider == [] and widths[0] <= widths[1], (wider, widths)


def test_each_days_service_level_bar_is_coloured_against_the_target(out):
    import base64
    from matplotlib import colors, image

    days = list(csv.DictReader((out / "days.csv").open()))
    target = KpiSettings().target
    met = {float(d["service_level"]) >= target for d in days if d["service_level"]}
    page = References()
    page.feed((out / "report.html").read_text())
    [chart] = [u for u in page.urls if u][2:3]  # the third chart: service level per day
    pixels = image.imread(io.BytesIO(base64.b64decode(chart.split(",", 1)[1])))[..., :3]

    def shows(colour: str) -> bool:
        return bool((abs(pixels - colors.to_rgb(colour)).max(axis=2) < 0.02).sum() > 200)

    assert (shows(report.MET), shows(report.MISSED)) == (True in met, False in met), (met, days)


def test_the_page_references_nothing_outside_itself(out):
    page = References()
    page.feed((out / "report.html").read_text())
    assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
    assert page.urls and all(u.startswith("data:image/png;base64,") for u in page.urls), page.urls
    assert not any("url(" in s or "@import" in s for s in page.styles)


def test_the_csvs_hold_a_row_per_call_extension_and_half_hour(out):
    calls = list(csv.DictReader((out / "calls.csv").open()))
    assert len(calls) == 80 and calls[0]["start_local"].startswith("2026-03-09T08:00:00+01:00")
    first = calls[0]  # each column under its name
    assert (first["outcome"], first["orphan"], first["complete"], first["folded"]) == ("abandoned", "0", "1", "0")
    assert json.loads(first["legs"]) == [["201", "rang", 0, 0, None]] and first["first_ext"] == ""
    extensions = list(csv.DictReader((out / "extensions.csv").open()))
    assert [r["extension"] for r in extensions] == ["201", "202", "203", "204", "total"]
    assert int(extensions[-1]["presented"]) == 80 == sum(int(r["presented"]) for r in extensions[:-1])
    intervals = list(csv.DictReader((out / "intervals.csv").open()))
    assert len(intervals) == 2 * 48 and intervals[0]["half_hour_local"] == "2026-03-09T00:00:00+01:00"
    assert sum(int(r["calls"]) for r in intervals) == 80
    assert {r["business_hours"] for r in intervals if "T08:00" <= r["half_hour_local"][10:16] < "T18:00"} == {"1"}
    days = list(csv.DictReader((out / "days.csv").open()))
    assert [(d["day"], d["open_day"], d["offered"]) for d in days] == [("2026-03-09", "1", "40"), ("2026-03-10", "1", "40")]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["offered"] == 80 and summary["busy_hour"]["open_days"] == 2


def test_a_site_whose_profile_names_a_hunt_group_gets_its_calls_by_group(site, tmp_path):
    config, url = site
    assert "named no hunt group or queue" in report_of(config, tmp_path / "before")[1]
    db = Database.open(url)
    try:  # the site's copy says its numbers called are hunt groups: its calls are assembled again
        rules = {**profiles.find("avaya-ipo").assembly_table, "group": "called"}
        send(db, "status", to_wire(StatusEvent(gw="gw-1", site="hq", state="online", boot=1, rx=2, version="t",
                                               sources=[{"name": "pbx", "profile": "avaya-ipo", "assembly": rules,
                                                         "timezone": "Europe/Paris"}])))
    finally:
        db.close()
    out, page = report_of(config, tmp_path / "after")
    groups = list(csv.DictReader((out / "groups.csv").open()))
    summary = json.loads((out / "summary.json").read_text())
    assert [(g["hunt_group"], int(g["offered"]), int(g["answered"])) for g in groups] == [
        ("200", summary["offered"], summary["answered"])]
    assert "<h2>Hunt groups and queues</h2>" in page and "Offered calls whose records named none: 0." in page


def report_of(config, out) -> tuple:
    made = pbxgw("report", "--config", str(config), "--from", "2026-03-09", "--to", "2026-03-10", "--out", str(out),
                 timeout=120)
    assert made.returncode == 0, made.stderr
    return out, (out / "report.html").read_text()


@pytest.mark.parametrize("args, says", [
    (["--from", "2026-03-10", "--to", "2026-03-09"], "--to 2026-03-09 is before --from 2026-03-10"),
    (["--from", "2026-03-09", "--site", "nowhere"], "no record of site 'nowhere' is stored; sites: hq"),
    (["--from", "09/03/2026"], "expected a date as YYYY-MM-DD"),
    (["--from", "2025-01-01", "--to", "2026-03-09"], "at most 366 days"),
])
def test_what_a_user_gets_wrong_is_one_line_and_no_traceback(site, tmp_path, args, says):
    config, _ = site
    run = pbxgw("report", "--config", str(config), "--out", str(tmp_path / "o"), *args)
    assert run.returncode != 0 and says in run.stderr.decode() + run.stdout.decode()
    assert b"Traceback" not in run.stderr


def test_a_file_that_cannot_grow_mid_report_is_said_in_one_line(site, tmp_path):
    # (a file size limit stands in for a full disk: writes past it fail with EFBIG, once
    # SIGXFSZ is ignored, while calls.csv is written from the calls being read)
    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))

    config, url = site
    db = Database.open(url)
    send(db, "calls", [segment(1000 + n, 1000 + n, at(date(2026, 3, 10), 8, 0) + 60 * n, "201", 0, 3, 30)
                       for n in range(500)])  # (calls.csv then outgrows the limit, the database's -shm does not)
    db.close()
    report_of = [sys.executable, "-m", "gateway", "report", "--config", str(config), "--from", "2026-03-09", "--to",
                 "2026-03-10", "--calls"]
    assert subprocess.run([*report_of, "--out", str(tmp_path / "first")], timeout=120).returncode == 0  # assembles
    run = subprocess.run([*report_of, "--out", str(tmp_path / "out")], capture_output=True, timeout=120,
                         preexec_fn=small_files)
    assert run.returncode == 1 and b"cannot write into" in run.stderr and b"File too large" in run.stderr
    assert b"Traceback" not in run.stderr and b"Exception ignored" not in run.stderr, run.stderr


def test_an_out_directory_that_cannot_be_written_is_said(site, tmp_path):
    config, _ = site
    blocker = tmp_path / "file"
    blocker.write_text("")
    run = pbxgw("report", "--config", str(config), "--from", "2026-03-09", "--out", str(blocker / "out"))
    assert run.returncode == 1 and b"cannot write into" in run.stderr and b"Traceback" not in run.stderr


def monday_report(tmp_path, database_url: str, zone: str, calls: list[dict]):
    """``pbxgw report`` of the Monday, over a site whose gateway names ``zone`` and sent
    ``calls``: the finished process (its output in ``tmp_path / "out"``)."""
    db = Database.open(database_url)
    db.migrate()
    send(db, "status", to_wire(StatusEvent(gw="gw-1", site="hq", state="online", boot=1, rx=1, version="t",
                                           sources=[{"name": "pbx", "profile": "avaya-ipo", "timezone": zone}])))
    send(db, "calls", calls)
    db.close()
    config = tmp_path / "collector.toml"
    config.write_text(f'[collector]\ndatabase = "{database_url}"\n[mqtt]\nurl = "mqtt://127.0.0.1:1"\n')
    return pbxgw("report", "--config", str(config), "--from", "2026-03-09", "--to", "2026-03-09", "--calls", "--out",
                 str(tmp_path / "out"), timeout=120)


FORMULAS = ["=HYPERLINK(\"http://x\",\"y\")", "+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)",
            "\t=1+1", "\r=1+1"]


def test_text_a_spreadsheet_would_run_is_written_as_text_and_numbers_are_left_alone(tmp_path, database_url):
    """Anyone who can dial or name an extension writes the CSVs' text (OWASP, CSV injection)."""
    calls = [segment(n + 1, n + 1, at(PARIS_MONDAY, 9, n), text, 0, 5, 60) for n, text in enumerate(FORMULAS)]
    calls += [{**segment(9, 9, at(PARIS_MONDAY, 10, 0), "201", 0, 5, 60), "caller": "+441234567"},
              {**segment(10, 10, at(PARIS_MONDAY, 10, 5), "202", 0, 5, 60), "caller": "=1+1", "called": "@x"}]
    made = monday_report(tmp_path, database_url, "Europe/Paris", calls)
    assert made.returncode == 0, made.stderr
    cells = [cell for name in ("calls.csv", "extensions.csv", "numbers.csv")
             for row in csv.reader((tmp_path / "out" / name).open(newline="")) for cell in row]
    for text in FORMULAS + ["=1+1", "@x"]:
        assert text not in cells and "'" + text in cells, text
    assert "+441234567" in cells  # a number runs nothing: left as it came
    assert not [c for c in cells if c.startswith(report.FORMULA_HEADS) and not report._NUMBER.match(c)]


@pytest.mark.parametrize("value, shown", [("=1+1", "'=1+1"), ("-3", "-3"), ("+33 1 23", "'+33 1 23"), ("-", "'-"),
                                          ("201", "201"), (7, 7), (None, None), ("a=b", "a=b")])
def test_a_cell_is_neutralised_only_when_it_would_start_a_formula(value, shown):
    assert report.spreadsheet_cell(value) == shown


def test_a_zone_no_calendar_knows_in_a_status_is_said_and_the_report_made_in_utc(tmp_path, database_url):
    made = monday_report(tmp_path, database_url, "../../../etc/passwd",
                         [segment(1, 1, at(PARIS_MONDAY, 9, 0), "201", 0, 5, 60)])
    assert made.returncode == 0 and b"Traceback" not in made.stderr, made.stderr
    page = (tmp_path / "out" / "report.html").read_text()
    assert "UTC, from its gateways&#x27; status names no known zone (../../../etc/passwd): UTC" in page
