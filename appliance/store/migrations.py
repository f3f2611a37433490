"""Named, transactional migrations.

Each area keeps its own list (``MIGRATIONS = [(name, sql_or_callable), ...]`` in its ``schema.py``).
A migration is applied once, in its own transaction, and recorded by name in ``_migrations``, so
upgrading a box months later applies exactly what it missed, in order, and a failed one leaves nothing
half-done. Names are never reused or edited once released: a change is a new migration.
"""
from __future__ import annotations

import importlib
import logging
import sqlite3
from typing import Callable, Union

from appliance.store.database import connect, now_iso

log = logging.getLogger(__name__)

Migration = tuple[str, Union[str, Callable[[sqlite3.Connection], None]]]

# Order matters: later areas reference tables of earlier ones.
SCHEMA_MODULES = (
    "appliance.store.schema",
    "appliance.content.schema",
    "appliance.learning.schema",
    "appliance.sync.schema",
    "appliance.inference.schema",
    "appliance.federated.schema",
)


def all_migrations() -> list[Migration]:
    out: list[Migration] = []
    seen: set[str] = set()
    for mod_name in SCHEMA_MODULES:
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as exc:
            if exc.name == mod_name:
                continue  # an area without tables of its own
            raise
        for name, step in getattr(mod, "MIGRATIONS", []):
            if name in seen:
                raise RuntimeError(f"migration name {name} is used twice")
            seen.add(name)
            out.append((name, step))
    return out


def apply_migrations(path, migrations: list[Migration] | None = None) -> list[str]:
    """Apply every pending migration to the database at ``path``; return the names applied."""
    migrations = all_migrations() if migrations is None else migrations
    conn = connect(path)
    applied: list[str] = []
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        for name, step in migrations:
            # IMMEDIATE: two processes starting at once serialise here instead of both migrating.
            conn.execute("BEGIN IMMEDIATE")
            try:
                done = conn.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone()
                if done:
                    conn.execute("COMMIT")
                    continue
                if callable(step):
                    step(conn)
                else:
                    for statement in _split_sql(step):
                        conn.execute(statement)
                conn.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", (name, now_iso()))
                conn.execute("COMMIT")
                applied.append(name)
                log.info("applied migration %s", name)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
    finally:
        conn.close()
    return applied


def _split_sql(script: str) -> list[str]:
    """Split a migration script into statements (sqlite3.complete_statement knows about quotes)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip().strip(";").strip():
                statements.append(current.strip())
            current = ""
    if current.strip():
        raise ValueError(f"incomplete SQL statement in migration: {current[:80]!r}")
    return statements
