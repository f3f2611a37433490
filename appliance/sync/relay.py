"""The relay: one thread that owns the MQTT connection, the uplink and the downlink.

Everything that touches paho happens on this thread (``Link`` explains why), so there are no locks around
``publish()`` at all. One tick: connect when due (jittered backoff), run the network for up to 50 ms,
handle what the callbacks queued, then let the uplink fill its window and the downlink request chunks.
A tick never raises out of the thread: a database hiccup is logged, shown on the status page and retried.
"""
from __future__ import annotations

import json
import logging
import re
import socket
import ssl
import threading
import time
from pathlib import Path

from appliance import __version__
from appliance.errors import AppError, ConfigError
from appliance.sync import limits, manifest
from appliance.sync.downlink import Downlink, DownlinkHandler
from appliance.sync.mqtt import (
    Backoff,
    BrokerParams,
    Link,
    connect_failure,
    describe_connack,
    lost_reason,
    receive_maximum,
)
from appliance.sync.uplink import Uplink

log = logging.getLogger(__name__)

TOPIC_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
TICK_S = 0.05


def device_id(configured: str) -> str:
    """The configured id, else one derived from the machine id (stable across reinstalls of the app)."""
    if configured:
        dev = configured
    else:
        try:
            dev = "box-" + Path("/etc/machine-id").read_text().strip()[:12]
        except OSError:
            dev = socket.gethostname().split(".")[0]
    if not TOPIC_SAFE.match(dev):
        raise ConfigError(f"sync.device: {dev!r} cannot be used in an MQTT topic (letters, digits, . _ -)")
    return dev


def check_settings(cfg) -> BrokerParams:
    """Every [sync] rule that types alone cannot express; ``config check`` runs it too, so a bad
    value stops a rollout instead of crash-looping the service on the box."""
    s = cfg.sync
    if not TOPIC_SAFE.match(s.site):
        raise ConfigError(f"sync.site: {s.site!r} cannot be used in an MQTT topic (letters, digits, . _ -)")
    if s.batch_max_kb < 80 or s.batch_max_kb > 256:
        raise ConfigError("sync.batch_max_kb must be between 80 and 256 (one event may be 64 KiB)")
    device_id(s.device)
    return BrokerParams.from_settings(s, "sync", connect_timeout=s.connect_timeout_s)


class Relay:
    def __init__(self, cfg, db, handler: DownlinkHandler | None = None):
        s = cfg.sync
        params = check_settings(cfg)
        self.s = s
        self.db = db
        self.site, self.device = s.site, device_id(s.device)
        self.base = f"ce/v1/{self.site}/{self.device}"
        self.status_topic = f"{self.base}/status"
        self.ack_topic = f"{self.base}/down/ack"
        self.broker = f"{params.host}:{params.port}{' (TLS)' if params.tls else ''}"
        offline = json.dumps({"state": "offline", "site": self.site, "device": self.device}).encode()
        self.link = Link(params, f"ce-{self.site}-{self.device}", clean_start=False,
                         session_expiry=s.session_expiry_s, will=(self.status_topic, offline),
                         max_inflight=s.max_inflight)
        self.uplink = Uplink(db, f"{self.base}/up/events", f"{self.base}/up/fl", s)
        root = Path(s.downlink_dir) if s.downlink_dir else Path(cfg.storage.data_dir) / "sync" / "downlink"
        self.downlink = Downlink(db, s, root, manifest.load_public_keys(s.trusted_keys), handler)
        self.backoff = Backoff(s.backoff_min_s, s.backoff_max_s)
        self.state = "stopped"
        self.reason = ""
        self.connected_since: float | None = None
        self.receive_max: int | None = None
        self.heartbeat = time.monotonic()
        self.failed: str | None = None
        self._next_attempt = 0.0
        self._next_status = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.tick_hook = None  # called on the relay thread after every tick (status file)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self.db.write(lambda c: limits.configure(c, self.s.outbox_max_mb * 1024 * 1024, self.s.min_free_disk_percent))
        self._stop.clear()
        self.state = "connecting"
        self.downlink.start()
        self._thread = threading.Thread(target=self._run, name="sync-relay")
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            # A connect in progress may hold the thread for up to connect_timeout_s.
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("the sync relay did not stop within %.0f s", timeout)
            self._thread = None
        self.uplink.wait_for_deletes(timeout)
        self.downlink.stop(timeout)
        self.state = "stopped"

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self._tick()
                except Exception as exc:  # noqa: BLE001 - a database hiccup in one tick: shown and retried
                    self._trouble(exc)
                self.heartbeat = time.monotonic()
                if self.tick_hook is not None:
                    self.tick_hook()
            self._goodbye()
        except BaseException as exc:
            self.failed = f"{type(exc).__name__}: {exc}"
            log.exception("the sync relay stopped unexpectedly")
            raise

    def _trouble(self, exc: Exception) -> None:
        msg = exc.message if isinstance(exc, AppError) else f"{type(exc).__name__}: {exc}"
        log.error("sync relay: %s", msg)
        self.reason = msg
        self._stop.wait(1.0)

    # -- one tick -------------------------------------------------------------------------------
    def _tick(self) -> None:
        now = time.monotonic()
        if self.link.client is None:
            if now < self._next_attempt:
                self._stop.wait(min(TICK_S * 4, self._next_attempt - now))
                return
            try:
                self.link.connect()
                self.state = "connecting"
            except (OSError, ssl.SSLError, ValueError) as exc:
                reason, refused = connect_failure(exc)
                self._lost(reason, state="refused" if refused else "offline")
            return
        alive = self.link.loop(TICK_S)
        while self.link.events:
            self._handle(self.link.events.popleft())
        if self.link.client is None:
            return  # refused while handling the events
        if not alive:
            reason, refused = lost_reason(self.link)
            self._lost(reason, state="refused" if refused else "offline")
            return
        if not self.link.connected:
            if now - self.link.connecting_since > self.s.connect_timeout_s:
                self._lost("no CONNACK from the broker in time")
            return
        self.uplink.pump(self.link)
        self.downlink.pump(self.link)
        if now >= self._next_status:
            self._publish_status("online")

    def _handle(self, ev: tuple) -> None:
        kind = ev[0]
        if kind == "connack":
            _, rc, session_present, props = ev
            if rc.is_failure:
                text, auth = describe_connack(rc)
                self._lost(text, state="refused" if auth else "offline")
                return
            self._connected(session_present, props)
        elif kind == "puback":
            self.uplink.on_puback(ev[1], ev[2])
        elif kind == "suback":
            self.downlink.on_suback(ev[1])
        elif kind == "message":
            msg = ev[1]
            if msg.topic == self.ack_topic:
                self.uplink.on_ack(msg.payload)
            elif msg.topic.startswith(manifest.TOPIC_ROOT + "/"):
                self.downlink.on_message(self.link, msg.topic, msg.payload)
            if self.link.manual_ack:
                self.link.ack(msg.mid)

    def _connected(self, session_present: bool, props) -> None:
        self.link.connected = True
        self.backoff.reset()
        self.receive_max = receive_maximum(props)
        self.uplink.on_connected(self.receive_max)
        self.state, self.reason = "online", ""
        self.connected_since = time.time()
        log.info("connected to %s (session %s, receive maximum %d, in-flight cap %d)", self.broker,
                 "resumed" if session_present else "new", self.receive_max, self.uplink.cap)
        self.link.subscribe([self.ack_topic] + self.downlink.subscriptions())
        self.downlink.on_connected(self.link, session_present)
        self._publish_status("online")
        self.uplink.pump(self.link)  # the first batch goes out right away, not at the next tick

    def _lost(self, reason: str, state: str = "offline") -> None:
        was = self.link.connected
        self.link.close()
        self.uplink.on_disconnected()
        delay = self.backoff.next()
        self._next_attempt = time.monotonic() + delay
        self.state, self.reason = state, reason
        self.connected_since = None
        log.log(logging.WARNING if state == "refused" or not was else logging.INFO,
                "uplink %s: %s; retrying in %.1f s", state, reason, delay)

    def _publish_status(self, state: str) -> None:
        with self.db.read() as conn:
            backlog = conn.execute("SELECT events FROM sync_totals WHERE id = 1").fetchone()[0]
        doc = {"state": state, "site": self.site, "device": self.device, "version": __version__,
               "since": self.connected_since, "backlog": backlog, "at": time.time()}
        self.link.publish(self.status_topic, json.dumps(doc).encode(), qos=1, retain=True)
        self._next_status = time.monotonic() + self.s.status_interval_s

    def _goodbye(self) -> None:
        """Clean stop: mark the box offline ourselves (a clean DISCONNECT does not fire the will)."""
        if self.link.connected:
            try:
                self._publish_status("offline")
                for _ in range(10):
                    self.link.loop(0.05)
                self.link.disconnect()
            except (OSError, ValueError, AppError) as exc:
                log.info("could not say goodbye to the broker: %s", exc)
        self.link.close()

    def stats(self) -> dict:
        return {"state": self.state, "reason": self.reason, "broker": self.broker, "site": self.site,
                "device": self.device, "connected_since": self.connected_since,
                "receive_maximum": self.receive_max, "inflight_cap": self.uplink.cap,
                "inflight_batches": len(self.uplink.inflight), "failed": self.failed,
                **self.uplink.stats, "downlink": self.downlink.status()}
