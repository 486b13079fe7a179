"""``pbxgw capture``: a PBX's raw output, byte for byte, for ``detect``, ``profiles new``
and support (``pbxgw parse`` writes events, not what the PBX printed)."""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

from gateway.commands.common import CHUNK, add_line_options, line_options, serial_chunks
from gateway.edge.clock import now_ms
from gateway.errors import GatewayError


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("capture", help="record a PBX's raw output to a file",
                       description="Record what a PBX prints, byte for byte, from a serial device "
                       "(or a pty) or from a PBX that serves its records on a TCP port (HOST:PORT), "
                       "until it hangs up, --seconds pass or Ctrl-C. Beside FILE, FILE.meta.json "
                       "says where and how it was read (and, with --times, when each piece came).")
    p.add_argument("source", help="a serial device such as /dev/ttyUSB0, or HOST:PORT")
    p.add_argument("file", help="where to write the bytes (refused if it exists)")
    p.add_argument("--seconds", type=float, help="stop after this long (default: until hung up or Ctrl-C)")
    p.add_argument("--times", action="store_true", help="record the receive time of each piece read")
    add_line_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out, meta_path = Path(args.file), Path(args.file + ".meta.json")
    if out.exists():
        raise GatewayError(f"{out}: already exists; choose another file")
    line = line_options(args)
    if _is_address(args.source):
        meta = {"source": args.source, "kind": "tcp"}
        chunks = _tcp_chunks(args.source)
    else:
        meta = {"source": args.source, "kind": "serial", "line": line or "pyserial's defaults, 9600 8N1"}
        chunks = serial_chunks(args.source, line)
    meta.update(started_ms=now_ms(), times=[] if args.times else None)
    total = 0
    if args.seconds is not None:  # a silent PBX too: the alarm ends the wait for bytes
        signal.signal(signal.SIGALRM, _time_up)
        signal.setitimer(signal.ITIMER_REAL, args.seconds)
    try:
        with open(out, "xb") as fh:
            for data in chunks:
                fh.write(data)
                fh.flush()
                if args.times:
                    meta["times"].append([total, now_ms()])  # offset of the piece, when it came
                total += len(data)
    except (KeyboardInterrupt, _TimeUp):
        pass
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        meta.update(ended_ms=now_ms(), bytes=total)
        meta_path.write_text(json.dumps(meta) + "\n", encoding="utf-8")
        print(f"pbxgw capture: {total} bytes from {args.source} in {out} (how: {meta_path})", file=sys.stderr)
    return 0


class _TimeUp(Exception):
    """--seconds have passed."""


def _time_up(signum, frame) -> None:
    raise _TimeUp


def _is_address(source: str) -> bool:
    host, _, port = source.rpartition(":")
    return bool(host) and port.isdigit() and not source.startswith("/")


def _tcp_chunks(address: str) -> Iterator[bytes]:
    """What a PBX that serves its records on a TCP port sends, until it closes."""
    host, _, port = address.rpartition(":")
    try:
        sock = socket.create_connection((host, int(port)), timeout=10)
    except OSError as exc:
        raise GatewayError(f"{address}: cannot connect: {exc.strerror or exc}") from None
    sock.settimeout(None)

    def chunks() -> Iterator[bytes]:
        with sock:
            while data := sock.recv(CHUNK):
                yield data

    return chunks()
