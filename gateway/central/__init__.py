"""The central wing: what a contact centre runs beside its broker.

``pbxgw collect`` stores every event of every gateway once in a database (SQLite by
default, PostgreSQL at scale) and knows what is missing; ``pbxgw fleet`` reads it. As in
the gateway, the parts that decide are sans-I/O (``ingest``: a message in, rows out;
``ranges``: holes from sequence numbers) under thin shells (``database``: the two engines
behind one interface; ``collector``: the MQTT daemon). See docs/central.md.
"""
