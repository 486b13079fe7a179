"""The ``pbxgw`` command: the parser, wired from one module per command
(:mod:`gateway.commands`), and the one place where an error becomes an exit status."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from gateway import __version__, commands
from gateway.errors import GatewayError
from gateway.smdr.engine import ENGINE


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(command_word(argv))
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except GatewayError as exc:
        print(f"pbxgw: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of our output went away (`pbxgw parse ... | head`): not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def command_word(argv: list[str]) -> str | None:
    """The command ``argv`` names (``check-config``), or None where it names none: only
    ``--help`` and ``--version`` may come before it."""
    return next((word for word in argv if not word.startswith("-")), None)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or, for a known ``command``, the parser of that command alone: a
    command imports only its own module, so the daemon does not carry the collector's,
    the report's and every other command's imports for months (about 5 MiB)."""
    modules = [name for name in commands.MODULES if name.replace("_", "-") == command] or commands.MODULES
    parser = argparse.ArgumentParser(
        prog="pbxgw", description="Contact-center edge gateway: PBX call records to events.")
    parser.add_argument("--version", action="version", version=f"pbxgw {__version__} (parser engine: {ENGINE})")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in modules:
        importlib.import_module(f"gateway.commands.{name}").add_commands(sub)
    return parser
