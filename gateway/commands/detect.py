"""``pbxgw detect``: which profile reads a capture best."""

from __future__ import annotations

import argparse
import json
import sys

from gateway.commands.common import open_capture, zone
from gateway.edge.clock import now_ms
from gateway.errors import GatewayError
from gateway.smdr import offline, profiles


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("detect", help="rank profiles by how well they parse a capture",
                       description="Parse a capture with every bundled profile and print "
                       "NAME SCORE lines, best first; SCORE is the share of records that parse. "
                       "Each profile is tried in the other date orders its dates allow too "
                       "(NAME with date_order = \"DMY\"). Exit 1, saying so on stderr, when no "
                       "profile reads at least half, and which profile would once what the capture holds "
                       "besides records is left out (a counter column, title lines, page headers, columns "
                       "shifted); a first line cut when the capture began is said too.")
    p.add_argument("file", nargs="?", default="-", help="capture file or - (default)")
    p.add_argument("--json", action="store_true", help="print a JSON list instead")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    data = b"".join(open_capture(args.file))
    if not data.strip():
        raise GatewayError(f"{args.file}: empty: nothing was captured (is the PBX's SMDR output on?)")
    if offline.looks_binary(data):
        raise GatewayError(f"{args.file}: not text: a wrong baud rate or parity gives bytes like these "
                           "(try pbxgw capture with another --baudrate)")
    ranked = offline.rank(profiles.load_all(), data, zone("UTC"), now_ms())
    if args.json:
        print(json.dumps([{"profile": s.profile, "date_order": s.date_order, "score": round(s.score, 3),
                           "calls": s.calls, "unparsed": s.unparsed, "fields": round(s.fields, 3),
                           "ambiguous": s.ambiguous} for s in ranked]))
    else:
        for score in ranked:
            print(f"{_named(score)} {score.score:.3f}")
    if not ranked or ranked[0].score < offline.FITS:
        closest = ", ".join(f"{_named(s)} {s.score:.3f} (fields read: {s.fields:.0%})" for s in ranked[:3])
        print(f"pbxgw detect: no profile fits this capture; closest: {closest}", file=sys.stderr)
        for miss in offline.near_misses(profiles.load_all(), data, zone("UTC"), now_ms())[:1]:
            print(f"pbxgw detect: the capture has {miss.what}: {_named(miss)} reads {miss.score:.0%} of it once a "
                  f"copy's [framing] has {miss.key} = ['{miss.pattern}'] (pbxgw profiles new NAME --from "
                  f"{args.file} drafts that copy)", file=sys.stderr)
        return 1
    best = profiles.find(ranked[0].profile)
    if offline.first_record_cut(best, data, zone("UTC"), now_ms()):
        print("pbxgw detect: the capture's first line does not read and the rest does: cut when the capture "
              "began (it is not a record)", file=sys.stderr)
    if ranked[0].ambiguous:
        print(f"pbxgw detect: warning: no day in this capture is past 12, so its dates read as "
              f"{ranked[0].ambiguous} too, to other days: check one record's date by hand", file=sys.stderr)
    return 0


def _named(score: offline.Score | offline.NearMiss) -> str:
    return f'{score.profile} with date_order = "{score.date_order}"' if score.date_order else score.profile
