"""Snapshots of the addresses on the interfaces the box may announce on.

mDNS is multicast and must stay on the classroom LAN, so the interfaces are always named in the config;
``*`` (all non-loopback interfaces) has to be asked for explicitly. Polling a snapshot every few seconds
is enough to follow DHCP renewals and cables being moved, and needs no netlink socket or extra package.
"""
from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field
from pathlib import Path

import ifaddr

from appliance.errors import ConfigError

log = logging.getLogger(__name__)

ALL = "*"
IP_VERSIONS = ("v4", "v6", "all")


@dataclass(frozen=True)
class Snapshot:
    """Addresses per interface at one moment; equal snapshots mean nothing to do."""

    v4: tuple[tuple[str, str], ...] = ()  # (interface, address)
    v6: tuple[tuple[str, str, int], ...] = ()  # (interface, address, interface index)
    # Interfaces with a link (cable in, Wi-Fi associated): a link coming up means re-announcing.
    linked: tuple[str, ...] = ()
    missing: tuple[str, ...] = field(default=(), compare=False)

    @property
    def addresses(self) -> list[str]:
        """Every address to announce in A/AAAA records, IPv4 first."""
        return [a for _, a in self.v4] + [a for _, a, _ in self.v6]

    @property
    def interfaces(self) -> list[str]:
        return sorted({i for i, _ in self.v4} | {i for i, _, _ in self.v6})

    def zeroconf_interfaces(self) -> list:
        """The ``interfaces`` argument for zeroconf: IPv4 addresses, IPv6 interface indexes."""
        return [a for _, a in self.v4] + sorted({idx for _, _, idx in self.v6})

    def __bool__(self) -> bool:
        return bool(self.v4 or self.v6)


def check_interfaces(names: list[str]) -> list[str]:
    """Validate the ``mdns.interfaces`` setting; an empty list is refused rather than meaning 'all'."""
    if not names:
        raise ConfigError(
            "mdns.interfaces is empty: name the classroom LAN interfaces (e.g. [\"eth0\"]) "
            "or [\"*\"] for every non-loopback interface"
        )
    if ALL in names and len(names) > 1:
        raise ConfigError("mdns.interfaces: '*' cannot be combined with interface names")
    for name in names:
        if name != ALL and (not name or len(name) > 15 or "/" in name or name.strip() != name):
            raise ConfigError(f"mdns.interfaces: {name!r} is not an interface name")
    return list(names)


def snapshot(names: list[str], ip_version: str = "v4") -> Snapshot:
    """The usable addresses on ``names`` now (loopback never counts, IPv6 link-local does)."""
    wanted = None if names == [ALL] else set(names)
    v4: list[tuple[str, str]] = []
    v6: list[tuple[str, str, int]] = []
    seen: set[str] = set()
    for adapter in ifaddr.get_adapters():
        name = adapter.nice_name
        if wanted is not None and name not in wanted:
            continue
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                if ip_version == "v6" or ipaddress.IPv4Address(ip.ip).is_loopback:
                    continue
                v4.append((name, ip.ip))
                seen.add(name)
            else:
                addr = ip.ip[0]
                if ip_version == "v4" or ipaddress.IPv6Address(addr.split("%")[0]).is_loopback:
                    continue
                v6.append((name, addr.split("%")[0], adapter.index))
                seen.add(name)
    missing = tuple(sorted(wanted - seen)) if wanted is not None else ()
    linked = tuple(sorted(name for name in seen if has_link(name)))
    return Snapshot(tuple(sorted(v4)), tuple(sorted(v6)), linked, missing)


def has_link(name: str, sys_class_net: str = "/sys/class/net") -> bool:
    """True unless the kernel says the interface has no link (operstate down / lowerlayerdown)."""
    try:
        state = Path(sys_class_net, name, "operstate").read_text(encoding="ascii").strip()
    except OSError:
        return True  # no sysfs view (containers): assume linked rather than never announcing
    return state not in ("down", "lowerlayerdown", "notpresent", "dormant")
