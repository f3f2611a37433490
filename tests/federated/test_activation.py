"""The box's policy for global models: verify, judge on holdout students, activate or keep, roll back."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from config_helpers import make_config
from fl_util import as_lms, install_local, install_version, keypair, seed_answers

from appliance.errors import Conflict
from appliance.federated import activation
from appliance.federated.artifact import write_version_dir
from appliance.federated.local_train import Rows
from appliance.federated.models import open_repository
from appliance.federated.status import federated_status, part_status
from appliance.learning.features import FeatureSpec
from appliance.learning.learner_train import params_to_vector, train
from appliance.learning.simulator import make_curriculum, simulate_classroom
from appliance.services import Services

SPEC = FeatureSpec()


@pytest.fixture(scope="module")
def models():
    """(good params, bad params) for the simulated course, trained on other classrooms."""
    cur = make_curriculum(0)
    other = [a for seed in (11, 12, 13) for a in simulate_classroom(seed, n_students=25, curriculum=cur)]
    rows = Rows.build(as_lms(other), SPEC)
    good = params_to_vector(train(rows.X, rows.y, SPEC))
    bad = good.copy()
    bad[:-1] = -bad[:-1]  # every weight backwards: ranks answers the wrong way round
    return good, bad


@pytest.fixture
def keys():
    return keypair()


@pytest.fixture
def box(tmp_path, keys):
    s = Services.open(make_config(tmp_path / "data", federated__trusted_keys=keys[1], sync__device="box1"))
    seed_answers(s.db, simulate_classroom(21, n_students=30, curriculum=make_curriculum(0)))
    yield s
    s.close()


def _serving(s):
    return activation.serving_repository(s.cfg).active_version("learner")


def test_first_global_model_on_a_box_without_one_is_activated(box, keys, models):
    rv = install_version(open_repository(box.cfg), version=1, params=models[0], spec=SPEC, key_b64=keys[0])
    d = activation.consider(box, rv)
    assert d.status == "active" and "no model was serving" in d.reason
    assert _serving(box) == rv
    assert activation.consider(box, rv).status == "active"  # asked again: same answer, nothing changes


def test_a_better_model_is_activated_and_a_worse_one_kept_as_a_candidate(box, keys, models):
    good, bad = models
    repo = open_repository(box.cfg)
    local = install_local(repo, np.zeros(SPEC.n_features + 1, np.float32), SPEC)  # the install-time default
    activation.serving_repository(box.cfg).set_active("learner", local)

    d2 = activation.consider(box, install_version(repo, version=2, params=good, spec=SPEC, key_b64=keys[0]))
    assert d2.status == "active" and d2.holdout_rows >= 200 and d2.holdout_auc > 0.65
    assert d2.current_auc == pytest.approx(0.5)  # the all-zero default ranks nothing
    assert _serving(box) == "g000002"

    d3 = activation.consider(box, install_version(repo, version=3, params=bad, spec=SPEC, key_b64=keys[0]))
    assert d3.status == "candidate" and "below the serving version g000002" in d3.reason
    assert d3.holdout_auc < d3.current_auc - box.cfg.federated.activation_margin
    assert _serving(box) == "g000002"

    st = federated_status(box)
    assert st["active_global"] == 2 and st["serving_version"] == "g000002"
    assert [c["status"] for c in st["candidates"]] == ["candidate", "active"]
    line = part_status(box)
    assert line.state == "ok" and "version 3 kept as a candidate" in line.detail

    activation.activate_candidate(box, 3)  # the admin overrides the policy
    assert _serving(box) == "g000003"


def test_tampered_or_foreign_models_are_rejected_with_the_reason(box, keys, models):
    repo = open_repository(box.cfg)

    def flip_a_byte(d: Path):
        data = bytearray((d / "model.onnx").read_bytes())
        data[-5] ^= 0x01
        (d / "model.onnx").write_bytes(bytes(data))

    d1 = activation.consider(box, install_version(repo, version=1, params=models[0], spec=SPEC, key_b64=keys[0],
                                                 tamper=flip_a_byte))
    assert d1.status == "rejected" and "sha256" in d1.reason
    stranger = keypair()[0]
    d2 = activation.consider(box, install_version(repo, version=2, params=models[0], spec=SPEC, key_b64=stranger))
    assert d2.status == "rejected" and "signature" in d2.reason
    d3 = activation.consider(box, install_version(repo, version=3, params=models[0], spec=SPEC, key_b64=None))
    assert d3.status == "rejected" and "not signed" in d3.reason
    # Nothing that failed verification stays where the inference engine could load it.
    assert repo.versions("learner") == [] and _serving(box) is None
    assert len(list((Path(box.cfg.storage.data_dir) / "federated" / "rejected").iterdir())) == 3
    with pytest.raises(Conflict):
        activation.activate_candidate(box, 1)


def test_rollback_is_one_call_and_goes_back_to_what_served_before(box, keys, models):
    good, _ = models
    repo = open_repository(box.cfg)
    v1 = install_version(repo, version=1, params=good * 0.5, spec=SPEC, key_b64=keys[0])
    assert activation.consider(box, v1).status == "active"
    v2 = install_version(repo, version=2, params=good, spec=SPEC, key_b64=keys[0])
    assert activation.consider(box, v2).status == "active"
    out = activation.rollback(box)
    assert out == {"model": "learner", "from": v2, "to": v1}
    assert _serving(box) == v1
    with box.db.read() as conn:
        states = dict(conn.execute("SELECT version, status FROM candidates").fetchall())
    assert states == {1: "active", 2: "rolled_back"}
    # The rolled-back version is not re-activated when the downlink offers it again.
    assert activation.consider(box, v2).status == "rolled_back"
    assert _serving(box) == v1
    with pytest.raises(Conflict):
        activation.rollback(box)  # nothing served before v1


def test_the_downlink_import_does_not_switch_the_model_on_by_itself(box, keys, models):
    """Without an ACTIVE file the highest version serves, and g-versions sort above local ones."""
    from appliance.federated.downlink import FederatedInstallHandler
    from appliance.sync.handlers import pack_model_dir

    good, bad = models
    repo = open_repository(box.cfg)
    local = install_local(repo, good, SPEC)
    assert _serving(box) == local and not (repo.root / "learner" / "ACTIVE").exists()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "v"
        write_version_dir(d, model="learner", version=1, parent=None, params=bad, spec=SPEC, info={},
                          signing_key_b64=keys[0])
        archive = Path(tmp) / "m.tar"
        pack_model_dir(d, archive)
        FederatedInstallHandler(box).on_model("learner", "g000001", archive)
    assert "g000001" in repo.versions("learner")
    assert _serving(box) == local
    with box.db.read() as conn:
        row = conn.execute("SELECT status, reason FROM candidates WHERE version = 1").fetchone()
    assert row["status"] == "candidate" and "below" in row["reason"]
    assert json.loads((repo.root / "learner" / "g000001" / "model.json").read_text())["federated"]["version"] == 1


def test_health_shows_the_federated_line(services, client):
    from appliance.federated.status import attach

    attach(services)
    parts = {p["name"]: p for p in client.get("/api/v1/health").get_json()["parts"]}
    assert parts["federated"]["state"] == "ok"
    assert "no update sent yet" in parts["federated"]["detail"]
    assert parts["federated"]["federated"]["serving_version"] is None
