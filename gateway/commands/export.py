"""``pbxgw export``: what the box holds of a source (queue and archive), onto a file."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import datetime

from gateway.commands.common import CONFIG
from gateway.edge import config
from gateway.errors import GatewayError

FORMATS = ("raw", "jsonl", "msgpack")
#: How ``raw`` ends each record: the line end SMDR printers and call-accounting tools use.
RECORD_END = b"\r\n"


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="what the box holds of a source (queue and archive), e.g. onto a USB stick",
                       description="Write out the events of one source that the queue (not yet delivered) and "
                       "the archive (delivered, kept for [archive] keep) hold, oldest first: for a "
                       "technician with a USB stick when the network is down for good. Reads the queue "
                       "read only: the gateway may run.")
    p.add_argument("--config", default=CONFIG, help="the gateway's config file (default: %(default)s)")
    p.add_argument("--src", required=True, metavar="NAME", help="the source (its [[source]] name)")
    p.add_argument("--since", type=_when, metavar="TIME",
                   help="only events received from then on: 2026-12-01 or 2026-12-01T08:30 (local time, "
                        "or with an offset such as +01:00)")
    p.add_argument("--until", type=_when, metavar="TIME", help="only events received up to then (as --since)")
    p.add_argument("--seq", type=_seq_range, metavar="A-B", help="only events numbered A to B (their seq)")
    p.add_argument("--format", required=True, choices=FORMATS,
                   help="raw: the PBX's record bytes, each ended by CR LF, for any call-accounting tool; "
                        "jsonl: one event per line, as `pbxgw parse` prints; msgpack: the events as the "
                        "broker gets them, one map after another")
    p.add_argument("--out", metavar="FILE", help="where to write (default: standard output)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gateway.edge.queue import view

    _, state_dir = config.gateway_dirs(args.config)
    if args.since is not None and args.until is not None and args.since > args.until:
        raise GatewayError("--since is after --until")
    out = _Output(args.out)
    count = skipped = 0
    try:
        for payload in view.held_events(state_dir, args.src, args.seq, (args.since, args.until)):
            data = _formatted(payload, args.format)
            if data is None:
                skipped += 1
                continue
            out.write(data)
            count += 1
        out.close()
    except OSError as exc:  # (the queue; the output says its own)
        raise GatewayError(str(exc)) from None
    except LookupError as exc:
        raise GatewayError(str(exc.args[0])) from None
    print(f"{count} events of {args.src} exported" + (f"; {skipped} without a record to write (or damaged) left out"
                                                       if skipped else ""), file=sys.stderr)
    return 0


class _Output:
    """``--out FILE`` (made at the first write, or at the end: a source the queue does not
    have leaves no empty file behind), or standard output; a failure to write says the file."""

    def __init__(self, path: str | None):
        self.path, self._file = path, None if path else sys.stdout.buffer

    def write(self, data: bytes) -> None:
        try:
            if self._file is None:
                self._file = open(self.path, "wb")
            self._file.write(data)
        except OSError as exc:
            raise GatewayError(f"cannot write {self.path or 'standard output'}: {exc.strerror or exc}") from None

    def close(self) -> None:
        self.write(b"")
        try:
            self._file.close() if self.path else self._file.flush()
        except OSError as exc:
            raise GatewayError(f"cannot write {self.path or 'standard output'}: {exc.strerror or exc}") from None


def _formatted(payload: bytes, fmt: str) -> bytes | None:
    """One event in the format asked for; None when it has nothing of that (a headset
    event has no record bytes) or is damaged."""
    from gateway.wire.events import from_wire, to_json
    from gateway.edge.queue.row import event_map

    if fmt == "msgpack":
        return payload
    event = event_map(payload)
    if event is None:
        return None
    if fmt == "raw":
        raw = event.get("raw")
        if not isinstance(raw, str):
            return None
        return raw.encode("latin-1" if event.get("latin1") else "utf-8", "replace") + RECORD_END
    try:
        return to_json(from_wire(event)).encode() + b"\n"
    except ValueError:  # (not an event this version knows)
        return None


def _when(text: str) -> int:
    """A time on the command line as ms since the epoch (local time unless it says)."""
    try:
        return int(datetime.fromisoformat(text).timestamp() * 1000)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date or a date and time such as 2026-12-01T08:30; "
                                         f"got {text!r}") from None


def _seq_range(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)-(\d+)", text.strip())
    if not match or int(match[1]) > int(match[2]):
        raise argparse.ArgumentTypeError(f"expected A-B with A <= B, such as 100-250; got {text!r}")
    return int(match[1]), int(match[2])
