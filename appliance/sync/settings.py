"""The ``[sync]`` section: the MQTT relay to the district hub."""
from __future__ import annotations

from appliance.config import section, setting


@section("sync")
class SyncSettings:
    """Store-and-forward relay. Disabled until a broker is configured."""

    broker_url: str = setting("", "Uplink broker, e.g. mqtts://hub.district.example:8883; empty means no uplink.")
    site: str = setting("demo-site", "Site (school) id used in MQTT topics.")
    device: str = setting("", "Box id used in MQTT topics; empty means derived from the machine id.")
    username: str = setting("", "Per-box MQTT user name.")
    password: str = setting("", "Per-box MQTT password.", secret=True)
    ca_file: str = setting("", "CA certificate the broker's certificate must chain to (pinned).")
