"""The RFC 3161 timestamp authority that stamps signed outputs, behind the outbound rules.

The C2PA SDK sends the timestamp request itself, with its own HTTP client, so the outbound
rules of DESIGN §6 are applied around it: the TSA URL's host must be on
REGISTRY_C2PA_TSA_ALLOWED_HOSTS (checked at start), and before every signing every address
the host resolves to must be public or itself allow-listed (``check``). The SDK follows no
redirect to a private address, but it resolves the name again itself, so a DNS answer that
changes between the two lookups is not covered: list a name only if you trust its DNS, or
list the TSA by IP address.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from registry.core.outbound import AddressRefused, AllowList, HostUnresolved
from verifier import TimestampAuthority, TimestampUnavailable

if TYPE_CHECKING:
    from collections.abc import Collection

__all__ = ["Timestamping"]


class Timestamping:
    """Where signed outputs get their timestamp, and the check made before each request."""

    def __init__(self, authority: TimestampAuthority, allowed_hosts: Collection[str]) -> None:
        """Raises ValueError when the URL's host is not on ``allowed_hosts``."""
        self.authority = authority
        self._allowed = AllowList(allowed_hosts)
        try:
            self._url = httpx.URL(authority.url)
        except httpx.InvalidURL:
            msg = "the TSA URL does not parse"
            raise ValueError(msg) from None
        if not self._url.host or not self._allowed.lists(self._url.host):
            msg = f"host {self._url.host[:64]!r} is not on the TSA allow-list"
            raise ValueError(msg)

    def __repr__(self) -> str:
        return f"Timestamping(host={self._url.host!r})"

    async def check(self) -> None:
        """Raise TimestampUnavailable (nothing is signed) when the TSA's host does not
        resolve, or resolves to an address the allow-list does not cover."""
        try:
            await self._allowed.resolve(self._url)
        except HostUnresolved:
            raise TimestampUnavailable(
                "the timestamp authority's host does not resolve; nothing was signed",
                reason="unreachable",
            ) from None
        except AddressRefused:
            raise TimestampUnavailable(
                "the timestamp authority's host resolves to an address that is not allowed "
                "(loopback, link-local, private or reserved); nothing was signed",
                reason="not_allowed",
            ) from None
