"""The ``pbxgw`` command line: every command listed, and each command carrying only its own
imports (the daemon runs for months on a small box: what it imported, it keeps)."""

import subprocess
import sys

from gateway import commands


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=60)


def imported_by(command: str) -> set[str]:
    """The modules a fresh interpreter holds once ``pbxgw COMMAND``'s parser is built and
    its module's imports made (the daemon's, for ``run``)."""
    code = ("import sys; from gateway import cli; cli.build_parser(sys.argv[1]); import gateway.edge.daemon; "
            "print('\\n'.join(sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, command], capture_output=True, text=True, check=True, timeout=60)
    return set(out.stdout.split())


def test_help_lists_every_command():
    shown = run("--help")
    assert shown.returncode == 0
    for name in commands.MODULES:
        assert name.replace("_", "-") in shown.stdout


def test_the_daemon_carries_neither_the_centre_nor_cffi_nor_other_commands():
    modules = imported_by("run")
    assert "gateway.commands.run" in modules and "gateway.edge.daemon" in modules
    assert not {m for m in modules if m.startswith("gateway.central")}
    assert not {m for m in modules if m.startswith("gateway.commands.")} - {"gateway.commands.run",
                                                                            "gateway.commands.common"}
    assert "cffi" not in modules  # (headsets declare their ioctl structs when one is opened)


def test_a_command_s_own_help_and_an_unknown_command_still_say_what_they_should():
    own = run("check-config", "--help")
    assert own.returncode == 0 and own.stdout.startswith("usage: pbxgw check-config")
    unknown = run("colect")
    assert unknown.returncode == 2 and "invalid choice" in unknown.stderr and "collect" in unknown.stderr
