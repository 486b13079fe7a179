"""The ``pbxgw`` command: argparse sub-commands wired to the library, no logic of their own."""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import signal
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, TextIO
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# The daemon, status, devices and subscriber modules pull in asyncio, paho, pyudev and
# cffi: they are imported by their commands, so that `pbxgw parse` starts quickly.
from gateway import __version__, config, draft, offline, profiles, simulate
from gateway.clock import now_ms
from gateway.errors import GatewayError
from gateway.events import UnparsedEvent, to_json
from gateway.headsets import cli as headsets_cli
from gateway.smdr.engine import ENGINE
from gateway.smdr.stream import StreamParser

#: How many unparsed records ``pbxgw parse`` describes on stderr before it only counts.
UNPARSED_SHOWN = 20
CHUNK = 1024 * 1024  # large enough for the batch path, small enough to stream


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except GatewayError as exc:
        print(f"pbxgw: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of our output went away (`pbxgw parse ... | head`): not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pbxgw", description="Contact-center edge gateway: PBX call records to events.")
    parser.add_argument("--version", action="version", version=f"pbxgw {__version__} (parser engine: {ENGINE})")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    p = sub.add_parser("parse", help="parse a capture offline: one JSON line per record",
                       description="Parse a PBX capture (a file, - for stdin, or a serial "
                       "device such as /dev/ttyUSB0 or a pty) and print one event per record "
                       "on stdout; a summary and every unparsed record go to stderr.")
    p.add_argument("--profile", required=True, help="profile name, or a path to a profile.toml")
    p.add_argument("--tz", metavar="ZONE", help="time zone the PBX prints in, e.g. Asia/Taipei "
                   "(default: this machine's zone; UTC prints the PBX's times unchanged)")
    p.add_argument("--format", choices=("jsonl", "msgpack"), default="jsonl",
                   help="jsonl: one JSON object per line (start in ISO-8601 UTC); "
                   "msgpack: the wire encoding, one map per event (default: jsonl)")
    p.add_argument("--date-order", metavar="ORDER", help="read dates in this order instead of the "
                   "profile's: YMD, MDY, DMY (or MD, DM without a year), e.g. DMY for DD/MM/YY")
    p.add_argument("--strict", action="store_true", help="exit 1 if any record is unparsed")
    p.add_argument("file", nargs="?", default="-", help="capture file, serial device, or - (default)")
    p.set_defaults(run=_parse)

    p = sub.add_parser("profiles", help="list, show and test the PBX profiles")
    psub = p.add_subparsers(title="profile commands", metavar="ACTION", required=True)
    q = psub.add_parser("list", help="the bundled profiles")
    q.set_defaults(run=_profiles_list)
    q = psub.add_parser("show", help="print a profile's file")
    q.add_argument("name", help="profile name, or a path to a profile.toml")
    q.set_defaults(run=_profiles_show)
    q = psub.add_parser("test", help="check profiles against their samples.txt and expected.jsonl",
                        description="Parse each profile's samples.txt and compare the events "
                        "with its expected.jsonl; print differences; exit 1 if any.")
    q.add_argument("name", nargs="?", help="one profile (name or path); default: all bundled")
    q.add_argument("--update", action="store_true", help="write expected.jsonl from what the "
                   "profile parses now (once you have checked those events), instead of comparing")
    q.set_defaults(run=_profiles_test)
    q = psub.add_parser("new", help="draft a profile from a capture",
                        description="Guess a first profile from a capture (delimiter or column "
                        "boundaries, the date and time columns) and write it, with the capture's "
                        "first lines as samples.txt, into a new directory.")
    q.add_argument("name", help="the new profile's name (lower-case letters, digits, - and _)")
    q.add_argument("--from", dest="capture", required=True, metavar="FILE", help="a capture of the PBX's output")
    q.add_argument("--out", metavar="DIR", help="directory to create (default: ./NAME)")
    q.set_defaults(run=_profiles_new)

    p = sub.add_parser("detect", help="rank profiles by how well they parse a capture",
                       description="Parse a capture with every bundled profile and print "
                       "NAME SCORE lines, best first; SCORE is the share of records that parse. "
                       "Exit 1, saying so on stderr, when no profile reads at least half.")
    p.add_argument("file", nargs="?", default="-", help="capture file or - (default)")
    p.add_argument("--json", action="store_true", help="print a JSON list instead")
    p.set_defaults(run=_detect)

    p = sub.add_parser("simulate", help="a PBX emulator printing a profile's samples",
                       description="Replay a profile's samples.txt as a PBX would print it, "
                       "on a new pty (its path is printed) or on a TCP port, until --count "
                       "lines or Ctrl-C.")
    p.add_argument("--profile", required=True, help="profile name, or a path to a profile.toml")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--pty", action="store_true", help="print on a new pseudo-terminal")
    where.add_argument("--tcp", metavar="HOST:PORT", help="serve on this TCP address (port 0: any)")
    p.add_argument("--rate", type=float, default=1.0, help="lines per second on average (default 1)")
    p.add_argument("--count", type=int, help="stop after this many lines (default: never)")
    p.add_argument("--seed", type=int, help="seed for the random gaps, to repeat a run")
    p.set_defaults(run=_simulate)

    headsets_cli.add_commands(sub)

    p = sub.add_parser("status", help="the running gateway: sources, queue, broker, headsets",
                       description="Ask the running gateway (over the Unix socket in its runtime "
                       "directory) for its state: sources, alarms, queue depth and age, the broker "
                       "link, headsets. When no gateway answers, print what its queue on disk holds "
                       "and exit 1. Only the config's [gateway] directories are read, so a config "
                       "with errors elsewhere does not stop it.")
    p.add_argument("--config", default="/etc/pbxgw/config.toml", help="its config file (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the JSON document (docs/operations.md)")
    p.set_defaults(run=_status)

    p = sub.add_parser("dead", help="events the broker rejected (dead letters): list, requeue",
                       description="The events the broker rejected (a failure reason code, such as "
                       "Not authorized), kept in the queue's dead-letter table.")
    dead = p.add_subparsers(title="commands", metavar="COMMAND", required=True)
    q = dead.add_parser("list", help="each dead letter: id, when, why, and what event",
                        description="List the dead letters (read only; the gateway may run).")
    q.add_argument("--config", default="/etc/pbxgw/config.toml", help="its config file (default: %(default)s)")
    q.add_argument("--json", action="store_true", help="one JSON object per dead letter, with the event")
    q.set_defaults(run=_dead_list)
    q = dead.add_parser("requeue", help="queue dead letters again (the gateway stopped)",
                        description="Queue dead letters again, keys kept, for the gateway to send at its "
                        "next start (after the broker's ACL or limits were fixed). The gateway must be "
                        "stopped: the queue has one writer.")
    q.add_argument("--config", default="/etc/pbxgw/config.toml", help="its config file (default: %(default)s)")
    q.add_argument("ids", nargs="*", type=int, help="dead letter ids (from `pbxgw dead list`); none: all")
    q.set_defaults(run=_dead_requeue)

    p = sub.add_parser("devices", help="serial ports and headsets present, their profile and access",
                       description="List the serial ports and USB telephony headsets on this box, "
                       "which profile would read each headset, and whether this user may open them.")
    p.set_defaults(run=_devices)

    p = sub.add_parser("run", help="the gateway daemon, in the foreground",
                       description="Read the configured sources, queue events on disk and "
                       "publish them over MQTT until SIGTERM or Ctrl-C.")
    p.add_argument("--config", default="/etc/pbxgw/config.toml", help="config file (default: %(default)s)")
    p.set_defaults(run=_run)

    p = sub.add_parser("check-config", help="validate a config file and what `run` needs from it",
                       description="Exit 0 if the config file is valid and `pbxgw run` could start "
                       "with it as this user: its profiles, password file, TLS CA, certificate and "
                       "key read, its state directory writable. Otherwise print one line naming the "
                       "file, the key and what is wrong, and exit 78.")
    p.add_argument("path", help="config file")
    p.set_defaults(run=_check_config)

    p = sub.add_parser("subscribe", help="print events from a broker as JSON lines",
                       description="Subscribe to gateway topics and print each event once as "
                       "a JSON line, dropping duplicates by (gw, src, stream, seq).")
    p.add_argument("--broker", required=True, metavar="URL", help="mqtt://HOST[:PORT]")
    p.add_argument("--site", default="+", help="only this site (default: all)")
    p.add_argument("--gw", default="+", help="only this gateway (default: all)")
    p.add_argument("--client-id", default="", help="keep a persistent session under this id, "
                   "so the broker queues events while this subscriber is away")
    p.add_argument("--count", type=int, help="exit after this many events (default: never)")
    p.add_argument("--dedup-window", type=int, default=100_000,
                   help="how many recent event keys to remember (default: %(default)s)")
    p.set_defaults(run=_subscribe)
    return parser


def _run(args: argparse.Namespace) -> int:
    # A reload asked for while the daemon is still starting must not end it (SIGHUP's
    # default); the daemon's loop takes SIGHUP over once it runs.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    settings = config.load(args.config)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(levelname)s: %(message)s")
    from gateway import daemon

    return daemon.run(settings)


def _check_config(args: argparse.Namespace) -> int:
    from gateway import preflight  # ssl: not for the commands that do not need it

    settings = config.load(args.path)
    for warning in preflight.prepare(settings, checking=True).warnings:
        print(f"pbxgw: warning: {warning}", file=sys.stderr)
    names = ", ".join(f"{s.name} ({s.type}, {s.profile.name})" for s in settings.sources)
    print(f"{args.path}: ok: gateway {settings.gateway_id} at site {settings.site}; sources: {names}")
    return 0


def _subscribe(args: argparse.Namespace) -> int:
    from gateway.subscribe import subscribe

    parts = urlsplit(args.broker)
    if parts.scheme != "mqtt" or not parts.hostname:
        raise GatewayError(f"--broker: expected mqtt://HOST[:PORT], got {args.broker!r}")
    for name in ("site", "gw"):
        value = getattr(args, name)
        if value != "+" and not config.ID.fullmatch(value):
            raise GatewayError(f"--{name}: expected letters, digits, '.', '_' or '-'; got {value!r}")
    topic = f"pbxgw/v1/{args.site}/{args.gw}/#"
    return subscribe(parts.hostname, parts.port or 1883, topic, args.client_id,
                     args.dedup_window, args.count)


def _zone(name: str | None) -> ZoneInfo:
    """The named zone, or this machine's (TZ, then /etc/localtime), or UTC."""
    if name is None:
        name = os.environ.get("TZ", "").lstrip(":")
        if not name:
            link = os.path.realpath("/etc/localtime")
            name = link.partition("zoneinfo/")[2] or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise GatewayError(f"--tz: unknown time zone {name!r} (expected e.g. Europe/Paris or UTC)") from None


def _open_capture(name: str) -> Iterator[bytes]:
    """The bytes of a capture: stdin, a serial device (through pyserial) or a file.

    Opens at once, so that a missing file is an error before anything is printed.
    """
    if name == "-":
        return iter(lambda: sys.stdin.buffer.read1(CHUNK), b"")
    try:
        if stat.S_ISCHR(os.stat(name).st_mode):
            return _serial_chunks(name)
        fh = open(name, "rb")
    except OSError as exc:
        raise GatewayError(f"{name}: {exc.strerror}") from None
    return _file_chunks(fh)


def _file_chunks(fh: BinaryIO) -> Iterator[bytes]:
    with fh:
        yield from iter(lambda: fh.read(CHUNK), b"")


def _serial_chunks(name: str) -> Iterator[bytes]:
    """Read a serial port until it hangs up (a pty whose other end closed) or Ctrl-C."""
    import serial

    try:
        port = serial.serial_for_url(name, timeout=None, exclusive=True)
    except serial.SerialException as exc:
        if exc.errno == errno.EWOULDBLOCK:  # the gateway (or another reader) holds it
            raise GatewayError(f"{name}: port busy: is the pbxgw service running?") from None
        raise GatewayError(f"{name}: {exc}") from None

    def chunks() -> Iterator[bytes]:
        with port:
            while True:
                try:
                    data = port.read(port.in_waiting or 1)
                except (serial.SerialException, OSError):  # EIO: a pty whose other end closed
                    return  # the device went away or hung up: the end of this capture
                if not data:
                    return
                yield data

    return chunks()


def _parse(args: argparse.Namespace) -> int:
    profile = profiles.find(args.profile)
    if args.date_order:
        try:
            profile = profiles.with_date_order(profile, args.date_order)
        except ValueError as exc:
            raise GatewayError(f"--date-order: {exc}") from None
    stream = StreamParser(profile, _zone(args.tz), gw="local", src=args.file)
    chunks = _open_capture(args.file)
    out = sys.stdout.buffer
    progress = Progress(sys.stderr) if sys.stderr.isatty() else None
    unparsed_count = 0

    def show(unparsed: list[UnparsedEvent]) -> None:
        nonlocal unparsed_count
        for event in unparsed:
            unparsed_count += 1
            if unparsed_count <= UNPARSED_SHOWN:
                print(f"unparsed record {event.seq}: {event.reason}: {event.raw!r}", file=sys.stderr)

    def feed(data: bytes) -> None:
        if args.format == "msgpack":  # the batch path: no event objects on the compiled engine
            packed, unparsed = stream.feed_packed(data, now_ms())
            out.write(packed)
        else:
            events = stream.feed(data, now_ms())
            out.write(b"".join(to_json(e).encode() + b"\n" for e in events))
            unparsed = [e for e in events if isinstance(e, UnparsedEvent)]
        out.flush()
        show(unparsed)
        if progress:
            progress.update(stream.framer.stats.records, unparsed_count)

    try:
        for chunk in chunks:
            feed(chunk)
    finally:
        feed(b"")
        if progress:
            progress.close()
        stats = stream.framer.stats
        print(f"pbxgw parse: profile {profile.name}: records {stats.records} (calls "
              f"{stats.records - unparsed_count}, unparsed {unparsed_count}); non-record lines skipped "
              f"{stats.skipped}; records cut at {profile.framing.max_record_len} bytes "
              f"{stats.truncated}; NUL bytes removed {stats.nul_bytes}"
              + (f"; bytes between blocks {stats.noise_bytes}" if profile.framing.terminator == "block" else ""),
              file=sys.stderr)
    return 1 if args.strict and unparsed_count else 0


class Progress:
    """One self-overwriting line on a terminal (records, rate, unparsed), shown only for
    inputs that take more than a second, refreshed at most 4 times a second."""

    def __init__(self, tty: TextIO):
        self._tty, self._began = tty, time.monotonic()
        self._shown_at = self._began + 1.0  # nothing in the first second
        self._shown = False

    def update(self, records: int, unparsed: int) -> None:
        now = time.monotonic()
        if now < self._shown_at:
            return
        self._shown_at, self._shown = now + 0.25, True
        rate = records / (now - self._began)
        self._tty.write(f"\r{records:,} records, {rate:,.0f}/s, {unparsed:,} unparsed ")
        self._tty.flush()

    def close(self) -> None:
        if self._shown:
            self._tty.write("\n")


def _status(args: argparse.Namespace) -> int:
    from gateway import status

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


def _dead_list(args: argparse.Namespace) -> int:
    from gateway import status
    from gateway.store import event_map

    _, state_dir = config.gateway_dirs(args.config)
    try:
        rows = status.dead_letters(state_dir)
    except OSError as exc:
        raise GatewayError(str(exc)) from None
    for row_id, kind, reason, at, payload in rows:
        event = event_map(payload) or {"damaged": payload.hex()}
        if args.json:
            print(json.dumps({"id": row_id, "kind": kind, "reason": reason, "at_ms": at, "event": event},
                             ensure_ascii=False, default=repr))
            continue
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at / 1000)) if at else "?"
        print(f"{row_id}  {when}  {reason}: {kind} {event.get('src')} seq {event.get('seq')} "
              f"stream {event.get('stream')}")
    if not args.json:
        print(f"{len(rows)} dead letters", file=sys.stderr)
    return 0


def _dead_requeue(args: argparse.Namespace) -> int:
    from gateway.lock import lock_state_dir
    from gateway.store import Store

    settings = config.load(args.config)
    lock_state_dir(settings.state_dir)  # a running gateway holds it: refused, naming it
    store = Store(settings.state_dir, settings.queue.max_bytes, settings.queue.when_full)
    try:
        count = store.requeue_dead(args.ids or None)
    finally:
        store.close()
    print(f"{count} dead letters queued again; the gateway sends them when it starts", file=sys.stderr)
    return 0


def _devices(args: argparse.Namespace) -> int:
    from gateway import devices

    print("\n".join(devices.lines()))
    return 0


def _profiles_list(args: argparse.Namespace) -> int:
    for profile in profiles.load_all():
        print(f"{profile.name:<20} {profile.layout.kind:<10} {profile.title}")
    return 0


def _profiles_show(args: argparse.Namespace) -> int:
    profile = profiles.find(args.name)
    print(f"# {profile.path}")
    print(profile.path.read_text(encoding="utf-8"), end="")
    return 0


def _profiles_test(args: argparse.Namespace) -> int:
    chosen = [profiles.find(args.name)] if args.name else profiles.load_all()
    if args.update:
        for profile in chosen:
            events = [json.dumps(offline.comparable(e), ensure_ascii=False) for e in offline.sample_events(profile)]
            profile.expected_path.write_text("\n".join(events) + "\n", encoding="utf-8")
            print(f"wrote {profile.expected_path} ({len(events)} events)")
        return 0
    failed = 0
    for profile in chosen:
        check = offline.check_profile(profile)
        print(f"{'FAIL' if check.problems else 'ok  '} {profile.name} ({check.events} sample records)")
        for problem in check.problems:
            print(f"     {problem}")
        failed += bool(check.problems)
    return 1 if failed else 0


def _profiles_new(args: argparse.Namespace) -> int:
    if not profiles.NAME.fullmatch(args.name):
        raise GatewayError(f"{args.name!r}: expected lower-case letters, digits, '-' or '_'")
    out = Path(args.out or args.name)
    if out.exists():
        raise GatewayError(f"{out}: already exists; choose another --out")
    data = b"".join(_open_capture(args.capture))
    lines = draft.capture_lines(data)
    if not lines:
        raise GatewayError(f"{args.capture}: no records in it")
    out.mkdir(parents=True)
    (out / "profile.toml").write_text(draft.draft(args.name, Path(args.capture).name, lines), encoding="utf-8")
    (out / "samples.txt").write_bytes(b"".join(line.encode("utf-8") + b"\r\n" for line in lines))
    profile = profiles.load(out / "profile.toml")
    events = offline.sample_events(profile)
    calls = sum(e.KIND == "call" for e in events)
    print(f"wrote {out}/profile.toml and {out}/samples.txt ({len(lines)} lines); {calls} of "
          f"{len(events)} parse with it as drafted.\nNext: edit {out}/profile.toml, check with "
          f"`pbxgw parse --profile {out} {out}/samples.txt`, then `pbxgw profiles test {out} --update`.")
    return 0


def _detect(args: argparse.Namespace) -> int:
    data = b"".join(_open_capture(args.file))
    ranked = offline.rank(profiles.load_all(), data, _zone("UTC"), now_ms())
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


def _simulate(args: argparse.Namespace) -> int:
    profile = profiles.find(args.profile)
    if args.rate <= 0:
        raise GatewayError(f"--rate: expected a positive number, got {args.rate}")

    def announce(where: str) -> None:
        print(where, flush=True)

    if args.pty:
        simulate.run_pty(profile, args.rate, args.count, args.seed, announce)
    else:
        host, _, port = args.tcp.rpartition(":")
        if not host or not port.isdigit():
            raise GatewayError(f"--tcp: expected HOST:PORT, got {args.tcp!r}")
        simulate.run_tcp(profile, host, int(port), args.rate, args.count, args.seed, announce)
    return 0
