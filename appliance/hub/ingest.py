"""Hub ingest worker: shared subscription in, idempotent commit, then the end-to-end ack.

Any number of workers (processes, each ``classroom-edge hub``) subscribe to
``$share/<group>/ce/v1/+/+/up/events`` and the broker hands each batch to one of them. Order of work per
batch: decode (bounded) -> store by event id in one transaction together with other waiting batches ->
commit -> publish ``{"batch": id, ...}`` on ``ce/v1/<site>/<device>/down/ack`` -> PUBACK to the broker.
The PUBACK is sent last (paho ``manual_ack``): if this worker dies before its commit, the broker still
holds the message, and the box resends anyway until it sees our ack.

Two threads: ``hub-net`` owns the MQTT connection (all paho calls), ``hub-store`` owns the database.
They talk through a queue (messages in) and a deque (acks out), so neither ever waits on the other's lock.
"""
from __future__ import annotations

import collections
import json
import logging
import queue
import re
import socket
import threading
import time

from appliance.errors import AppError
from appliance.hub.store import BatchIn, HubStore
from appliance.sync import codec
from appliance.sync.mqtt import (
    Backoff,
    BrokerParams,
    Link,
    connect_failure,
    describe_connack,
    lost_reason,
    user_properties,
)

log = logging.getLogger(__name__)

SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
TICK_S = 0.05


def parse_topic(topic: str) -> tuple[str, str, str] | None:
    """``ce/v1/<site>/<device>/up/<kind>`` -> (site, device, kind), or None."""
    p = topic.split("/")
    if len(p) == 6 and p[0] == "ce" and p[1] == "v1" and p[4] == "up" and SEGMENT.match(p[2]) and SEGMENT.match(p[3]):
        return p[2], p[3], p[5]
    return None


class IngestWorker:
    def __init__(self, cfg, index: int = 0, store: HubStore | None = None, on_update=None):
        h = cfg.hub
        if not h.broker_url:
            raise AppError("hub.broker_url is not set: the hub has no broker to listen to")
        params = BrokerParams.from_settings(h, "hub")
        prefix = h.client_id or f"hub-{socket.gethostname().split('.')[0]}"
        self.h = h
        self.link = Link(params, f"{prefix}-{index}", clean_start=False, session_expiry=h.session_expiry_s,
                         manual_ack=True)
        self.store = store or HubStore(cfg)
        self.on_update = on_update  # called with (site, device, event_id) after a federated update is stored
        self.topics = [f"$share/{h.share_group}/ce/v1/+/+/up/events", f"$share/{h.share_group}/ce/v1/+/+/up/fl"]
        self.backoff = Backoff()
        self.state, self.reason = "connecting", ""
        self.stats = {"batches": 0, "events": 0, "new_events": 0, "rejected": 0, "updates": 0, "commits": 0}
        self._inbox: queue.Queue = queue.Queue()
        self._outbox: collections.deque = collections.deque()  # (topic, payload, mid, link generation)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._next_attempt = 0.0
        self._gen = 0
        self.subscribed = threading.Event()  # set once the broker confirmed the shared subscriptions

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self.store.open()
        self._threads = [threading.Thread(target=self._net_loop, name="hub-net"),
                         threading.Thread(target=self._store_loop, name="hub-store")]
        for t in self._threads:
            t.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._inbox.put(None)
        for t in self._threads:
            t.join(timeout)
            if t.is_alive():
                log.error("%s did not stop within %.0f s", t.name, timeout)
        self._threads = []
        self.link.disconnect()
        self.store.close()

    @property
    def alive(self) -> bool:
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    # -- network thread -------------------------------------------------------------------------
    def _net_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._net_tick()
            except Exception as exc:
                log.exception("hub network loop")
                self._lost(f"{type(exc).__name__}: {exc}")

    def _net_tick(self) -> None:
        now = time.monotonic()
        if self.link.client is None:
            if now < self._next_attempt:
                self._stop.wait(min(0.2, self._next_attempt - now))
                return
            try:
                self.link.connect()
                self._gen += 1
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                self._lost(*connect_failure(exc, "hub"))
            return
        alive = self.link.loop(TICK_S)
        while self.link.events:
            ev = self.link.events.popleft()
            if ev[0] == "connack":
                if ev[1].is_failure:
                    self._lost(*describe_connack(ev[1], "hub"))
                    return
                self.link.connected = True
                self.backoff.reset()
                self.state, self.reason = "online", ""
                self.link.subscribe(self.topics)
                log.info("hub worker %s connected; subscribed to %s", self.link.client_id, ", ".join(self.topics))
            elif ev[0] == "suback":
                if any(getattr(code, "is_failure", False) for code in ev[2]):
                    self.reason = f"the broker refused the subscription: {ev[2]}"
                    log.error("hub worker: %s", self.reason)
                else:
                    self.subscribed.set()
            elif ev[0] == "message":
                self._inbox.put((ev[1], self._gen))
        while self._outbox:
            topic, payload, mid, gen = self._outbox.popleft()
            if topic:
                self.link.publish(topic, payload, qos=1)
            if gen == self._gen and mid is not None:
                self.link.ack(mid)  # an older connection's message is redelivered by the broker instead
        if not alive:
            self._lost(*lost_reason(self.link))
        elif not self.link.connected and now - self.link.connecting_since > self.link.params.connect_timeout:
            self._lost("no CONNACK from the broker in time")

    def _lost(self, reason: str, refused: bool = False) -> None:
        """Offline until the next attempt; "refused" when the broker turned down our credentials or client
        certificate (we keep retrying, with backoff, in case the broker's side is what gets fixed)."""
        self.subscribed.clear()
        self.link.close()
        delay = self.backoff.next()
        self._next_attempt = time.monotonic() + delay
        self.state, self.reason = ("refused" if refused else "offline"), reason
        log.warning("hub worker %s: %s; retrying in %.1f s", self.state, reason, delay)

    # -- store thread ---------------------------------------------------------------------------
    def _store_loop(self) -> None:
        while True:
            first = self._inbox.get()
            if first is None:
                return
            group = [first]
            while len(group) < self.h.commit_batches:
                try:
                    item = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._inbox.put(None)
                    break
                group.append(item)
            try:
                self._store_group(group)
            except Exception as exc:  # noqa: BLE001 - nothing acked: the broker/box will deliver it again
                log.error("could not store %d batches: %s", len(group), exc)
                self.reason = f"database: {exc}"
                self._stop.wait(1.0)

    def _store_group(self, group: list) -> None:
        batches, acks = [], []
        for msg, gen in group:
            where = parse_topic(msg.topic)
            if where is None:
                self._reject(msg, gen, "unexpected topic")
                continue
            site, device, kind = where
            if kind == "fl":
                self._store_update(msg, gen, site, device)
                continue
            props = user_properties(msg)
            try:
                events = codec.decode(msg.payload, self.h.max_batch_mb * 1024 * 1024)
            except codec.CodecError as exc:
                self._reject(msg, gen, exc.message)
                continue
            batch_id = props.get("batch", "")
            if not batch_id or len(batch_id) > 128:
                self._reject(msg, gen, "batch without a batch id")
                continue
            batches.append(BatchIn(site, device, batch_id, events))
            acks.append((msg, gen))
        if not batches:
            return
        news = self.store.store_batches(batches)
        self.stats["commits"] += 1
        for b, new, (msg, gen) in zip(batches, news, acks):
            self.stats["batches"] += 1
            self.stats["events"] += len(b.events)
            self.stats["new_events"] += new
            ack = json.dumps({"batch": b.batch_id, "events": len(b.events), "new": new}).encode()
            self._outbox.append((f"ce/v1/{b.site}/{b.device}/down/ack", ack, msg.mid, gen))

    def _store_update(self, msg, gen, site: str, device: str) -> None:
        props = user_properties(msg)
        try:
            done = self.store.store_fl_chunk(site, device, props, msg.payload, self.h.max_update_mb * 1024 * 1024)
        except (KeyError, ValueError) as exc:
            self._reject(msg, gen, f"bad update chunk: {exc}")
            return
        topic = ack = None
        if done:
            self.stats["updates"] += 1
            topic = f"ce/v1/{site}/{device}/down/ack"
            ack = json.dumps({"blob": props["event_id"]}).encode()
        self._outbox.append((topic, ack, msg.mid, gen))
        if done and self.on_update is not None:
            try:
                self.on_update(site, device, props["event_id"])
            except Exception:
                log.exception("federated update hook failed")

    def _reject(self, msg, gen, reason: str) -> None:
        """A batch that can never be stored: logged, counted, taken off the broker (PUBACK), and the box
        told why (its rows stay: it shows the reason on its admin page and keeps the events)."""
        self.stats["rejected"] += 1
        log.warning("rejected message on %s: %s", msg.topic, reason)
        where, batch = parse_topic(msg.topic), user_properties(msg).get("batch", "")
        if where is not None and batch and len(batch) <= 128:
            nack = json.dumps({"batch": batch, "rejected": reason[:300]}).encode()
            self._outbox.append((f"ce/v1/{where[0]}/{where[1]}/down/ack", nack, msg.mid, gen))
        else:
            self._outbox.append((None, None, msg.mid, gen))

    def status(self) -> dict:
        return {"state": self.state, "reason": self.reason, "client_id": self.link.client_id,
                "database": self.store.kind, **self.stats}
