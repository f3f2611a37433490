"""The ``[sync]`` section: the MQTT relay to the district hub."""
from __future__ import annotations

from appliance.config import section, setting


@section("sync")
class SyncSettings:
    """Store-and-forward relay. Disabled until a broker is configured."""

    broker_url: str = setting("", "Uplink broker, e.g. mqtts://hub.district.example:8883; empty means no uplink. "
                              "mqtt:// (no TLS) is only for a lab or a test.")
    site: str = setting("demo-site", "Site (school) id used in MQTT topics.")
    device: str = setting("", "Box id used in MQTT topics; empty means derived from the machine id.")
    username: str = setting("", "Per-box MQTT user name.")
    password: str = setting("", "Per-box MQTT password.", secret=True)
    ca_file: str = setting("", "CA certificate the broker's certificate must chain to (pinned: system CAs are "
                           "not trusted). Required for mqtts://.")
    cert_file: str = setting("", "Optional client certificate (PEM) for brokers that also want mutual TLS.")
    key_file: str = setting("", "Private key (PEM) of cert_file.", secret=True)
    keepalive_s: int = setting(30, "MQTT keep-alive; a dead uplink is noticed after about 1.5 times this.")
    connect_timeout_s: float = setting(10.0, "Longest wait for the TCP/TLS connection and then for CONNACK.")
    backoff_min_s: float = setting(1.0, "Shortest wait before reconnecting (jittered, doubling up to backoff_max_s).")
    backoff_max_s: float = setting(60.0, "Longest wait before reconnecting.")
    session_expiry_s: int = setting(604800, "MQTT v5 session expiry: how long the broker keeps our subscriptions "
                                    "and queued downlink messages while the box is offline (7 days).")
    max_inflight: int = setting(20, "Most unacknowledged QoS 1 publishes; the broker's Receive Maximum lowers it.")
    max_unacked_batches: int = setting(32, "Most event batches sent but not yet acknowledged end to end by the hub.")
    batch_max_events: int = setting(500, "Most events in one uplink batch.")
    batch_max_kb: int = setting(256, "Most bytes (uncompressed JSON) in one uplink batch, in KiB.")
    compression_level: int = setting(3, "zstd level for uplink batches (1 fast .. 19 small).")
    ack_timeout_s: float = setting(60.0, "A batch not acknowledged by the hub within this time is sent again "
                                   "(the hub stores by event id, so a repeat is harmless).")
    status_interval_s: float = setting(60.0, "How often the retained status topic is refreshed while connected.")
    outbox_max_mb: int = setting(512, "Outbox byte cap. Above it telemetry is refused (and old telemetry evicted); "
                                 "learner events are always kept, and the admin page shows an alarm.")
    min_free_disk_percent: float = setting(5.0, "Disk space always left free; below it new events are refused "
                                           "(the fact they describe is refused with them, so nothing is lost silently).")
    trusted_keys: list[str] = setting([], "Ed25519 public keys (base64, raw 32 bytes) allowed to sign model and "
                                      "content announcements; with none, every downlink update is refused.")
    downlink_dir: str = setting("", "Where downlink chunks and assembled payloads are kept; empty means "
                                "<data_dir>/sync/downlink.")
    chunk_window: int = setting(2, "Downlink chunks requested at once (a cut wastes at most about this many chunks "
                                "in flight, 256 KiB each).")
    max_download_mb: int = setting(4096, "Largest model or content payload accepted from the downlink.")
    max_announcement_kb: int = setting(1024, "Largest announcement (manifest) message accepted.")
    status_file: str = setting("", "Where the relay writes its status for the admin page; empty means "
                               "<data_dir>/sync/status.json.")
