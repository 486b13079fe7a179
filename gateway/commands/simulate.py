"""``pbxgw simulate``: a PBX emulator printing a profile's samples, or a contact centre's
drawn traffic (with its truth, :mod:`gateway.commands.traffic`), onto a pty or a TCP
port, or pushed to a listener.

The samples: it prints the lines of ``samples.txt`` (page headers included) with the profile's line
end, cycling through them, at ``rate`` lines per second on average with exponentially
distributed gaps, as calls end at random. On a pty it behaves like a PBX's serial port;
on TCP like a PBX that serves its SMDR port (as Panasonic does on 2300).
"""

from __future__ import annotations

import argparse
import fcntl
import itertools
import json
import os
import random
import re
import select
import socket
import struct
import termios
import time
import tty
from collections.abc import Callable, Iterator
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.commands import traffic
from gateway.commands.common import find_profile
from gateway.common.tomltable import seconds
from gateway.errors import GatewayError
from gateway.smdr.framer import MAX_RECORD_LEN_CEILING, Framer, FramingRules
from gateway.smdr.profile import PbxProfile

#: What the PBX prints after each line, per profile terminator.
LINE_ENDS = {"line": b"\r\n", "crlf": b"\r\n", "cr": b"\r", "lf": b"\n", "nul": b"\x00"}


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
    lines = _traffic(args, family) if args.traffic else printout(profile, args.count, args.seed)

    def announce(where: str) -> None:
        print(where, flush=True)

    if args.pty:
        run_pty(lines, rate, announce)
        return 0
    option, address = ("--tcp", args.tcp) if args.tcp else ("--connect", args.connect)
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise GatewayError(f"{option}: expected HOST:PORT, got {address!r}")
    try:
        if args.tcp:
            password = args.login_password.encode("latin-1") if args.login_password else None
            run_tcp(profile, host, int(port), lines, rate, announce, password)
        else:
            run_connect(host, int(port), lines, rate, announce)
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


# -- the emulator ------------------------------------------------------------------------

def printed_units(profile: PbxProfile) -> list[bytes]:
    """The samples as the PBX sends them, one unit per record or line, framing included;
    a record and the lines that continue it are one unit, as the PBX prints them at once.

    The samples file is split with the profile's own framing but nothing skipped or
    stripped, so page headers are replayed too.
    """
    framing = profile.framing
    if framing.terminator == "block":  # blocks are replayed as they are, padding included
        rules = FramingRules("block", framing.max_record_len, block_len=framing.block_len,
                             block_start=framing.block_start)
        framer = Framer(rules, as_framed=True)
    else:
        framer = Framer(FramingRules(framing.terminator, MAX_RECORD_LEN_CEILING, continuation=framing.continuation))
    framer.feed(profile.samples_path.read_bytes())
    framer.feed(b"")
    if framing.terminator == "block":
        return [r.data for r in framer.records()]
    if framing.terminator == "length32le":
        return [len(r.data + b"\r\n").to_bytes(4, "little") + r.data + b"\r\n" for r in framer.records()]
    end = LINE_ENDS[framing.terminator]
    if framing.continuation:  # (the framer joined them with \n)
        return [r.data.replace(b"\n", end) + end for r in framer.records()]
    return [r.data + end for r in framer.records()]


#: How long to let a serial reader settle after it opens the port (pyserial flushes the
#: input buffer while opening, which would swallow a record written at that moment), and
#: to let the kernel hand the last bytes written to the reader's queue.
READER_SETTLE_S = 0.3
#: How often to look for a reader, and how long to wait for it to take the last bytes.
POLL_S = 0.05
DRAIN_TIMEOUT_S = 10.0


def printout(profile: PbxProfile, count: int | None, seed: int | None) -> Iterator[tuple[float, bytes]]:
    """(gap before it in seconds at rate 1, bytes) for each line or record to print, cycling
    through the samples.

    :param count: how many lines; None for as long as the caller takes them.
    """
    units = printed_units(profile)
    rng = random.Random(seed)
    cycle = itertools.cycle(units) if units else iter(())
    for unit in itertools.islice(cycle, count):
        yield rng.expovariate(1.0), unit


class PtyLine:
    """A serial line on a new pseudo-terminal, written the way a PBX prints.

    Writes wait while no reader has the other end open (a PBX's buffer would hold the
    records); :meth:`close` waits until the reader has taken every byte, then hangs up.
    """

    def __init__(self):
        self._master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no CR/LF translation: the line carries bytes as printed
        self.path = os.ttyname(slave)
        os.close(slave)

    def write(self, data: bytes) -> None:
        # A reader that just opened the line gets time to settle; if it went away
        # meanwhile, wait for the next one.
        while _wait_for_reader(self._master):
            time.sleep(READER_SETTLE_S)
        view = memoryview(data)
        while view:  # (a pty takes part of a write when its buffer is nearly full)
            view = view[os.write(self._master, view):]

    def close(self) -> None:
        try:
            _wait_until_read(self.path)
        finally:
            os.close(self._master)


def run_pty(lines: Iterator[tuple[float, bytes]], rate: float, announce: Callable[[str], None]) -> None:
    """Serve a printout (:func:`printout`'s: a gap at rate 1, the bytes) on a new
    pseudo-terminal; ``announce`` gets its path."""
    line = PtyLine()
    try:
        announce(line.path)
        for gap, data in lines:
            time.sleep(gap / rate)
            line.write(data)
    finally:
        line.close()


def _wait_for_reader(master: int) -> bool:
    """Block while no one has the pty's other end open; True if we had to wait."""
    poller = select.poll()
    poller.register(master, select.POLLHUP)
    waited = False
    while poller.poll(0):
        waited = True
        time.sleep(POLL_S)
    return waited


def _wait_until_read(path: str) -> None:
    """Wait until the reader has taken every byte: bytes still queued at hang-up are lost.

    The kernel moves bytes written to the master into the reader's queue a little later
    (a slow reader holds them back), so the queue counts as taken only once it has stayed
    empty for ``READER_SETTLE_S``; the wait gives up after ``DRAIN_TIMEOUT_S`` without
    the reader taking anything.
    """
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    try:
        empty_since = None
        last, progress = None, time.monotonic()
        while time.monotonic() - progress < DRAIN_TIMEOUT_S:
            time.sleep(POLL_S)
            pending = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
            now = time.monotonic()
            if pending != last:
                last, progress = pending, now
            if pending:
                empty_since = None
            elif empty_since is None:
                empty_since = now
            elif now - empty_since >= READER_SETTLE_S:
                return
    finally:
        os.close(fd)


#: How long the emulated PBX waits for the answer to a reply request.
REPLY_TIMEOUT_S = 10.0


def _serve_login(conn: socket.socket, profile: PbxProfile, password: bytes | None = None) -> bool:
    """Play the PBX's side of the profile's dialogue: print each expected prompt, wait for
    each text the client must send; then send each reply request and wait for its answer
    (a PBX drops a link that does not answer its keep-alive test). A password step accepts
    only ``password`` (default: the profile's factory one). False if the client gave up,
    did not answer, or sent another password."""
    received = bytearray()

    def read_line() -> bytes | None:
        """The next non-empty line the client sends."""
        nonlocal received
        received = received.lstrip(b"\r\n")
        while not (end := re.search(rb"[\r\n]", received)):
            chunk = conn.recv(1024)
            if not chunk:
                return None
            received = (received + chunk).lstrip(b"\r\n")
        line, received = bytes(received[:end.start()]), received[end.end():]
        return line

    def wait_for(wanted: bytes) -> bool:
        nonlocal received
        while wanted not in received.lower():
            chunk = conn.recv(1024)
            if not chunk:
                return False
            received += chunk
        received = received[received.lower().index(wanted) + len(wanted):]
        return True

    for step in profile.login:
        if step.expect:  # a text prompt is printed as one, a binary message as it is
            conn.sendall(step.expect.encode("latin-1") + (b": " if step.expect.isprintable() else b""))
        if step.password:  # the line the client sends must be the password: a wrong one ends the link
            if read_line() != (password or step.send.rstrip(b"\r\n")):
                return False
            continue
        if step.send.strip() and not wait_for(step.send.strip().lower()):
            return False
    conn.settimeout(REPLY_TIMEOUT_S)
    try:
        for reply in profile.replies:
            conn.sendall(reply.receive)
            if not wait_for(reply.send.lower()):
                return False
    except TimeoutError:
        return False
    finally:
        conn.settimeout(None)
    return True


def run_tcp(profile: PbxProfile, host: str, port: int, lines: Iterator[tuple[float, bytes]], rate: float,
            announce: Callable[[str], None], password: bytes | None = None) -> None:
    """Serve the printout to TCP clients, one at a time, as a PBX's SMDR port does, after
    the profile's login dialogue if it has one.

    A client that disconnects is replaced by the next one; the printout goes on where it
    stopped. ``announce`` gets ``host:port`` once listening (port 0 picks a free one).
    """
    with socket.create_server((host, port)) as server:
        announce("%s:%d" % server.getsockname()[:2])
        pending = next(lines, None)
        while pending is not None:
            conn, _ = server.accept()
            with conn:
                if not _serve_login(conn, profile, password):
                    continue
                pending = _play(conn, lines, pending, rate)
                if pending is None:
                    conn.shutdown(socket.SHUT_WR)


def run_connect(host: str, port: int, lines: Iterator[tuple[float, bytes]], rate: float,
                announce: Callable[[str], None]) -> None:
    """Push the printout to a listener (a gateway's tcp-server source), as Avaya IP Office
    does: connect, and connect again (after a second) whenever the connection fails; the
    printout goes on where it stopped. ``announce`` gets each ``host:port`` connected to.

    :raises OSError: the first connection is refused (nothing listens there).
    """
    pending = next(lines, None)
    first = True
    while pending is not None:
        try:
            conn = socket.create_connection((host, port), timeout=10)
        except OSError:
            if first:
                raise
            time.sleep(1.0)
            continue
        first = False
        announce("%s:%d" % conn.getpeername()[:2])
        with conn:
            pending = _play(conn, lines, pending, rate)


def _play(conn: socket.socket, lines: Iterator[tuple[float, bytes]], pending: tuple[float, bytes] | None,
          rate: float) -> tuple[float, bytes] | None:
    """Send the printout from ``pending`` on, paced, until it ends (None) or the other end
    goes away: then the line not sent, for the next connection."""
    while pending is not None:
        gap, data = pending
        time.sleep(gap / rate)
        try:
            conn.sendall(data)
        except OSError:
            return pending
        pending = next(lines, None)
    return None

