"""The ``[storage]`` section: where the box keeps its data."""
from __future__ import annotations

from appliance.config import section, setting


@section("storage")
class StorageSettings:
    """Where data lives. Everything the box must not lose is under ``data_dir``."""

    data_dir: str = setting("var", "Directory for the database, blobs and models (on a box: /var/lib/classroom-edge).")
    cache_dir: str = setting("", "Directory for rebuildable caches (engine caches, thumbnails); empty means <data_dir>/cache.")
    database: str = setting("classroom-edge.db", "SQLite database file name, relative to data_dir.")
    max_group_commit: int = setting(256, "Most writes that share one commit (and one fsync).")
