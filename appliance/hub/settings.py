"""The ``[hub]`` section: the district side (ingest, aggregation, publishing)."""
from __future__ import annotations

from appliance.config import section, setting


@section("hub")
class HubSettings:
    """District hub workers."""

    database_url: str = setting("", "PostgreSQL URL (postgresql://...; needs the 'hub' extra, psycopg); "
                                "empty means SQLite at <data_dir>/<database>.")
    database: str = setting("hub.db", "SQLite file name of the hub, relative to storage.data_dir (when no database_url).")
    broker_url: str = setting("", "Broker the hub workers connect to (mqtt:// or mqtts://).")
    share_group: str = setting("hub", "MQTT v5 shared-subscription group name; workers in one group split the load.")
    username: str = setting("", "MQTT user name of the hub workers.")
    password: str = setting("", "MQTT password of the hub workers.", secret=True)
    ca_file: str = setting("", "CA certificate the broker's certificate must chain to (pinned). Required for mqtts://.")
    cert_file: str = setting("", "Optional client certificate (PEM) of the hub workers and publisher, for brokers "
                             "that want mutual TLS (with use_identity_as_username its CN is the hub's user name).")
    key_file: str = setting("", "Private key (PEM) of cert_file.", secret=True)
    client_id: str = setting("", "MQTT client id prefix; empty means hub-<hostname>. Each worker adds -<n>.")
    keepalive_s: int = setting(30, "MQTT keep-alive of the hub workers.")
    session_expiry_s: int = setting(86400, "Session expiry of the hub workers: batches queue on the broker while a "
                                    "worker restarts (boxes resend anyway if it is longer).")
    commit_batches: int = setting(16, "Most uplink batches stored in one database transaction (one fsync).")
    max_batch_mb: int = setting(4, "Largest decompressed batch accepted; bigger ones are refused (zstd bomb guard).")
    max_update_mb: int = setting(512, "Largest federated update (sum of its chunks) accepted on up/fl.")
    signing_key_file: str = setting("", "Ed25519 private key (base64 raw 32-byte seed, owner-only file) that "
                                    "signs model and content announcements.", secret=True)
