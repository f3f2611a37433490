"""Online backup and restore of the box's database.

Backup uses SQLite's online backup API, so it is a consistent snapshot taken while the LMS keeps
serving. Restore first checks the file is a Classroom Edge database that passes ``integrity_check``,
then replaces the live contents through the backup API inside the database's own locking, so other
processes never see a half-copied file.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

from appliance.errors import BadRequest
from appliance.store.database import Database, connect
from appliance.store.migrations import apply_migrations


def backup_to(db: Database, dest: str | Path) -> dict:
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".partial")
    tmp.unlink(missing_ok=True)
    src = connect(db.path, readonly=True)
    out = sqlite3.connect(str(tmp))
    try:
        src.backup(out)
        out.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
    finally:
        out.close()
        src.close()
    tmp.replace(dest)
    return {"path": str(dest), "bytes": dest.stat().st_size}


def check_backup(path: str | Path) -> None:
    path = Path(path)
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            ok = conn.execute("PRAGMA integrity_check").fetchone()[0]
            has = conn.execute("SELECT count(*) FROM sqlite_master WHERE name IN ('_migrations', 'users', 'outbox')").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise BadRequest(f"That file is not a database backup: {exc}") from None
    if ok != "ok":
        raise BadRequest(f"That backup is damaged: {ok}")
    if has != 3:
        raise BadRequest("That file is a database, but not a Classroom Edge backup.")


def restore_from(db: Database, src_path: str | Path) -> dict:
    check_backup(src_path)
    src = sqlite3.connect(f"file:{src_path}?mode=ro", uri=True, check_same_thread=False)

    def copy(conn):
        # Runs in the writer thread between transactions: no write of this process interleaves.
        src.backup(conn)

    try:
        db.exclusive(copy)
    finally:
        src.close()
    apply_migrations(db.path)  # an older backup is brought up to the current schema
    return {"restored_from": str(src_path)}
