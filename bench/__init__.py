"""Benchmarks: figures printed, never asserted (a shared machine is noisy)."""

import compileall
from pathlib import Path


def as_installed() -> None:
    """Byte-compile pbxgw's modules, as pip does when it installs them: a box starts from
    compiled modules, while a source tree run with PYTHONDONTWRITEBYTECODE (as some
    shells and CI set it) would compile every module at every start, and its start-up
    time and memory would be counted as the gateway's."""
    compileall.compile_dir(Path(__file__).parent.parent / "gateway", quiet=1)
