"""How this machine reaches its own servers: the address to probe for a listening address, and URLs
with IPv6 addresses in brackets. Shared by the web server's readiness probe and the mDNS service's
health check, so the two never disagree about where the web service answers."""
from __future__ import annotations

import socket
from functools import cache


def host_port(host: str, port: int) -> str:
    """``host:port``, an IPv6 address in brackets (``web.host = ::1`` gives ``[::1]:8080``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def http_url(host: str, port: int) -> str:
    return f"http://{host_port(host, port)}"


@cache
def has_ipv6_loopback() -> bool:
    """Whether ::1 exists here. A kernel with IPv6 switched off by sysctl (disable_ipv6=1) still lets a
    server bind "::" and take IPv4 connections on it, but has no ::1 to reach it through."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def loopback_for(host: str) -> str:
    """The address to reach a server listening on ``host`` from this machine: IPv4's loopback for all
    IPv4 addresses; IPv6's for all IPv6 ones ("::" takes IPv4 too only where the kernel maps it,
    net.ipv6.bindv6only=0), or IPv4's where there is no ::1; a named address itself."""
    if host in ("", "0.0.0.0", "localhost"):
        return "127.0.0.1"
    if host == "::":
        return "::1" if has_ipv6_loopback() else "127.0.0.1"
    return host
