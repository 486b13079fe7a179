"""The reduced central chaos run (`make chaos` runs the full one): gateway, broker and
collectors killed, PostgreSQL restarted, while a PBX writes unique records, with two
collectors on the database at once; every one of them ends up in the database, in one
call, and the summaries give the report the calls give."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.central


def test_every_record_is_stored_through_kills_of_every_part_and_database_restarts():
    run = subprocess.run([sys.executable, "-m", "tools.chaos_central", "--cycles", "8", "--records", "3000",
                          "--seed", "2", "--stall", "150", "--collectors", "2"],
                         capture_output=True, text=True, timeout=900)
    figures = dict(line.rsplit(" ", 1) for line in run.stdout.splitlines()[1:])
    assert run.returncode == 0, (figures, run.stderr[-2000:])
    assert figures["lost"] == "0" and figures["stored unique"] == "3000"
    # every record in one call, each its own (distinct call ids), assembled through the faults
    assert figures["calls"] == "3000"
    assert int(figures["records in calls"]) == 3000 + int(figures["stored again under a new key"])
    assert figures["summaries agree with the calls"] == "True"
    assert run.stdout.startswith("8 cycles: 2 gateway kill -9, 2 broker kill -9, 2 collector kill -9, "
                                 "2 PostgreSQL restarts")
