"""Hub -> box: signed announcements, resumable chunked transfers, verified hand-over.

The relay thread feeds ``on_message`` and calls ``pump``; nothing here blocks on the network. A transfer
keeps its chunks as files under ``<downlink_dir>/<kind>/<name>/<version>-<sha>/``, so a cut (or a
restart) only costs the chunks that were in flight: on resume the files already there are re-hashed
and only the missing ones are requested (subscribing to a retained chunk topic delivers it; we
unsubscribe once it is stored). When every chunk is there the payload is assembled, its size and
sha256 checked against the signed manifest, and only then handed to the ``DownlinkHandler`` on the
installer thread (an import can take minutes; the uplink must not wait for it).

Anything malformed, oversized, unsigned or wrongly signed is rejected with a logged reason and counted
on the status page; the relay carries on.
"""
from __future__ import annotations

import hashlib
import logging
import os
import queue
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from appliance.store.database import now_iso
from appliance.sync import manifest as mf

log = logging.getLogger(__name__)

CHUNK_RETRY_S = 60.0
# After a resumed session the broker redelivers what it had queued for a confirmed (SUBACKed) subscription;
# if that does not arrive within this grace period it is asked for again.
RESUME_GRACE_S = 5.0
MAX_CHUNK_FAILURES = 3


class DownlinkHandler(Protocol):
    """Receives verified payloads. Raise to refuse; the payload is then offered again after a restart."""

    def on_model(self, name: str, version: str, path: Path) -> None: ...

    def on_content(self, course: str, path: Path) -> None: ...


@dataclass
class Transfer:
    m: mf.Manifest
    dir: Path
    missing: set[int]
    requested: dict[int, float] = field(default_factory=dict)  # idx -> when to ask again
    unconfirmed: dict[int, int] = field(default_factory=dict)  # SUBSCRIBE mid -> idx, until its SUBACK
    failures: dict[int, int] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.m.kind, self.m.name)


class Downlink:
    def __init__(self, db, settings, root: Path, public_keys: list, handler: DownlinkHandler | None,
                 clock=time.monotonic):
        self.db = db
        self.s = settings
        self.root = Path(root)
        self.keys = public_keys
        self.handler = handler
        self.clock = clock
        self.transfers: dict[tuple[str, str], Transfer] = {}
        self.refused: dict[tuple[str, str], str] = {}   # key -> sha256 we will not try again this run
        self._installs: queue.Queue = queue.Queue()
        self._installing: set[tuple[str, str]] = set()
        self._thread: threading.Thread | None = None
        self.stats = {"announcements": 0, "rejected": 0, "last_rejection": None, "chunk_bytes": 0, "installed": 0,
                      "last_install": None, "install_error": None}

    # -- lifecycle of the installer thread --------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._install_loop, name="sync-install")
        self._thread.start()

    def stop(self, timeout: float) -> None:
        if self._thread is not None:
            self._installs.put(None)
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("the downlink installer did not stop within %.0f s", timeout)
            self._thread = None

    # -- messages ---------------------------------------------------------------------------
    @staticmethod
    def subscriptions() -> list[str]:
        return [f"{mf.TOPIC_ROOT}/{plural}/+" for plural in mf.KINDS.values()]

    def on_connected(self, link, session_present: bool) -> None:
        now = self.clock()
        for t in self.transfers.values():
            lost = set(t.unconfirmed.values())  # a SUBSCRIBE without SUBACK may never have reached the broker
            t.unconfirmed.clear()
            if session_present:
                t.requested = {i: min(at, now + RESUME_GRACE_S) for i, at in t.requested.items() if i not in lost}
            else:
                t.requested.clear()

    def on_suback(self, mid: int) -> None:
        for t in self.transfers.values():
            if t.unconfirmed.pop(mid, None) is not None:
                return

    def on_message(self, link, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        if len(parts) == 5:
            self._on_announcement(link, topic, payload)
        elif len(parts) == 8 and parts[5] == "chunks":
            self._on_chunk(link, parts, topic, payload)
        else:
            self._reject(topic, "unexpected topic")

    def _reject(self, topic: str, reason: str) -> None:
        self.stats["rejected"] += 1
        self.stats["last_rejection"] = f"{topic}: {reason}"
        log.warning("downlink message rejected on %s: %s", topic, reason)

    def _on_announcement(self, link, topic: str, payload: bytes) -> None:
        if not payload:
            return  # a cleared retained topic
        try:
            m = mf.parse(topic, payload, max_bytes=self.s.max_announcement_kb * 1024,
                         max_size=self.s.max_download_mb * 1024 * 1024, public_keys=self.keys)
        except mf.Rejected as exc:
            self._reject(topic, exc.message)
            return
        self.stats["announcements"] += 1  # valid ones, including those already installed
        key = (m.kind, m.name)
        if self._installed_sha(key) == m.sha256 or self.refused.get(key) == m.sha256 or key in self._installing:
            return
        current = self.transfers.get(key)
        if current is not None and current.m.sha256 == m.sha256:
            return
        if current is not None:
            self._abandon(link, current, f"superseded by version {m.version}")
        if not self._room_for(m.size):
            self._reject(topic, f"not enough disk for {m.size} bytes (keeping {self.s.min_free_disk_percent}% free)")
            self.refused[key] = m.sha256
            return
        d = self.root / m.kind / m.name / f"{m.version}-{m.sha256[:16]}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "manifest.json").write_bytes(m.to_bytes())
        missing = {i for i in range(len(m.chunks)) if not self._chunk_ok(d, m, i)}
        log.info("downlink %s %s version %s: %d of %d chunks to fetch", m.kind, m.name, m.version,
                 len(missing), len(m.chunks))
        self.transfers[key] = Transfer(m, d, missing)

    def _on_chunk(self, link, parts: list[str], topic: str, payload: bytes) -> None:
        kind = {v: k for k, v in mf.KINDS.items()}.get(parts[3])
        t = self.transfers.get((kind, parts[4])) if kind else None
        try:
            idx = int(parts[7])
        except ValueError:
            idx = -1
        if t is None or parts[6] != t.m.version or idx not in t.missing:
            link.unsubscribe([topic])  # left over from an older transfer or a duplicate
            return
        self.stats["chunk_bytes"] += len(payload)
        if len(payload) != t.m.chunk_length(idx) or hashlib.sha256(payload).hexdigest() != t.m.chunks[idx]:
            t.failures[idx] = t.failures.get(idx, 0) + 1
            t.requested.pop(idx, None)
            link.unsubscribe([topic])
            self._reject(topic, f"chunk {idx} does not match the signed manifest (try {t.failures[idx]})")
            if t.failures[idx] >= MAX_CHUNK_FAILURES:
                self.refused[t.key] = t.m.sha256
                self._abandon(link, t, "a chunk failed verification repeatedly")
            return
        tmp = t.dir / f"{idx:06d}.part"
        tmp.write_bytes(payload)
        os.replace(tmp, t.dir / f"{idx:06d}")
        t.missing.discard(idx)
        t.requested.pop(idx, None)
        link.unsubscribe([topic])

    # -- progress ---------------------------------------------------------------------------
    def pump(self, link) -> None:
        now = self.clock()
        for key, t in list(self.transfers.items()):
            if not t.missing:
                del self.transfers[key]
                self._finish(t)
                continue
            stale = [i for i, at in t.requested.items() if now > at]
            if stale:  # lost on the way (e.g. the broker restarted): ask again
                link.unsubscribe([t.m.chunk_topic(i) for i in stale])
                for i in stale:
                    del t.requested[i]
            want = sorted(t.missing - set(t.requested))[: max(0, self.s.chunk_window - len(t.requested))]
            for i in want:  # one SUBSCRIBE per chunk, so each SUBACK confirms exactly one
                mid = link.subscribe([t.m.chunk_topic(i)])
                t.requested[i] = now + CHUNK_RETRY_S
                if mid is not None:
                    t.unconfirmed[mid] = i

    def _finish(self, t: Transfer) -> None:
        """Every chunk is here: the installer thread assembles, verifies and hands over (a large payload
        takes seconds to hash, which the relay thread must not spend)."""
        self._installing.add(t.key)
        self._installs.put(t)

    def _assemble(self, t: Transfer) -> Path:
        out = t.dir / "payload"
        h = hashlib.sha256()
        with open(out, "wb") as fh:
            for i in range(len(t.m.chunks)):
                data = (t.dir / f"{i:06d}").read_bytes()
                h.update(data)
                fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if out.stat().st_size != t.m.size or h.hexdigest() != t.m.sha256:
            # Every chunk matched its signed hash, so only the disk can have done this: start over.
            shutil.rmtree(t.dir, ignore_errors=True)
            raise mf.Rejected("assembled payload does not match the signed sha256 (damaged on disk)")
        return out

    def _abandon(self, link, t: Transfer, why: str) -> None:
        log.info("downlink %s %s version %s abandoned: %s", t.m.kind, t.m.name, t.m.version, why)
        link.unsubscribe([t.m.chunk_topic(i) for i in t.requested])
        self.transfers.pop(t.key, None)
        shutil.rmtree(t.dir, ignore_errors=True)

    def _chunk_ok(self, d: Path, m: mf.Manifest, idx: int) -> bool:
        p = d / f"{idx:06d}"
        try:
            return hashlib.sha256(p.read_bytes()).hexdigest() == m.chunks[idx]
        except OSError:
            return False

    def _room_for(self, size: int) -> bool:
        self.root.mkdir(parents=True, exist_ok=True)
        st = os.statvfs(self.root)
        # Chunks plus the assembled copy: twice the payload, and the reserve must stay free.
        after = st.f_bavail * st.f_frsize - 2 * size
        return after >= st.f_blocks * st.f_frsize * self.s.min_free_disk_percent / 100

    def _installed_sha(self, key: tuple[str, str]) -> str | None:
        with self.db.read() as conn:
            row = conn.execute("SELECT sha256 FROM sync_downlink WHERE kind = ? AND name = ?", key).fetchone()
        return row[0] if row else None

    # -- installer thread -------------------------------------------------------------------
    def _install_loop(self) -> None:
        while True:
            t = self._installs.get()
            if t is None:
                return
            try:
                self._install(t)
            except Exception as exc:
                log.exception("installing %s %s version %s failed", t.m.kind, t.m.name, t.m.version)
                self.stats["install_error"] = f"{t.m.kind} {t.m.name} {t.m.version}: {exc}"
                self.refused[t.key] = t.m.sha256
            finally:
                self._installing.discard(t.key)

    def _install(self, t: Transfer) -> None:
        if self.handler is None:
            raise RuntimeError("no handler for downlink payloads in this process")
        path = self._assemble(t)
        if t.m.kind == "model":
            self.handler.on_model(t.m.name, t.m.version, path)
        else:
            self.handler.on_content(t.m.name, path)
        self.db.write(lambda c: c.execute(
            "INSERT INTO sync_downlink (kind, name, version, sha256, installed_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (kind, name) DO UPDATE SET version = excluded.version, sha256 = excluded.sha256, "
            "installed_at = excluded.installed_at", (t.m.kind, t.m.name, t.m.version, t.m.sha256, now_iso())))
        shutil.rmtree(t.dir, ignore_errors=True)
        self.stats["installed"] += 1
        self.stats["last_install"] = f"{t.m.kind} {t.m.name} {t.m.version}"
        log.info("installed %s %s version %s", t.m.kind, t.m.name, t.m.version)

    def status(self) -> dict:
        transfers = list(self.transfers.values())  # one C-level copy: the relay thread may change the dict
        return {**self.stats, "transfers": [
            {"kind": t.m.kind, "name": t.m.name, "version": t.m.version, "chunks": len(t.m.chunks),
             "missing": len(t.missing)} for t in transfers]}
