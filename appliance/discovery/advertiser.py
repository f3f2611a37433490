"""Claims a name and announces the box's two services and its host name on one Zeroconf instance.

The host name comes for free: zeroconf answers A/AAAA queries for the ``server`` of every registered
service, so ``room12.local`` resolves as long as the services are registered. zeroconf probes only the
service instance name, so we probe the host name and both instance names together (one query, three
times) and keep watching them afterwards (see ``conflicts``); a clash moves us to ``room12-2``.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from zeroconf import DNSOutgoing, DNSQuestion, ServiceInfo, Zeroconf
from zeroconf.const import (
    _CLASS_IN,
    _FLAGS_AA,
    _FLAGS_QR_QUERY,
    _FLAGS_QR_RESPONSE,
    _TYPE_ANY,
)

from appliance.discovery import names
from appliance.discovery.conflicts import ConflictWatch
from appliance.errors import Unavailable

log = logging.getLogger(__name__)

PROBES = 3
PROBE_GAP_S = 0.25
# Answers to multicast queries may be delayed up to ~1 s when the responder announced the same
# record a moment ago (RFC 6762 section 14), so listen a little longer than the probes take.
PROBE_LISTEN_S = 1.25
DEFEND_EVERY_S = 10.0


class Advertiser:
    """One box's announcement; driven from a single control thread (not thread-safe itself)."""

    def __init__(
        self,
        zc: Zeroconf,
        advert: names.Advert,
        base_label: str,
        stop: threading.Event,
        tick: Callable[[], object] = lambda: None,
    ) -> None:
        advert.validate()
        self._tick = tick  # called once per probed name: trying many names must not starve the watchdog
        self._zc = zc
        self._advert = advert
        self._base = base_label
        self._stop = stop
        self._watch = ConflictWatch(advert.box_id, advert.port)
        self._infos: list[ServiceInfo] = []
        self._addresses: list[str] = []
        self._defending = False
        self._defended_at = 0.0
        self.label: str | None = None
        self.renames = 0
        zc.add_listener(self._watch, None)

    @property
    def registered(self) -> bool:
        return bool(self._infos)

    @property
    def addresses(self) -> list[str]:
        return list(self._addresses)

    def services(self) -> list[str]:
        return [info.name for info in self._infos]

    def claim(self, addresses: list[str], prefer: str | None = None) -> str:
        """Probe for a free name (``prefer`` first, then base, base-2 ...) and register on it."""
        if self._infos:
            raise RuntimeError("already registered; withdraw first")
        self._watch.set_own_addresses(addresses)
        tried = [prefer] if prefer else []
        for label in tried + [c for c in names.candidates(self._base) if c != prefer]:
            if self._stop.is_set():
                raise Unavailable("stopping")
            if self._probe(label):
                log.info("mDNS name %s.local is taken on the network, trying the next one", label)
                self._watch.forget(label)
                continue
            self._register(label, addresses)
            if label != self._base:
                log.warning("mDNS host name %s.local was taken; this box is now %s.local", self._base, label)
            return label
        raise Unavailable(f"no free mDNS name among {self._base} .. {self._base}-{names.MAX_CANDIDATES}")

    def _probe(self, label: str) -> bool:
        """True if someone else answers for the host or either instance name of ``label``."""
        self._watch.watch(label)
        self._tick()
        deadline = time.monotonic() + PROBE_LISTEN_S + PROBES * PROBE_GAP_S
        for _ in range(PROBES):
            self._ask(label)
            if self._stop.wait(PROBE_GAP_S) or self._watch.foreign(label):
                break
        while not self._watch.foreign(label) and not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._stop.wait(min(left, 0.1))
        return self._watch.foreign(label) is not None

    def _ask(self, label: str) -> None:
        """One multicast query (no known answers) for the host and both instance names of ``label``:
        everyone who holds one of them answers by multicast, so the conflict watch sees it."""
        out = DNSOutgoing(_FLAGS_QR_QUERY)
        for name in [names.host_fqdn(label)] + [names.instance_name(label, t) for t in names.SERVICE_TYPES]:
            out.add_question(DNSQuestion(name, _TYPE_ANY, _CLASS_IN))
        self._zc.send(out)

    def recheck(self) -> None:
        """Ask for our own names now and then: a box that joined without probing (two switches
        cabled together, a lost probe) stays silent until someone asks, and may share our name."""
        if self._infos:
            self._ask(self.label)

    def reassert(self) -> None:
        """After a link came up (RFC 6762 section 13): ask for our names and announce them again."""
        if self._infos:
            self._ask(self.label)
            self._reannounce()

    def _build(self, label: str, addresses: list[str]) -> list[ServiceInfo]:
        txt = self._advert.txt()
        return [
            ServiceInfo(
                stype,
                names.instance_name(label, stype),
                port=self._advert.port,
                properties=txt,
                server=names.host_fqdn(label),
                parsed_addresses=addresses,
            )
            for stype in names.SERVICE_TYPES
        ]

    def _register(self, label: str, addresses: list[str]) -> None:
        infos = self._build(label, addresses)
        done: list[ServiceInfo] = []
        try:
            for info in infos:
                # We probed all names ourselves just now; zeroconf's own probe would only repeat that.
                self._zc.register_service(info, cooperating_responders=True)
                done.append(info)
        except Exception:
            for info in done:
                self._zc.unregister_service(info)
            raise
        self._infos, self._addresses, self.label = infos, list(addresses), label
        log.info("announcing %s.local (%s) on port %d", label, ", ".join(addresses), self._advert.port)

    def readdress(self, addresses: list[str]) -> None:
        """Re-announce the same names with new addresses (DHCP renewal, cable moved)."""
        if not self._infos or addresses == self._addresses:
            return
        self._watch.set_own_addresses(addresses)
        gone = [a for a in self._addresses if a not in addresses]
        # New records carry the cache-flush bit, but that only flushes copies older than one second;
        # a change right after an announcement would leave the old address cached for its whole TTL.
        # So say goodbye to the addresses that went away, before and after the new announcement.
        self._goodbye_addresses(gone)
        infos = self._build(self.label, addresses)
        for info in infos:
            self._zc.update_service(info)
        self._goodbye_addresses(gone)
        self._infos, self._addresses = infos, list(addresses)
        log.info("%s.local now at %s", self.label, ", ".join(addresses))

    def _goodbye_addresses(self, gone: list[str]) -> None:
        if not gone:
            return
        host = names.host_fqdn(self.label)
        out = DNSOutgoing(_FLAGS_QR_RESPONSE | _FLAGS_AA)
        for record in ServiceInfo(host, host, server=host, parsed_addresses=gone).dns_addresses(override_ttl=0):
            out.add_answer_at_time(record, 0)
        self._zc.send(out)

    def check(self) -> str | None:
        """Look for a clash on our name; defend it or move to a free one. Returns the action taken."""
        if not self._infos:
            return None
        ev = self._watch.foreign(self.label)
        if ev is None:
            if self._watch.settled_after_contest(self.label):
                # The other side gave way; its goodbyes for records identical to ours (the PTR, an SRV
                # with the same target) made listeners drop ours too, so say them once more.
                self._defending = False
                log.info("the other claim on %s.local is gone; announcing again", self.label)
                self._reannounce()
                return "reannounced"
            return None
        if self._watch.we_keep(ev, self._addresses):
            now = time.monotonic()
            if not self._defending:
                log.warning("another box also claims %s.local (%s); keeping it", self.label, ", ".join(ev.addresses))
            elif now - self._defended_at < DEFEND_EVERY_S:
                return None
            # Announce so the other side sees our claim and gives way; a box that never does (an old
            # version, a crashed one whose records linger) gets a reminder only every DEFEND_EVERY_S.
            self._defending, self._defended_at = True, now
            self._reannounce()
            return "defended"
        old = self.label
        log.warning("%s.local is also claimed by %s; moving to another name", old,
                    ", ".join(list(ev.addresses) + list(ev.box_ids) + list(ev.other)))
        addresses = self._addresses
        self.withdraw()
        self._watch.forget(old)
        self.renames += 1
        self.claim(addresses)
        return "renamed"

    def _reannounce(self) -> None:
        for info in self._infos:
            self._zc.update_service(info)

    def withdraw(self) -> None:
        """Send goodbyes for everything we announced (bounded by zeroconf's own timeouts)."""
        infos, self._infos = self._infos, []
        for info in infos:
            try:
                self._zc.unregister_service(info)
            except Exception as exc:  # noqa: BLE001 - best effort: the records expire anyway
                log.warning("could not send goodbye for %s: %s", info.name, exc)
        self._defending = False

    def close(self) -> None:
        self.withdraw()
        self._zc.remove_listener(self._watch)
