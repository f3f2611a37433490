"""The sync part: starts and stops the relay and says how it is doing.

``SyncService`` follows the runtime's ``Part`` contract (``appliance.runtime``). Its ``status()`` dict is
what the admin page shows: uplink state and the reason when it is down (wrong password, untrusted
certificate...), backlog size and age, last successful sync, bytes sent, the outbox alarm.

On a box the relay is its own process (``classroom-edge sync``), so it also writes that dict to a small
JSON file every few seconds; the web process reads it with ``read_status`` and adds the live backlog
from the database.
"""
from __future__ import annotations

import calendar
import json
import logging
import os
import time
from pathlib import Path

from appliance.services import PartStatus
from appliance.sync import limits, outbox
from appliance.sync.downlink import DownlinkHandler
from appliance.sync.relay import Relay

log = logging.getLogger(__name__)

STATUS_EVERY_S = 2.0
STALE_AFTER_S = 30.0
HEARTBEAT_LIMIT_S = 30.0


def status_path(cfg) -> Path:
    return Path(cfg.sync.status_file) if cfg.sync.status_file else Path(cfg.storage.data_dir) / "sync" / "status.json"


def _age_s(ts: str | None) -> float | None:
    if not ts:
        return None
    try:
        t = calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None
    return max(0.0, round(time.time() - t, 1))


def _iso(t: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)) if t else None


def backlog_status(db) -> dict:
    with db.read() as conn:
        b = outbox.backlog(conn)
        lim = limits.status(conn)
        done = outbox.delivered(conn)
    b["age_s"] = _age_s(b["oldest"])
    return {"backlog": b, "limits": lim, "delivered": done}


class SyncService:
    name = "sync"
    essential = True

    def __init__(self, cfg, db, handler: DownlinkHandler | None = None):
        self.cfg = cfg
        self.db = db
        self.relay = Relay(cfg, db, handler)
        self.relay.tick_hook = self._maybe_write_status
        self._status_file = status_path(cfg)
        self._next_write = 0.0
        self._written_state = ""

    def start(self) -> None:
        self.relay.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.relay.stop(timeout)
        self._write_status()

    def status_dict(self) -> dict:
        st = self.relay.stats()
        if st["failed"] or (self.relay.state != "stopped" and not self.relay.alive):
            st["state"] = "failed"
        elif self.relay.alive and time.monotonic() - self.relay.heartbeat > HEARTBEAT_LIMIT_S:
            st["state"], st["reason"] = "failed", "the relay thread is stuck"
        st["last_success"] = _iso(st["last_success"])
        st["connected_since"] = _iso(st["connected_since"])
        st.update(backlog_status(self.db))
        # This run's last ack, or the last one stored before a restart (the relay's counters start at 0).
        st["last_success"] = st["last_success"] or st["delivered"]["last_at"]
        st["updated_at"] = time.time()
        return st

    def status(self) -> PartStatus:
        return part_status(self.status_dict())

    def _maybe_write_status(self) -> None:
        # Every few seconds, and at once when the uplink state changes (the admin page should not lag it).
        if time.monotonic() >= self._next_write or self.relay.state != self._written_state:
            self._next_write = time.monotonic() + STATUS_EVERY_S
            self._written_state = self.relay.state
            self._write_status()

    def _write_status(self) -> None:
        try:
            doc = self.status_dict()
            self._status_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._status_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
            os.replace(tmp, self._status_file)
        except (OSError, ValueError) as exc:
            log.warning("cannot write the sync status file %s: %s", self._status_file, exc)


def part_status(st: dict) -> PartStatus:
    """The health-page line for a status dict."""
    state = st.get("state")
    lim = st.get("limits", {})
    if state == "failed":
        health, detail = "failed", st.get("failed") or st.get("reason") or "relay not running"
    elif state == "online" and st.get("publish_refused"):
        health, detail = "degraded", f"online to {st.get('broker')}, but {st['publish_refused']}"
    elif state == "online":
        health, detail = "ok", f"online to {st.get('broker')}"
    elif state == "disabled":
        health, detail = "disabled", st.get("reason", "")
    else:
        health, detail = "degraded", f"uplink {state}: {st.get('reason') or 'connecting'}"
    if lim.get("state") == "alarm":
        health = "failed" if health == "failed" else "degraded"
        detail += f"; outbox alarm: {lim.get('message')}"
    return PartStatus("sync", health, detail, extra={"sync": st})


def read_status(cfg, db) -> dict:
    """For the web process: the relay's last status file plus the live backlog from the database."""
    st: dict = {"state": "disabled", "reason": "no uplink configured (sync.broker_url)"}
    if cfg.sync.broker_url:
        try:
            st = json.loads(status_path(cfg).read_text())
            age = time.time() - float(st.get("updated_at", 0))
            if age > STALE_AFTER_S:
                st["state"], st["reason"] = "failed", f"the sync service is not running (status {age:.0f} s old)"
        except (OSError, ValueError):
            st = {"state": "failed", "reason": "the sync service is not running (no status yet)"}
    st.update(backlog_status(db))
    return st


def report_status_from_file(services) -> None:
    """For a process that does not run the relay (the web service): /api/v1/health and the admin page
    show the relay's last status plus the live backlog."""
    services.report_status("sync", lambda: part_status(read_status(services.cfg, services.db)))


def make_part(services):
    """The runtime's factory: a SyncService, or None (reported as disabled) without a broker."""
    cfg = services.cfg
    if not cfg.sync.broker_url:
        services.report_status("sync", lambda: PartStatus("sync", "disabled", "no uplink configured (sync.broker_url)"))
        return None
    # The federated handler pins the served learner version before importing a new global one, so
    # a new version is served only after it passed the local holdout check.
    from appliance.federated.downlink import FederatedInstallHandler

    return SyncService(cfg, services.db, FederatedInstallHandler(services))
