"""``pbxgw profiles list|show|test|new``: the PBX profile library, for technicians."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gateway.commands.common import find_profile, open_capture, zone
from gateway.edge.clock import now_ms
from gateway.errors import GatewayError, ProfileError
from gateway.smdr import draft, offline, profiles


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profiles", help="list, show and test the PBX profiles")
    psub = p.add_subparsers(title="profile commands", metavar="ACTION", required=True)
    q = psub.add_parser("list", help="the bundled profiles")
    q.set_defaults(run=run_list)
    q = psub.add_parser("show", help="print a profile's file")
    q.add_argument("name", help="profile name, or a path to a profile.toml")
    q.set_defaults(run=run_show)
    q = psub.add_parser("test", help="check profiles against their samples.txt and expected.jsonl",
                        description="Parse each profile's samples.txt and compare the events "
                        "with its expected.jsonl; print differences; exit 1 if any.")
    q.add_argument("name", nargs="?", help="one profile (name or path); default: all bundled")
    q.add_argument("--update", action="store_true", help="write expected.jsonl from what the "
                   "profile parses now (once you have checked those events), instead of comparing")
    q.set_defaults(run=run_test)
    q = psub.add_parser("new", help="draft a profile from a capture",
                        description="Guess a first profile from a capture (delimiter or column "
                        "boundaries, the date and time columns) and write it, with the capture's "
                        "first lines as samples.txt, into a new directory.")
    q.add_argument("name", help="the new profile's name (lower-case letters, digits, - and _)")
    q.add_argument("--from", dest="capture", required=True, metavar="FILE", help="a capture of the PBX's output")
    q.add_argument("--out", metavar="DIR", help="directory to create (default: ./NAME)")
    q.set_defaults(run=run_new)


def run_list(args: argparse.Namespace) -> int:
    for profile in profiles.load_all():
        print(f"{profile.name:<20} {profile.layout.kind:<10} {profile.title}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    profile = find_profile(args.name)
    print(f"# {profile.path}")
    print(profile.path.read_text(encoding="utf-8"), end="")
    return 0


def run_test(args: argparse.Namespace) -> int:
    chosen = [find_profile(args.name)] if args.name else profiles.load_all()
    if args.update:
        for profile in chosen:
            events = [json.dumps(offline.comparable(e), ensure_ascii=False)
                      for e in offline.sample_events(profile, profiles.samples(profile))]
            profile.expected_path.write_text("\n".join(events) + "\n", encoding="utf-8")
            print(f"wrote {profile.expected_path} ({len(events)} events)")
        return 0
    failed = 0
    for profile in chosen:
        try:
            check = offline.check_profile(profile, profiles.samples(profile), profiles.expected(profile))
        except ProfileError as exc:
            check = offline.ProfileCheck(0, [str(exc)])
        print(f"{'FAIL' if check.problems else 'ok  '} {profile.name} ({check.events} sample records)")
        for problem in check.problems:
            print(f"     {problem}")
        failed += bool(check.problems)
    return 1 if failed else 0


def run_new(args: argparse.Namespace) -> int:
    if not profiles.NAME.fullmatch(args.name):
        raise GatewayError(f"{args.name!r}: expected lower-case letters, digits, '-' or '_'")
    out = Path(args.out or args.name)
    if out.exists():
        raise GatewayError(f"{out}: already exists; choose another --out")
    data = b"".join(open_capture(args.capture))
    lines = draft.capture_lines(data)
    if not lines:
        raise GatewayError(f"{args.capture}: no records in it")
    if draft.are_events(lines):
        raise GatewayError(f"{args.capture}: these are pbxgw's JSON events (pbxgw parse output), not what the PBX "
                           "printed; record its own output with `pbxgw capture DEVICE|HOST:PORT FILE`")
    near = _near_miss(data)
    out.mkdir(parents=True)
    text = draft.variant(args.name, Path(args.capture).name, profiles.find(near.profile), near.what, near.key,
                         near.pattern) if near else draft.draft(args.name, Path(args.capture).name, lines)
    (out / "profile.toml").write_text(text, encoding="utf-8")
    (out / "samples.txt").write_bytes(b"".join(line.encode("utf-8") + b"\r\n" for line in lines))
    profile = profiles.load(out / "profile.toml")
    events = offline.sample_events(profile, profiles.samples(profile))
    calls = sum(e.KIND == "call" for e in events)
    if near:
        print(f"the capture has {near.what}: {near.profile} reads it once that is left out, so the draft extends it")
    print(f"wrote {out}/profile.toml and {out}/samples.txt ({len(lines)} lines); {calls} of "
          f"{len(events)} parse with it as drafted.\nNext: edit {out}/profile.toml, check with "
          f"`pbxgw parse --profile {out} {out}/samples.txt`, then `pbxgw profiles test {out} --update`.")
    return 0


def _near_miss(data: bytes) -> offline.NearMiss | None:
    """The bundled profile that reads a capture no profile fits as it is, once something
    the capture holds besides records is left out (:func:`offline.near_misses`)."""
    bundled = profiles.load_all()
    best = offline.rank(bundled, data, zone("UTC"), now_ms())[0]
    if best.score >= offline.FITS:
        print(f"note: the bundled profile {best.profile} reads {best.score:.0%} of this capture as it is (pbxgw "
              f"detect): copying it may be a better start than this draft")
        return None
    return next(iter(offline.near_misses(bundled, data, zone("UTC"), now_ms())), None)
