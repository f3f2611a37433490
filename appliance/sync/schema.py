"""Tables of the sync area (listed in ``appliance.store.migrations.SCHEMA_MODULES``).

``sync_totals`` is one row kept current by triggers on the outbox, so the byte cap can be checked on every
enqueue and the backlog shown on the admin page without a ``count(*)`` over a million rows.
"""

SYNC_0001 = """
CREATE TABLE sync_totals (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    events INTEGER NOT NULL DEFAULT 0,          -- rows in the outbox
    bytes INTEGER NOT NULL DEFAULT 0,           -- sum of outbox.size
    learner_bytes INTEGER NOT NULL DEFAULT 0,   -- the part with priority 0 (never dropped)
    blob_bytes INTEGER NOT NULL DEFAULT 0,      -- binary uplink payloads (federated updates)
    refused INTEGER NOT NULL DEFAULT 0,         -- telemetry events refused because of the cap
    evicted INTEGER NOT NULL DEFAULT 0,         -- telemetry events removed to make room for learner events
    cap_bytes INTEGER NOT NULL DEFAULT 536870912,
    min_free_percent REAL NOT NULL DEFAULT 5.0
);
INSERT INTO sync_totals (id, events, bytes, learner_bytes)
    SELECT 1, count(*), coalesce(sum(size), 0), coalesce(sum(CASE WHEN priority = 0 THEN size END), 0) FROM outbox;

CREATE TRIGGER sync_outbox_ins AFTER INSERT ON outbox BEGIN
    UPDATE sync_totals SET events = events + 1, bytes = bytes + NEW.size,
        learner_bytes = learner_bytes + CASE WHEN NEW.priority = 0 THEN NEW.size ELSE 0 END WHERE id = 1;
END;
CREATE TRIGGER sync_outbox_del AFTER DELETE ON outbox BEGIN
    UPDATE sync_totals SET events = events - 1, bytes = bytes - OLD.size,
        learner_bytes = learner_bytes - CASE WHEN OLD.priority = 0 THEN OLD.size ELSE 0 END WHERE id = 1;
END;

-- Oldest telemetry first, without scanning learner rows.
CREATE INDEX sync_outbox_priority ON outbox(priority, seq);

-- Binary uplink payloads (federated updates), sent as chunks on .../up/fl and deleted on the hub's ack.
CREATE TABLE sync_blobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    meta TEXT NOT NULL,                 -- JSON
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    chunks INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE sync_blob_chunks (
    blob_id INTEGER NOT NULL REFERENCES sync_blobs(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (blob_id, idx)
);
CREATE TRIGGER sync_blobs_ins AFTER INSERT ON sync_blobs BEGIN
    UPDATE sync_totals SET blob_bytes = blob_bytes + NEW.size WHERE id = 1;
END;
CREATE TRIGGER sync_blobs_del AFTER DELETE ON sync_blobs BEGIN
    UPDATE sync_totals SET blob_bytes = blob_bytes - OLD.size WHERE id = 1;
END;

-- Downlink payloads handed over successfully (so a retained announcement is not installed twice).
CREATE TABLE sync_downlink (
    kind TEXT NOT NULL CHECK (kind IN ('model', 'content')),
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    installed_at TEXT NOT NULL,
    PRIMARY KEY (kind, name)
);
"""

# What the hub has confirmed over the box's life, kept in the acks' own transaction: the admin page
# says when the box last synced and how much it delivered even after a restart or a power cut.
SYNC_0002 = """
ALTER TABLE sync_totals ADD COLUMN delivered INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sync_totals ADD COLUMN last_delivered_at TEXT;
"""

# The uplink bytes the hub confirmed (compressed batches as sent, and federated updates), in the same
# transaction: a school on a metered uplink sees what the box has used of it, across restarts.
SYNC_0003 = """
ALTER TABLE sync_totals ADD COLUMN delivered_bytes INTEGER NOT NULL DEFAULT 0;
"""

MIGRATIONS = [
    ("sync_0001_totals_blobs_downlink", SYNC_0001),
    ("sync_0002_delivered_totals", SYNC_0002),
    ("sync_0003_delivered_bytes", SYNC_0003),
]
