"""``pbxgw status``: the running gateway's state, or what its queue holds when it is down."""

from __future__ import annotations

import argparse
import json
import sys

from gateway.commands.common import CONFIG
from gateway.edge import config
from gateway.errors import GatewayError


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="the running gateway: sources, queue, broker, headsets",
                       description="Ask the running gateway (over the Unix socket in its runtime "
                       "directory) for its state: sources, alarms, queue depth and age, the broker "
                       "link, headsets. When no gateway answers, print what its queue on disk holds "
                       "and exit 1. Only the config's [gateway] directories are read, so a config "
                       "with errors elsewhere does not stop it.")
    p.add_argument("--config", default=CONFIG, help="its config file (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the JSON document (docs/operations.md)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gateway.edge import status

    runtime_dir, state_dir = config.gateway_dirs(args.config)  # even from a config with errors
    path = runtime_dir / status.SOCKET_NAME
    try:
        state = status.query(path)
    except PermissionError:
        raise GatewayError(f"{path}: this user may not ask the gateway (it answers root and the service's "
                           "own user); try sudo pbxgw status") from None
    except OSError as exc:
        why = f"no gateway answers on {path} ({exc.strerror or exc}); is pbxgw running (systemctl status pbxgw)?"
        try:
            state = status.offline(state_dir)
        except OSError as unread:
            raise GatewayError(f"{why} Its queue cannot be read either: {unread}") from None
        print(json.dumps(state, indent=2) if args.json else "\n".join(status.offline_text(state)))
        print(f"pbxgw status: {why}", file=sys.stderr)
        return 1
    print(json.dumps(state, indent=2) if args.json else "\n".join(status.text(state)))
    return 0
