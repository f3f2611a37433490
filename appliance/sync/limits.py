"""Bounded resources for the outbox: a byte cap and a disk reserve.

The rules, in order of what matters most:

1. A learner event (priority 0) is never dropped once committed. When the disk reserve is breached a new
   one is *refused*: ``Unavailable`` is raised inside the caller's transaction, so the fact it describes
   is refused with it and the person sees an error instead of losing work silently.
2. Telemetry (priority > 0) is refused first: above the byte cap (or with the disk low) ``admit`` says no
   and ``enqueue`` returns ``None``; when learner events push the outbox over the cap, the oldest
   telemetry is evicted to make room.
3. The admin page shows an alarm while the cap or the reserve is breached.

The cap lives in the database (``sync_totals.cap_bytes``) rather than in a global, because the web
process enqueues and the sync process owns the config; ``configure`` copies the config there.
"""
from __future__ import annotations

import logging
import os
import sqlite3

from appliance.errors import Unavailable

log = logging.getLogger(__name__)

LEARNER = 0
WARN_FRACTION = 0.8
EVICT_BATCH = 500


def configure(conn: sqlite3.Connection, cap_bytes: int, min_free_percent: float) -> None:
    conn.execute("UPDATE sync_totals SET cap_bytes = ?, min_free_percent = ? WHERE id = 1",
                 (int(cap_bytes), float(min_free_percent)))


def disk_free_percent(conn: sqlite3.Connection) -> float:
    """Free space (for unprivileged users) on the filesystem holding the database, in percent."""
    path = conn.execute("PRAGMA database_list").fetchone()[2]
    st = os.statvfs(os.path.dirname(path) or ".")
    if not st.f_blocks:
        return 100.0
    return 100.0 * st.f_bavail / st.f_blocks


def _totals(conn: sqlite3.Connection) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM sync_totals WHERE id = 1").fetchone()
    if row is None:
        raise Unavailable("the outbox totals are missing; run the database migrations")
    return row


def admit(conn: sqlite3.Connection, priority: int, size: int) -> bool:
    """May an event of ``size`` bytes join the outbox? Evicts telemetry for learner events if needed."""
    t = _totals(conn)
    free = disk_free_percent(conn)
    if free < t["min_free_percent"]:
        if priority == LEARNER:
            raise Unavailable(f"the disk is almost full ({free:.1f}% free, {t['min_free_percent']:.1f}% must stay free); "
                              "nothing was saved - ask the administrator to free space or restore the uplink")
        _refuse(conn)
        return False
    cap = t["cap_bytes"]
    if priority != LEARNER:
        if t["bytes"] + size > cap:
            _refuse(conn)
            return False
        return True
    over = t["bytes"] + size - cap
    if over > 0 and t["bytes"] > t["learner_bytes"]:
        _evict_telemetry(conn, over)
    return True


def admit_blob(conn: sqlite3.Connection, size: int) -> None:
    """Blobs (federated updates) are refused like telemetry, but loudly: the caller is a job that retries."""
    t = _totals(conn)
    free = disk_free_percent(conn)
    if free < t["min_free_percent"] or t["bytes"] + t["blob_bytes"] + size > t["cap_bytes"]:
        raise Unavailable(f"the outbox is full ({t['bytes'] + t['blob_bytes']} of {t['cap_bytes']} bytes, "
                          f"{free:.1f}% disk free); the update was not queued - try again once the uplink drains")


def _refuse(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE sync_totals SET refused = refused + 1 WHERE id = 1")
    log.debug("outbox full: telemetry event refused")


def _evict_telemetry(conn: sqlite3.Connection, need: int) -> None:
    """Delete the oldest telemetry rows until ``need`` bytes are free (or no telemetry is left)."""
    freed = evicted = 0
    while freed < need:
        rows = conn.execute("SELECT seq, size FROM outbox WHERE priority > 0 ORDER BY priority DESC, seq LIMIT ?",
                            (EVICT_BATCH,)).fetchall()
        if not rows:
            break
        take = []
        for r in rows:
            take.append(r["seq"])
            freed += r["size"]
            if freed >= need:
                break
        conn.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in take])
        evicted += len(take)
    if evicted:
        conn.execute("UPDATE sync_totals SET evicted = evicted + ? WHERE id = 1", (evicted,))
        log.warning("outbox over its cap: evicted %d telemetry events to keep learner events", evicted)


def status(conn: sqlite3.Connection) -> dict:
    """Fill level and alarm state for the admin page."""
    t = _totals(conn)
    free = disk_free_percent(conn)
    cap = t["cap_bytes"]
    state, message = "ok", ""
    if free < t["min_free_percent"]:
        state, message = "alarm", f"disk almost full ({free:.1f}% free): new events are refused"
    elif t["bytes"] > cap:
        state, message = "alarm", "outbox over its cap: telemetry is refused, learner events are kept"
    elif t["bytes"] > WARN_FRACTION * cap:
        state, message = "warning", f"outbox {100 * t['bytes'] / cap:.0f}% full"
    return {
        "state": state,
        "message": message,
        "events": t["events"],
        "bytes": t["bytes"],
        "learner_bytes": t["learner_bytes"],
        "blob_bytes": t["blob_bytes"],
        "cap_bytes": cap,
        "refused_telemetry": t["refused"],
        "evicted_telemetry": t["evicted"],
        "disk_free_percent": round(free, 2),
    }
