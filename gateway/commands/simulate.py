"""``pbxgw simulate``: a PBX emulator printing a profile's samples, or a contact centre's
drawn traffic (with its truth)."""

from __future__ import annotations

import argparse
import json
import time
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway import simulate, traffic
from gateway.commands.common import find_profile
from gateway.errors import GatewayError
from gateway.tomltable import seconds


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="a PBX emulator printing a profile's samples or a drawn centre's calls",
                       description="Print as a PBX would, on a new pty (its path is printed), on a TCP port, or "
                       "pushed to a listener: the profile's samples.txt, cycled until --count lines or Ctrl-C; or, "
                       "with --traffic, the calls of a drawn contact centre (agents in hunt groups, calls by time "
                       "of day, answers, abandons, voicemail, transfers, outbound), each printed once as the "
                       f"profile's family prints it ({', '.join(traffic.FAMILIES)}).")
    p.add_argument("--profile", required=True, help="profile name, or a path to a profile.toml")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--pty", action="store_true", help="print on a new pseudo-terminal")
    where.add_argument("--tcp", metavar="HOST:PORT", help="serve on this TCP address (port 0: any)")
    where.add_argument("--connect", metavar="HOST:PORT", help="push to a listener there, as Avaya IP Office "
                       "does (a gateway's tcp-server source)")
    p.add_argument("--rate", type=float, help="lines per second (default: 1 on average for samples, 200 for "
                   "--traffic)")
    p.add_argument("--count", type=int, help="samples: stop after this many lines (default: never)")
    p.add_argument("--seed", type=int, help="seed for the random draw, to repeat a run")
    p.add_argument("--login-password", metavar="TEXT", help="--tcp: the password the PBX accepts at its login "
                   "(default: the profile's factory one); another closes the connection")
    t = p.add_argument_group("--traffic: a drawn contact centre")
    t.add_argument("--traffic", action="store_true", help="print a drawn centre's calls instead of the samples")
    t.add_argument("--from", dest="first", metavar="YYYY-MM-DD", help="the first local day drawn (default: today, "
                   "its calls that have ended by now)")
    t.add_argument("--days", type=int, default=1, help="local days drawn (default 1)")
    t.add_argument("--last", metavar="DURATION", help="instead: the calls of the last DURATION (\"20m\", \"2h\"), "
                   "at the busiest hour's rate, ended by now")
    t.add_argument("--timezone", default="UTC", help="the PBX's zone, as the gateway's source says (default UTC)")
    t.add_argument("--agents", type=int, default=traffic.Centre().agents, help="agents (default %(default)s)")
    t.add_argument("--calls-per-hour", type=float, default=traffic.Centre().busiest_hour_calls,
                   help="inbound calls in a weekday's busiest hour (default %(default)s)")
    t.add_argument("--truth", type=Path, metavar="FILE", help="write the calls drawn, as they happened, to FILE "
                   "(JSON lines)")
    t.add_argument("--garble", type=float, default=0.0, metavar="SHARE", help="print this share of the calls cut "
                   "short, as a line fault does (0.05: 5 %%; the truth marks them)")
    t.add_argument("--twice", action="store_true", help="print every record twice")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    profile = find_profile(args.profile)
    rate = args.rate if args.rate is not None else (200.0 if args.traffic else 1.0)
    if rate <= 0:
        raise GatewayError(f"--rate: expected a positive number, got {rate}")
    family = profile.name if profile.name in traffic.FAMILIES else profile.extends or profile.name
    lines = _traffic(args, family) if args.traffic else simulate.printout(profile, args.count, args.seed)

    def announce(where: str) -> None:
        print(where, flush=True)

    if args.pty:
        simulate.run_pty(lines, rate, announce)
        return 0
    option, address = ("--tcp", args.tcp) if args.tcp else ("--connect", args.connect)
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise GatewayError(f"{option}: expected HOST:PORT, got {address!r}")
    try:
        if args.tcp:
            password = args.login_password.encode("latin-1") if args.login_password else None
            simulate.run_tcp(profile, host, int(port), lines, rate, announce, password)
        else:
            simulate.run_connect(host, int(port), lines, rate, announce)
    except OSError as exc:
        raise GatewayError(f"{option} {address}: {exc.strerror or exc}") from None
    return 0


def _traffic(args: argparse.Namespace, family: str):
    """The drawn calls' records, a steady gap apart; the truth written first."""
    if family not in traffic.FAMILIES:
        raise GatewayError(f"--traffic: the calls of {family} cannot be drawn; families that can: "
                           f"{', '.join(traffic.FAMILIES)}")
    try:
        zone = ZoneInfo(args.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise GatewayError(f"--timezone: expected an IANA time zone such as Europe/Paris; got {args.timezone!r}") \
            from None
    if args.agents < 2 or args.calls_per_hour <= 0 or args.days < 1 or not 0 <= args.garble <= 1:
        raise GatewayError("--agents: at least 2; --calls-per-hour: above 0; --days: at least 1; --garble: a share "
                           "from 0 to 1")
    now = int(time.time())
    centre = traffic.FAMILIES[family].centre(traffic.Centre(agents=args.agents, busiest_hour_calls=args.calls_per_hour))
    if args.last:
        span = _duration(args.last)
        calls = traffic.draw_recent(centre, now - span, now, _seed(args))
    else:
        first = _date(args.first) if args.first else datetime.now(zone).date()
        calls = traffic.draw(centre, first, args.days, zone, _seed(args), until=None if args.first else now)
    traffic.garble(calls, args.garble, _seed(args))
    if args.truth:
        try:
            with args.truth.open("w", encoding="utf-8") as fh:
                for call in calls:
                    fh.write(json.dumps(call.truth()) + "\n")
        except OSError as exc:
            raise GatewayError(f"--truth {args.truth}: {exc.strerror or exc}") from None
    return ((1.0, record) for _, record in traffic.printout(calls, family, centre, zone, args.twice))


def _seed(args: argparse.Namespace) -> int:
    return 1 if args.seed is None else args.seed


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise GatewayError(f"--from: expected a date as YYYY-MM-DD; got {text!r}") from None


def _duration(text: str) -> int:
    value = seconds(text)
    if not value or value < 1:
        raise GatewayError(f'--last: expected a duration such as "20m" or "2h"; got {text!r}')
    return int(value)
