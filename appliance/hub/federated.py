"""The hub's federated aggregator service: stored updates in, signed global versions out.

The ingest workers store every complete update from ``up/fl`` in ``hub_fl_updates`` (idempotently, by
event id) and acknowledge it to the box. This service (one per district: aggregation is a single
sequence of versions) takes the unconsumed ones in arrival order, hands each to the ``Aggregator`` in
the aggregator's own SQLite file (``<data_dir>/hub-federated.db``), and then marks it consumed. A crash
between the two is harmless: the update is offered again and its key makes it a no-op.

When the aggregator makes a version, the service writes it as a signed model version directory
(``federated.artifact``), packs it, and publishes it through the downlink publisher (retained, chunked,
signed announcement on ``ce/v1/global/models/<model>``). Only the newest version is announced; a
failed publish is retried on the next tick and shown in ``status()``.
"""
from __future__ import annotations

import json
import logging
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from appliance.errors import AppError, BadRequest, ConfigError
from appliance.federated.aggregator import Aggregator, AggregatorSettings
from appliance.federated.artifact import repo_version, write_version_dir
from appliance.federated.schema import MIGRATIONS
from appliance.learning.features import FeatureSpec
from appliance.store.database import Database, now_iso
from appliance.store.migrations import apply_migrations

log = logging.getLogger(__name__)

UPDATE_TYPE = "fl_update"
BATCH = 100


def _default_publish(cfg) -> Callable:
    def publish(name: str, version: str, archive: Path, meta: dict):
        from appliance.hub.publisher import publish as do_publish

        return do_publish(cfg, "model", name, version, archive, meta)

    return publish


def initial_params(cfg) -> tuple[np.ndarray, FeatureSpec]:
    if cfg.federated.initial_model == "zeros":
        spec = FeatureSpec()
        return np.zeros(spec.n_features + 1, dtype=np.float32), spec
    from appliance.learning.learner_train import params_to_vector, train_default

    model, _ = train_default()
    return params_to_vector(model), model.spec


class FederatedHub:
    def __init__(self, cfg, *, publish: Callable | None = None, store=None):
        from appliance.hub.store import HubStore

        self.cfg = cfg
        self.agg = Aggregator(AggregatorSettings.from_config(cfg))
        self.path = Path(cfg.storage.data_dir) / "hub-federated.db"
        self.store = store or HubStore(cfg)  # its own connection: the ingest thread owns the other one
        self.publish = publish or _default_publish(cfg)
        self.db: Database | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stats = {"consumed": 0, "buffered": 0, "duplicates": 0, "refused": 0, "malformed": 0,
                      "versions": 0, "published": None, "publish_error": None, "last_error": None}

    # -- lifecycle ---------------------------------------------------------------------------------
    def open(self, params: np.ndarray | None = None, spec: FeatureSpec | None = None) -> FederatedHub:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        apply_migrations(self.path, MIGRATIONS)
        self.db = Database(self.path)
        self.store.open()
        with self.db.read() as conn:
            exists = self.agg.current(conn) is not None
        if not exists:
            if params is None:
                params, spec = initial_params(self.cfg)
            self.db.write(lambda c: self.agg.bootstrap(c, params, spec))
        return self

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
        self.store.close()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="hub-federated")
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("the federated aggregator did not stop within %.0f s", timeout)
            self._thread = None

    def wake(self, site: str = "", device: str = "", event_id: str = "") -> None:
        """``IngestWorker(on_update=...)`` hook: an update was stored; look now rather than at the next poll."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.cfg.federated.hub_poll_s)
            self._wake.clear()
            try:
                self.tick()
            except Exception as exc:
                log.exception("federated aggregator tick failed")
                self.stats["last_error"] = f"{type(exc).__name__}: {exc}"

    # -- work --------------------------------------------------------------------------------------
    def tick(self) -> None:
        while self._consume_some():
            pass
        self._publish_newest()

    def _consume_some(self) -> bool:
        rows = self.store.query("SELECT event_id, site, device, data FROM hub_fl_updates WHERE consumed_at IS NULL "
                                "AND type = ? ORDER BY received_at, event_id LIMIT ?", (UPDATE_TYPE, BATCH))
        for event_id, site, device, data in rows:
            try:
                sender = f"{site}/{device}"
                out = self.db.write(lambda c, d=bytes(data), who=sender: self.agg.submit(c, d, sender=who))
                self.stats[{"buffered": "buffered", "refused": "refused"}.get(out.status, "duplicates")] += 1
                if out.new_version is not None:
                    self.stats["versions"] += 1
            except BadRequest as exc:
                self.stats["malformed"] += 1
                log.warning("update %s from %s/%s is malformed: %s", event_id, site, device, exc.message)
            except ValueError as exc:
                # One bad row must not stop aggregation for the district: record it and move on.
                self.stats["malformed"] += 1
                log.error("update %s from %s/%s could not be aggregated: %s", event_id, site, device, exc)
            self.store.query("UPDATE hub_fl_updates SET consumed_at = ? WHERE event_id = ? RETURNING event_id",
                             (now_iso(), event_id))
            self.stats["consumed"] += 1
        return len(rows) == BATCH

    def _publish_newest(self) -> None:
        model = self.agg.s.model
        with self.db.read() as conn:
            row = conn.execute("SELECT version, parent, params, spec, strategy, updates, samples FROM fl_rounds "
                               "WHERE model = ? ORDER BY version DESC LIMIT 1", (model,)).fetchone()
        if row is None or self._published(row["version"]):
            return
        version = row["version"]
        try:
            key = self._signing_key()
            with tempfile.TemporaryDirectory(prefix="ce-fl-publish-") as tmp:
                from appliance.sync.handlers import pack_model_dir

                d = Path(tmp) / "version"
                write_version_dir(d, model=model, version=version, parent=row["parent"],
                                  params=np.frombuffer(row["params"], dtype="<f4"),
                                  spec=FeatureSpec.from_dict(json.loads(row["spec"])),
                                  info={"strategy": row["strategy"], "updates": row["updates"],
                                        "samples": row["samples"]}, signing_key_b64=key)
                archive = Path(tmp) / "model.tar"
                pack_model_dir(d, archive)
                self.publish(model, repo_version(version), archive, {"global_version": version})
        except (AppError, OSError) as exc:
            msg = exc.message if isinstance(exc, AppError) else str(exc)
            self.stats["publish_error"] = f"version {version}: {msg}"
            self.db.write(lambda c: c.execute("UPDATE fl_rounds SET publish_error = ? WHERE model = ? AND version = ?",
                                              (msg, model, version)))
            log.warning("publishing global version %d failed (will retry): %s", version, msg)
            return
        self.db.write(lambda c: c.execute("UPDATE fl_rounds SET published_at = ?, publish_error = NULL WHERE model = ? "
                                          "AND version <= ? AND published_at IS NULL", (now_iso(), model, version)))
        self.stats["published"], self.stats["publish_error"] = version, None
        log.info("global %s version %d announced", model, version)

    def _published(self, version: int) -> bool:
        with self.db.read() as conn:
            row = conn.execute("SELECT published_at FROM fl_rounds WHERE model = ? AND version = ?",
                               (self.agg.s.model, version)).fetchone()
        return row is not None and row[0] is not None

    def _signing_key(self) -> str:
        path = self.cfg.hub.signing_key_file
        if not path:
            raise ConfigError("hub.signing_key_file is not set: global models must be signed")
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"hub.signing_key_file: cannot read {path}: {exc.strerror}") from None

    def status(self) -> dict:
        with self.db.read() as conn:
            summary = self.agg.summary(conn)
        return {**summary, **self.stats}


def for_ingest(cfg, index: int) -> FederatedHub | None:
    """The aggregator to run beside ingest worker ``index``, opened but not started, or None.

    Aggregation is one sequence of versions per district, so only worker 0 runs it (the others still
    store updates; the aggregator polls the shared table). Wiring in ``classroom-edge hub``::

        fl = for_ingest(cfg, args.worker)
        worker = IngestWorker(cfg, index=args.worker, on_update=fl.wake if fl else None)
        ... fl.start() after worker.start(); fl.stop(); fl.close() on the way out
    """
    if index != 0 or not cfg.federated.enabled:
        return None
    return FederatedHub(cfg).open()
