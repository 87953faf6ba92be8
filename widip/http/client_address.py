"""The client's address as login throttling must see it: behind a trusted reverse proxy, the address
the proxy saw (X-Forwarded-For); otherwise the socket's peer. Forwarded headers from anyone else are
ignored, so a client cannot pick the address it is throttled under."""

from __future__ import annotations

import ipaddress


def parse_networks(items) -> tuple:
    """IP addresses or CIDR networks (WIDIP_TRUSTED_PROXIES); raise ValueError naming a bad one."""
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items if item.strip())


def _trusted(address: str, networks) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_address(remote_addr: str | None, forwarded_for: str | None, trusted_networks) -> str:
    """Walk X-Forwarded-For from the right while the hop is a trusted proxy; the first untrusted hop
    is the client. Without trusted proxies the header is ignored."""
    address = (remote_addr or "unknown").strip()
    if not forwarded_for or not _trusted(address, trusted_networks):
        return address[:64]
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        address = hop
        if not _trusted(hop, trusted_networks):
            break
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return (remote_addr or "unknown")[:64]
