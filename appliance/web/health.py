"""Liveness and the status of every part (the admin page and provisioning read it)."""
from __future__ import annotations

import time

from flask import Blueprint, current_app, jsonify

from appliance import __version__
from appliance.web.security import requires

bp = Blueprint("health", __name__)


@bp.get("/api/v1/health")
@requires("anonymous")
def health():
    """Whether the box serves, and how each of its parts is (for monitoring and provisioning)."""
    services = current_app.extensions["ce"]
    parts = [s.to_json() for s in services.statuses()]
    with services.db.read() as conn:
        conn.execute("SELECT 1").fetchone()
    overall = "ok" if all(p["state"] in ("ok", "disabled") for p in parts) else "degraded"
    return jsonify({
        "status": overall,
        "version": __version__,
        "uptime_s": round(time.time() - services.started_at, 1),
        "parts": parts,
    })
