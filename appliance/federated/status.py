"""What the admin page and ``classroom-edge train status`` show about federated learning on this box."""
from __future__ import annotations

import json
import logging

from appliance.federated import privacy
from appliance.services import PartStatus

log = logging.getLogger(__name__)


def federated_status(services) -> dict:
    from appliance.federated.activation import serving_repository
    from appliance.federated.training import box_id

    cfg = services.cfg
    f = cfg.federated
    box = box_id(cfg)
    with services.db.read() as conn:
        cands = [dict(r) for r in conn.execute(
            "SELECT version, repo_version, status, reason, holdout_rows, holdout_auc, current_auc, current_version, "
            "received_at, decided_at FROM candidates WHERE model = ? ORDER BY version DESC LIMIT 20", (f.model,))]
        sent = [dict(r) for r in conn.execute(
            "SELECT base_version, update_id, samples, size_bytes, norm, clipped, noise_multiplier, created_at "
            "FROM fl_updates WHERE model = ? AND box = ? AND direction = 'sent' ORDER BY created_at DESC LIMIT 10",
            (f.model, box))]
        rhos = [float("inf") if r[0] is None else float(r[0]) for r in conn.execute(
            "SELECT rho FROM fl_updates WHERE model = ? AND box = ? AND direction = 'sent'", (f.model, box))]
        waiting = [json.loads(r[0]).get("update_id") for r in conn.execute(
            "SELECT meta FROM sync_blobs WHERE type = 'fl_update'")]
    for u in sent:  # the relay deletes an update from the outbox only when the hub has acknowledged it
        u["delivered"] = u["update_id"] not in waiting
    try:
        serving = serving_repository(cfg).active_version(f.model)
    except Exception as exc:  # noqa: BLE001 - a broken repository is shown, not fatal to the status page
        serving = f"unreadable: {exc}"
    return {"enabled": f.enabled, "model": f.model, "box": box, "serving_version": serving,
            "active_global": next((c["version"] for c in cands if c["status"] == "active"), None),
            "candidates": cands, "updates_sent": sent, "updates_waiting_for_uplink": len(waiting),
            "privacy": privacy.budget_summary(rhos, f.dp_delta),
            "settings": {"data_window": f.data_window, "clip_norm": f.clip_norm,
                         "noise_multiplier": f.noise_multiplier, "activation_margin": f.activation_margin}}


def part_status(services) -> PartStatus:
    """One line for /api/v1/health, the whole dict under ``federated`` for the admin page."""
    if not services.cfg.federated.enabled:
        return PartStatus("federated", "disabled", "federated.enabled is off")
    st = federated_status(services)
    held = [c for c in st["candidates"] if c["status"] == "candidate"]
    detail = (f"serving {st['serving_version'] or 'nothing'}; global version {st['active_global'] or 'none'} "
              f"active; {st['privacy']['text']}")
    if held:
        detail += f"; version {held[0]['version']} kept as a candidate: {held[0]['reason']}"
    return PartStatus("federated", "ok", detail, extra={"federated": st})


def attach(services) -> None:
    """Per-process wiring (``bootstrap.attach_components``): the federated line on /api/v1/health."""
    from appliance.federated.on_demand import TrainingOnDemand

    services.report_status("federated", lambda: part_status(services))
    services.provide("training", TrainingOnDemand(services))
