"""The hub's storage: SQLite (WAL, synchronous=FULL) by default, PostgreSQL when a URL is configured.

Idempotence is the database's job: ``hub_events.event_id`` is the primary key and every insert is
``ON CONFLICT (event_id) DO NOTHING``, so a batch replayed any number of times is stored once. A call to
``store_batches`` is one transaction; the caller acknowledges only after it returns.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import ConfigError, Unavailable
from appliance.hub.schema import MIGRATIONS
from appliance.store.database import connect, now_iso
from appliance.store.migrations import _split_sql, apply_migrations

log = logging.getLogger(__name__)
dumps = json.JSONEncoder(separators=(",", ":")).encode

INSERT_EVENT = ("INSERT INTO hub_events (event_id, site, device, type, schema, ts, priority, payload, batch_id, "
                "received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING")
UPSERT_BATCH = ("INSERT INTO hub_batches (site, device, batch_id, events, new_events, received_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (site, device, batch_id) "
                "DO UPDATE SET deliveries = hub_batches.deliveries + 1")


@dataclass
class BatchIn:
    site: str
    device: str
    batch_id: str
    events: list[dict]


class HubStore:
    def __init__(self, cfg):
        self.url = cfg.hub.database_url
        self.path = Path(cfg.storage.data_dir) / cfg.hub.database
        self.kind = "postgresql" if self.url.startswith(("postgres://", "postgresql://")) else "sqlite"
        if self.url and self.kind != "postgresql":
            raise ConfigError(f"hub.database_url: expected postgresql://... (got {self.url.split(':')[0]}://...)")
        self._conn = None

    # -- connection -----------------------------------------------------------------------------
    def open(self) -> HubStore:
        if self.kind == "sqlite":
            self.path.parent.mkdir(parents=True, exist_ok=True)
            apply_migrations(self.path, MIGRATIONS)
            self._conn = connect(self.path)
        else:
            try:
                import psycopg  # optional: pip install 'classroom-edge[hub]'
            except ImportError:
                raise ConfigError("hub.database_url is PostgreSQL but psycopg is not installed "
                                  "(pip install 'classroom-edge[hub]')") from None
            try:
                self._conn = psycopg.connect(self.url)
            except psycopg.Error as exc:
                raise Unavailable(f"cannot connect to the hub database: {exc}") from None
            self._migrate_pg()
        return self

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.kind == "postgresql" else sql

    def _begin(self):
        if self.kind == "sqlite":
            self._conn.execute("BEGIN IMMEDIATE")
        return self._conn.cursor()

    def _commit(self) -> None:
        if self.kind == "sqlite":
            self._conn.execute("COMMIT")
        else:
            self._conn.commit()

    def _rollback(self) -> None:
        try:
            if self.kind == "sqlite":
                self._conn.execute("ROLLBACK")
            else:
                self._conn.rollback()
        except Exception:
            log.debug("rollback failed", exc_info=True)

    def _migrate_pg(self) -> None:
        cur = self._conn.cursor()
        cur.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        self._conn.commit()
        for name, sql in MIGRATIONS:
            cur.execute("LOCK TABLE _migrations IN EXCLUSIVE MODE")  # two workers starting together
            cur.execute("SELECT 1 FROM _migrations WHERE name = %s", (name,))
            if cur.fetchone() is None:
                for statement in _split_sql(sql):
                    cur.execute(statement)
                cur.execute("INSERT INTO _migrations (name, applied_at) VALUES (%s, %s)", (name, now_iso()))
                log.info("applied hub migration %s", name)
            self._conn.commit()

    # -- writing ----------------------------------------------------------------------------------
    def store_batches(self, batches: list[BatchIn]) -> list[int]:
        """Store several batches in one transaction; returns the number of new events of each."""
        received = now_iso()
        news: list[int] = []
        cur = self._begin()
        try:
            for b in batches:
                # json.loads kept the box's (sorted) key order, so a plain compact dump reproduces its text.
                rows = [(e["event_id"], b.site, b.device, e["type"], e["schema"], e["ts"], e["priority"],
                         dumps(e["payload"]), b.batch_id, received) for e in b.events]
                cur.executemany(self._sql(INSERT_EVENT), rows)
                new = max(cur.rowcount, 0)  # both drivers sum rowcount over executemany; conflicts count 0
                cur.execute(self._sql(UPSERT_BATCH), (b.site, b.device, b.batch_id, len(rows), new, received))
                news.append(new)
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return news

    def store_fl_chunk(self, site: str, device: str, props: dict, data: bytes, max_bytes: int) -> bool:
        """Keep one chunk of a federated update; True once the whole update is stored and verified."""
        event_id, sha, type_ = props["event_id"], props["sha256"], props["type"]
        idx, chunks, size = int(props["idx"]), int(props["chunks"]), int(props["size"])
        if not (0 <= idx < chunks and 0 < size <= max_bytes and chunks == -(-size // (256 * 1024))):
            raise ValueError(f"update {event_id}: bad chunk numbers {idx}/{chunks} for {size} bytes")
        cur = self._begin()
        try:
            cur.execute(self._sql("SELECT 1 FROM hub_fl_updates WHERE event_id = ?"), (event_id,))
            if cur.fetchone() is not None:
                self._commit()
                return True  # a resend after completion: acknowledge again
            cur.execute(self._sql("INSERT INTO hub_fl_chunks (event_id, idx, data) VALUES (?, ?, ?) "
                                  "ON CONFLICT (event_id, idx) DO NOTHING"), (event_id, idx, data))
            cur.execute(self._sql("SELECT count(*) FROM hub_fl_chunks WHERE event_id = ?"), (event_id,))
            if cur.fetchone()[0] < chunks:
                self._commit()
                return False
            cur.execute(self._sql("SELECT data FROM hub_fl_chunks WHERE event_id = ? ORDER BY idx"), (event_id,))
            whole = b"".join(bytes(r[0]) for r in cur.fetchall())
            cur.execute(self._sql("DELETE FROM hub_fl_chunks WHERE event_id = ?"), (event_id,))
            if len(whole) != size or hashlib.sha256(whole).hexdigest() != sha:
                self._commit()  # drop the bad chunks; the box sends them all again
                raise ValueError(f"update {event_id}: assembled payload does not match its sha256")
            cur.execute(self._sql("INSERT INTO hub_fl_updates (event_id, site, device, type, meta, size, sha256, "
                                  "data, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                        (event_id, site, device, type_, props.get("meta", "{}"), size, sha, whole, now_iso()))
            self._commit()
            return True
        except BaseException:
            self._rollback()
            raise

    # -- reading (tests, bench, the aggregator) ---------------------------------------------------
    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        cur = self._conn.cursor()
        cur.execute(self._sql(sql), params)
        rows = [tuple(r) for r in cur.fetchall()]
        if self.kind == "postgresql":
            self._conn.commit()
        return rows

    def event_count(self) -> int:
        return self.query("SELECT count(*) FROM hub_events")[0][0]

    def wait_for_events(self, n: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        count = self.event_count()
        while count < n and time.monotonic() < deadline:
            time.sleep(0.1)
            count = self.event_count()
        return count
