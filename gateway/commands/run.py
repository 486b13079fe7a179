"""``pbxgw run``: the gateway daemon, in the foreground."""

from __future__ import annotations

import argparse
import signal

from gateway.commands.common import CONFIG
from gateway.common.printable import log_to_stderr
from gateway.edge import config


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="the gateway daemon, in the foreground",
                       description="Read the configured sources, queue events on disk and "
                       "publish them over MQTT until SIGTERM or Ctrl-C.")
    p.add_argument("--config", default=CONFIG, help="config file (default: %(default)s)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # A reload asked for while the daemon is still starting must not end it (SIGHUP's
    # default); the daemon's loop takes SIGHUP over once it runs.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    settings = config.load(args.config)
    log_to_stderr()
    from gateway.edge import daemon

    return daemon.run(settings)
