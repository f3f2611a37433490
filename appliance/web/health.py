"""Liveness and the status of every part (the admin page and provisioning read it)."""
from __future__ import annotations

import ipaddress
import time

from flask import Blueprint, current_app, jsonify, request

from appliance import __version__
from appliance.people.accounts import STAFF_ROLES
from appliance.web.security import current_user, requires

bp = Blueprint("health", __name__)


def may_see_details() -> bool:
    """Each part's details name file paths, the hub's address, the device id and backlog sizes: the
    box itself (provisioning, the mDNS advertiser, the watchdog, monitoring on the box) and signed-in
    staff or an API token read them; anyone else on the classroom network (a student's laptop) sees
    only whether each part works. The box serves without a reverse proxy, so a loopback peer is the
    box itself."""
    try:
        if ipaddress.ip_address(request.remote_addr or "").is_loopback:
            return True
    except ValueError:
        pass
    user = current_user()
    return user is not None and user["role"] in STAFF_ROLES


@bp.get("/api/v1/health")
@requires("anonymous")
def health():
    """Whether the box serves, and how each of its parts is. Each part's details (`detail` and the
    rest) only for the box itself (a loopback client), signed-in staff and API tokens; other clients
    get each part's name and state."""
    services = current_app.extensions["ce"]
    parts = [s.to_json() for s in services.statuses()]
    with services.db.read() as conn:
        conn.execute("SELECT 1").fetchone()
    overall = "ok" if all(p["state"] in ("ok", "disabled") for p in parts) else "degraded"
    if not may_see_details():
        parts = [{"name": p["name"], "state": p["state"]} for p in parts]
    return jsonify({
        "status": overall,
        "version": __version__,
        "uptime_s": round(time.time() - services.started_at, 1),
        "parts": parts,
    })
