"""The central wing: what a contact centre runs beside its broker.

``pbxgw collect`` stores every event of every gateway once in a database (SQLite by
default, PostgreSQL at scale) and knows what is missing; ``pbxgw fleet`` reads it. As in
the gateway, the parts that decide are sans-I/O (``ingest``: a message in, rows out;
``gateway.ranges``: holes from sequence numbers) under thin shells (``database``: the two engines
behind one interface; ``collector``: the MQTT daemon). See docs/central.md.
"""

import importlib.util

from gateway.errors import GatewayError


class ExtraMissing(GatewayError):
    """A central command run where pbxgw was installed without its central extra."""

    exit_status = 69  # EX_UNAVAILABLE


def require_extra(command: str) -> None:
    """Say, rather than fail on an import deep inside, that ``pbxgw <command>`` needs
    ``pbxgw[central]`` (orjson, which reads messages into rows; psycopg for PostgreSQL).

    :raises ExtraMissing: it is not installed.
    """
    if importlib.util.find_spec("orjson") is None:
        raise ExtraMissing(f"`pbxgw {command}` needs pbxgw's central extra: pip install 'pbxgw[central]'")
