"""``pbxgw detect``: which profile reads a capture best."""

from __future__ import annotations

import argparse
import json
import sys

from gateway.clock import now_ms
from gateway.commands.common import open_capture, zone
from gateway.smdr import offline, profiles


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("detect", help="rank profiles by how well they parse a capture",
                       description="Parse a capture with every bundled profile and print "
                       "NAME SCORE lines, best first; SCORE is the share of records that parse. "
                       "Exit 1, saying so on stderr, when no profile reads at least half.")
    p.add_argument("file", nargs="?", default="-", help="capture file or - (default)")
    p.add_argument("--json", action="store_true", help="print a JSON list instead")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    data = b"".join(open_capture(args.file))
    ranked = offline.rank(profiles.load_all(), data, zone("UTC"), now_ms())
    if args.json:
        print(json.dumps([{"profile": s.profile, "score": round(s.score, 3), "calls": s.calls,
                           "unparsed": s.unparsed} for s in ranked]))
    else:
        for score in ranked:
            print(f"{score.profile} {score.score:.3f}")
    if not ranked or ranked[0].score < offline.FITS:
        closest = ", ".join(f"{s.profile} {s.score:.3f}" for s in ranked[:3])
        print(f"pbxgw detect: no profile fits this capture; closest: {closest}", file=sys.stderr)
        return 1
    return 0
