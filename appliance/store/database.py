"""SQLite access: many readers, one writer thread with group commit.

Why one writer: SQLite allows one writer at a time anyway; funnelling every write of the process through
one thread turns lock contention into a queue, and lets us commit many requests' writes with one fsync
(group commit). With ``synchronous=FULL`` in WAL mode a COMMIT returns only after the WAL is fsynced, and
``write()`` returns only after that COMMIT, so a request that answers 2xx after ``write()`` has its data
on disk even if the process is SIGKILLed a microsecond later.

Each job runs inside its own SAVEPOINT, so one failing job rolls back alone and the others in the same
group still commit.
"""
from __future__ import annotations

import fcntl
import logging
import os
import queue
import sqlite3
import threading
import time
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from appliance.errors import Unavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

_STOP = object()
_EXCLUSIVE = object()


def connect(path: str | os.PathLike, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection with the pragmas every part of the appliance relies on."""
    conn = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA foreign_keys=ON")
    if readonly:
        conn.execute("PRAGMA query_only=1")
    else:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise Unavailable(f"database {path} could not switch to WAL mode (got {mode})")
        conn.execute("PRAGMA synchronous=FULL")
    return conn


def _settled(result: T) -> T:
    """A job's result, safe to hand to another thread. A job that returns its cursor (``lambda c:
    c.execute(...)``) would let the caller's thread drop it, and dropping a cursor resets its statement,
    which the connection's statement cache hands to the writer's next job with the same SQL: that job
    then failed with "bad parameter or other API misuse" (8 threads, 4800 writes: 19 failed). Closed
    here, in the writer thread, the cursor keeps ``rowcount`` and ``lastrowid`` for the caller."""
    if isinstance(result, sqlite3.Cursor):
        result.close()
    return result


class Database:
    """The database of one process: thread-local readers and a single group-commit writer."""

    def __init__(self, path: str | os.PathLike, *, max_group: int = 256):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_group = max_group
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue()
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()
        self._pid = os.getpid()
        self.stats = {"commits": 0, "jobs": 0, "largest_group": 0}

    # -- reading -----------------------------------------------------------------------------
    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read-only connection for this thread. Readers never block the writer in WAL mode."""
        self._check_fork()
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, readonly=True)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        conn.execute("BEGIN")  # one consistent snapshot for the whole block
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    # -- writing -----------------------------------------------------------------------------
    def write(self, fn: Callable[[sqlite3.Connection], T], timeout: float = 60.0) -> T:
        """Run ``fn(conn)`` in the writer's transaction; return its result once it is durable."""
        if threading.current_thread() is self._writer:
            return fn(self._writer_conn)  # nested call from inside a job: same transaction
        return self.submit(fn).result(timeout=timeout)

    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> Future:
        """Queue ``fn(conn)`` for the writer and return at once; the future resolves when it is durable.
        For a caller that must not wait for the fsync (the sync relay's deletes of acknowledged rows)."""
        self._check_fork()
        self._ensure_writer()
        fut: Future = Future()
        self._queue.put((fn, fut))
        return fut

    def exclusive(self, fn: Callable[[sqlite3.Connection], T], timeout: float = 300.0) -> T:
        """Run ``fn(conn)`` in the writer thread with no transaction around it (restore, VACUUM)."""
        self._check_fork()
        self._ensure_writer()
        fut: Future = Future()
        self._queue.put((_EXCLUSIVE, (fn, fut)))
        return fut.result(timeout=timeout)

    def execute(self, sql: str, params: tuple | dict = ()) -> int:
        """Convenience: one write statement; returns lastrowid."""
        return self.write(lambda c: c.execute(sql, params).lastrowid)

    def _ensure_writer(self) -> None:
        if self._writer is not None and self._writer.is_alive():
            return
        with self._writer_lock:
            if self._writer is None or not self._writer.is_alive():
                self._writer_conn = connect(self.path)
                self._writer = threading.Thread(target=self._run_writer, name="db-writer", daemon=False)
                self._writer.start()

    def _run_writer(self) -> None:
        conn = self._writer_conn
        while True:
            first = self._queue.get()
            if first is _STOP:
                break
            if first[0] is _EXCLUSIVE:
                self._run_exclusive(conn, *first[1])
                continue
            group = [first]
            # Everything that queued up while the previous fsync ran joins this commit.
            stop_after = False
            while len(group) < self.max_group:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop_after = True
                    break
                if item[0] is _EXCLUSIVE:
                    # Keep order: commit what came before, then run the exclusive job alone.
                    self._commit_group(conn, group)
                    group = []
                    self._run_exclusive(conn, *item[1])
                    break
                group.append(item)
            if group:
                self._commit_group(conn, group)
            if stop_after:
                break
        conn.close()

    @staticmethod
    def _run_exclusive(conn: sqlite3.Connection, fn, fut: Future) -> None:
        try:
            fut.set_result(_settled(fn(conn)))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            fut.set_exception(exc)

    def _commit_group(self, conn: sqlite3.Connection, group: list) -> None:
        # Writers of other processes (gunicorn workers, the relay) queue on one file lock first.
        # SQLite's own busy handler polls with sleeps, so under load one process can win the lock
        # again and again while another waits for seconds; a blocking flock wakes waiters in turn.
        with self._process_lock():
            self._commit_group_locked(conn, group)

    @contextmanager
    def _process_lock(self):
        fd = os.open(str(self.path) + ".writer-lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _commit_group_locked(self, conn: sqlite3.Connection, group: list) -> None:
        results: list[tuple[Future, Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            for _, fut in group:
                fut.set_exception(Unavailable(f"database is not writable: {exc}"))
            return
        for i, (fn, fut) in enumerate(group):
            conn.execute(f"SAVEPOINT job{i}")
            try:
                res = _settled(fn(conn))
                conn.execute(f"RELEASE job{i}")
                results.append((fut, res, None))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, not swallowed
                conn.execute(f"ROLLBACK TO job{i}")
                conn.execute(f"RELEASE job{i}")
                results.append((fut, None, exc))
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            log.error("group commit of %d jobs failed: %s", len(group), exc)
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            for fut, _, _ in results:
                fut.set_exception(Unavailable(f"could not save: {exc}"))
            return
        self.stats["commits"] += 1
        self.stats["jobs"] += len(group)
        self.stats["largest_group"] = max(self.stats["largest_group"], len(group))
        for fut, res, exc in results:
            if exc is None:
                fut.set_result(res)
            else:
                fut.set_exception(exc)

    # -- lifecycle ---------------------------------------------------------------------------
    def _check_fork(self) -> None:
        # A forked worker must not share the parent's connections or writer thread.
        if os.getpid() != self._pid:
            self._pid = os.getpid()
            self._local = threading.local()
            self._readers = []
            self._queue = queue.Queue()
            self._writer = None

    def close(self, timeout: float = 10.0) -> None:
        if self._writer is not None and self._writer.is_alive():
            self._queue.put(_STOP)
            self._writer.join(timeout)
            if self._writer.is_alive():
                log.error("database writer did not stop within %.0f s", timeout)
        self._writer = None
        with self._readers_lock:
            for conn in self._readers:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._readers.clear()
        self._local = threading.local()

    def size_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal", "-shm"):
            p = Path(str(self.path) + suffix)
            if p.exists():
                total += p.stat().st_size
        return total


def now_iso() -> str:
    """UTC timestamp used in every table (ISO 8601 with milliseconds, sortable as text)."""
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"
