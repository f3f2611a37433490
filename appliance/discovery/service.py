"""The mDNS runtime part: waits for the web service, then announces the box and follows the network.

One control thread owns the single Zeroconf instance, the advertiser and the peer browser; everything
that touches them happens on that thread, so there is no locking beyond the status snapshot. The loop
wakes every ``mdns.poll_interval_s``: it follows address changes, settles name clashes, refreshes the
status file and pings the watchdog, so a hung loop is noticed by systemd.
"""
from __future__ import annotations

import logging
import socket
import threading
import urllib.error
import urllib.request
from pathlib import Path

from zeroconf import IPVersion, Zeroconf

import appliance
from appliance.discovery import names, netif
from appliance.discovery.advertiser import Advertiser
from appliance.discovery.browser import PeerBrowser
from appliance.discovery.status import StatusWriter, status_path, to_part_status
from appliance.errors import ConfigError, Unavailable
from appliance.loopback import http_url, loopback_for
from appliance.services import PartStatus

log = logging.getLogger(__name__)

_IP_VERSIONS = {"v4": IPVersion.V4Only, "v6": IPVersion.V6Only, "all": IPVersion.All}
HEALTH_TIMEOUT_S = 2.0
HEALTH_RETRY_S = 1.0
MAX_CONSECUTIVE_ERRORS = 5


def box_id(cfg) -> str:
    """``sync.device``, else a stable id from the machine id (the same one MQTT topics fall back to)."""
    if cfg.sync.device:
        return cfg.sync.device
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            mid = Path(path).read_text(encoding="ascii").strip()
        except OSError:
            continue
        if mid:
            return mid[:12]
    return socket.gethostname()


_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def health_url(cfg) -> str:
    """``mdns.health_url``, else the web service's own health endpoint as seen from this machine."""
    if cfg.mdns.health_url:
        return cfg.mdns.health_url
    return http_url(loopback_for(cfg.web.host), cfg.web.port) + "/api/v1/health"


def make_part(services) -> DiscoveryService | None:
    """Factory for ``classroom-edge run``: the part, or None when mDNS is switched off."""
    if not services.cfg.mdns.enabled:
        return None
    part = DiscoveryService(services.cfg)
    services.provide("mdns", part)
    return part


def advert_from_config(cfg) -> names.Advert:
    return names.Advert(
        box_id=box_id(cfg),
        version=appliance.__version__,
        room=cfg.mdns.room,
        site=cfg.sync.site,
        port=cfg.web.port,
    )


class _NoNotify:
    """Stands in when nobody supervises us (tests, ``classroom-edge run`` without systemd)."""

    def ready(self, status: str = "") -> None: ...
    def watchdog(self) -> None: ...
    def status(self, text: str) -> None: ...


class DiscoveryService:
    """Runtime part ``mdns``: ``start()``, ``stop()``, ``ready`` (an Event), ``status()``, ``peers()``."""

    name = "mdns"
    essential = False  # the LMS serves without mDNS; students can still type the address

    def __init__(self, cfg, notifier=None) -> None:
        s = cfg.mdns
        self.enabled = s.enabled
        self._writer = StatusWriter(status_path(cfg))
        self._notify = notifier or _NoNotify()
        self._stop = threading.Event()
        self.ready = threading.Event()
        self.failed: str | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._state, self._detail = ("stopped", "") if s.enabled else ("disabled", "mdns.enabled is false")
        self._zc: Zeroconf | None = None
        self._adv: Advertiser | None = None
        self._browser: PeerBrowser | None = None
        self._snap = netif.Snapshot()
        self._advert = advert_from_config(cfg)
        self._base = names.host_label(s.hostname)
        self._interfaces = list(s.interfaces)
        if not s.enabled:
            return  # nothing else is checked or started: a disabled part only reports "disabled"
        self._interfaces = netif.check_interfaces(self._interfaces)
        self._advert.validate()
        if cfg.web.host in _LOOPBACK:
            # Announcing an address nobody on the LAN can open would be worse than silence.
            raise ConfigError(
                f"mdns.enabled is true but web.host = {cfg.web.host}: students could not open the announced "
                "address; set web.host = \"0.0.0.0\" (or the LAN address)"
            )
        if s.poll_interval_s <= 0:
            raise ConfigError(f"mdns.poll_interval_s = {s.poll_interval_s}: must be more than 0")
        if s.recheck_s < 0:
            raise ConfigError(f"mdns.recheck_s = {s.recheck_s}: must be 0 (off) or more")
        self._ip_version = s.ip_version
        self._poll = s.poll_interval_s
        self._browse = s.browse_peers
        self._polls = 0
        self._errors = 0
        self._waiting_reported = False
        self._recheck_every = max(1, round(s.recheck_s / s.poll_interval_s)) if s.recheck_s > 0 else 0
        self._health_url = health_url(cfg)

    # --- runtime part interface -------------------------------------------------------------
    def start(self) -> None:
        if not self.enabled:
            self._writer.write(self.status_dict(), force=True)
            return
        if self._thread is not None:
            raise RuntimeError("mdns part already started")
        self._set_state("starting", "")
        self._thread = threading.Thread(target=self._run, name="mdns")
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Withdraw the records (goodbye packets) and close; True if the thread ended in time."""
        self._stop.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("mDNS thread did not stop within %.0f s", timeout)
            return False
        return True

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def status(self) -> PartStatus:
        """For the runtime and ``/api/v1/health``: the state plus everything in ``status_dict()``."""
        return to_part_status(self.status_dict())

    def status_dict(self) -> dict:
        """Chosen name, addresses, services, peers... (also what the status file holds)."""
        with self._lock:
            adv, state, detail = self._adv, self._state, self._detail
        label = adv.label if adv is not None and adv.registered else None
        return {
            "enabled": self.enabled,
            "state": state,
            "detail": detail,
            "requested_name": self._base,
            "label": label,
            "hostname": names.host_fqdn(label).rstrip(".") if label else None,
            "renamed": bool(label and label != self._base),
            "addresses": adv.addresses if label else [],
            "services": adv.services() if label else [],
            "port": self._advert.port,
            "interfaces": self._snap.interfaces or list(self._interfaces),
            "interfaces_without_address": list(self._snap.missing),
            "txt": self._advert.txt() if self.enabled else {},
            "peers": self.peers(),
        }

    def peers(self) -> list[dict]:
        browser = self._browser
        return browser.peers() if browser is not None else []

    # --- control thread ---------------------------------------------------------------------
    def _set_state(self, state: str, detail: str) -> None:
        with self._lock:
            changed = (state, detail) != (self._state, self._detail)
            self._state, self._detail = state, detail
        if changed:
            log.info("mDNS %s%s", state, f": {detail}" if detail else "")
            self._notify.status(f"{state} {detail}".strip())

    def _run(self) -> None:
        try:
            if self._wait_for_web():
                while not self._stop.is_set():
                    self._guarded_step()
                    self._writer.write(self.status_dict())
                    self._notify.watchdog()
                    self._stop.wait(self._poll)
        except Exception as exc:
            if self._stop.is_set() and isinstance(exc, Unavailable):
                return  # interrupted while probing: an ordinary stop (the finally block still runs)
            log.exception("mDNS advertiser failed")
            self.failed = f"{type(exc).__name__}: {exc}"
            self._set_state("failed", self.failed)
        finally:
            self._close()
            if self.failed is None:
                self._set_state("stopped", "")
            self._writer.write(self.status_dict(), force=True)

    def _wait_for_web(self) -> bool:
        """Block until the web service answers (any HTTP status below 500) or we are stopped."""
        self._set_state("waiting-for-web", self._health_url)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
        while not self._stop.is_set():
            try:
                with opener.open(self._health_url, timeout=HEALTH_TIMEOUT_S) as resp:
                    if resp.status < 500:
                        return True
            except urllib.error.HTTPError as exc:
                if exc.code < 500:
                    return True
            except (OSError, ValueError):
                pass
            self._writer.write(self.status_dict())
            self._notify.watchdog()
            self._stop.wait(HEALTH_RETRY_S)
        return False

    def _guarded_step(self) -> None:
        """One round; a passing fault (a socket error while an interface goes away) is retried on the
        next round, but a fault that repeats is raised so the service fails visibly and restarts."""
        try:
            self._step()
        except Exception:
            if self._stop.is_set():
                raise
            self._errors += 1
            if self._errors >= MAX_CONSECUTIVE_ERRORS:
                raise
            log.warning("mDNS round failed (%d in a row), retrying", self._errors, exc_info=True)
            return
        self._errors = 0

    def _step(self) -> None:
        snap = netif.snapshot(self._interfaces, self._ip_version)
        if not snap:
            if self._adv is not None and self._adv.registered:
                self._adv.withdraw()
            self._set_state("waiting-for-network", f"no address on {', '.join(self._interfaces)}")
            self._snap = snap
            if not self._waiting_reported:
                # Running and watching is this service's normal state on a box whose cable is out:
                # tell systemd so (READY with the reason in STATUS) rather than fail the start and loop.
                self._waiting_reported = True
                self._notify.ready(f"waiting for a network address on {', '.join(self._interfaces)}")
            return
        if self._zc is None:
            self._open(snap)
        elif snap != self._snap:
            self._zc.update_interfaces(snap.zeroconf_interfaces())
        adv = self._adv
        self._polls += 1
        if not adv.registered:
            self._set_state("probing", f"claiming {adv.label or self._base}.local")
            adv.claim(snap.addresses, prefer=adv.label)
        elif snap != self._snap:
            adv.readdress(snap.addresses)
            came_up = sorted(set(snap.linked) - set(self._snap.linked))
            if came_up:
                log.info("link up on %s: announcing again", ", ".join(came_up))
                adv.reassert()
        else:
            adv.check()
            if self._recheck_every and self._polls % self._recheck_every == 0:
                adv.recheck()
        self._snap = snap
        self._set_state("advertising", f"{adv.label}.local at {', '.join(adv.addresses)}")
        if not self.ready.is_set():
            self.ready.set()
            self._notify.ready(f"announcing {adv.label}.local")

    def _open(self, snap: netif.Snapshot) -> None:
        self._zc = Zeroconf(interfaces=snap.zeroconf_interfaces(), ip_version=_IP_VERSIONS[self._ip_version])
        with self._lock:
            self._adv = Advertiser(self._zc, self._advert, self._base, self._stop, tick=self._notify.watchdog)
        if self._browse:
            self._browser = PeerBrowser(self._zc, own_box_id=self._advert.box_id)
            self._browser.start()

    def _close(self) -> None:
        """Stop browsing, say goodbye, close the sockets; each step bounded by zeroconf's timeouts."""
        browser, self._browser = self._browser, None
        if browser is not None:
            browser.cancel()
        if self._adv is not None:
            try:
                self._adv.close()
            except Exception:
                log.exception("withdrawing the mDNS records failed")
        zc, self._zc = self._zc, None
        if zc is not None:
            zc.close()
