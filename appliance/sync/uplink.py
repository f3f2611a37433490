"""Outbox -> hub: batching, flow control, end-to-end acknowledgements and resends.

Delivery is at-least-once and the hub stores by event id, so the *effect* is exactly once. The rules:

* A batch is the outbox rows with seq in ``[lo, hi]`` read in one go; its id carries a per-process nonce,
  so only acks for batches this process sent can delete anything.
* Rows are deleted only when the hub's ack (``.../down/ack``, sent after its commit) names the batch. A
  PUBACK only frees a slot of the MQTT in-flight window.
* Unacknowledged batches stay in memory (a few MB at most) and are re-published on every new connection
  and after ``ack_timeout_s``; after a restart the cursor starts again from the oldest row.
* At most ``min(max_inflight, broker Receive Maximum)`` publishes wait for PUBACK and at most
  ``max_unacked_batches`` batches wait for the hub.

Blobs (federated updates) go one at a time, chunk by chunk, on ``.../up/fl``.
"""
from __future__ import annotations

import json
import logging
import secrets
import time
from concurrent.futures import Future, wait
from dataclasses import dataclass

from appliance import jsonsafe
from appliance.store.database import now_iso
from appliance.sync import codec, outbox

log = logging.getLogger(__name__)

IDLE_POLL_S = 0.25
MAX_ACK_BYTES = 4096


def delete_acknowledged(conn, ranges: list[tuple[int, int, int]], blobs: list[tuple[str, int]]) -> None:
    """Remove what the hub confirmed and count it as delivered (one writer job per ack). ``ranges``
    are (first seq, last seq, bytes on the wire) of acknowledged batches; ``blobs`` (event id, size)."""
    gone = nbytes = 0
    for lo, hi, size in ranges:
        n = outbox.delete_range(conn, lo, hi)
        gone, nbytes = gone + n, nbytes + (size if n else 0)
    for event_id, size in blobs:
        n = outbox.delete_blob(conn, event_id)
        gone, nbytes = gone + n, nbytes + (size if n else 0)
    if gone:  # a repeated ack deletes nothing and counts nothing
        outbox.record_delivered(conn, gone, now_iso(), nbytes)


def _log_failed_delete(fut: Future) -> None:
    if fut.exception() is not None:  # the rows stay and are resent later; the hub drops the duplicates
        log.error("could not delete acknowledged rows from the outbox: %s", fut.exception())


@dataclass
class Batch:
    id: str
    lo: int
    hi: int
    count: int
    raw_bytes: int
    payload: bytes
    sent_at: float = 0.0
    pending: bool = True  # (re)send at the next opportunity


@dataclass
class BlobSend:
    blob: outbox.Blob
    next_idx: int = 0
    sent_at: float = 0.0


class Uplink:
    def __init__(self, db, topic_events: str, topic_fl: str, settings, clock=time.monotonic):
        self.db = db
        self.topic_events = topic_events
        self.topic_fl = topic_fl
        self.s = settings
        self.clock = clock
        self.nonce = secrets.token_hex(4)
        self.cursor = 0
        self.inflight: dict[str, Batch] = {}
        self.unpubacked: dict[int, str] = {}
        self.cap = settings.max_inflight
        self.blob: BlobSend | None = None
        self._acks: list[Batch] = []
        self._blob_acks: list[str] = []
        self._next_poll = 0.0
        # Deletes of acknowledged rows go to the database writer without waiting: the relay thread never
        # waits for an fsync, and acks arriving together share one commit (the writer's group commit).
        # Losing a pending delete (crash) only means a resend that the hub absorbs.
        self._deletes: list[Future] = []
        self._blobs_done: set[str] = set()  # acked, delete pending in the writer
        self.stats = {"batches_sent": 0, "events_sent": 0, "bytes_sent": 0, "json_bytes_sent": 0,
                      "batches_acked": 0, "events_acked": 0, "blobs_acked": 0, "resends": 0,
                      "max_unpubacked": 0, "hub_rejected": None, "last_success": None, "publish_refused": None}

    # -- connection events ------------------------------------------------------------------
    def on_connected(self, receive_max: int) -> None:
        self.cap = max(1, min(self.s.max_inflight, receive_max))
        self.unpubacked.clear()
        for b in self.inflight.values():
            b.pending = True
        if self.blob is not None:
            self.blob.next_idx = 0  # the hub keeps what it stored; resending is cheap and simple
        self._next_poll = 0.0

    def wait_for_deletes(self, timeout: float) -> None:
        """On stop: let the queued deletes of acknowledged rows reach the disk (else they are resent)."""
        _done, pending = wait(self._deletes, timeout)
        if pending:
            log.error("%d deletes of acknowledged rows did not finish within %.0f s", len(pending), timeout)
        self._deletes = []

    def on_disconnected(self) -> None:
        self.unpubacked.clear()

    def on_puback(self, mid: int, rc) -> None:
        what = self.unpubacked.pop(mid, None)
        if getattr(rc, "is_failure", False):
            # e.g. "not authorized" (ACL) or a payload over the broker's size limit. Not a delivery: the rows
            # stay (only the hub's ack deletes them) and the batch goes again after ack_timeout_s, not at once
            # (a hot loop would gain nothing); the status page shows why in the meantime.
            label = (f"update {what[5:]}" if what.startswith("blob:") else f"batch {what}") if what else "a publish"
            prefix = self.topic_events.rsplit("/up/", 1)[0]
            self.stats["publish_refused"] = (
                f"the broker refused {label} ({rc}, reason code {getattr(rc, 'value', rc):#04x}); kept in the outbox "
                f"and sent again after {self.s.ack_timeout_s:.0f} s. Check that the broker's ACL lets this box's "
                f"identity (its certificate CN or sync.username) publish under {prefix}/ (sync.site, sync.device)")
            log.warning("broker refused a publish (%s): %s", label, rc)
        elif what is not None:
            self.stats["publish_refused"] = None  # the broker takes our batches again

    def on_ack(self, payload: bytes) -> None:
        if len(payload) > MAX_ACK_BYTES:
            log.warning("ignoring an oversized ack (%d bytes)", len(payload))
            return
        try:
            doc = jsonsafe.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError):
            log.warning("ignoring a malformed ack")
            return
        if not isinstance(doc, dict):
            return
        batch = self.inflight.get(doc.get("batch")) if isinstance(doc.get("batch"), str) else None
        if batch is not None and "rejected" in doc:
            # The hub could not store it (it says why). Keep the rows; the admin page shows the reason.
            self.stats["hub_rejected"] = f"batch {batch.id}: {str(doc['rejected'])[:300]}"
            log.error("the hub rejected batch %s: %s", batch.id, doc["rejected"])
        elif batch is not None:
            self._acks.append(batch)
        elif isinstance(doc.get("blob"), str) and self.blob and doc["blob"] == self.blob.blob.event_id:
            self._blob_acks.append(doc["blob"])
        else:
            log.debug("ack for a batch this process did not send (or already acknowledged): %s", doc)

    # -- the pump ---------------------------------------------------------------------------
    def pump(self, link) -> None:
        self._apply_acks()
        now = self.clock()
        for b in self.inflight.values():
            if not b.pending and now - b.sent_at > self.s.ack_timeout_s:
                log.info("batch %s not acknowledged within %.0f s: sending it again", b.id, self.s.ack_timeout_s)
                b.pending = True
                self.stats["resends"] += 1
        for b in self.inflight.values():
            if b.pending and self._room():
                self._send(link, b)
        while self._room() and len(self.inflight) < self.s.max_unacked_batches and now >= self._next_poll:
            b = self._next_batch()
            if b is None:
                self._next_poll = now + IDLE_POLL_S
                break
            self.inflight[b.id] = b
            self._send(link, b)
        self._pump_blob(link, now)

    def _room(self) -> bool:
        return len(self.unpubacked) < self.cap

    def _next_batch(self) -> Batch | None:
        with self.db.read() as conn:
            rows = outbox.read_batch(conn, self.cursor, self.s.batch_max_events, self.s.batch_max_kb * 1024)
        if not rows:
            return None
        payload, raw = codec.encode_rows(rows, self.s.compression_level)
        lo, hi = rows[0].seq, rows[-1].seq
        self.cursor = hi
        return Batch(f"{self.nonce}-{lo}-{hi}", lo, hi, len(rows), raw, payload)

    def _send(self, link, b: Batch) -> None:
        mid = link.publish(self.topic_events, b.payload, user=[
            ("batch", b.id), ("count", str(b.count)), ("first_seq", str(b.lo)), ("last_seq", str(b.hi)),
            ("json_bytes", str(b.raw_bytes)), ("codec", codec.CODEC_NAME)], content_type=codec.CONTENT_TYPE)
        if mid is None:
            return  # not connected: stays pending
        self.unpubacked[mid] = b.id
        self.stats["max_unpubacked"] = max(self.stats["max_unpubacked"], len(self.unpubacked))
        b.pending = False
        b.sent_at = self.clock()
        self.stats["batches_sent"] += 1
        self.stats["events_sent"] += b.count
        self.stats["bytes_sent"] += len(b.payload)
        self.stats["json_bytes_sent"] += b.raw_bytes

    def _apply_acks(self) -> None:
        if not self._acks and not self._blob_acks:
            return
        acks, self._acks = self._acks, []
        done, self._blob_acks = self._blob_acks, []
        ranges = [(b.lo, b.hi, len(b.payload)) for b in acks]
        size = self.blob.blob.size if self.blob is not None else 0
        blobs = [(event_id, size) for event_id in done]
        fut = self.db.submit(lambda c: delete_acknowledged(c, ranges, blobs))
        fut.add_done_callback(_log_failed_delete)
        self._deletes = [f for f in self._deletes if not f.done()] + [fut]
        for b in acks:
            if self.inflight.pop(b.id, None) is not None:
                self.stats["batches_acked"] += 1
                self.stats["events_acked"] += b.count
        if done:
            # The blob row's delete is still queued; remember it so it is not picked up again meanwhile.
            self._blobs_done.add(done[0])
            self.blob = None
            self.stats["blobs_acked"] += len(done)
        self.stats["last_success"] = time.time()

    def _pump_blob(self, link, now: float) -> None:
        if self.blob is None:
            with self.db.read() as conn:
                blob = outbox.next_blob(conn)
                while blob is not None and blob.event_id in self._blobs_done:
                    blob = outbox.next_blob(conn, blob.id)
            if blob is None:
                return
            self.blob = BlobSend(blob)
        bs = self.blob
        if bs.next_idx >= bs.blob.chunks:
            if now - bs.sent_at > self.s.ack_timeout_s:
                log.info("update %s not acknowledged: sending it again", bs.blob.event_id)
                bs.next_idx = 0
                self.stats["resends"] += 1
            return
        while bs.next_idx < bs.blob.chunks and self._room():
            with self.db.read() as conn:
                data = outbox.blob_chunk(conn, bs.blob.id, bs.next_idx)
            b = bs.blob
            mid = link.publish(self.topic_fl, data, user=[
                ("event_id", b.event_id), ("type", b.type), ("idx", str(bs.next_idx)), ("chunks", str(b.chunks)),
                ("size", str(b.size)), ("sha256", b.sha256), ("meta", b.meta)],
                content_type="application/octet-stream")
            if mid is None:
                return
            self.unpubacked[mid] = f"blob:{b.event_id}"
            self.stats["max_unpubacked"] = max(self.stats["max_unpubacked"], len(self.unpubacked))
            self.stats["bytes_sent"] += len(data)
            bs.next_idx += 1
            bs.sent_at = now
