"""The advertiser's status as a small JSON file, so the web service (another process) can show it.

The advertiser runs as its own systemd service; the admin page and ``/api/v1/health`` live in the web
service. A file in the data directory is the simplest channel both sandboxes already share. It is
rewritten when something changes and at least every ``HEARTBEAT_S`` so a reader can tell a dead
advertiser from a quiet one.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from appliance.services import PartStatus

log = logging.getLogger(__name__)

HEARTBEAT_S = 60.0
STALE_AFTER_S = 3 * HEARTBEAT_S

# Our states -> the runtime's PartStatus states (ok, disabled, starting, degraded, failed).
PART_STATES = {
    "advertising": "ok",
    "disabled": "disabled",
    "starting": "starting",
    "waiting-for-web": "starting",
    "probing": "starting",
    "waiting-for-network": "degraded",
    "stopped": "disabled",
    "failed": "failed",
    "not-running": "failed",
    "stale": "failed",
    "unknown": "degraded",
}


def status_path(cfg) -> Path:
    """``mdns.status_file``, or ``<storage.data_dir>/mdns-status.json``."""
    if cfg.mdns.status_file:
        return Path(cfg.mdns.status_file)
    return Path(cfg.storage.data_dir) / "mdns-status.json"


class StatusWriter:
    """Writes the status atomically (rename), only when it changed or the heartbeat is due."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._last: dict | None = None
        self._written_at = 0.0

    def write(self, status: dict, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and status == self._last and now - self._written_at < HEARTBEAT_S:
            return
        body = dict(status, updated_at=time.time(), pid=os.getpid())
        tmp = self._path.with_name(self._path.name + ".tmp")
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(body, indent=1, sort_keys=True), encoding="utf-8")
            os.replace(tmp, self._path)
        except OSError as exc:
            # The admin page loses a detail, announcing goes on: not a reason to stop the service.
            log.warning("cannot write mDNS status to %s: %s", self._path, exc)
            return
        self._last, self._written_at = status, now


def read_status(cfg, now: float | None = None) -> dict:
    """What the admin page and the health endpoint show about mDNS (never raises)."""
    if not cfg.mdns.enabled:
        return {"enabled": False, "state": "disabled"}
    path = status_path(cfg)
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"enabled": True, "state": "not-running", "detail": "the mDNS service has not reported yet"}
    except (OSError, ValueError) as exc:
        return {"enabled": True, "state": "unknown", "detail": f"unreadable status file {path}: {exc}"}
    age = (time.time() if now is None else now) - float(body.get("updated_at", 0))
    if age > STALE_AFTER_S and body.get("state") != "stopped":
        body["detail"] = f"no report from the mDNS service for {int(age)} s (last state: {body.get('state')})"
        body["state"] = "stale"
    return body


def to_part_status(info: dict) -> PartStatus:
    """A status dict as the runtime's ``PartStatus`` (``/api/v1/health``); the finer state is ``phase``."""
    extra = {k: v for k, v in info.items() if k not in ("name", "state", "detail")}
    extra["phase"] = info.get("state", "unknown")
    return PartStatus("mdns", PART_STATES.get(extra["phase"], "degraded"), info.get("detail", ""), extra)


def part_status(cfg) -> PartStatus:
    """For the web process, where the advertiser runs as another service: its last report as a part
    status, e.g. ``services.report_status("mdns", lambda: part_status(cfg))``."""
    return to_part_status(read_status(cfg))
