"""SQLite storage: connections, the single group-commit writer and named migrations."""
from appliance.store.database import Database, connect, now_iso

__all__ = ["Database", "connect", "now_iso", "open_database"]


def open_database(cfg, migrate: bool = True) -> Database:
    """The database named by the config, migrated to the current schema."""
    from pathlib import Path

    from appliance.store.migrations import apply_migrations

    path = Path(cfg.storage.data_dir) / cfg.storage.database
    path.parent.mkdir(parents=True, exist_ok=True)
    if migrate:
        apply_migrations(path)
    return Database(path, max_group=cfg.storage.max_group_commit)
