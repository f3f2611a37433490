"""The hub's own database (not the box's): events by id, a batch log, federated updates.

The SQL is kept portable between SQLite and PostgreSQL (TEXT/BIGINT/BYTEA, ``ON CONFLICT ... DO``), so one
list of migrations serves both; ``appliance.hub.store`` applies it.
"""

HUB_0001 = """
CREATE TABLE hub_events (
    event_id TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    device TEXT NOT NULL,
    type TEXT NOT NULL,
    schema INTEGER NOT NULL,
    ts TEXT NOT NULL,
    priority INTEGER NOT NULL,
    payload TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE INDEX hub_events_device ON hub_events(site, device, ts);

CREATE TABLE hub_batches (
    site TEXT NOT NULL,
    device TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    events INTEGER NOT NULL,
    new_events INTEGER NOT NULL,
    deliveries INTEGER NOT NULL DEFAULT 1,
    received_at TEXT NOT NULL,
    PRIMARY KEY (site, device, batch_id)
);

CREATE TABLE hub_fl_chunks (
    event_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (event_id, idx)
);

CREATE TABLE hub_fl_updates (
    event_id TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    device TEXT NOT NULL,
    type TEXT NOT NULL,
    meta TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    data BYTEA NOT NULL,
    received_at TEXT NOT NULL,
    consumed_at TEXT
);
"""

MIGRATIONS = [
    ("hub_0001_events_batches_updates", HUB_0001),
]
