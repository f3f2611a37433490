"""Helpers shared by the sync tests (events in, hub contents out)."""
from __future__ import annotations

from mqtt_broker import wait_until  # noqa: F401 - re-exported


def outbox_count(db) -> int:
    with db.read() as conn:
        return conn.execute("SELECT count(*) FROM outbox").fetchone()[0]


def hub_event_ids(cfg) -> list[str]:
    from appliance.hub.store import HubStore

    store = HubStore(cfg).open()
    try:
        return [r[0] for r in store.query("SELECT event_id FROM hub_events")]
    finally:
        store.close()


def fill(db, n: int, type_: str = "attempt", priority: int = 0) -> list[str]:
    """Enqueue ``n`` events (with a fact row each, as the LMS does) and return their ids."""
    from appliance.sync import outbox

    def job(conn):
        ids = []
        for i in range(n):
            ids.append(outbox.enqueue(conn, type_, {"i": i, "student": f"s{i % 30}", "correct": i % 3 == 0,
                                                     "exercise": f"ex-{i % 80:03d}"}, priority=priority))
        return ids

    return db.write(job)
