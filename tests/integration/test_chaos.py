"""The reduced chaos run (`make chaos` runs the full one): random kill -9 of the gateway
and broker restarts while a PBX prints unique records; a central subscriber counts."""

import subprocess
import sys

import pytest


def chaos(*args: str) -> dict[str, str]:
    run = subprocess.run([sys.executable, "-m", "tools.chaos", "--stall", "5", *args],
                         capture_output=True, text=True, timeout=600)
    figures = dict(line.rsplit(" ", 1) for line in run.stdout.splitlines()[1:])
    figures["status"] = run.returncode
    return figures


def test_followed_file_loses_nothing_through_kills_and_restarts():
    figures = chaos("--cycles", "5", "--records", "2000", "--source", "file")
    assert figures["lost"] == "0" and figures["received unique"] == "2000"
    assert figures["ingested twice"] == "0" and figures["status"] == 0


@pytest.mark.parametrize("faults", ["broker", "gateway"])
def test_pty_source_loses_only_what_was_on_the_line_at_a_kill(faults):
    figures = chaos("--cycles", "5", "--records", "1000", "--source", "pty", "--faults", faults)
    assert figures["status"] == 0, figures
    assert figures["lost"] == figures["lost on the serial line at a gateway kill"]
    if faults == "broker":
        assert figures["lost"] == "0"
