"""The topic tree's names: site, gateway and source ids go into MQTT topics, so they may
hold no ``+``, ``#``, ``/`` or control characters."""

from __future__ import annotations

import re

#: Site, gateway and source ids end up in MQTT topics: no '+', '#', '/' or control characters.
ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
