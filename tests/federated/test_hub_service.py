"""The hub's aggregator service: stored updates in, signed versions out; and the whole loop over MQTT."""
from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest
from fl_util import keypair, seed_answers
from mqtt_broker import (  # noqa: F401 - pytest fixtures
    box_sections,
    broker_factory,
    hub_sections,
    load,
    mqtt_broker,
    wait_until,
)

from appliance.federated.update import ModelUpdate, UpdateKey, encode, new_update_id
from appliance.learning.features import FeatureSpec

SPEC = FeatureSpec()
N = SPEC.n_features + 1


def _payload(box: str, base: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    delta = np.zeros(N, dtype=np.float32)
    delta[rng.choice(N, 100, replace=False)] = rng.normal(0, 0.1, 100)
    return encode(ModelUpdate(UpdateKey(box, base, new_update_id()), "learner", 200, delta), 256, rng)


def _store_update(store, site: str, device: str, payload: bytes, event_id: str | None = None) -> None:
    """What an ingest worker does with a complete update that arrived on up/fl."""
    import hashlib
    import uuid

    props = {"event_id": event_id or str(uuid.uuid4()), "type": "fl_update", "idx": "0", "chunks": "1",
             "size": str(len(payload)), "sha256": hashlib.sha256(payload).hexdigest(), "meta": "{}"}
    assert store.store_fl_chunk(site, device, props, payload, 1 << 20)


@pytest.fixture
def hub_cfg(tmp_path):
    seed, pub = keypair()
    key_file = tmp_path / "hub.key"
    key_file.write_text(seed + "\n")
    cfg = load({"storage": {"data_dir": str(tmp_path / "hub")},
                "hub": {"signing_key_file": str(key_file)},
                "federated": {"buffer_size": 2, "initial_model": "zeros"}})
    return cfg, pub


def test_service_consumes_updates_once_and_publishes_signed_versions(hub_cfg, tmp_path):
    from appliance.hub.federated import FederatedHub
    from appliance.hub.store import HubStore
    from appliance.inference.signing import verify_manifest

    cfg, pub = hub_cfg
    published = []

    def capture(name, version, archive, meta):
        with tarfile.open(archive) as tar:
            doc = json.load(tar.extractfile("model.json"))
        published.append((name, version, doc, meta))

    ingest = HubStore(cfg).open()
    hub = FederatedHub(cfg, publish=capture).open()
    try:
        hub.tick()
        assert [(p[1], p[3]) for p in published] == [("g000001", {"global_version": 1})]
        a, b = _payload("school1/box1", 1, 1), _payload("school1/box2", 1, 2)
        _store_update(ingest, "school1", "box1", a)
        _store_update(ingest, "school1", "box2", b)
        _store_update(ingest, "school1", "box2", b)  # the box re-sent it under a new event id
        _store_update(ingest, "school1", "box3", _payload("school1/box1", 1, 3))  # forged box name
        _store_update(ingest, "school1", "box3", b"not an update")
        hub.tick()
        st = hub.status()
        assert st["version"] == 2 and st["buffered"] == 2 and st["duplicates"] == 1
        assert st["refused"] == 1 and st["malformed"] == 1 and st["consumed"] == 5
        assert ingest.query("SELECT count(*) FROM hub_fl_updates WHERE consumed_at IS NULL")[0][0] == 0
        name, version, doc, meta = published[-1]
        assert (name, version, meta) == ("learner", "g000002", {"global_version": 2})
        assert doc["federated"]["version"] == 2 and doc["federated"]["parent"] == 1
        verify_manifest(doc, [pub], "global model")  # signed with the hub key
        hub.tick()
        assert len(published) == 2  # nothing new: nothing announced again
    finally:
        hub.close()
        ingest.close()


def test_a_failed_publish_is_retried_and_reported(hub_cfg):
    from appliance.errors import Unavailable
    from appliance.hub.federated import FederatedHub

    cfg, _ = hub_cfg
    calls = []

    def flaky(name, version, archive, meta):
        calls.append(version)
        if len(calls) == 1:
            raise Unavailable("cannot reach the broker")

    hub = FederatedHub(cfg, publish=flaky).open()
    try:
        hub.tick()
        assert "cannot reach the broker" in hub.status()["publish_error"]
        hub.tick()
        assert calls == ["g000001", "g000001"] and hub.status()["publish_error"] is None
    finally:
        hub.close()


@pytest.mark.slow
def test_the_whole_loop_over_a_real_mosquitto(tmp_path, mqtt_broker):  # noqa: F811 - the fixture
    """Box trains -> outbox -> relay -> Mosquitto -> ingest -> aggregator -> publisher -> downlink -> policy."""
    from appliance.federated.downlink import FederatedInstallHandler
    from appliance.federated.training import run_training
    from appliance.hub.federated import FederatedHub
    from appliance.hub.ingest import IngestWorker
    from appliance.learning.simulator import make_curriculum, simulate_classroom
    from appliance.services import Services
    from appliance.sync.service import SyncService

    seed, pub = keypair()
    key_file = tmp_path / "hub.key"
    key_file.write_text(seed + "\n")
    hub_cfg = load({**hub_sections(tmp_path / "hub", mqtt_broker, signing_key_file=str(key_file)),
                    "federated": {"buffer_size": 1, "initial_model": "zeros"}})
    box = box_sections(tmp_path / "box", mqtt_broker, trusted_keys=[pub])
    box_cfg = load({**box, "federated": {"min_samples": 20}})

    hub = FederatedHub(hub_cfg).open()
    worker = IngestWorker(hub_cfg, on_update=hub.wake)
    services = Services.open(box_cfg)
    relay = SyncService(box_cfg, services.db, FederatedInstallHandler(services))
    started = []
    try:
        worker.start()
        started.append(worker)
        hub.start()
        started.append(hub)
        relay.start()
        started.append(relay)
        seed_answers(services.db, simulate_classroom(5, n_students=20, curriculum=make_curriculum(0)))

        def decided(v):
            with services.db.read() as conn:
                row = conn.execute("SELECT status FROM candidates WHERE version = ?", (v,)).fetchone()
            return row and row[0]

        assert wait_until(lambda: decided(1), 60, what="global version 1 on the box") == "active"
        res = run_training(services)
        assert res.status == "sent" and res.base_version == 1
        assert wait_until(lambda: decided(2), 60, what="global version 2 on the box") == "active"
        st = hub.status()
        assert st["version"] == 2 and st["buffered"] == 1
        with services.db.read() as conn:
            assert conn.execute("SELECT count(*) FROM sync_blobs").fetchone()[0] == 0  # acked end to end
        from appliance.federated.activation import serving_repository

        assert serving_repository(box_cfg).active_version("learner") == "g000002"
        from appliance.federated.status import federated_status

        st = federated_status(services)
        assert st["updates_waiting_for_uplink"] == 0 and st["updates_sent"][0]["delivered"] is True
    finally:
        for part in reversed(started):
            part.stop(15)
        hub.close()
        services.close()
