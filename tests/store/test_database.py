import sqlite3
import threading
from contextlib import closing

import pytest

from appliance.store import Database
from appliance.store.migrations import _split_sql, apply_migrations


def test_migrations_are_applied_once_and_recorded(tmp_path):
    db_path = tmp_path / "t.db"
    first = apply_migrations(db_path)
    assert "core_0001_initial" in first
    assert apply_migrations(db_path) == []
    with closing(sqlite3.connect(db_path)) as conn:  # Python 3.13 warns about a connection left open
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        names = {r[0] for r in conn.execute("SELECT name FROM _migrations")}
    assert set(first) == names


def test_failed_migration_leaves_nothing_behind(tmp_path):
    db_path = tmp_path / "t.db"
    bad = [("x_0001", "CREATE TABLE a (x INT);\nCREATE TABLE a (y INT);")]
    with pytest.raises(sqlite3.OperationalError):
        apply_migrations(db_path, bad)
    with closing(sqlite3.connect(db_path)) as conn:
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'a'").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM _migrations").fetchone()[0] == 0


def test_split_sql_keeps_semicolons_inside_strings():
    assert _split_sql("INSERT INTO t VALUES ('a;b');\nSELECT 1;") == ["INSERT INTO t VALUES ('a;b');", "SELECT 1;"]


def test_group_commit_shares_commits_between_concurrent_writers(tmp_path):
    db_path = tmp_path / "t.db"
    apply_migrations(db_path, [("t_0001", "CREATE TABLE t (id INTEGER PRIMARY KEY, who INT);")])
    db = Database(db_path)
    barrier = threading.Barrier(40)

    def writer(i):
        barrier.wait()
        for _ in range(10):
            db.write(lambda c: c.execute("INSERT INTO t (who) VALUES (?)", (i,)))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with db.read() as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 400
    assert db.stats["jobs"] == 400
    assert db.stats["commits"] < 400, "40 concurrent writers should share fsyncs"
    db.close()


def test_a_failing_job_rolls_back_alone(tmp_path):
    db_path = tmp_path / "t.db"
    apply_migrations(db_path, [("t_0001", "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE);")])
    db = Database(db_path)
    db.write(lambda c: c.execute("INSERT INTO t (v) VALUES ('a')"))
    with pytest.raises(sqlite3.IntegrityError):
        db.write(lambda c: (c.execute("INSERT INTO t (v) VALUES ('b')"), c.execute("INSERT INTO t (v) VALUES ('a')")))
    db.write(lambda c: c.execute("INSERT INTO t (v) VALUES ('c')"))
    with db.read() as conn:
        assert [r[0] for r in conn.execute("SELECT v FROM t ORDER BY v")] == ["a", "c"]
    db.close()


def test_readers_are_read_only(tmp_path):
    db_path = tmp_path / "t.db"
    apply_migrations(db_path, [("t_0001", "CREATE TABLE t (id INTEGER PRIMARY KEY);")])
    db = Database(db_path)
    with pytest.raises(sqlite3.OperationalError):
        with db.read() as conn:
            conn.execute("INSERT INTO t DEFAULT VALUES")
    db.close()


def test_writes_wait_for_the_writer_of_another_process(tmp_path):
    """Every process's writer takes the same file lock before writing (fair queueing across gunicorn
    workers and the relay); while another process holds it, nothing commits."""
    import fcntl
    import os
    from concurrent.futures import ThreadPoolExecutor

    db_path = tmp_path / "t.db"
    apply_migrations(db_path, [("t_0001", "CREATE TABLE t (id INTEGER PRIMARY KEY);")])
    db = Database(db_path)
    fd = os.open(str(db_path) + ".writer-lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # stands in for another process mid-commit
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(db.write, lambda c: c.execute("INSERT INTO t DEFAULT VALUES"))
        done_early = pending.done()
        try:
            pending.result(timeout=0.3)
            committed_while_locked = True
        except TimeoutError:
            committed_while_locked = False
        os.close(fd)  # the other process finishes
        pending.result(timeout=10)
    assert not done_early and not committed_while_locked
    with db.read() as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 1
    db.close()


def test_submit_returns_before_the_commit_and_resolves_when_durable(tmp_path):
    """``submit`` queues a job without waiting; its future holds the result once committed, and a
    failing job's future holds its error."""
    db = Database(tmp_path / "s.db")
    try:
        db.write(lambda c: c.execute("CREATE TABLE t (x INTEGER)"))
        gate = threading.Event()
        blocker = db.submit(lambda c: gate.wait(10))  # holds the writer
        queued = db.submit(lambda c: c.execute("INSERT INTO t VALUES (1)").lastrowid)
        assert not queued.done()  # the caller got its future while the writer was still busy
        bad = db.submit(lambda c: c.execute("INSERT INTO nowhere VALUES (1)"))
        gate.set()
        assert blocker.result(10) is True and queued.result(10) == 1
        assert bad.exception(10) is not None
        with db.read() as conn:
            assert [r[0] for r in conn.execute("SELECT x FROM t")] == [1]
    finally:
        db.close()


def test_a_returned_cursor_is_closed_in_the_writer_but_keeps_its_counts(tmp_path):
    db = Database(tmp_path / "t.db")
    db.write(lambda c: c.execute("CREATE TABLE t (k TEXT)"))
    many = db.write(lambda c: c.executemany("INSERT INTO t VALUES (?)", [("a",), ("b",)]))
    one = db.write(lambda c: c.execute("INSERT INTO t VALUES (?)", ("c",)))
    assert many.rowcount == 2 and one.lastrowid == 3
    with pytest.raises(sqlite3.ProgrammingError, match="closed cursor"):
        one.fetchone()
    db.close()


def test_writers_that_drop_returned_cursors_do_not_break_the_next_job(tmp_path):
    """Dropping a cursor resets its statement; done in the caller's thread, that raced the writer's next
    job with the same SQL, which failed with "bad parameter or other API misuse" (a PIN sign-in now and
    then, under a class signing in at once)."""
    db = Database(tmp_path / "t.db")
    db.write(lambda c: c.execute("CREATE TABLE t (k TEXT)"))
    errors = []

    def writer():
        for _ in range(150):
            try:
                db.write(lambda c: c.executemany("DELETE FROM t WHERE k = ?", [("a",), ("b",)]))
                db.write(lambda c: c.executemany("INSERT INTO t VALUES (?)", [("a",), ("b",)]))
            except sqlite3.Error as exc:
                errors.append(repr(exc))

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    db.close()
    assert errors == []
