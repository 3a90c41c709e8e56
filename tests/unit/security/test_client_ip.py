"""client_ip: X-Forwarded-For believed only from trusted proxies, read from the nearest hop."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict
from websockets.datastructures import Headers

from gateway.client_ip import client_ip, parse_networks

PROXIES = parse_networks("10.0.0.0/8, 192.168.1.7, fd00::/8")


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert client_ip("203.0.113.5", {"X-Forwarded-For": "1.1.1.1"}, ()) == "203.0.113.5"


def test_a_client_cannot_choose_its_address_by_sending_the_header() -> None:
    """The peer is not a proxy: its header is the client's own words."""
    assert client_ip("203.0.113.5", {"X-Forwarded-For": "1.1.1.1"}, PROXIES) == "203.0.113.5"


def test_behind_a_trusted_proxy_the_nearest_untrusted_hop_is_the_client() -> None:
    assert client_ip("10.0.0.2", {"X-Forwarded-For": "198.51.100.9"}, PROXIES) == "198.51.100.9"
    # A client that forged a header: the proxy appended the real address on the right.
    forged = {"X-Forwarded-For": "1.1.1.1, 198.51.100.9"}
    assert client_ip("10.0.0.2", forged, PROXIES) == "198.51.100.9"
    # Two trusted proxies in a row.
    chained = {"X-Forwarded-For": "1.1.1.1, 198.51.100.9, 192.168.1.7"}
    assert client_ip("10.0.0.2", chained, PROXIES) == "198.51.100.9"


def test_repeated_headers_ports_brackets_and_mapped_addresses() -> None:
    aiohttp_headers = CIMultiDict([("X-Forwarded-For", "1.1.1.1"), ("X-Forwarded-For", "198.51.100.9:4433")])
    assert client_ip("10.0.0.2", aiohttp_headers, PROXIES) == "198.51.100.9"
    ws_headers = Headers([("X-Forwarded-For", "1.1.1.1"), ("x-forwarded-for", "[2001:db8::1]:80")])
    assert client_ip("fd00::5", ws_headers, PROXIES) == "2001:db8::1"
    assert client_ip("::ffff:10.0.0.2", {"X-Forwarded-For": "::ffff:198.51.100.9"}, PROXIES) == "198.51.100.9"


def test_garbage_or_a_missing_header_stops_at_the_last_trusted_hop() -> None:
    assert client_ip("10.0.0.2", {}, PROXIES) == "10.0.0.2"
    assert client_ip("10.0.0.2", {"X-Forwarded-For": "not-an-ip"}, PROXIES) == "10.0.0.2"
    assert client_ip("10.0.0.2", {"X-Forwarded-For": "1.1.1.1, junk, 192.168.1.7"}, PROXIES) == "192.168.1.7"
    assert client_ip("10.0.0.2", {"X-Forwarded-For": "10.9.9.9"}, PROXIES) == "10.9.9.9"


def test_networks_parse_from_a_setting_and_refuse_nonsense() -> None:
    assert [str(n) for n in parse_networks("10.1.2.3/8 ::1")] == ["10.0.0.0/8", "::1/128"]
    assert parse_networks("") == ()
    with pytest.raises(ValueError, match=r"'10\.0\.0\.0/33'"):
        parse_networks("10.0.0.0/33")


@given(st.ip_addresses(), st.lists(st.ip_addresses(), max_size=5))
def test_an_untrusted_peer_is_always_its_own_address(peer: object, forwarded: list[object]) -> None:
    trusted = parse_networks("10.0.0.0/8")
    if str(peer).startswith("10.") or getattr(peer, "ipv4_mapped", None) is not None:
        return
    header = {"X-Forwarded-For": ", ".join(str(a) for a in forwarded)}
    assert client_ip(str(peer), header, trusted) == str(peer)
