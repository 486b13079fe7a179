"""The technician's path from an unknown PBX to a working profile, each step as a new user
takes it: capture the PBX's own bytes (a pty, a TCP port), draft a profile from them (not
from pbxgw's JSON), name it as the next step says, try another line speed, play a PBX that
pushes its records."""

import json
import os
import re
import socket
import subprocess
import sys
import threading

import pytest

from gateway.commands import simulate
from gateway.smdr import profiles
from helpers import ROOT, pbxgw

TIMEOUT = 60


def samples(name: str) -> bytes:
    return b"".join(simulate.printed_units(profiles.find(name)))


def test_capture_records_a_pty_byte_for_byte_with_its_line_settings(tmp_path):
    line = simulate.PtyLine()
    data = samples("panasonic-kx-tda")
    out = tmp_path / "kx.cap"
    writer = threading.Thread(target=lambda: (line.write(data), line.close()))
    writer.start()
    run = pbxgw("capture", line.path, str(out), "--baudrate", "19200", "--parity", "E", "--times", timeout=TIMEOUT)
    writer.join(TIMEOUT)
    assert run.returncode == 0, run.stderr
    assert out.read_bytes() == data
    meta = json.loads((tmp_path / "kx.cap.meta.json").read_text())
    assert meta["line"] == {"baudrate": 19200, "parity": "E"} and meta["bytes"] == len(data)
    assert meta["times"][0][0] == 0 and all(isinstance(t, int) for _, t in meta["times"])


def test_capture_records_a_pbx_serving_on_a_tcp_port_and_refuses_to_overwrite(tmp_path):
    data = samples("avaya-ipo")
    server = socket.create_server(("127.0.0.1", 0))

    def serve():
        conn, _ = server.accept()
        with conn:
            conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    out = tmp_path / "ipo.cap"
    run = pbxgw("capture", "127.0.0.1:%d" % server.getsockname()[1], str(out), timeout=TIMEOUT)
    server.close()
    assert run.returncode == 0, run.stderr
    assert out.read_bytes() == data
    again = pbxgw("capture", "127.0.0.1:1", str(out))
    assert again.returncode == 1 and b"already exists" in again.stderr and out.read_bytes() == data


def test_a_capture_that_stays_silent_ends_after_its_seconds(tmp_path):
    line = simulate.PtyLine()
    run = pbxgw("capture", line.path, str(tmp_path / "quiet.cap"), "--seconds", "0.5", timeout=TIMEOUT)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "quiet.cap").read_bytes() == b""


def test_profiles_new_refuses_pbxgws_own_json_and_says_how_to_capture(tmp_path):
    events = pbxgw("parse", "--profile", "avaya-ipo", str(profiles.find("avaya-ipo").samples_path))
    (tmp_path / "events.jsonl").write_bytes(events.stdout)
    run = pbxgw("profiles", "new", "acme-9000", "--from", str(tmp_path / "events.jsonl"),
                "--out", str(tmp_path / "acme-9000"))
    assert run.returncode == 1 and not (tmp_path / "acme-9000").exists()
    assert b"pbxgw's JSON events" in run.stderr and b"pbxgw capture" in run.stderr


def test_the_next_step_profiles_new_prints_works_from_where_it_was_run(tmp_path):
    capture = tmp_path / "acme.cap"
    capture.write_bytes(samples("avaya-ipo"))
    new = subprocess.run([sys.executable, "-m", "gateway", "profiles", "new", "acme-9000", "--from", str(capture)],
                         cwd=tmp_path, capture_output=True, timeout=TIMEOUT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert new.returncode == 0, new.stderr
    parse = subprocess.run([sys.executable, "-m", "gateway", "parse", "--profile", "acme-9000", str(capture)],
                           cwd=tmp_path, capture_output=True, timeout=TIMEOUT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert parse.returncode == 0, parse.stderr
    assert b"profile acme-9000: records" in parse.stderr


def test_a_copied_profile_not_renamed_is_warned_about(tmp_path):
    copy = tmp_path / "my-ipo"
    copy.mkdir()
    source = profiles.find("avaya-ipo").path.parent
    for part in ("profile.toml", "samples.txt"):
        (copy / part).write_bytes((source / part).read_bytes())
    run = pbxgw("parse", "--profile", str(copy), str(copy / "samples.txt"))
    assert run.returncode == 0
    assert b"warning:" in run.stderr and b"profile.name is 'avaya-ipo' but its directory is 'my-ipo'" in run.stderr


def test_parse_reads_a_line_at_the_speed_it_is_told():
    line = simulate.PtyLine()
    data = samples("avaya-ipo")
    writer = threading.Thread(target=lambda: (line.write(data), line.close()))
    writer.start()
    run = pbxgw("parse", "--profile", "avaya-ipo", "--baudrate", "19200", "--bytesize", "8", line.path,
                timeout=TIMEOUT)
    writer.join(TIMEOUT)
    assert run.returncode == 0, run.stderr
    assert len(run.stdout.splitlines()) == len(simulate.printed_units(profiles.find("avaya-ipo")))


def test_simulate_connect_pushes_a_printout_to_a_listener_as_avaya_ip_office_does():
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(TIMEOUT)
    units = simulate.printed_units(profiles.find("avaya-ipo"))
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "simulate", "--profile", "avaya-ipo", "--connect",
                             "127.0.0.1:%d" % server.getsockname()[1], "--rate", "500", "--count", str(len(units))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    conn, _ = server.accept()
    received = b""
    with conn:
        conn.settimeout(TIMEOUT)
        while len(received) < len(b"".join(units)):
            chunk = conn.recv(65536)
            assert chunk, "the simulator closed early"
            received += chunk
    assert proc.wait(TIMEOUT) == 0
    assert received == b"".join(units)
    server.close()
    proc.stdout.close()
    proc.stderr.close()


def day_first(profile: str, tmp_path, day: str | None = None):
    """The profile's samples with their MM/DD/YY dates printed DD/MM/YY (or every day set
    to ``day``, no day past 12: dates that read either way)."""
    text = profiles.find(profile).samples_path.read_text()
    swap = (lambda m: f"{m[2]}/{m[1]}/{m[3]}") if day is None else (lambda m: f"{m[1]}/{day}/{m[3]}")
    path = tmp_path / "capture.txt"
    path.write_text(re.sub(r"^(\d\d)/(\d\d)/(\d\d)", swap, text, flags=re.M))
    return path


def test_detect_finds_a_day_first_capture_in_its_date_order(tmp_path):
    run = pbxgw("detect", str(day_first("panasonic-kx-tda", tmp_path)))
    assert run.returncode == 0, run.stderr
    expected = [json.loads(line) for line in profiles.find("panasonic-kx-tda").expected_path.read_text().splitlines()]
    share = sum(e["kind"] == "call" for e in expected) / len(expected)  # (the samples' one unparsed record)
    assert run.stdout.decode().splitlines()[0] == f'panasonic-kx-tda with date_order = "DMY" {share:.3f}'


def test_detect_flags_dates_that_read_either_way(tmp_path):
    run = pbxgw("detect", "--json", str(day_first("panasonic-kx-tda", tmp_path, day="05")))
    assert run.returncode == 0, run.stderr
    best = json.loads(run.stdout)[0]
    assert (best["profile"], best["date_order"], best["ambiguous"]) == ("panasonic-kx-tda", None, "DMY")
    assert b"no day in this capture is past 12" in run.stderr


def test_detect_says_what_an_empty_or_a_binary_capture_is(tmp_path):
    (tmp_path / "empty.cap").write_bytes(b"")
    (tmp_path / "noise.cap").write_bytes(bytes(range(128, 256)) * 40)  # as a wrong baud rate gives
    empty, noise = pbxgw("detect", str(tmp_path / "empty.cap")), pbxgw("detect", str(tmp_path / "noise.cap"))
    assert empty.returncode == noise.returncode == 1
    assert b"empty: nothing was captured" in empty.stderr and b"not text: a wrong baud rate" in noise.stderr


def test_detect_ranks_near_misses_by_the_fields_that_read(tmp_path):
    """Nothing parses (every date broken), but the right profile still reads its other fields."""
    path = tmp_path / "broken-dates.txt"
    path.write_text(re.sub(r"^(\d{4})/\d\d/", r"\1/13/", profiles.find("avaya-ipo").samples_path.read_text(),
                           flags=re.M))
    run = pbxgw("detect", "--json", str(path))
    ranked = json.loads(run.stdout)
    assert run.returncode == 1 and ranked[0]["score"] < 0.5
    assert ranked[0]["profile"] == "avaya-ipo" and 0.5 < ranked[0]["fields"] < 1.0
    assert b"closest: avaya-ipo 0.000 (fields read: " in run.stderr


#: The bundled profiles whose records are lines (a counter column is printed on lines).
LINE_FAMILIES = [name for name in profiles.bundled_names() if profiles.find(name).framing.terminator == "line"]


def numbered(family: str, tmp_path):
    """The family's samples with a record number printed first on each line."""
    path = tmp_path / "numbered.txt"
    lines = profiles.find(family).samples_path.read_bytes().splitlines()
    path.write_bytes(b"".join(b"%2d " % n + line + b"\r\n" for n, line in enumerate(lines, 1)))
    return path


@pytest.mark.parametrize("family", LINE_FAMILIES)
def test_detect_finds_each_family_behind_a_counter_column(tmp_path, family):
    """Either the family reads the numbered lines as they are (a CSV's first field takes
    the number) or detect says the counter column is there and that the family reads the
    rest."""
    run = pbxgw("detect", str(numbered(family, tmp_path)))
    said = run.stderr.decode()
    if run.returncode == 0:
        assert run.stdout.decode().split()[0] == family, run.stdout
    else:
        assert f"the capture has a counter column (a call record number?) at the start of each line: {family} " \
               f"reads" in said, said


def test_profiles_new_drafts_a_copy_that_reads_a_numbered_capture(tmp_path):
    capture = numbered("panasonic-kx-tda", tmp_path)
    made = pbxgw("profiles", "new", "my-tda", "--from", str(capture), "--out", str(tmp_path / "my-tda"))
    assert made.returncode == 0, made.stderr
    assert b"the capture has a counter column" in made.stdout and b"extends it" in made.stdout
    assert 'extends = "panasonic-kx-tda"' in (tmp_path / "my-tda" / "profile.toml").read_text()
    ours = pbxgw("parse", "--profile", str(tmp_path / "my-tda"), str(capture))
    bundled = pbxgw("parse", "--profile", "panasonic-kx-tda", str(profiles.find("panasonic-kx-tda").samples_path))
    # the copy reads the numbered capture as the bundled profile reads the lines without numbers
    def read(run):
        return [{k: v for k, v in json.loads(line).items() if k not in ("raw", "rx", "src", "seq", "profile")}
                for line in run.stdout.splitlines()]
    assert read(ours) == read(bundled) and len(read(ours)) > 10


@pytest.mark.parametrize("family", LINE_FAMILIES)
@pytest.mark.parametrize("extra, shape, pattern", [
    (b"Call records of the reception desk\r\nDate Time Extension Trunk Number\r\n",
     "title and column-header lines (no digit in them)", "skip = ['^\\D*$']"),
    (b"SMDR REPORT 2026                     PAGE 12\r\n  Page 13\r\n", 'page headers ("PAGE nnn")',
     "skip = ['(?i)\\bpage\\s*\\d+\\s*$']"),
])
def test_detect_says_what_besides_records_a_capture_holds_and_which_profile_reads_the_rest(
        tmp_path, family, extra, shape, pattern):
    """Two lines that are no record before each record: no profile reads half the
    capture, and detect says what they are and which profile reads the records."""
    path = tmp_path / "capture.txt"
    path.write_bytes(b"".join(extra + line + b"\r\n" for line in profiles.find(family).samples_path.read_bytes()
                              .splitlines()))
    run = pbxgw("detect", str(path))
    said = run.stderr.decode()
    assert run.returncode == 1 and f"the capture has {shape}: {family} reads" in said and pattern in said, said


@pytest.mark.parametrize("family", LINE_FAMILIES)
def test_detect_says_a_first_line_cut_when_the_capture_began(tmp_path, family):
    profile = profiles.find(family)
    raw = next(e["raw"] for e in map(json.loads, profile.expected_path.read_text().splitlines()) if e["kind"] == "call")
    path = tmp_path / "cut.txt"
    path.write_bytes(raw.encode()[len(raw.encode()) // 2:] + b"\r\n" + profile.samples_path.read_bytes())
    run = pbxgw("detect", str(path))
    assert run.returncode == 0 and run.stdout.decode().split()[0] == family, run.stdout
    assert b"the capture's first line does not read and the rest does" in run.stderr
    whole = pbxgw("detect", str(profile.samples_path))
    assert b"first line" not in whole.stderr


def test_parse_says_how_many_calls_look_wrong_when_a_column_is_one_off(tmp_path):
    copy = tmp_path / "panasonic-kx-tda"
    source = profiles.find("panasonic-kx-tda").path.parent
    copy.mkdir()
    (copy / "profile.toml").write_text((source / "profile.toml").read_text().replace("ext = [17, 22]", "ext = [18, 23]"))
    right = pbxgw("parse", "--profile", "panasonic-kx-tda", str(source / "samples.txt"))
    off = pbxgw("parse", "--profile", str(copy), str(source / "samples.txt"))
    assert right.returncode == off.returncode == 0
    assert right.stderr.decode().rstrip().endswith("calls that look wrong: none")
    assert re.search(r"calls that look wrong: ext \d+$", off.stderr.decode().rstrip()), off.stderr


def test_parse_joins_necs_name_lines_to_their_record_and_says_how_many(tmp_path):
    """The NEC manual's own example: a record, its name wrapped onto the next line, then a
    NEXT line with the full name; one call, and the summary counts the two joined lines."""
    capture = tmp_path / "nec.txt"
    capture.write_bytes(b"PIN  10:52 12/09 001  00:00:20 2017       2142623802           NECinfrontia\r\n"
                        b"Corp.\r\nNEXT NECinfrontia Corp.\r\n")
    run = pbxgw("parse", "--profile", "nec-sl", str(capture), timeout=TIMEOUT)
    assert run.returncode == 0, run.stderr
    (event,) = [json.loads(line) for line in run.stdout.splitlines()]
    assert event["kind"] == "call" and event["x"]["caller_name"] == "NECinfrontia Corp."
    assert b"records 1 (calls 1, unparsed 0); lines joined to the record before 2;" in run.stderr


def test_parse_on_a_quiet_serial_line_prints_a_record_no_line_continues(tmp_path):
    """NEC's record waits for a NEXT line; on a live line where none comes, the quiet line
    lets it go: the technician sees the call while the PBX is still connected."""
    import select

    line = simulate.PtyLine()
    record = b"PIN  10:52 12/09 001  00:00:20 2017       2142623802\r\n"
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "parse", "--profile", "nec-sl", line.path],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line.write(record)  # (waits until parse has the line open)
        ready, _, _ = select.select([proc.stdout], [], [], TIMEOUT)
        assert ready, "no event while the line stays open"
        event = json.loads(proc.stdout.readline())
        assert event["kind"] == "call" and event["raw"] == record.decode().rstrip() and proc.poll() is None
    finally:
        line.close()
        out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0 and out == b"", err
