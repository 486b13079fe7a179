"""``pbxgw status``: the running daemon's state, over a Unix socket in its runtime
directory (``[gateway] runtime_dir``, ``/run/pbxgw`` under systemd). The daemon writes one
JSON document (its :meth:`~gateway.edge.daemon.Gateway.snapshot`) to each connection and closes
it; it answers whether or not the broker is reachable, since that is when a technician
asks. Here: that socket protocol, what the queue on disk says while no gateway runs
(read by :mod:`gateway.edge.queue.view`), and the text a person reads.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

from gateway.edge.queue import view
from gateway.edge.queue.store import ArchiveStats

SOCKET_NAME = "status.sock"
#: A source's clock skew is shown in the text from this on (a minute: the PBX's own delay
#: in printing is less).
SKEW_SHOWN_S = 60
TIMEOUT_S = 5.0


def offline(state_dir: Path) -> dict[str, Any]:
    """What the queue on disk says while no gateway runs (``running: false``): its depth,
    age, drops and dead letters, and each source's next ``seq``.

    :raises OSError: the queue cannot be read.
    """
    disk = view.on_disk(state_dir)
    meta = disk.meta
    return {"running": False,
            "queue": {"depth": disk.depth, "bytes": disk.bytes,
                      "oldest_age_s": None if disk.oldest_rx is None else round(time.time() - disk.oldest_rx / 1000, 1),
                      "dropped": meta.get("dropped", 0), "dead": meta.get("dead", 0)},
            "archive": archive_map(disk.kept),
            "sources": [{"name": name, "next_seq": next_seq} for name, next_seq in disk.sources],
            "gateway": {"boot": meta.get("boot", 0), "stream": f"{meta['stream']:016x}" if meta.get("stream") else None}}


async def serve(snapshot: Callable[[], dict[str, Any]], path: Path) -> asyncio.AbstractServer:
    """Answer every connection on ``path`` with ``snapshot()``, the daemon's state."""
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(json.dumps(snapshot()).encode() + b"\n")
            await writer.drain()
        finally:
            writer.close()

    if _answers(path):  # another gateway's (a shared runtime_dir): never take it over
        raise OSError(f"another gateway answers on {path}")
    path.unlink(missing_ok=True)  # left by a gateway that was killed
    return await asyncio.start_unix_server(answer, path=str(path))


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def query(path: Path, timeout: float = TIMEOUT_S) -> dict[str, Any]:
    """The snapshot of the daemon listening on ``path``.

    :raises OSError: no daemon there (or it does not answer in time).
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return json.loads(data)


def skew_text(skew_s: float) -> str:
    """``its calls end 1 h 0 min before their records arrive`` (the PBX's clock behind), or
    ``... after ...`` (ahead)."""
    return f"its calls end {span(abs(skew_s))} {'before' if skew_s >= 0 else 'after'} their records arrive"


def _implausible(counts: dict | None) -> str:
    """``; calls that look wrong: ext 3`` (a column off, a wrong zone or date order?)."""
    if not counts:
        return ""
    return "; calls that look wrong: " + ", ".join(f"{doubt} {n}" for doubt, n in counts.items())


def span(seconds: float) -> str:
    """``45 s``, ``12 min``, ``2 h 13 min``, ``3 d 4 h``: as a person says it."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if hours < 1:
        return f"{minutes} min"
    if days < 1:
        return f"{hours} h {minutes % 60} min"
    return f"{days} d {hours % 24} h"


def _ago(ms: int | float | None, now: float) -> str:
    """``2 h 13 min ago, 01:47 local`` (the time of day in this machine's zone)."""
    if ms is None:
        return "never"
    return f"{span(now - ms / 1000)} ago, {time.strftime('%H:%M', time.localtime(ms / 1000))} local"


def archive_map(archive: ArchiveStats) -> dict[str, Any]:
    """The archive as ``pbxgw status --json`` shows it (docs/operations.md)."""
    return {"events": archive.events, "bytes": archive.bytes, "max_bytes": archive.max_bytes or None,
            "first_rx_ms": archive.first_rx, "last_rx_ms": archive.last_rx}


def archive_text(a: dict[str, Any]) -> str:
    budget = f" of {a['max_bytes']}" if a["max_bytes"] else ""
    if not a["events"]:
        return f"archive: empty ({a['bytes']} bytes{budget})"
    first, last = (time.strftime("%Y-%m-%d %H:%M", time.localtime(ms / 1000))
                   for ms in (a["first_rx_ms"], a["last_rx_ms"]))
    return f"archive: {a['events']} events delivered, {a['bytes']} bytes{budget}, received {first} to {last} local"


def offline_text(state: dict[str, Any]) -> list[str]:
    """The lines ``pbxgw status`` prints when no gateway runs."""
    q, g = state["queue"], state["gateway"]
    oldest = "" if q["oldest_age_s"] is None else f", oldest {span(q['oldest_age_s'])} old"
    return ["gateway: not running; what its queue holds:",
            f"queue: {q['depth']} events, {q['bytes']} bytes{oldest}; {q['dropped']} dropped, {q['dead']} dead letters",
            archive_text(state["archive"]),
            *(f"source {s['name']}: next seq {s['next_seq']}" for s in state["sources"]),
            f"boot {g['boot']}, stream {g['stream']}"]


def text(state: dict[str, Any], now: float | None = None) -> list[str]:
    """The lines ``pbxgw status`` prints."""
    now = time.time() if now is None else now
    g, q, b = state["gateway"], state["queue"], state["broker"]
    out = [f"gateway {g['id']} at {g['site']}: pbxgw {g['version']} ({g['engine']} parser), boot {g['boot']}, "
           f"up {span(g['up_s'])}"]
    if not g["clock_synchronized"]:
        out.append("clock not synchronized (see timedatectl): events received meanwhile are marked unsynced "
                   "(their receive time may be wrong)")
    if g.get("restart_needed"):
        out.append(f"config changed on disk, waiting for a restart: {', '.join(g['restart_needed'])}")
    for s in state["sources"]:
        out.append(f"source {s['name']} ({s['type']} {s['where']}, {s['profile']}, {s['timezone']}): {s['state']}"
                   f"{': ' + s['error'] if s['error'] else ''}; {s['records']} records, {s['unparsed']} unparsed, "
                   f"last record {_ago(s['last_record_ms'], now)}{_implausible(s.get('implausible'))}"
                   + (f"; {skew_text(s['clock_skew_s'])}" if abs(s.get("clock_skew_s") or 0) >= SKEW_SHOWN_S else ""))
    for a in state["alarms"]:
        if a["alarm"] == "clock_skew":
            out.append(f"ALARM clock_skew on source {a['source']}: {skew_text(a['skew_s'])} (the PBX's clock, "
                       "the source's timezone, its date order?)")
        elif a["alarm"] == "unparsed":
            out.append(f"ALARM unparsed on source {a['source']}: {100 * a['share']:.0f} % of its last records could "
                       f"not be read by profile {a['profile']} (the baud rate or framing, the profile, a PBX "
                       "upgraded to print otherwise?)")
        else:
            out.append(f"ALARM {a['alarm']} on source {a['source']}: silent since {_ago(a['since_ms'], now)}")
    oldest = "" if q["oldest_age_s"] is None else f", oldest {span(q['oldest_age_s'])} old"
    budget = "" if q["max_bytes"] >= q["max_bytes_configured"] else \
        f"; budget {q['max_bytes']} bytes, all the disk allows (max_bytes {q['max_bytes_configured']})"
    out.append(f"queue: {q['depth']} events, {q['bytes']} bytes{oldest}; {q['dropped']} dropped, "
               f"{q['dead']} dead letters{budget}")
    out.append(archive_text(state["archive"]))
    since = "not connected" if b["connected_since"] is None else f"connected {span(now - b['connected_since'])}"
    out.append(f"broker {b['url']}: {since}; last confirmation {_ago(b['last_ack_ms'], now)}; "
               f"{b['in_flight']} in flight, {b['delivered']} delivered this run")
    for h in state["headsets"]:
        out.append(f"headset {h['id']} on {h['node']} ({h['model'] or 'no name'}, profile {h['profile']})")
    return out
