"""The central wing: what a contact centre runs beside its broker.

``pbxgw collect`` stores every event of every gateway once in a database (SQLite by
default, PostgreSQL at scale), knows what is missing and joins records into calls
(``calls``, as each profile's ``[assembly]`` says); ``pbxgw fleet`` and ``pbxgw report``
(service figures: ``kpi``) read it. As in
the gateway, the parts that decide are sans-I/O (``ingest``: a message in, rows out;
``gateway.wire.ranges``: holes from sequence numbers) under thin shells (``database``: the two engines
behind one interface; ``collector``: the MQTT daemon). See docs/central.md.
"""

import importlib.util

from gateway.errors import GatewayError


class ExtraMissing(GatewayError):
    """A central command run where pbxgw was installed without its central extra."""

    exit_status = 69  # EX_UNAVAILABLE


def require_extra(command: str, modules: tuple[str, ...] = ("orjson",)) -> None:
    """Say, rather than fail on an import deep inside, that ``pbxgw <command>`` needs
    ``pbxgw[central]`` (orjson, which reads messages into rows; matplotlib, which draws
    the report's charts; psycopg for PostgreSQL).

    :raises ExtraMissing: one of ``modules`` is not installed.
    """
    if any(importlib.util.find_spec(m) is None for m in modules):
        raise ExtraMissing(f"`pbxgw {command}` needs pbxgw's central extra: pip install 'pbxgw[central]'")
