"""The box's policy for global models from the hub: verify, judge on local students, then activate or keep.

A new global version is (1) verified: the ONNX file's sha256 and the Ed25519 signature of its manifest
by a trusted hub key; a failure is recorded as 'rejected' with the reason. (2) Judged: AUC on this
box's holdout students (never trained on here) against the model serving now. (3) Activated only if
its AUC is at most ``activation_margin`` below the current one; otherwise it stays a 'candidate' and
the admin page shows why. With too few holdout answers to judge (a new box), a verified model is
activated: the hub's model beats an untrained one, and the reason says so.

Activation and rollback write the repository's ACTIVE/HISTORY files (atomic renames); every web worker's
inference engine picks the change up, loading and warming the version before it switches, so no
request fails during the swap. ``classroom-edge train rollback`` is the one command to undo.
"""
from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from appliance.errors import Conflict, IntegrityError, NotFound
from appliance.federated.artifact import REPO_VERSION_RE
from appliance.federated.data import holdout_students, load_interactions
from appliance.federated.local_train import Rows
from appliance.federated.models import (
    load_any,
    load_verified,
    open_repository,
    repository_dir,
)
from appliance.learning.learner_train import auc
from appliance.store.database import now_iso

log = logging.getLogger(__name__)


@dataclass
class Decision:
    version: int
    status: str          # 'active', 'candidate', 'rejected' (or the earlier decision, when repeated)
    reason: str
    holdout_rows: int = 0
    holdout_auc: float | None = None
    current_auc: float | None = None
    current_version: str | None = None


def serving_repository(cfg):
    """The repository as the inference engine sees it (its own trust rules for local models)."""
    from appliance.inference.repository import Repository

    return Repository.for_serving(repository_dir(cfg), cfg.inference.trusted_keys)


def _recorded(conn, model: str, version: int):
    return conn.execute("SELECT status, reason FROM candidates WHERE model = ? AND version = ?",
                        (model, version)).fetchone()


def consider(services, repo_version: str) -> Decision:
    """Decide about a global version that is in the repository (called after the downlink imported it)."""
    cfg = services.cfg
    model = cfg.federated.model
    m = REPO_VERSION_RE.match(repo_version)
    if not m:
        raise NotFound(f"{repo_version!r} is not a global model version (gNNNNNN)")
    version = int(m.group(1))
    with services.db.read() as conn:
        earlier = _recorded(conn, model, version)
    if earlier is not None:
        return Decision(version, earlier["status"], earlier["reason"])
    serving = serving_repository(cfg)
    current = _served_before(serving, model, repo_version)
    if current is not None and not (serving.root / model / "ACTIVE").exists():
        serving.set_active(model, current)  # pin: a version nobody judged must not serve by being highest
    try:
        new = load_verified(open_repository(cfg), model, repo_version)
    except IntegrityError as exc:
        d = Decision(version, "rejected", exc.message)
        _quarantine(cfg, model, repo_version)
        _store(services, d, repo_version, "")
        log.warning("global model %s version %d rejected: %s", model, version, exc.message)
        return d
    d = _judge(services, new, serving, current)
    if d.status == "active":
        _activate(services, serving, d, repo_version, new.sha256)
    else:
        _store(services, d, repo_version, new.sha256)
    log.info("global model %s version %d: %s (%s)", model, version, d.status, d.reason)
    return d


def _quarantine(cfg, model: str, repo_version: str) -> None:
    """Move a version that failed verification out of the repository, so nothing can ever load it; kept
    under <data_dir>/federated/rejected for whoever investigates."""
    src = repository_dir(cfg) / model / repo_version
    if not src.is_dir():
        return
    dest = Path(cfg.storage.data_dir) / "federated" / "rejected" / f"{model}-{repo_version}-{int(time.time())}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(src), str(dest))
    log.warning("moved rejected %s version %s to %s", model, repo_version, dest)


def _served_before(serving, model: str, new: str) -> str | None:
    """What served before ``new`` arrived. Without an ACTIVE file the repository serves its highest
    version, which may be ``new`` itself; then the answer is the highest of the others."""
    if (serving.root / model / "ACTIVE").exists():
        return serving.active_version(model)
    from appliance.inference.manifest import version_key

    others = sorted((v for v in serving.versions(model) if v != new), key=version_key)
    return others[-1] if others else None


def _judge(services, new, serving, current: str | None) -> Decision:
    f = services.cfg.federated
    if current is None:
        return Decision(new.version, "active", "no model was serving: activated after its signature check")
    if current == new.repo_version:
        return Decision(new.version, "active", "already the serving version", current_version=current)
    with services.db.read() as conn:
        interactions = load_interactions(conn)
    held = holdout_students(interactions, f.holdout_fraction)
    new_rows = Rows.build(interactions, new.spec) if held else None
    mask = new_rows.mask(only=held) if held else np.zeros(0, dtype=bool)
    n = int(mask.sum())
    ys = new_rows.y[mask] if n else np.zeros(0)
    if n < f.min_holdout_rows or len(np.unique(ys)) < 2:
        return Decision(new.version, "active", f"only {n} holdout answers on this box (fewer than "
                        f"{f.min_holdout_rows}): activated on its verified signature", n, current_version=current)
    try:
        cur_params, cur_spec = load_any(serving, f.model, current)
    except (IntegrityError, NotFound) as exc:
        return Decision(new.version, "active", f"the serving version {current} cannot be read ({exc.message}): "
                        "replaced by the verified global model", n, current_version=current)
    new_auc = auc(ys, _predict(new_rows.X[mask], new.params))
    cur_rows = new_rows if cur_spec == new.spec else Rows.build(interactions, cur_spec)
    cur_auc = auc(ys, _predict(cur_rows.X[cur_rows.mask(only=held)], cur_params))
    gap = cur_auc - new_auc
    if gap <= f.activation_margin:
        return Decision(new.version, "active", f"holdout AUC {new_auc:.4f} vs {cur_auc:.4f} for version {current} "
                        f"({n} answers)", n, new_auc, cur_auc, current)
    return Decision(new.version, "candidate", f"holdout AUC {new_auc:.4f} is {gap:.4f} below the serving version "
                    f"{current} ({cur_auc:.4f}) on {n} answers; the margin is {f.activation_margin:g}",
                    n, new_auc, cur_auc, current)


def _predict(X, params: np.ndarray) -> np.ndarray:
    p = params.astype(np.float64)
    return np.asarray(X @ p[:-1]).reshape(-1) + p[-1]  # logits: AUC only needs the order


def _store(services, d: Decision, repo_version: str, sha: str, *, extra=None) -> None:
    model = services.cfg.federated.model
    at = now_iso()

    def job(conn):
        if extra:
            extra(conn)
        conn.execute(
            "INSERT INTO candidates (model, version, repo_version, sha256, status, holdout_rows, holdout_auc, "
            "current_auc, current_version, reason, received_at, decided_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (model, version) DO UPDATE SET status = excluded.status, reason = excluded.reason, "
            "decided_at = excluded.decided_at",
            (model, d.version, repo_version, sha, d.status, d.holdout_rows, d.holdout_auc, d.current_auc,
             d.current_version, d.reason, at, at))

    services.db.write(job)


def _activate(services, serving, d: Decision, repo_version: str, sha: str) -> None:
    model = services.cfg.federated.model
    serving.set_active(model, repo_version)
    _store(services, d, repo_version, sha, extra=lambda conn: conn.execute(
        "UPDATE candidates SET status = 'retired', decided_at = ? WHERE model = ? AND status = 'active' "
        "AND version != ?", (now_iso(), model, d.version)))


def activate_candidate(services, version: int) -> Decision:
    """An administrator overrides the policy: activate a candidate (verified again first)."""
    model = services.cfg.federated.model
    with services.db.read() as conn:
        row = conn.execute("SELECT repo_version, status FROM candidates WHERE model = ? AND version = ?",
                           (model, version)).fetchone()
    if row is None:
        raise NotFound(f"global model version {version} has not been received")
    if row["status"] == "rejected":
        raise Conflict(f"global model version {version} failed verification and cannot be activated")
    new = load_verified(open_repository(services.cfg), model, row["repo_version"])
    d = Decision(version, "active", f"activated by an administrator at {now_iso()}")
    _activate(services, serving_repository(services.cfg), d, row["repo_version"], new.sha256)
    return d


def rollback(services) -> dict:
    """Go back to the version that served before the current one (one command: ``train rollback``)."""
    model = services.cfg.federated.model
    serving = serving_repository(services.cfg)
    current = serving.active_version(model)
    if current is None:
        raise Conflict(f"no {model} model is serving: nothing to roll back")
    target = serving.rollback_target(model)  # Conflict when there is nothing earlier
    serving.mark_rolled_back(model, target, current)
    at = now_iso()

    def job(conn):
        cur = REPO_VERSION_RE.match(current)
        if cur:
            conn.execute("UPDATE candidates SET status = 'rolled_back', reason = ?, decided_at = ? WHERE model = ? "
                         "AND version = ?", (f"rolled back by an administrator at {at}", at, model, int(cur.group(1))))
        tgt = REPO_VERSION_RE.match(target)
        if tgt:
            conn.execute("UPDATE candidates SET status = 'active', reason = ?, decided_at = ? WHERE model = ? "
                         "AND version = ?", (f"active again after a rollback at {at}", at, model, int(tgt.group(1))))

    services.db.write(job)
    log.info("model %s rolled back from %s to %s", model, current, target)
    return {"model": model, "from": current, "to": target}
