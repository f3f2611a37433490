"""The outbox: every learning fact leaves the box through here.

``enqueue`` is called inside the writer transaction that records the fact itself, so the event and the
fact are committed together or not at all. The relay (``appliance.sync.relay``) reads, batches and, after
the hub's end-to-end acknowledgement, deletes rows.

Binary payloads that do not fit an event (federated model updates) go through ``enqueue_blob``: stored in
256 KiB chunks, sent on ``.../up/fl`` and deleted on the hub's acknowledgement. See ``README.md``.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import uuid
from dataclasses import dataclass
from typing import NamedTuple

from appliance.errors import BadRequest
from appliance.store.database import now_iso
from appliance.sync import limits

# Priorities: learner data is never dropped; telemetry is refused first when the outbox is full.
LEARNER = 0
TELEMETRY = 1

SCHEMA_VERSION = 1
# One event must always fit one uplink batch (<= 256 KiB) with room to spare.
MAX_EVENT_BYTES = 64 * 1024
BLOB_CHUNK_BYTES = 256 * 1024
MAX_BLOB_BYTES = 512 * 1024 * 1024


def enqueue(conn: sqlite3.Connection, type_: str, payload: dict, *, priority: int = LEARNER,
            event_id: str | None = None) -> str | None:
    """Add one event to the outbox in the caller's transaction; returns its UUID.

    Returns ``None`` when a telemetry event (priority > 0) is refused because the outbox is full. Raises
    ``BadRequest`` for an oversized event and ``Unavailable`` when the disk reserve is breached (for
    learner events: the caller's transaction, fact included, is then refused as a whole).
    """
    event_id = event_id or str(uuid.uuid4())
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True)
    size = len(body.encode("utf-8"))
    if size > MAX_EVENT_BYTES:
        raise BadRequest(f"event {type_} is {size} bytes; at most {MAX_EVENT_BYTES} fit in the outbox")
    if not limits.admit(conn, priority, size):
        return None
    conn.execute(
        "INSERT INTO outbox (event_id, type, schema, ts, priority, payload, size) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (event_id, type_, SCHEMA_VERSION, now_iso(), priority, body, size),
    )
    return event_id


def enqueue_blob(conn: sqlite3.Connection, type_: str, data: bytes, meta: dict | None = None, *,
                 event_id: str | None = None) -> str:
    """Queue a binary payload (e.g. a federated update) for ``.../up/fl``; returns its UUID.

    Blobs count against the outbox cap like telemetry: ``Unavailable`` when there is no room, so the
    caller (a training job, not a learner's request) can retry later.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BadRequest("blob data must be bytes")
    data = bytes(data)
    if len(data) > MAX_BLOB_BYTES:
        raise BadRequest(f"blob is {len(data)} bytes; at most {MAX_BLOB_BYTES} are accepted")
    meta_json = json.dumps(meta or {}, separators=(",", ":"), sort_keys=True)
    if len(meta_json) > MAX_EVENT_BYTES:
        raise BadRequest("blob metadata is too large")
    limits.admit_blob(conn, len(data))
    event_id = event_id or str(uuid.uuid4())
    chunks = max(1, -(-len(data) // BLOB_CHUNK_BYTES))
    cur = conn.execute(
        "INSERT INTO sync_blobs (event_id, type, meta, size, sha256, chunks, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (event_id, type_, meta_json, len(data), hashlib.sha256(data).hexdigest(), chunks, now_iso()),
    )
    conn.executemany(
        "INSERT INTO sync_blob_chunks (blob_id, idx, data) VALUES (?, ?, ?)",
        [(cur.lastrowid, i, data[i * BLOB_CHUNK_BYTES:(i + 1) * BLOB_CHUNK_BYTES]) for i in range(chunks)],
    )
    return event_id


# -- the relay's side ------------------------------------------------------------------------------
class Row(NamedTuple):  # a tuple: built 500 times per batch, so cheaper than a dataclass
    seq: int
    event_id: str
    type: str
    schema: int
    ts: str
    priority: int
    payload: str  # JSON text, spliced into the wire format as is
    size: int


_COLS = "seq, event_id, type, schema, ts, priority, payload, size"


def read_batch(conn: sqlite3.Connection, after_seq: int, max_events: int, max_bytes: int) -> list[Row]:
    """The next rows after ``after_seq`` (in commit order) that fit one batch."""
    rows = conn.execute(f"SELECT {_COLS} FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                        (after_seq, max_events)).fetchall()
    out: list[Row] = []
    total = 0
    for r in rows:
        cost = r[7] + 160  # payload size plus the envelope (id, type, ts...)
        if out and total + cost > max_bytes:
            break
        out.append(Row._make(r))
        total += cost
    return out


def delete_range(conn: sqlite3.Connection, lo: int, hi: int) -> int:
    """Delete what a batch covered. Safe for a late or repeated ack: seqs only ever grow, so no row
    committed after the batch was read can have a seq inside it."""
    return conn.execute("DELETE FROM outbox WHERE seq BETWEEN ? AND ?", (lo, hi)).rowcount


def record_delivered(conn: sqlite3.Connection, events: int, at: str, nbytes: int = 0) -> None:
    """Count events the hub acknowledged, and the bytes they took on the uplink (in the transaction
    that deletes them)."""
    conn.execute("UPDATE sync_totals SET delivered = delivered + ?, delivered_bytes = delivered_bytes + ?, "
                 "last_delivered_at = ? WHERE id = 1", (events, nbytes, at))


def delivered(conn: sqlite3.Connection) -> dict:
    t = conn.execute("SELECT delivered, delivered_bytes, last_delivered_at FROM sync_totals WHERE id = 1").fetchone()
    return {"events": t["delivered"], "bytes": t["delivered_bytes"], "last_at": t["last_delivered_at"]}


def backlog(conn: sqlite3.Connection) -> dict:
    t = conn.execute("SELECT events, bytes, blob_bytes FROM sync_totals WHERE id = 1").fetchone()
    oldest = conn.execute("SELECT ts FROM outbox ORDER BY seq LIMIT 1").fetchone()
    blobs = conn.execute("SELECT count(*), min(created_at) FROM sync_blobs").fetchone()
    oldest_ts = min([x for x in (oldest[0] if oldest else None, blobs[1]) if x], default=None)
    return {"events": t["events"], "bytes": t["bytes"], "blobs": blobs[0], "blob_bytes": t["blob_bytes"],
            "oldest": oldest_ts}


@dataclass(frozen=True)
class Blob:
    id: int
    event_id: str
    type: str
    meta: str
    size: int
    sha256: str
    chunks: int


def next_blob(conn: sqlite3.Connection, after_id: int = 0) -> Blob | None:
    r = conn.execute("SELECT id, event_id, type, meta, size, sha256, chunks FROM sync_blobs WHERE id > ? "
                     "ORDER BY id LIMIT 1", (after_id,)).fetchone()
    return Blob(*r) if r else None


def blob_chunk(conn: sqlite3.Connection, blob_id: int, idx: int) -> bytes:
    return bytes(conn.execute("SELECT data FROM sync_blob_chunks WHERE blob_id = ? AND idx = ?",
                              (blob_id, idx)).fetchone()[0])


def delete_blob(conn: sqlite3.Connection, event_id: str) -> int:
    return conn.execute("DELETE FROM sync_blobs WHERE event_id = ?", (event_id,)).rowcount
