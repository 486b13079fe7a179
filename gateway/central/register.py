"""Sans-I/O: which site each gateway belongs to, and the messages it sends under another.

A gateway's topic names its site, and a broker's ACL may let a gateway's credentials
publish under any site (or a broker may let anyone in). So the collector keeps a register:
a gateway belongs to the site ``collector.toml``'s ``[gateways]`` gives it, else to the site
it was first heard under (its stored rows, then this run's messages). A message from it
under another site is refused whole: kept in ``rejected``, said in the log once per site,
counted in ``pbxgw fleet``; none of its rows lands in the other site's figures.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.common.printable import printable
from gateway.wire import topics


class SiteRegister:
    """:param configured: gateway id -> its site, from ``collector.toml``."""

    def __init__(self, configured: dict[str, str]):
        self._configured = dict(configured)
        self._first: dict[str, str] = {}
        self._said: set[tuple[str, str]] = set()

    def heard(self, stored: Iterable[tuple[str, str]]) -> None:
        """``(gateway, site)`` pairs already stored: where each was first heard."""
        for gw, site in stored:
            self._first.setdefault(gw, site)

    def refusal(self, topic: str) -> str:
        """Why a message on ``topic`` is refused (its gateway belongs to another site);
        "" when it is not (a gateway first heard now is registered under its site)."""
        if topics.is_command(topic) or (parts := topics.parse(topic)) is None:
            return ""  # (what no gateway sent is not the register's: Rows says why)
        site, gw, _ = parts
        if gw in self._configured:
            home, how = self._configured[gw], "collector.toml [gateways]"
        else:
            home, how = self._first.setdefault(gw, site), "where it was first heard"
        if site == home:
            return ""
        return (f"gateway {printable(gw)} belongs to site {printable(home)} ({how}), not "
                f"{printable(site)}: stolen credentials, or a gateway moved (say so in [gateways])")

    def first_refusal(self, topic: str) -> bool:
        """Whether this gateway's refusal under this topic's site is the first (to say once)."""
        site, gw, _ = topics.parse(topic)
        new = (gw, site) not in self._said
        self._said.add((gw, site))
        return new
