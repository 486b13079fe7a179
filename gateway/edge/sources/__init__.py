"""PBX links: each source type moves bytes from one place into an :class:`Ingest`.

The types and their classes are listed once, in :data:`gateway.edge.config.SOURCES`.
"""

from __future__ import annotations

import importlib

from gateway.edge.config import SOURCES
from gateway.edge.sources.base import Ingest, Source


def source_class(kind: str) -> type[Source]:
    """The class for a source ``type`` (config validation has checked the name)."""
    module, name = SOURCES[kind]
    return getattr(importlib.import_module(module), name)


__all__ = ["Ingest", "Source", "source_class"]
