"""The caller's address behind trusted reverse proxies (REGISTRY_TRUSTED_PROXIES).

The service reads the address here and nowhere else: the request-id middleware resolves it
once per request, and the per-address rate limit and the access log use what it found.
uvicorn's own forwarded-header handling stays off, so there is one implementation.

Only when the TCP peer is a trusted proxy are forwarded headers read at all: ``Forwarded``
(RFC 7239, its ``for=`` parameters) when the request has one, else ``X-Forwarded-For``. The
chain is walked from the right (the hop our proxy appended) to the left, and the answer is
the right-most address that is not itself a trusted proxy. An entry that is not an address
(garbage, ``unknown``, an obfuscated ``_hidden`` node, a hop without ``for=``) stops the
walk: the answer is then the last address walked, which is the peer or a trusted proxy, and
never a string the caller made up. A proxy that trusts neither header must overwrite (or
drop) the one it does not set, or a caller could speak through it.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_HEADER_CHARS = 4096
"""Of a longer forwarded header only the right-most part is read (the hops nearest us)."""
MAX_HOPS = 16
"""At most this many entries are walked; a longer chain answers the last one walked."""
UNKNOWN = "unknown"
"""The address when the server names no peer (a Unix socket)."""

_MAX_PORT = 65535
_PORT = re.compile(r"^(?:[0-9]{1,5}|_[A-Za-z0-9._-]+)$")
# IPv4 with an optional port, or a bracketed IPv6 address with an optional port.
_V4_NODE = re.compile(r"^([0-9.]{7,15})(?::([^:]*))?$")
_V6_NODE = re.compile(r"^\[([0-9A-Fa-f:.]{2,45})\](?::(.*))?$")
_V6_BARE = re.compile(r"^[0-9A-Fa-f:.]{2,45}$")


class TrustedProxies:
    """The networks whose connections may name the client in a forwarded header."""

    __slots__ = ("networks",)

    def __init__(self, networks: Iterable[Network] = ()) -> None:
        self.networks: tuple[Network, ...] = tuple(networks)

    @classmethod
    def parse(cls, value: str) -> TrustedProxies:
        """A comma-separated list of IP addresses and CIDR networks, IPv4 or IPv6.

        Raises ValueError naming the first entry that is neither.
        """
        networks: list[Network] = []
        for raw in value.split(","):
            entry = raw.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry))
            except ValueError as exc:
                msg = f"{entry!r} is not an IP address or CIDR network ({exc})"
                raise ValueError(msg) from None
        return cls(networks)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __contains__(self, address: Address) -> bool:
        return any(address in network for network in self.networks)

    def __repr__(self) -> str:
        return f"TrustedProxies({', '.join(str(n) for n in self.networks)})"


NO_PROXIES = TrustedProxies()


def client_address(
    peer: str | None, headers: Iterable[tuple[bytes, bytes]], trusted: TrustedProxies
) -> str:
    """The caller's address: the peer's, or the one its trusted proxies forwarded.

    ``peer`` is the TCP peer's host as the server reports it (ASGI ``scope["client"][0]``),
    ``headers`` the request's raw headers. The answer is an address in its normal form (an
    IPv4-mapped IPv6 address as IPv4), or the peer as given when it is no address at all.
    """
    if peer is None:
        return UNKNOWN
    current = _address(peer)
    if current is None:
        return peer
    if not trusted or current not in trusted:
        return str(current)
    forwarded, forwarded_for = _headers(headers)
    hops = _forwarded_hops(forwarded) if forwarded is not None else _xff_hops(forwarded_for)
    for hop in hops:
        if hop is None:
            break
        current = hop
        if hop not in trusted:
            break
    return str(current)


def _headers(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str | None, str]:
    """``Forwarded`` (None when absent) and ``X-Forwarded-For``, each line joined by commas."""
    forwarded: list[str] = []
    forwarded_for: list[str] = []
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"forwarded":
            forwarded.append(value.decode("latin-1"))
        elif lowered == b"x-forwarded-for":
            forwarded_for.append(value.decode("latin-1"))
    return (",".join(forwarded) if forwarded else None), ",".join(forwarded_for)


def _right_entries(value: str) -> list[str]:
    """The comma-separated entries of a header, right-most first, at most MAX_HOPS of them."""
    if len(value) > MAX_HEADER_CHARS:
        # The cut may fall inside an entry: drop that part-entry rather than misread it.
        value = value[-MAX_HEADER_CHARS:].partition(",")[2]
    entries = value.split(",")
    entries.reverse()
    return entries[:MAX_HOPS]


def _xff_hops(value: str) -> list[Address | None]:
    return [_node(entry.strip(), bare_v6=True) for entry in _right_entries(value)]


def _forwarded_hops(value: str) -> list[Address | None]:
    """The ``for=`` node of each RFC 7239 element, right-most first (None: not an address).

    Elements split at every comma: no node this reads contains one, and a caller's broken
    quoting then stays inside the caller's own elements instead of swallowing ours.
    """
    hops: list[Address | None] = []
    for element in _right_entries(value):
        found: list[str] = []
        for pair in element.split(";"):
            name, sep, node = pair.strip().partition("=")
            if sep and name.strip().lower() == "for":
                found.append(node.strip())
        hops.append(_node(_unquote(found[0]), bare_v6=False) if len(found) == 1 else None)
    return hops


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':  # noqa: PLR2004 - the two quotes
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _node(node: str, *, bare_v6: bool) -> Address | None:
    """An address from ``1.2.3.4``, ``1.2.3.4:80``, ``[2001:db8::1]``, ``[2001:db8::1]:80``
    (and, in X-Forwarded-For, ``2001:db8::1``); None for anything else."""
    host = port = None
    if (match := _V4_NODE.match(node)) or (match := _V6_NODE.match(node)):
        host, port = match.groups()
    elif bare_v6 and _V6_BARE.match(node):
        host = node
    if host is None or (port is not None and not _port(port)):
        return None
    return _address(host)


def _port(port: str) -> bool:
    """A port number or an RFC 7239 obfuscated port (``_abc``)."""
    return bool(_PORT.match(port)) and (port[0] == "_" or int(port) <= _MAX_PORT)


def _address(text: str) -> Address | None:
    """An IP address (an IPv4-mapped IPv6 address as IPv4), or None; no zone ids."""
    if "%" in text:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
