"""Lists the other Classroom Edge boxes on the network, for the admin page.

It browses ``_classroom-edge._tcp`` on the same Zeroconf instance as the advertiser (one instance per
process: two would fight over the cache and double the multicast traffic).
"""
from __future__ import annotations

import logging
import threading

from zeroconf import ServiceBrowser, ServiceInfo, ServiceListener, Zeroconf

from appliance.discovery import names

log = logging.getLogger(__name__)

# How long to wait for a peer's SRV/TXT/address records when they were not in the announcement.
RESOLVE_TIMEOUT_MS = 1500


def describe(info: ServiceInfo) -> dict:
    """A peer as plain data (what the admin page and ``peers()`` show)."""
    txt = names.decode_txt(info.properties or {})
    host = (info.server or "").rstrip(".")
    addresses = info.parsed_scoped_addresses()
    path = txt.get("path", names.LMS_PATH)
    where = host or (addresses[0] if addresses else "")
    return {
        "name": names.label_of_instance(info.name),
        "host": host,
        "addresses": addresses,
        "port": info.port,
        "box_id": txt.get("id", ""),
        "room": txt.get("room", ""),
        "site": txt.get("site", ""),
        "version": txt.get("ver", ""),
        "url": f"http://{where}:{info.port}{path}" if where and info.port else "",
    }


class PeerBrowser(ServiceListener):
    """Keeps ``peers()`` up to date; zeroconf calls the listener methods from the browser's thread."""

    def __init__(self, zc: Zeroconf, own_box_id: str = "", service_type: str = names.BOX_TYPE) -> None:
        self._zc = zc
        self._own = own_box_id
        self._type = service_type
        self._lock = threading.Lock()
        self._peers: dict[str, dict] = {}
        self._browser: ServiceBrowser | None = None

    def start(self) -> None:
        self._browser = ServiceBrowser(self._zc, self._type, listener=self)

    def cancel(self) -> None:
        """Stop browsing; cancel() joins the browser's thread."""
        browser, self._browser = self._browser, None
        if browser is not None:
            browser.cancel()

    def peers(self) -> list[dict]:
        """Boxes seen now (not this one), sorted by name."""
        with self._lock:
            found = list(self._peers.values())
        return sorted(found, key=lambda p: p["name"])

    # ServiceListener interface. Exceptions must not escape into zeroconf's thread.
    def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self._resolve(zc, type_, name)

    def update_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self._resolve(zc, type_, name)

    def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        with self._lock:
            gone = self._peers.pop(name, None)
        if gone:
            log.info("box %s left the network", gone["name"])

    def _resolve(self, zc: Zeroconf, type_: str, name: str) -> None:
        try:
            info = ServiceInfo(type_, name)
            if not info.load_from_cache(zc) and not info.request(zc, RESOLVE_TIMEOUT_MS):
                log.debug("could not resolve %s in time", name)
                return
            peer = describe(info)
            if self._own and peer["box_id"] == self._own:
                return  # our own announcement, echoed back
        except Exception:
            log.exception("ignoring unreadable announcement %s", name)
            return
        with self._lock:
            new = name not in self._peers
            self._peers[name] = peer
        if new:
            log.info("sees box %s (%s) at %s", peer["name"], peer["room"] or "no room", peer["url"])
