"""``pbxgw status``: the running daemon's state, over a Unix socket in its runtime
directory (``[gateway] runtime_dir``, ``/run/pbxgw`` under systemd). The daemon writes one
JSON document to each connection and closes it; it answers whether or not the broker is
reachable, since that is when a technician asks.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway import __version__
from gateway.smdr.engine import ENGINE

if TYPE_CHECKING:
    from gateway.daemon import Gateway

SOCKET_NAME = "status.sock"
TIMEOUT_S = 5.0


def snapshot(gw: Gateway) -> dict[str, Any]:
    """The daemon's state, as ``pbxgw status --json`` prints it (docs/operations.md)."""
    now = time.time()
    queue = gw.store.stats()
    publisher = gw.publisher
    return {
        "gateway": {"id": gw.settings.gateway_id, "site": gw.settings.site, "version": __version__,
                    "engine": ENGINE, "boot": gw.boot, "up_s": round(now - gw.started, 1),
                    "restart_needed": gw.restart_needed},
        "sources": [{"name": src.settings.name, "type": src.settings.type, "state": src.state, "error": src.error,
                     "records": src.ingest.records, "unparsed": src.ingest.unparsed,
                     "last_record_ms": src.ingest.last_rx} for src in gw.sources],
        "queue": {"depth": queue.depth, "bytes": queue.bytes,
                  "oldest_age_s": None if queue.oldest_rx is None else round(now - queue.oldest_rx / 1000, 1),
                  "dropped": queue.dropped, "dead": queue.dead},
        "broker": {"url": f"mqtt{'s' if gw.settings.mqtt.tls else ''}://{gw.settings.mqtt.host}:{gw.settings.mqtt.port}",
                   "connected_since": publisher.connected_since if publisher else None,
                   "last_ack_ms": publisher.last_ack_ms if publisher else None,
                   "in_flight": len(publisher.outbox.in_flight) if publisher else 0,
                   "delivered": publisher.delivered if publisher else 0},
        "headsets": [] if gw.headsets is None else [
            {"id": r.info.id, "node": r.info.node, "model": r.info.model, "profile": r.profile.name}
            for r in gw.headsets.readers.values()],
    }


async def serve(gw: Gateway, path: Path) -> asyncio.AbstractServer:
    """Answer every connection on ``path`` with a snapshot."""
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(json.dumps(snapshot(gw)).encode() + b"\n")
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


def _ago(ms: int | float | None, now: float) -> str:
    return "never" if ms is None else f"{now - ms / 1000:.0f} s ago"


def text(state: dict[str, Any], now: float | None = None) -> list[str]:
    """The lines ``pbxgw status`` prints."""
    now = time.time() if now is None else now
    g, q, b = state["gateway"], state["queue"], state["broker"]
    out = [f"gateway {g['id']} at {g['site']}: pbxgw {g['version']} ({g['engine']} parser), boot {g['boot']}, "
           f"up {g['up_s']:.0f} s"]
    if g.get("restart_needed"):
        out.append(f"config changed on disk, waiting for a restart: {', '.join(g['restart_needed'])}")
    for s in state["sources"]:
        out.append(f"source {s['name']} ({s['type']}): {s['state']}{': ' + s['error'] if s['error'] else ''}; "
                   f"{s['records']} records, {s['unparsed']} unparsed, last record {_ago(s['last_record_ms'], now)}")
    oldest = "" if q["oldest_age_s"] is None else f", oldest {q['oldest_age_s']:.0f} s old"
    out.append(f"queue: {q['depth']} events, {q['bytes']} bytes{oldest}; {q['dropped']} dropped, {q['dead']} dead letters")
    since = "not connected" if b["connected_since"] is None else f"connected {now - b['connected_since']:.0f} s"
    out.append(f"broker {b['url']}: {since}; last confirmation {_ago(b['last_ack_ms'], now)}; "
               f"{b['in_flight']} in flight, {b['delivered']} delivered this run")
    for h in state["headsets"]:
        out.append(f"headset {h['id']} on {h['node']} ({h['model'] or 'no name'}, profile {h['profile']})")
    return out
