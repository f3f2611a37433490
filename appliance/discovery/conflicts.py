"""Noticing that another device claims our names, and deciding who gives way.

python-zeroconf probes a service name once before registering and never defends it afterwards, and it
does not probe host names at all. Two boxes switched on together (both probing into silence) or one box
whose probe was lost would then share ``room12.local`` and students would reach either at random. So we
watch every record that arrives for the names we use or are about to try; the control loop asks
``foreign(label)`` when probing and on every poll.

Tie-break (RFC 6762 section 8.2 in spirit): between two Classroom Edge boxes the one whose highest
address sorts lower renames, so exactly one of them moves whichever sees the clash first; towards any
other device we always give way, because we cannot expect it to follow our rule.
"""
from __future__ import annotations

import ipaddress
import logging
import threading
import time
from dataclasses import dataclass, field

from zeroconf import DNSAddress, DNSService, DNSText, RecordUpdateListener

from appliance.discovery import names

log = logging.getLogger(__name__)

# Quiet time after the last foreign record before we announce again (goodbyes come 3 in ~250 ms).
SETTLE_S = 1.0


@dataclass
class Evidence:
    """What foreign records say about one of our labels."""

    addresses: dict[str, float] = field(default_factory=dict)  # address -> expires (monotonic)
    box_ids: dict[str, float] = field(default_factory=dict)
    other: dict[str, float] = field(default_factory=dict)  # SRV/TXT of a device that is not a box

    def size(self) -> int:
        return len(self.addresses) + len(self.box_ids) + len(self.other)

    def prune(self, now: float) -> bool:
        for d in (self.addresses, self.box_ids, self.other):
            for k in [k for k, exp in d.items() if exp <= now]:
                del d[k]
        return bool(self.addresses or self.box_ids or self.other)


def parse_txt(raw: bytes) -> dict[str, str]:
    """Decode a TXT rdata (length-prefixed strings) into key/value text."""
    out: dict[str, str] = {}
    i = 0
    while i < len(raw):
        n = raw[i]
        chunk = raw[i + 1 : i + 1 + n]
        i += 1 + n
        key, _, value = chunk.partition(b"=")
        if key:
            out[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return out


class ConflictWatch(RecordUpdateListener):
    """Collects foreign claims on our names; runs its callback in zeroconf's event loop."""

    def __init__(self, box_id: str, port: int) -> None:
        super().__init__()
        self._box_id = box_id
        self._port = port
        self._lock = threading.Lock()
        self._own: set[str] = set()  # every address we have announced, so our echo is not foreign
        self._seen: dict[str, Evidence] = {}
        self._watched: set[str] = set()
        self._contested: dict[str, float] = {}  # label -> when a foreign claim last came or went

    def watch(self, label: str) -> None:
        """Start collecting claims on ``label`` (before probing it); other names are ignored."""
        with self._lock:
            self._watched.add(label)

    def set_own_addresses(self, addresses) -> None:
        with self._lock:
            self._own.update(str(ipaddress.ip_address(a)) for a in addresses)

    def async_update_records(self, zc, now, records) -> None:
        # Never raise into zeroconf's loop: a failure here would only cost us conflict detection.
        try:
            for update in records:
                self._consider(update.new)
        except Exception:  # pragma: no cover - defensive, logged
            log.exception("ignoring a record the conflict watch could not read")

    def _consider(self, record) -> None:
        label = self._label_for(record.name.lower())
        with self._lock:
            if label not in self._watched:
                return
            ev = self._seen.setdefault(label, Evidence())
            before = ev.size()
            self._record(ev, record, label)
            if ev.size() != before:
                self._contested[label] = time.monotonic()

    def _record(self, ev: Evidence, record, label: str) -> None:
        """File ``record`` under ``ev`` if it is someone else's claim (a goodbye removes the claim)."""
        ttl = record.ttl
        expires = time.monotonic() + ttl
        if isinstance(record, DNSAddress):
            addr = _address_text(record.address)
            if addr is not None and addr not in self._own:
                _put(ev.addresses, addr, expires, ttl)
        elif isinstance(record, DNSText):
            box = parse_txt(record.text).get("id")
            if box != self._box_id:
                _put(ev.box_ids if box else ev.other, box or record.name, expires, ttl)
        elif isinstance(record, DNSService) and (
            # Same target host and port is either us or a box that also claims the host name (the
            # address records decide that); another target is someone else's service.
            record.server.lower() != names.host_fqdn(label) or record.port != self._port
        ):
            _put(ev.other, record.server, expires, ttl)

    @staticmethod
    def _label_for(name: str) -> str | None:
        if name.endswith(".local.") and name.count(".") == 2:
            return name[: -len(".local.")]
        for stype in names.SERVICE_TYPES:
            if name.endswith("." + stype):
                return name[: -len(stype) - 1]
        return None

    def foreign(self, label: str) -> Evidence | None:
        """Unexpired foreign claims on ``label``, or None."""
        with self._lock:
            ev = self._seen.get(label)
            if ev is None or not ev.prune(time.monotonic()):
                return None
            return Evidence(dict(ev.addresses), dict(ev.box_ids), dict(ev.other))

    def settled_after_contest(self, label: str, quiet_s: float = SETTLE_S) -> bool:
        """True once: after someone else claimed ``label`` and then withdrew, with ``quiet_s`` of quiet
        (the loser's goodbyes come in a burst; announcing again in the middle of it would be wasted)."""
        with self._lock:
            last = self._contested.get(label)
            if last is None or time.monotonic() - last < quiet_s:
                return False
            ev = self._seen.get(label)
            if ev is not None and ev.prune(time.monotonic()):
                return False
            del self._contested[label]
            return True

    def forget(self, label: str) -> None:
        with self._lock:
            self._seen.pop(label, None)
            self._watched.discard(label)
            self._contested.pop(label, None)

    def we_keep(self, ev: Evidence, our_addresses) -> bool:
        """True if we hold on to the name against the claimant(s) in ``ev``."""
        if ev.other or not ev.addresses:
            # Not (recognisably) a Classroom Edge box: give way rather than fight.
            return False
        ours = max(ipaddress.ip_address(a).packed for a in our_addresses)
        theirs = max(ipaddress.ip_address(a).packed for a in ev.addresses)
        return ours > theirs


def _put(d: dict, key: str, expires: float, ttl: int) -> None:
    if ttl == 0:
        d.pop(key, None)  # a goodbye: that claim is withdrawn
    else:
        d[key] = expires


def _address_text(packed: bytes) -> str | None:
    try:
        return str(ipaddress.ip_address(packed))
    except ValueError:
        return None
