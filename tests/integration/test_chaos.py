"""The reduced chaos run (`make chaos` runs the full one): faults of every kind while a PBX
prints unique records; a central subscriber counts by key."""

import subprocess
import sys

import pytest

from tools.reload_storm import SOURCES, storm


def chaos(*args: str) -> dict[str, str]:
    run = subprocess.run([sys.executable, "-m", "tools.chaos", "--stall", "5", *args],
                         capture_output=True, text=True, timeout=600)
    figures = dict(line.rsplit(" ", 1) for line in run.stdout.splitlines()[1:])
    figures["status"] = run.returncode
    return figures


def test_followed_file_loses_nothing_through_kills_and_restarts():
    figures = chaos("--cycles", "5", "--records", "2000", "--source", "file")
    assert figures["lost"] == "0" and figures["received unique"] == "2000"
    assert figures["re-ingested"] == "0" and figures["key collisions"] == "0" and figures["status"] == 0


@pytest.mark.parametrize("faults", ["broker", "gateway"])
def test_pty_source_loses_only_what_was_on_the_line_at_a_kill(faults):
    figures = chaos("--cycles", "5", "--records", "1000", "--source", "pty", "--faults", faults)
    assert figures["status"] == 0, figures
    assert figures["lost"] == figures["lost on the line at a kill or in a power cut's window"]
    if faults == "broker":
        assert figures["lost"] == "0"


@pytest.mark.parametrize("source", ["file", "pty"])
def test_every_fault_at_once_reuses_no_key_and_loses_nothing_unreported(source):
    """Kills, broker restarts, reload storms, power cuts, a second instance, a full disk."""
    figures = chaos("--cycles", "12", "--records", "2000", "--source", source, "--faults", "all", "--seed", "3")
    assert figures["status"] == 0, figures
    assert figures["key collisions"] == "0" and figures["second instances refused"] != "0"
    if source == "file":
        assert figures["lost"] == "0" and figures["received unique"] == "2000"


@pytest.mark.parametrize("kind", SOURCES)
def test_a_reload_storm_loses_nothing_and_leaves_the_last_edit_running(tmp_path, kind):
    """20 SIGHUPs 50 ms apart, each after an edit that restarts the source, while the PBX
    prints 2 000 records: each arrives (by key), no reload overlaps another or leaves a task
    dead, and the last edit is what runs."""
    outcome = storm(kind, tmp_path, records=2000, reloads=20, every=0.05)
    assert outcome.unique == 2000 and outcome.lost == 0, outcome.lines()
    assert outcome.collisions == 0 and outcome.faults == [], outcome.lines()
    assert outcome.last_applied and 1 <= outcome.reloads <= 20, outcome.lines()
