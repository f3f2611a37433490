"""``classroom-edge train``: one local training run and the update it sends.

Steps: find the newest verified global version -> load this box's answers -> decide whether there is
enough new data -> fit from the global parameters (``local_train``) -> delta, clip, noise (``update``)
-> int8 + zstd -> in ONE transaction: the update into the outbox (``sync.outbox.enqueue_blob``, sent on
``up/fl``) and its record into ``fl_updates`` (with the privacy cost). Either both are there or neither.

The base is the newest *verified* global version, even one the activation policy kept as a candidate:
serving and training are separate decisions. Students keep the model that does best on their own
class; the federation moves forward from its newest version, and updates based on older ones would
only be down-weighted or refused as stale by the hub.
"""
from __future__ import annotations

import hashlib
import logging
import math
import secrets
import time
from dataclasses import asdict, dataclass

import numpy as np

from appliance.federated import privacy
from appliance.federated.data import holdout_students, load_interactions
from appliance.federated.local_train import Rows, fit_local
from appliance.federated.models import newest_verified, open_repository
from appliance.federated.update import (
    UpdateKey,
    encode,
    float32_size,
    make_update,
    new_update_id,
)
from appliance.store.database import now_iso

log = logging.getLogger(__name__)

UPDATE_EVENT_TYPE = "fl_update"


@dataclass
class TrainResult:
    status: str               # 'sent', 'disabled', 'no_global', 'not_enough_data', 'too_soon', 'budget'
    message: str
    base_version: int | None = None
    update_id: str | None = None
    samples: int = 0
    size_bytes: int = 0
    float32_bytes: int = 0
    norm: float = 0.0
    clipped: bool = False
    epsilon: float | None = None
    loss_before: float | None = None
    loss_after: float | None = None

    def to_json(self) -> dict:
        return asdict(self)


def box_id(cfg) -> str:
    """How this box names itself in update keys: ``<site>/<device>``, as in its MQTT topics."""
    from appliance.sync.relay import device_id

    return f"{cfg.sync.site}/{device_id(cfg.sync.device)}"


def _last_sent(conn, model: str, box: str):
    return conn.execute("SELECT base_version, data_until, created_at FROM fl_updates WHERE model = ? AND box = ? "
                        "AND direction = 'sent' ORDER BY created_at DESC LIMIT 1", (model, box)).fetchone()


def _spent_rhos(conn, model: str, box: str) -> list[float]:
    rows = conn.execute("SELECT rho FROM fl_updates WHERE model = ? AND box = ? AND direction = 'sent'",
                        (model, box)).fetchall()
    return [math.inf if r[0] is None else float(r[0]) for r in rows]


def run_training(services, *, now: bool = False, rng: np.random.Generator | None = None) -> TrainResult:
    """One training run. ``now`` skips the once-a-night guard (a teacher pressed the button)."""
    cfg = services.cfg
    f = cfg.federated
    if not f.enabled:
        return TrainResult("disabled", "federated learning is switched off (federated.enabled)")
    rng = rng or np.random.default_rng(secrets.randbits(128))
    box = box_id(cfg)
    base = newest_verified(open_repository(cfg), f.model)
    if base is None:
        return TrainResult("no_global", "no verified global model from the hub yet: nothing to train from")
    with services.db.read() as conn:
        interactions = load_interactions(conn)
        last = _last_sent(conn, f.model, box)
        rhos = _spent_rhos(conn, f.model, box)
    if last is not None and not now and _age_s(last["created_at"]) < f.min_interval_hours * 3600:
        return TrainResult("too_soon", f"an update was made less than {f.min_interval_hours:g} hours ago "
                           "(federated.min_interval_hours; use --now to train anyway)", base.version)
    held_out = holdout_students(interactions, f.holdout_fraction)
    watermark = last["data_until"] if last is not None else None
    rows = Rows.build(interactions, base.spec)
    fresh = rows.mask(since=watermark, exclude=held_out)
    if fresh.sum() < f.min_samples:
        return TrainResult("not_enough_data", f"{int(fresh.sum())} new answers since the last update; at least "
                           f"{f.min_samples} are needed (federated.min_samples)", base.version)
    rho_new = privacy.rho_per_update(f.noise_multiplier)
    eps_after = privacy.epsilon_from_rho(sum(rhos) + rho_new, f.dp_delta)
    if f.epsilon_budget > 0 and eps_after > f.epsilon_budget:
        return TrainResult("budget", f"sending would spend epsilon {eps_after:.2f}, over the budget of "
                           f"{f.epsilon_budget:g} (federated.epsilon_budget)", base.version, epsilon=eps_after)
    use = fresh if f.data_window == "new" else rows.mask(exclude=held_out)
    fit = fit_local(rows.X[use], rows.y[use], base.params, l2=f.local_l2, mu=f.proximal_mu, max_iter=f.local_max_iter)
    key = UpdateKey(box, base.version, new_update_id())
    upd = make_update(key, f.model, base.params, fit.params, fit.rows, f.clip_norm, f.noise_multiplier, rng)
    blob = encode(upd, f.quant_block, rng)
    _record(services, upd, blob, rho_new, float(rows.seqs[fresh].max()), fit)
    eps = eps_after if math.isfinite(eps_after) else None
    log.info("update %s: %d answers, %d bytes (%.0f%% of float32), norm %.3f%s", key, fit.rows, len(blob),
             100 * len(blob) / float32_size(upd.delta.size), upd.norm, " (clipped)" if upd.clipped else "")
    return TrainResult("sent", f"update based on global version {base.version} queued for the hub", base.version,
                       key.update_id, fit.rows, len(blob), float32_size(upd.delta.size), upd.norm, upd.clipped,
                       eps, fit.loss_before, fit.loss_after)


def _record(services, upd, blob: bytes, rho: float, data_until, fit) -> None:
    from appliance.sync import outbox

    key = upd.key

    def job(conn):
        outbox.enqueue_blob(conn, UPDATE_EVENT_TYPE, blob, {"model": upd.model, "base_version": key.base_version,
                                                            "update_id": key.update_id, "samples": upd.samples})
        conn.execute(
            "INSERT INTO fl_updates (box, base_version, update_id, model, direction, status, samples, norm, clipped, "
            "noise_multiplier, rho, size_bytes, payload_sha256, data_until, loss_before, loss_after, created_at) "
            "VALUES (?, ?, ?, ?, 'sent', 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key.box, key.base_version, key.update_id, upd.model, upd.samples, upd.norm, int(upd.clipped),
             upd.noise_multiplier, rho if math.isfinite(rho) else None, len(blob),
             hashlib.sha256(blob).hexdigest(), data_until, fit.loss_before, fit.loss_after, now_iso()))

    services.db.write(job)


def _age_s(iso: str) -> float:
    from appliance.federated.data import parse_ts

    return time.time() - parse_ts(iso)
