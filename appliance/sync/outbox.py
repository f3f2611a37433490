"""The outbox: every learning fact leaves the box through here.

``enqueue`` is called inside the writer transaction that records the fact itself, so the event and the
fact are committed together or not at all. The relay (``appliance.sync.relay``) reads, batches and, after
the hub's end-to-end acknowledgement, deletes rows.
"""
from __future__ import annotations

import json
import sqlite3
import uuid

from appliance.store.database import now_iso

# Priorities: learner data is never dropped; telemetry is refused first when the outbox is full.
LEARNER = 0
TELEMETRY = 1

SCHEMA_VERSION = 1


def enqueue(conn: sqlite3.Connection, type_: str, payload: dict, *, priority: int = LEARNER,
            event_id: str | None = None) -> str:
    """Add one event to the outbox in the caller's transaction; returns its UUID."""
    event_id = event_id or str(uuid.uuid4())
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True)
    conn.execute(
        "INSERT INTO outbox (event_id, type, schema, ts, priority, payload, size) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (event_id, type_, SCHEMA_VERSION, now_iso(), priority, body, len(body)),
    )
    return event_id
