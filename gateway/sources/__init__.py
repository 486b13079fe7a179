"""PBX links: each source type moves bytes from one place into an :class:`Ingest`.

``SOURCES`` maps a config ``type`` to its class, imported when first used.
"""

from __future__ import annotations

import importlib

from gateway.sources.base import Ingest, Source

SOURCES = {
    "serial": ("gateway.sources.serial", "SerialSource"),
    "tcp-client": ("gateway.sources.tcp", "TcpClientSource"),
    "tcp-server": ("gateway.sources.tcp", "TcpServerSource"),
    "file": ("gateway.sources.file", "FileSource"),
}


def source_class(kind: str) -> type[Source]:
    """The class for a source ``type`` (config validation has checked the name)."""
    module, name = SOURCES[kind]
    return getattr(importlib.import_module(module), name)


__all__ = ["SOURCES", "Ingest", "Source", "source_class"]
