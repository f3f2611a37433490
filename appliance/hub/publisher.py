"""Publishing global models and course versions to every box (``classroom-edge hub publish-*``).

Order matters, so a box never sees an announcement whose chunks are not there yet: every chunk is
published retained (QoS 1, PUBACKed) first, then the signed announcement, then the previous version's
chunks are cleared (an empty retained message deletes a retained topic). A box that is offline for a
week finds the current announcement and its chunks waiting.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Self

from appliance.ed25519 import generate_keypair, load_private, public_b64, write_private_key
from appliance.errors import AppError, ConfigError, Unavailable
from appliance.store.database import now_iso
from appliance.sync import manifest as mf
from appliance.sync.mqtt import BrokerParams, Link, describe_connack, describe_error, lost_reason

log = logging.getLogger(__name__)

WINDOW = 10


def generate_key(path: str | os.PathLike) -> str:
    """Write a new signing key (base64 raw seed, mode 0600) and return its public key (base64)."""
    private, public = generate_keypair()
    write_private_key(path, private)
    return public


def public_key(key) -> str:
    return public_b64(key)


def load_key(path: str | os.PathLike, where: str = "hub.signing_key_file"):
    try:
        return load_private(Path(path).read_text().strip())
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path}: {exc.strerror}") from None
    except ConfigError:
        raise ConfigError(f"{where}: {path} is not a base64 raw Ed25519 seed") from None


class Publisher:
    def __init__(self, cfg, timeout: float = 60.0):
        h = cfg.hub
        if not h.broker_url:
            raise ConfigError("hub.broker_url is not set")
        if not h.signing_key_file:
            raise ConfigError("hub.signing_key_file is not set: announcements must be signed")
        self.key = load_key(h.signing_key_file)
        params = BrokerParams.from_settings(h, "hub")
        self.link = Link(params, f"{h.client_id or 'hub'}-publisher-{os.getpid()}", clean_start=True)
        self.timeout = timeout
        self._pending: set[int] = set()
        self._retained: dict[str, bytes] = {}

    def __enter__(self) -> Self:
        try:
            self.link.connect()
        except OSError as exc:
            raise Unavailable(f"cannot reach the broker: {describe_error(exc, 'hub')}") from None
        self._wait(lambda: self.link.connected, "CONNACK")
        return self

    def __exit__(self, *exc) -> None:
        self.link.disconnect()

    def _pump(self) -> None:
        if not self.link.loop(0.05):
            raise Unavailable(f"lost the connection to the broker while publishing: {lost_reason(self.link)[0]}")
        while self.link.events:
            ev = self.link.events.popleft()
            if ev[0] == "connack":
                if ev[1].is_failure:
                    raise Unavailable(describe_connack(ev[1], "hub")[0])
                self.link.connected = True
            elif ev[0] == "puback":
                if getattr(ev[2], "is_failure", False):
                    raise Unavailable(f"the broker refused a publish: {ev[2]}")
                self._pending.discard(ev[1])
            elif ev[0] == "message":
                self._retained[ev[1].topic] = ev[1].payload

    def _wait(self, done, what: str) -> None:
        deadline = time.monotonic() + self.timeout
        while not done():
            if time.monotonic() > deadline:
                raise Unavailable(f"timed out waiting for {what}")
            self._pump()

    def _publish(self, topic: str, payload: bytes) -> None:
        self._wait(lambda: len(self._pending) < WINDOW, "PUBACK")
        mid = self.link.publish(topic, payload, qos=1, retain=True)
        if mid is None:
            raise Unavailable(f"could not publish to {topic}")
        self._pending.add(mid)

    def current(self, kind: str, name: str, wait: float = 1.0) -> mf.Manifest | None:
        """The announcement retained now (unverified: only used to clear its chunks)."""
        topic = mf.announcement_topic(kind, name)
        self.link.subscribe([topic])
        deadline = time.monotonic() + wait
        while topic not in self._retained and time.monotonic() < deadline:
            self._pump()
        self.link.unsubscribe([topic])
        try:
            doc = json.loads(self._retained.get(topic) or b"null")
            return mf.Manifest(doc["kind"], doc["name"], doc["version"], doc["sha256"], doc["size"],
                               doc["chunk_size"], tuple(doc["chunks"])) if doc else None
        except (ValueError, KeyError, TypeError):
            return None

    def publish(self, kind: str, name: str, version: str, path: str | os.PathLike, meta: dict | None = None) -> mf.Manifest:
        previous = self.current(kind, name)
        m = mf.build(kind, name, version, path, self.key, created_at=now_iso(), meta=meta)
        with open(path, "rb") as fh:
            for i in range(len(m.chunks)):
                self._publish(m.chunk_topic(i), fh.read(m.chunk_size))
        self._wait(lambda: not self._pending, "chunk PUBACKs")
        self._publish(m.topic, m.to_bytes())
        self._wait(lambda: not self._pending, "announcement PUBACK")
        if previous is not None and previous.version != m.version:
            for i in range(len(previous.chunks)):
                self._publish(previous.chunk_topic(i), b"")
            self._wait(lambda: not self._pending, "PUBACKs")
        log.info("published %s %s version %s: %d bytes in %d chunks", kind, name, version, m.size, len(m.chunks))
        return m


def publish(cfg, kind: str, name: str, version: str, path, meta: dict | None = None) -> mf.Manifest:
    try:
        with Publisher(cfg) as p:
            return p.publish(kind, name, version, path, meta)
    except AppError:
        raise
    except OSError as exc:
        raise Unavailable(f"publishing failed: {describe_error(exc, 'hub')}") from None
