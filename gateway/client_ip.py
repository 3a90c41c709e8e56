"""The client's address behind trusted proxies: ``client_ip(peer_ip, headers, trusted)``.

``X-Forwarded-For`` is believed only when the TCP peer is a configured proxy
(``TRUSTED_PROXIES``); otherwise anyone could pick the address its per-IP limits and lockout
count against. The header is then read from the nearest hop back: each proxy appends the
address it received the request from, so the first address that is not itself a trusted
proxy is the client, and whatever a client wrote further left is ignored.

Pure: no sockets, no settings object; aiohttp's and websockets' header types both work.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from common.security_settings import IpNetwork as Network
from common.security_settings import parse_networks

__all__ = ["FORWARDED_FOR", "client_ip", "parse_networks"]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

FORWARDED_FOR = "X-Forwarded-For"
MAX_HOPS = 32  # a longer chain is not believed beyond its nearest 32 hops


def _address(text: str) -> Address | None:
    """An address from a header hop: ``1.2.3.4``, ``1.2.3.4:5678``, ``[::1]:80`` or ``::1``."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]  # IPv4 with a port
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _header_values(headers: object, name: str) -> list[str]:
    """Every value of header ``name``, in order (a header may be sent more than once)."""
    for method in ("getall", "get_all"):  # aiohttp's CIMultiDict, websockets' Headers
        getter = getattr(headers, method, None)
        if getter is not None:
            try:
                return [str(v) for v in getter(name)]
            except KeyError:
                return []
    getter = getattr(headers, "get", None)
    if getter is None:
        return []
    value = getter(name)
    if value is None:
        value = getter(name.lower())
    return [] if value is None else [str(value)]


def _trusted(address: Address, trusted: Sequence[Network]) -> bool:
    return any(address.version == net.version and address in net for net in trusted)


def client_ip(peer_ip: str | None, headers: object, trusted: Sequence[Network]) -> str:
    """The address the per-IP limits should count: the peer's, unless the peer is a trusted
    proxy, in which case the nearest untrusted hop of ``X-Forwarded-For``."""
    peer = peer_ip or ""
    if not trusted:
        return peer
    nearest = _address(peer)
    if nearest is None or not _trusted(nearest, trusted):
        return peer
    hops = [hop for value in _header_values(headers, FORWARDED_FOR) for hop in value.split(",")]
    for hop in reversed(hops[-MAX_HOPS:]):
        address = _address(hop)
        if address is None:
            break  # garbage where an address should be: stop at the last hop we could trust
        if not _trusted(address, trusted):
            return str(address)
        nearest = address
    return str(nearest)
