"""The PBX emulator on a real pty read through pyserial, and on a loopback TCP port."""

import json
import socket
from zoneinfo import ZoneInfo
import subprocess
import sys

import pytest

from gateway.commands import simulate
from gateway.smdr import offline, profiles
from helpers import pbxgw

TIMEOUT = 60


@pytest.fixture
def simulator():
    """Start `pbxgw simulate ARGS`; yield (process, the address it announced)."""
    procs = []

    def start(*args):
        proc = subprocess.Popen([sys.executable, "-m", "gateway", "simulate", *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        procs.append(proc)
        announced = proc.stdout.readline().decode().strip()  # the first line, printed at once
        assert announced, proc.stderr.read().decode()
        return proc, announced

    yield start
    for proc in procs:
        proc.kill()
        proc.wait(TIMEOUT)
        proc.stdout.close()
        proc.stderr.close()


def test_parse_reads_the_simulated_pty_to_the_expected_events(simulator):
    kx = profiles.find("panasonic-kx-tda")
    lines = len(simulate.printed_units(kx))
    proc, pty = simulator("--profile", "panasonic-kx-tda", "--pty", "--rate", "40", "--count", str(lines), "--seed", "7")
    assert pty.startswith("/dev/pts/")
    run = pbxgw("parse", "--profile", "panasonic-kx-tda", "--tz", "UTC", pty, timeout=TIMEOUT)
    assert run.returncode == 0, run.stderr
    printed = [json.loads(line) for line in run.stdout.decode().splitlines()]
    expected = [json.loads(line) for line in kx.expected_path.read_text().splitlines()]
    assert [{k: v for k, v in e.items() if k not in offline.RECEIPT_KEYS} for e in printed] == expected
    assert proc.wait(TIMEOUT) == 0  # it hung up by itself once every line was read


def test_the_simulator_replays_every_profile_to_its_expected_events(simulator, profile):
    units = len(simulate.printed_units(profile))
    proc, address = simulator("--profile", profile.name, "--tcp", "127.0.0.1:0", "--rate", "500",
                              "--count", str(units))
    host, port = address.rsplit(":", 1)
    received = bytearray()
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as conn:
        for step in profile.login:  # the client's side of the PBX's login dialogue
            while step.expect and step.expect.lower().encode("latin-1") not in received.lower():
                received += conn.recv(1024)
            received.clear()
            conn.sendall(step.send)
        for reply in profile.replies:  # and answers its keep-alive test
            while reply.receive not in received:
                received += conn.recv(1024)
            received.clear()
            conn.sendall(reply.send)
        while chunk := conn.recv(65536):
            received += chunk
    events = offline.parse_capture(profile, bytes(received), ZoneInfo(profile.test_timezone),
                                   int(profile.test_received.timestamp() * 1000))
    expected = [json.loads(line) for line in profile.expected_path.read_text().splitlines()]
    assert [offline.comparable(e) for e in events] == expected
    assert proc.wait(TIMEOUT) == 0


def test_tcp_simulator_serves_the_printout_byte_for_byte(simulator):
    ipo = profiles.find("avaya-ipo")
    sample = ipo.samples_path.read_bytes()
    lines = len(sample.splitlines())
    proc, address = simulator("--profile", "avaya-ipo", "--tcp", "127.0.0.1:0", "--rate", "200",
                              "--count", str(2 * lines))
    host, port = address.rsplit(":", 1)
    assert host == "127.0.0.1"
    received = bytearray()
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as conn:
        while chunk := conn.recv(65536):
            received += chunk
    assert bytes(received) == sample * 2  # cycles through the samples, CR LF line ends
    assert proc.wait(TIMEOUT) == 0


def test_drawn_traffic_is_printed_once_a_call_today_ending_by_now_with_its_truth(simulator, tmp_path):
    """``--last``: a demo's few busy minutes, each call printed once, none ending after now."""
    import time
    truth = tmp_path / "truth.jsonl"
    before = time.time()
    _, address = simulator("--traffic", "--profile", "avaya-ipo", "--tcp", "127.0.0.1:0", "--last", "20m",
                           "--calls-per-hour", "300", "--truth", str(truth), "--rate", "2000")
    calls = [json.loads(line) for line in truth.read_text().splitlines()]
    host, _, port = address.rpartition(":")
    printed = tmp_path / "printed.txt"
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as conn, printed.open("wb") as fh:
        while chunk := conn.recv(65536):  # (until the PBX has printed every call: it closes)
            fh.write(chunk)
    run = pbxgw("parse", "--profile", "avaya-ipo", "--tz", "UTC", str(printed), timeout=TIMEOUT)
    events = [json.loads(line) for line in run.stdout.decode().splitlines()]
    assert run.returncode == 0 and [e["kind"] for e in events] == ["call"] * sum(len(c["legs"]) for c in calls)
    assert 50 < len(calls) < 200 and len({e["callid"] for e in events}) == len(calls)
    ends = [c["start"] + sum(leg["ring"] + leg["talk"] + leg["hold"] for leg in c["legs"]) for c in calls]
    assert before - 20 * 60 <= min(c["start"] for c in calls) and max(ends) <= time.time()


@pytest.mark.parametrize("args, says", [
    (["--profile", "nec-sl"], "the calls of nec-sl cannot be drawn; families that can: avaya-ipo, asterisk-csv, "
                             "panasonic-kx-tda, cisco-cucm"),
    (["--profile", "avaya-ipo", "--timezone", "Paris"], "--timezone: expected an IANA time zone"),
    (["--profile", "avaya-ipo", "--last", "soon"], '--last: expected a duration such as "20m"'),
    (["--profile", "avaya-ipo", "--from", "23/11/2026"], "--from: expected a date as YYYY-MM-DD"),
    (["--profile", "avaya-ipo", "--garble", "5"], "--garble: a share from 0 to 1"),
])
def test_drawn_traffic_refuses_what_it_cannot_do_in_one_line(args, says):
    run = pbxgw("simulate", "--traffic", "--pty", *args, timeout=TIMEOUT)
    assert run.returncode != 0 and says in run.stderr.decode() and b"Traceback" not in run.stderr
