"""Paths and a runner for the real `pbxgw` command, shared by the tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


def pbxgw(*args: str, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run `python -m gateway ARGS` (what the `pbxgw` console script runs) and capture it."""
    return subprocess.run([sys.executable, "-m", "gateway", *args], input=input,
                          capture_output=True, timeout=timeout)
