"""Agent ops for the mDNS tests: a box's advertiser, and a student device that browses and resolves.

Runs inside a test namespace (see ``ns_agent.py``); never import this in the test process itself.
The student side uses python-zeroconf directly, the way any Bonjour browser would, and reads what a
device would show from its cache (kept current by announcements, cache-flush and goodbye packets).
"""
from __future__ import annotations

import http.client
import logging
import socket
import threading

from zeroconf import (
    AddressResolverIPv4,
    AddressResolverIPv6,
    IPVersion,
    ServiceBrowser,
    ServiceInfo,
    ServiceListener,
    Zeroconf,
)

from appliance.config import load_config
from appliance.discovery import names
from appliance.discovery.service import DiscoveryService

log = logging.getLogger("mdns_ops")


# --- the box ---------------------------------------------------------------------------------------
def advertise(state, data_dir, hostname, interfaces, port, room="Room 12", site="school-a", device="box-a",
              poll_interval_s=0.5, health_url="", recheck_s=60.0, ip_version="v4"):
    """Start the real ``DiscoveryService`` with a config built from these values."""
    env = {
        "CLASSROOM_EDGE_STORAGE__DATA_DIR": data_dir,
        "CLASSROOM_EDGE_MDNS__ENABLED": "true",
        "CLASSROOM_EDGE_MDNS__HOSTNAME": hostname,
        "CLASSROOM_EDGE_MDNS__ROOM": room,
        "CLASSROOM_EDGE_MDNS__INTERFACES": ",".join(interfaces),
        "CLASSROOM_EDGE_MDNS__POLL_INTERVAL_S": str(poll_interval_s),
        "CLASSROOM_EDGE_MDNS__HEALTH_URL": health_url,
        "CLASSROOM_EDGE_MDNS__RECHECK_S": str(recheck_s),
        "CLASSROOM_EDGE_MDNS__IP_VERSION": ip_version,
        "CLASSROOM_EDGE_WEB__PORT": str(port),
        "CLASSROOM_EDGE_WEB__HOST": "0.0.0.0",
        "CLASSROOM_EDGE_SYNC__SITE": site,
        "CLASSROOM_EDGE_SYNC__DEVICE": device,
    }
    svc = DiscoveryService(load_config(env=env))
    svc.start()
    state["box"] = svc
    state.setdefault("cleanup", []).append(lambda: svc.stop(10))
    return svc.status_dict()


def box_status(state):
    return state["box"].status_dict()


def box_wait_ready(state, wait_s=20.0):
    return {"ready": state["box"].ready.wait(wait_s), "status": state["box"].status_dict()}


def box_stop(state, wait_s=10.0):
    svc = state["box"]
    clean = svc.stop(wait_s)
    return {"clean": clean, "failed": svc.failed, "status": svc.status_dict()}


# --- the student device ----------------------------------------------------------------------------
class _Names(ServiceListener):
    """Which instance names are currently announced, per type (removed on goodbye/expiry)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.current: dict[str, str] = {}  # name -> type
        self.removed: list[str] = []

    def add_service(self, zc, type_, name):
        with self.lock:
            self.current[name] = type_

    def update_service(self, zc, type_, name):
        self.add_service(zc, type_, name)

    def remove_service(self, zc, type_, name):
        with self.lock:
            self.current.pop(name, None)
            self.removed.append(name)


def student_start(state, interfaces_ips, ipv6_ifindex=None):
    """A Zeroconf instance bound to the student's own address(es), browsing both service types;
    with ``ipv6_ifindex`` it also listens on IPv6 on that interface."""
    interfaces = list(interfaces_ips) + ([ipv6_ifindex] if ipv6_ifindex else [])
    zc = Zeroconf(interfaces=interfaces, ip_version=IPVersion.All if ipv6_ifindex else IPVersion.V4Only)
    listener = _Names()
    browser = ServiceBrowser(zc, list(names.SERVICE_TYPES), listener=listener)
    state["student"] = (zc, browser, listener)

    def stop():
        browser.cancel()
        zc.close()

    state.setdefault("cleanup", []).append(stop)
    return {"ok": True}


def student_services(state):
    """Every announced service the student sees now, resolved from its cache."""
    zc, _, listener = state["student"]
    with listener.lock:
        current = dict(listener.current)
    out = []
    for name, type_ in sorted(current.items()):
        info = ServiceInfo(type_, name)
        if not info.load_from_cache(zc):
            info.request(zc, 1500)
        out.append({
            "name": name,
            "type": type_,
            "server": info.server,
            "port": info.port,
            "addresses": info.parsed_addresses(),
            "txt": names.decode_txt(info.properties or {}),
        })
    return out


def student_resolve(state, host, timeout_ms=2000):
    """IPv4 addresses for ``host`` (e.g. room12.local.) as the student's cache knows them, asking if needed."""
    zc, _, _ = state["student"]
    resolver = AddressResolverIPv4(host)
    resolver.request(zc, timeout_ms)
    return resolver.parsed_addresses(IPVersion.V4Only)


def student_resolve6(state, host, timeout_ms=2000):
    """IPv6 addresses for ``host`` (AAAA records)."""
    zc, _, _ = state["student"]
    resolver = AddressResolverIPv6(host)
    resolver.request(zc, timeout_ms)
    return resolver.parsed_addresses(IPVersion.V6Only)


def ifindex(state, name):
    return socket.if_nametoindex(name)


def student_fetch(state, host, port, path="/", timeout_ms=2000):
    """What a browser does with http://host:port/path: resolve over mDNS, connect, send Host: host."""
    addresses = student_resolve(state, host, timeout_ms)
    if not addresses:
        return {"status": None, "error": f"{host} did not resolve", "address": None}
    conn = http.client.HTTPConnection(addresses[0], port, timeout=5)
    try:
        conn.request("GET", path, headers={"Host": f"{host.rstrip('.')}:{port}"})
        resp = conn.getresponse()
        return {"status": resp.status, "body": resp.read().decode("utf-8", "replace"), "address": addresses[0]}
    finally:
        conn.close()
