"""Asynchronous buffered aggregation (FedBuff, Nguyen et al. 2022) on the hub.

Boxes are online at different times, so there are no synchronous rounds: every accepted update goes
into a buffer, and every ``buffer_size`` (K) accepted updates the hub makes a new global version:

    new = current + server_lr * combine(strategy, deltas, weights)
    weight = min(samples, max_samples_per_update) * 1 / sqrt(1 + staleness),
    staleness = current version - base version

An update based on a version more than ``max_staleness`` behind is refused (it was computed against a
model too different from today's to help).

Idempotence, the property the sync layer relies on: an update is keyed by (box, base version, update
id) and stored in the same transaction that decides about it. A replay finds its key and changes
nothing, whatever its state (buffered, applied or refused). A buffer is always combined in key order,
in float64, from the stored bytes, so the same set of updates gives the bit-identical version no matter
in which order, or how many times, they arrived.

Every method takes a ``sqlite3.Connection`` that is inside a transaction (``Database.write``), so a
decision and its effects are committed together.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import sqlite3
from dataclasses import dataclass

import numpy as np

from appliance.federated import strategies
from appliance.federated.artifact import params_sha256
from appliance.federated.update import decode
from appliance.learning.features import FeatureSpec
from appliance.store.database import now_iso

log = logging.getLogger(__name__)


IMPLAUSIBLE_NORM_FACTOR = 1000.0


@dataclass(frozen=True)
class AggregatorSettings:
    model: str = "learner"
    buffer_size: int = 10
    max_staleness: int = 5
    strategy: str = "fedavg"
    trim_fraction: float = 0.2
    server_lr: float = 1.0
    norm_bound: float = 5.0
    max_samples: int = 0  # 0: no cap

    @classmethod
    def from_config(cls, cfg) -> AggregatorSettings:
        f = cfg.federated
        return cls(f.model, f.buffer_size, f.max_staleness, f.strategy, f.trim_fraction, f.server_lr,
                   f.server_norm_bound or f.clip_norm, f.max_samples_per_update)

    def counted_samples(self, claimed: int) -> int:
        """The samples an update weighs with: what it claims, up to the cap. The count is the box's
        word; the cap bounds what one box can buy by inflating it (the robust strategies ignore it)."""
        return min(claimed, self.max_samples) if self.max_samples > 0 else claimed


@dataclass
class GlobalModel:
    version: int
    params: np.ndarray
    spec: FeatureSpec


@dataclass
class Outcome:
    status: str                 # 'buffered', 'duplicate', 'conflict', 'refused'
    key: str = ""
    reason: str = ""
    staleness: int | None = None
    new_version: int | None = None


def staleness_factor(staleness: int) -> float:
    return 1.0 / math.sqrt(1.0 + staleness)


class Aggregator:
    def __init__(self, settings: AggregatorSettings):
        if settings.buffer_size < 1 or settings.max_staleness < 0:
            raise ValueError("buffer_size must be >= 1 and max_staleness >= 0")
        self.s = settings

    # -- the global model ------------------------------------------------------------------------
    def current(self, conn: sqlite3.Connection) -> GlobalModel | None:
        row = conn.execute("SELECT version, params, spec FROM fl_rounds WHERE model = ? ORDER BY version DESC "
                           "LIMIT 1", (self.s.model,)).fetchone()
        if row is None:
            return None
        return GlobalModel(row[0], np.frombuffer(row[1], dtype="<f4").astype(np.float32),
                           FeatureSpec.from_dict(json.loads(row[2])))

    def bootstrap(self, conn: sqlite3.Connection, params: np.ndarray, spec: FeatureSpec) -> int:
        """Make version 1 from ``params`` unless a version exists; returns the current version."""
        cur = self.current(conn)
        if cur is not None:
            return cur.version
        params = np.asarray(params, dtype=np.float32)
        if params.shape != (spec.n_features + 1,) or not np.all(np.isfinite(params)):
            raise ValueError("initial parameters do not match the feature spec or are not finite")
        self._insert_round(conn, 1, None, params, spec, "initial", 0, 0, 0.0)
        log.info("federated model %s: initial global version 1", self.s.model)
        return 1

    # -- updates ---------------------------------------------------------------------------------
    def submit(self, conn: sqlite3.Connection, payload: bytes, *, sender: str | None = None) -> Outcome:
        """Decide about one update (raises ``BadRequest`` for bytes that are not an update at all)."""
        upd = decode(payload)
        key = upd.key
        digest = hashlib.sha256(payload).hexdigest()
        seen = conn.execute("SELECT payload_sha256, status FROM fl_updates WHERE box = ? AND base_version = ? "
                            "AND update_id = ?", (key.box, key.base_version, key.update_id)).fetchone()
        if seen is not None:
            if seen[0] != digest:
                log.warning("update %s arrived again with different bytes; keeping the first", key)
                return Outcome("conflict", str(key), "same key, different content")
            return Outcome("duplicate", str(key), f"already {seen[1]}")
        cur = self.current(conn)
        reason = self._refusal(upd, cur, sender)
        staleness = None if cur is None else cur.version - key.base_version
        norm = float(np.linalg.norm(upd.delta.astype(np.float64)))
        status = "refused" if reason else "buffered"
        weight = None if reason else self.s.counted_samples(upd.samples) * staleness_factor(staleness)
        conn.execute(
            "INSERT INTO fl_updates (box, base_version, update_id, model, direction, status, samples, norm, clipped, "
            "noise_multiplier, size_bytes, payload_sha256, payload, staleness, weight, reason, created_at) "
            "VALUES (?, ?, ?, ?, 'received', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key.box, key.base_version, key.update_id, upd.model, status, upd.samples, norm, int(upd.clipped),
             upd.noise_multiplier, len(payload), digest, None if reason else payload, staleness, weight,
             reason or None, now_iso()))
        if reason:
            log.info("refused update %s: %s", key, reason)
            return Outcome("refused", str(key), reason, staleness)
        new_version = self._maybe_aggregate(conn, cur)
        return Outcome("buffered", str(key), "", staleness, new_version)

    def _refusal(self, upd, cur: GlobalModel | None, sender: str | None) -> str:
        if sender is not None and upd.key.box != sender:
            return f"update names box {upd.key.box!r} but came from {sender!r}"
        if upd.model != self.s.model:
            return f"update is for model {upd.model!r}, this hub aggregates {self.s.model!r}"
        if cur is None:
            return "the hub has no global version yet"
        if upd.key.base_version > cur.version or upd.key.base_version < 1:
            return f"base version {upd.key.base_version} is unknown (current is {cur.version})"
        behind = cur.version - upd.key.base_version
        if behind > self.s.max_staleness:
            return f"too stale: based on version {upd.key.base_version}, {behind} behind (limit {self.s.max_staleness})"
        if upd.delta.size != cur.params.size:
            return f"update has {upd.delta.size} values, the model {cur.params.size}"
        if upd.samples < 1:
            return "update claims no training samples"
        # Far beyond any clipped (even noised) update: such a value can only overflow the buffer's sum.
        size = float(np.linalg.norm(upd.delta.astype(np.float64)))
        if not np.isfinite(size) or size > IMPLAUSIBLE_NORM_FACTOR * self.s.norm_bound:
            return f"update norm {size:.3g} is implausible (bound {self.s.norm_bound})"
        return ""

    def _maybe_aggregate(self, conn: sqlite3.Connection, cur: GlobalModel) -> int | None:
        rows = conn.execute(
            "SELECT payload, weight, samples FROM fl_updates WHERE model = ? AND direction = 'received' "
            "AND status = 'buffered' ORDER BY box, base_version, update_id", (self.s.model,)).fetchall()
        if len(rows) < self.s.buffer_size:
            return None
        deltas = [decode(bytes(r[0])).delta for r in rows]
        weights = [float(r[1]) for r in rows]
        step = strategies.combine(self.s.strategy, deltas, weights, trim_fraction=self.s.trim_fraction,
                                  bound=self.s.norm_bound)
        new = (cur.params.astype(np.float64) + self.s.server_lr * step).astype(np.float32)
        if not np.all(np.isfinite(new)):
            raise ValueError("aggregation produced non-finite parameters; buffer kept for inspection")
        version = cur.version + 1
        self._insert_round(conn, version, cur.version, new, cur.spec, self.s.strategy, len(rows),
                           sum(int(r[2]) for r in rows), float(np.linalg.norm(step)))
        conn.execute("UPDATE fl_updates SET status = 'applied', version = ?, payload = NULL WHERE model = ? "
                     "AND direction = 'received' AND status = 'buffered'", (version, self.s.model))
        log.info("federated model %s: version %d from %d updates (%s)", self.s.model, version, len(rows),
                 self.s.strategy)
        return version

    def _insert_round(self, conn, version, parent, params, spec, strategy, n, samples, step_norm) -> None:
        conn.execute(
            "INSERT INTO fl_rounds (model, version, parent, strategy, updates, samples, params, params_sha256, spec, "
            "update_norm, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (self.s.model, version, parent, strategy, n, samples, np.asarray(params, dtype="<f4").tobytes(),
             params_sha256(params), json.dumps(spec.to_dict(), sort_keys=True), step_norm, now_iso()))

    # -- reading ---------------------------------------------------------------------------------
    def summary(self, conn: sqlite3.Connection) -> dict:
        cur = conn.execute("SELECT max(version) FROM fl_rounds WHERE model = ?", (self.s.model,)).fetchone()[0]
        counts = dict(conn.execute("SELECT status, count(*) FROM fl_updates WHERE model = ? AND direction = "
                                   "'received' GROUP BY status", (self.s.model,)).fetchall())
        return {"model": self.s.model, "version": cur, "strategy": self.s.strategy,
                "buffer": f"{counts.get('buffered', 0)}/{self.s.buffer_size}", "updates": counts}

