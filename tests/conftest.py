"""Shared fixtures, and the checks that a run of the suite is the run it says it is."""

import os

import pytest

from gateway.smdr import profiles
from gateway.smdr.engine import ENGINE


@pytest.fixture(params=profiles.bundled_names())
def profile(request):
    """Each bundled PBX profile in turn."""
    return profiles.find(request.param)


def pytest_sessionstart(session):
    """``PBXGW_EXPECT_ENGINE``: the engine this run must have (``make test`` sets it), so
    that a run meant for the compiled engine cannot quietly test the reference alone."""
    expected = os.environ.get("PBXGW_EXPECT_ENGINE")
    if expected and expected != ENGINE:
        pytest.exit(f"this run expects the {expected} parser engine, and {ENGINE} runs", returncode=3)


def pytest_sessionfinish(session, exitstatus):
    """``PBXGW_NO_SKIPS``: a skipped test fails the run (the compiled run skips nothing)."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if os.environ.get("PBXGW_NO_SKIPS") and skipped:
        reporter.write_line(f"PBXGW_NO_SKIPS: {len(skipped)} tests were skipped", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


pytest_plugins = ["plugins.processes"]
