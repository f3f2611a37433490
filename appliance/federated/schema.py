"""Tables of federated learning. The same migrations serve the box database and the hub's database
(``appliance.hub.federated`` applies them to the hub file), so each table says which side fills it.

- ``fl_updates``: one row per model update, keyed by (box, base version, update id).
  On a box: the updates it made (direction 'sent'), with the privacy cost (rho) and the newest
  interaction it learnt from (``data_until``, the watermark of ``data_window = new``).
  On the hub: the updates it received (direction 'received'), buffered until a version is made, then
  'applied' (or 'refused' with the reason). The key is what makes a replay a no-op.
- ``fl_rounds``: on the hub, one row per global version (the aggregation that made it), with the
  parameters, so the next version is built from exactly these bytes.
- ``candidates``: on a box, every global version received from the hub and what the activation policy
  decided (active, candidate + reason, retired, rolled_back, rejected): the admin page reads it.
"""

FEDERATED_0001 = """
CREATE TABLE fl_updates (
    box TEXT NOT NULL,
    base_version INTEGER NOT NULL,
    update_id TEXT NOT NULL,
    model TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('sent', 'received')),
    status TEXT NOT NULL CHECK (status IN ('queued', 'buffered', 'applied', 'refused')),
    samples INTEGER NOT NULL,
    norm REAL NOT NULL DEFAULT 0,          -- L2 norm before clipping (box) / of the decoded delta (hub)
    clipped INTEGER NOT NULL DEFAULT 0,
    noise_multiplier REAL NOT NULL DEFAULT 0,
    rho REAL,                              -- zCDP cost of this update on the box; NULL = no noise (unbounded)
    size_bytes INTEGER NOT NULL,
    payload_sha256 TEXT NOT NULL,
    payload BLOB,                          -- hub: kept while buffered, dropped once applied
    staleness INTEGER,                     -- hub: versions behind when it arrived
    weight REAL,                           -- hub: samples x 1/sqrt(1 + staleness)
    version INTEGER,                       -- hub: the global version it went into
    reason TEXT,                           -- hub: why it was refused
    data_until REAL,                       -- box: newest answer (attempts.id) it learnt from: the watermark
    loss_before REAL,                      -- box: mean log loss of the base model on the training rows
    loss_after REAL,                       -- box: the same after local training
    created_at TEXT NOT NULL,
    PRIMARY KEY (box, base_version, update_id)
);
CREATE INDEX fl_updates_status ON fl_updates(model, status);

CREATE TABLE fl_rounds (
    model TEXT NOT NULL,
    version INTEGER NOT NULL,
    parent INTEGER,
    strategy TEXT NOT NULL,
    updates INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    params BLOB NOT NULL,                  -- float32 little-endian [n_features + 1]
    params_sha256 TEXT NOT NULL,
    spec TEXT NOT NULL,                    -- learner feature spec (JSON)
    update_norm REAL NOT NULL DEFAULT 0,   -- L2 norm of the combined step
    created_at TEXT NOT NULL,
    published_at TEXT,                     -- NULL until the downlink announcement went out
    publish_error TEXT,
    PRIMARY KEY (model, version)
);

CREATE TABLE candidates (
    model TEXT NOT NULL,
    version INTEGER NOT NULL,              -- global version number
    repo_version TEXT NOT NULL,            -- version directory in the model repository
    sha256 TEXT NOT NULL,                  -- of the ONNX file
    status TEXT NOT NULL CHECK (status IN ('active', 'candidate', 'retired', 'rolled_back', 'rejected')),
    holdout_rows INTEGER,
    holdout_auc REAL,
    current_auc REAL,
    current_version TEXT,                  -- repository version it was compared with
    reason TEXT NOT NULL DEFAULT '',
    received_at TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    PRIMARY KEY (model, version)
);
"""

MIGRATIONS = [
    ("federated_0001_updates_rounds_candidates", FEDERATED_0001),
]
