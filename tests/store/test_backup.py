import sqlite3
from contextlib import closing

import pytest

from appliance.errors import BadRequest
from appliance.store.backup import backup_to, restore_from


def _add_user(db, name):
    db.write(lambda c: c.execute(
        "INSERT INTO users (role, username, display_name, uid, created_at) VALUES ('teacher', ?, ?, ?, 'now')",
        (name, name, name)))


def _names(db):
    with db.read() as conn:
        return sorted(r[0] for r in conn.execute("SELECT username FROM users"))


def test_backup_then_restore_round_trip(services, tmp_path):
    db = services.db
    _add_user(db, "ana")
    info = backup_to(db, tmp_path / "b.db")
    assert info["bytes"] > 0
    _add_user(db, "ben")
    assert _names(db) == ["ana", "ben"]
    restore_from(db, tmp_path / "b.db")
    assert _names(db) == ["ana"]
    _add_user(db, "cy")  # the writer keeps working after a restore
    assert _names(db) == ["ana", "cy"]


def test_restore_refuses_foreign_or_broken_files(services, tmp_path):
    _add_user(services.db, "ana")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(BadRequest, match="not a database"):
        restore_from(services.db, junk)
    other = tmp_path / "other.db"
    with closing(sqlite3.connect(other)) as conn:
        conn.execute("CREATE TABLE t (x)")
        conn.commit()
    with pytest.raises(BadRequest, match="not a Classroom Edge backup"):
        restore_from(services.db, other)
    assert _names(services.db) == ["ana"], "a refused restore changes nothing"
