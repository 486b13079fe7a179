"""``pbxgw simulate``: a PBX emulator printing a profile's samples."""

from __future__ import annotations

import argparse

from gateway import simulate
from gateway.commands.common import find_profile
from gateway.errors import GatewayError


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="a PBX emulator printing a profile's samples",
                       description="Replay a profile's samples.txt as a PBX would print it, "
                       "on a new pty (its path is printed), on a TCP port, or pushed to a "
                       "listener, until --count lines or Ctrl-C.")
    p.add_argument("--profile", required=True, help="profile name, or a path to a profile.toml")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--pty", action="store_true", help="print on a new pseudo-terminal")
    where.add_argument("--tcp", metavar="HOST:PORT", help="serve on this TCP address (port 0: any)")
    where.add_argument("--connect", metavar="HOST:PORT", help="push to a listener there, as Avaya IP Office "
                       "does (a gateway's tcp-server source)")
    p.add_argument("--rate", type=float, default=1.0, help="lines per second on average (default 1)")
    p.add_argument("--count", type=int, help="stop after this many lines (default: never)")
    p.add_argument("--seed", type=int, help="seed for the random gaps, to repeat a run")
    p.add_argument("--login-password", metavar="TEXT", help="--tcp: the password the PBX accepts at its login "
                   "(default: the profile's factory one); another closes the connection")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    profile = find_profile(args.profile)
    if args.rate <= 0:
        raise GatewayError(f"--rate: expected a positive number, got {args.rate}")

    def announce(where: str) -> None:
        print(where, flush=True)

    if args.pty:
        simulate.run_pty(profile, args.rate, args.count, args.seed, announce)
        return 0
    option, address = ("--tcp", args.tcp) if args.tcp else ("--connect", args.connect)
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise GatewayError(f"{option}: expected HOST:PORT, got {address!r}")
    try:
        if args.tcp:
            password = args.login_password.encode("latin-1") if args.login_password else None
            simulate.run_tcp(profile, host, int(port), args.rate, args.count, args.seed, announce, password)
        else:
            simulate.run_connect(profile, host, int(port), args.rate, args.count, args.seed, announce)
    except OSError as exc:
        raise GatewayError(f"{option} {address}: {exc.strerror or exc}") from None
    return 0
