"""The ``[hub]`` section: the district side (ingest, aggregation, publishing)."""
from __future__ import annotations

from appliance.config import section, setting


@section("hub")
class HubSettings:
    """District hub workers."""

    database_url: str = setting("", "PostgreSQL URL; empty means SQLite at <data_dir>/hub.db.")
    broker_url: str = setting("", "Broker the hub workers connect to.")
    share_group: str = setting("hub", "MQTT v5 shared-subscription group name; workers in one group split the load.")
